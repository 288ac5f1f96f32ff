"""Pipeline benchmarks (run by hand; results go to docs/PERFORMANCE.md).

    .venv/bin/python bench/bench_pipeline.py speed   [--provider cpu] [--sizes 256]
    .venv/bin/python bench/bench_pipeline.py memory  --method manet --lr 3000x2000
    .venv/bin/python bench/bench_pipeline.py kernel-at

Every command refuses to time on a busy machine (1-minute load average above 0.5) unless given
``--allow-load``, which marks its results LOADED (see ``bench/honest.py``).

* ``speed``: seconds per megapixel of SR output for each pipeline; the methods run interleaved
  (one run of each per round, median of ``--repeat`` rounds), with each one's ratio to the first.
* ``tiles``: MANet (kernel map) and RRDB-SFT (SR from codes) on one LR image with the automatic tile
  (the whole image when it fits the memory budget) against fixed tile sizes, interleaved, with each
  one's ratio to the automatic tile: the measurement that decides whether smaller tiles pay.
* ``memory``: peak host RSS (and peak GPU memory when on CUDA) of one ``upscale`` of a synthetic LR
  image of the given size, measured in a fresh process per size (``resource.getrusage`` max RSS).
* ``kernel-at``: latency of ``KernelMap.kernel_at`` for a stored kernel and for an exact
  recompute (MANet on the 32×32 neighbourhood), median over many random points.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, __import__("os").path.dirname(__import__("os").path.abspath(__file__)))
from honest import add_load_argument, interleaved, medians, report, require_idle  # noqa: E402


def synthetic_lr(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB test image (float32 [0, 1]) without any data files."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([np.sin(x / (7 + 3 * c)) * np.cos(y / (11 - 2 * c)) for c in range(3)], axis=-1)
    img = 0.5 + 0.35 * img + 0.05 * rng.standard_normal((h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def _models(method: str, provider: str, threads: int | None):
    from engine.pipeline.models import load_for_method

    return load_for_method(method, 4, device=provider, threads=threads)


def cmd_speed(args) -> None:
    from engine.imageio import Image
    from engine.upscale import UpscaleOptions, upscale

    cond = require_idle(args.allow_load)
    rows = []
    for size in args.sizes:
        lr = Image(rgb_f32=synthetic_lr(size, size))
        variants = {}
        for method in args.methods:
            models = None if method == "bicubic" else _models(method, args.provider, args.threads)
            opts = UpscaleOptions(method=method, scale=4, ikc_steps=args.ikc_steps)
            variants[method] = lambda opts=opts, models=models: upscale(lr, opts, models)
        times = interleaved(variants, args.repeat)  # one warm-up round: sessions, first-run allocations
        med = medians(times)
        first = args.methods[0]
        mp = (4 * size) ** 2 / 1e6
        for method in args.methods:
            rows.append([method, f"{size}x{size}", f"{med[method]:.3f}", f"{med[method] / mp:.3f}",
                         f"{med[method] / med[first]:.2f}× {first}",
                         str(args.ikc_steps) if method == "ikc" else ""])
    report(cond, "pipeline speed", rows, ["method", "LR", "median s", "s per MP out", "ratio", "IKC steps"],
           {"provider": args.provider, "repeat": args.repeat})


def cmd_tiles(args) -> None:
    from engine.pipeline.blind import _context_for, _tile_for, estimate_kernel_map, sr_from_codes

    cond = require_idle(args.allow_load)
    models = _models("manet", args.provider, args.threads)
    lr = synthetic_lr(args.size, args.size)
    codes = estimate_kernel_map(lr, models).codes
    variants = {}
    for tile in [None, *args.tiles]:
        label = "auto" if tile is None else str(tile)
        variants[f"manet tile {label}"] = lambda tile=tile: estimate_kernel_map(lr, models, tile=tile)
        variants[f"rrdb_sft tile {label}"] = lambda tile=tile: sr_from_codes(lr, codes, models, tile=tile)
    times = interleaved(variants, args.repeat)
    med = medians(times)
    auto = {"manet": _tile_for("manet", models, None, 12, 8, hw=(args.size, args.size)),
            "rrdb_sft": _tile_for("rrdb_sft", models, None, _context_for(models, "rrdb_sft", 16), 1,
                                      hw=(args.size, args.size))}
    rows = []
    for name in variants:
        net = name.split()[0]
        rows.append([name, f"{med[name]:.3f}", f"{med[name] / med[f'{net} tile auto']:.2f}",
                     f"auto = {auto[net]}" if name.endswith("auto") else ""])
    report(cond, f"tile sizes, LR {args.size}x{args.size}", rows, ["variant", "median s", "÷ auto", "note"],
           {"repeat": args.repeat})


def cmd_memory_one(args) -> None:
    """Runs in a child process: one upscale, then print peak RSS."""
    from engine.imageio import Image
    from engine.upscale import UpscaleOptions, upscale

    w, h = (int(v) for v in args.lr.split("x"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    lr = Image(rgb_f32=synthetic_lr(h, w))
    models = None if args.method == "bicubic" else _models(args.method, args.provider, args.threads)
    gpu = None  # GPU peak memory: measured with nvidia-smi on a CUDA machine (none here)
    t0 = time.perf_counter()
    res = upscale(lr, UpscaleOptions(method=args.method, scale=4, tile=args.tile, ikc_steps=args.ikc_steps), models)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"bench": "memory", "method": args.method, "lr": args.lr, "provider": res.provider,
                      "sr": f"{res.image.width}x{res.image.height}", "seconds": round(seconds, 1),
                      "peak_rss_mb": round(peak / 1024, 1), "rss_before_mb": round(base / 1024, 1),
                      "gpu_peak_mb": gpu}))


def cmd_memory(args) -> None:
    cond = require_idle(args.allow_load)  # peak RSS does not depend on load; the seconds do
    print(cond.header())
    for lr in args.sizes_wh:
        cmd = [sys.executable, __file__, "memory-one", "--method", args.method, "--lr", lr,
               "--provider", args.provider, "--ikc-steps", str(args.ikc_steps)]
        if args.tile:
            cmd += ["--tile", str(args.tile)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        print(out.stdout.strip() or out.stderr.strip()[-2000:])


def cmd_kernel_at(args) -> None:
    """Cold = a point in an 8×8 block not seen before (MANet reruns on its 32×32 neighbourhood)."""
    from engine.pipeline.blind import _recompute_fn, estimate_kernel_map

    cond = require_idle(args.allow_load)
    models = _models("estimate", args.provider, args.threads)
    lr = synthetic_lr(256, 256)
    rng = np.random.default_rng(0)
    jumps = rng.integers(0, 256, size=(args.points, 2))  # every point in a new region: cold recompute
    walk = np.clip(128 + np.cumsum(rng.integers(-1, 2, size=(args.points, 2)), axis=0), 0, 255)  # a hover path
    rows = []
    chw = np.ascontiguousarray(lr.transpose(2, 0, 1))
    for name, pts in (("cold (empty window cache per point)", jumps), ("hover path", walk)):
        times = []
        kmap = estimate_kernel_map(lr, models)
        kmap.kernel_at(1, 1)  # warm-up
        for x, y in pts:
            if name.startswith("cold"):
                kmap.recompute = _recompute_fn(models, chw)  # empty window cache: MANet runs
            t0 = time.perf_counter()
            kmap.kernel_at(int(x), int(y))
            times.append(time.perf_counter() - t0)
        rows.append([name, models.provider, f"{1e3 * statistics.median(times):.2f}",
                     f"{1e3 * float(np.percentile(times, 95)):.2f}", "≤ 16 ms" if name.startswith("cold") else ""])
    report(cond, "kernel_at", rows, ["mode", "provider", "median ms", "p95 ms", "target"], {"points": args.points})


def main() -> None:
    from engine.modelcards import default_ikc_steps

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("speed", "tiles", "memory", "memory-one", "kernel-at"):
        q = sub.add_parser(name)
        q.add_argument("--provider", default="cpu", choices=("auto", "cpu", "cuda"))
        q.add_argument("--threads", type=int, default=None)
        q.add_argument("--ikc-steps", type=int, default=default_ikc_steps())
        add_load_argument(q)
        if name == "speed":
            q.add_argument("--sizes", type=int, nargs="+", default=[256])
            q.add_argument("--methods", nargs="+", default=["bicubic", "manet", "ikc"])
        if name in ("speed", "tiles"):
            q.add_argument("--repeat", type=int, default=3)
        if name == "tiles":
            q.add_argument("--size", type=int, default=512, help="LR side")
            q.add_argument("--tiles", type=int, nargs="+", default=[128, 192, 256])
        if name in ("memory", "memory-one"):
            q.add_argument("--method", default="manet")
            q.add_argument("--tile", type=int, default=None)
        if name == "memory":
            q.add_argument("--sizes-wh", nargs="+", default=["256x256", "1024x1024", "3000x2000"])
        if name == "memory-one":
            q.add_argument("--lr", required=True)
        if name == "kernel-at":
            q.add_argument("--points", type=int, default=200)
    args = p.parse_args()
    {"speed": cmd_speed, "tiles": cmd_tiles, "memory": cmd_memory, "memory-one": cmd_memory_one, "kernel-at": cmd_kernel_at}[args.cmd](args)


if __name__ == "__main__":
    main()
