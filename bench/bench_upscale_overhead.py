"""How much the pipeline adds around its networks, side by side in one process (issue 18).

    .venv/bin/python bench/bench_upscale_overhead.py                 # refuses to run on a busy machine
    .venv/bin/python bench/bench_upscale_overhead.py --repeats 7 --allow-load   # results marked LOADED

Variants, interleaved (one run of each per round, ``--repeats`` rounds after one warm-up round):

* ``bare 512``: the two shipped graphs run bare in onnxruntime on a 512² LR input — MANet, then
  RRDB-SFT — in sessions made by the application's own backend (same session options, same threads);
* ``cli 512``: ``kernelscope-cli upscale`` of the same image saved as PNG (MANet + RRDB-SFT, ×4, CPU)
  as a subprocess, process start, model loading, reading and writing included;
* ``upscale manet 256`` / ``upscale ikc 256``: :func:`engine.upscale.upscale` on a 256² LR image
  (IKC with the default steps; the chosen iteration rendered, as the GUI and CLI get it);
* ``bare 256`` and ``bare sftmd 256``: the bare graphs on the 256² input, for reference;
* with ``--ikc-loop-pixels 9216 16384``: IKC with other sizes of the crop its loop runs on.

Reported: medians, ``cli 512 / bare 512`` (target ≤ 1.3), and the 256² times against their targets
(MANet + RRDB-SFT ≤ 1.0 s, IKC ≤ 3 s on the 2-core development machine, idle).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import synthetic_lr  # noqa: E402
from honest import add_load_argument, interleaved, medians, report, require_idle  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"cli 512 / bare 512": 1.3, "upscale manet 256": 1.0, "upscale ikc 256": 3.0}


def _bare(models, lr_rgb_f32: np.ndarray):
    """The two graphs on ``lr`` with nothing around them (input already NCHW, codes precomputed)."""
    lr = np.ascontiguousarray(lr_rgb_f32.transpose(2, 0, 1)[None])
    manet, rrdb = models.runner("manet").session, models.runner("rrdb_sft").session
    codes = np.zeros((1, models.pca("rrdb_sft").n_components) + lr.shape[2:], np.float32)
    noise = np.zeros((1, 1) + lr.shape[2:], np.float32)

    def run() -> None:
        manet.run(["kernels"], {"lr_rgb": lr})
        rrdb.run(["sr_rgb"], {"lr_rgb": lr, "kernel_code": codes, "noise_sigma_255": noise})

    return run


def _bare_sftmd(models, lr_rgb_f32: np.ndarray):
    lr = np.ascontiguousarray(lr_rgb_f32.transpose(2, 0, 1)[None])
    sftmd = models.runner("sftmd").session
    code = np.zeros((1, models.pca("sftmd").n_components), np.float32)
    noise = np.zeros((1, 1) + lr.shape[2:], np.float32)
    return lambda: sftmd.run(["sr_rgb"], {"lr_rgb": lr, "kernel_code": code, "noise_sigma_255": noise})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: physical cores)")
    p.add_argument("--ikc-steps", type=int, default=7)
    p.add_argument("--ikc-loop-pixels", type=int, nargs="+", default=None,
                   help="also time IKC with these loop crop sizes (LR px; the default is IKC_LOOP_PIXELS)")
    p.add_argument("--no-cli", action="store_true", help="skip the 512² CLI / bare pair")
    add_load_argument(p)
    a = p.parse_args(argv)
    cond = require_idle(a.allow_load)

    from engine.imageio import Image, write_image
    from engine.pipeline.models import load_for_method
    from engine.upscale import UpscaleOptions, upscale

    manet_models = load_for_method("manet", 4, device="cpu", threads=a.threads)
    ikc_models = load_for_method("ikc", 4, device="cpu", threads=a.threads)
    lr256 = synthetic_lr(256, 256)
    img256 = Image(rgb_f32=lr256)
    variants = {}
    work = Path(tempfile.mkdtemp(prefix="kernelscope_bench_"))
    if not a.no_cli:
        lr512 = synthetic_lr(512, 512, seed=1)
        src = write_image(work / "lr512.png", Image(rgb_f32=lr512))
        cmd = [sys.executable, "-m", "engine.cli", "upscale", str(src), "--method", "manet", "--scale", "4",
               "--provider", "cpu", "--out", str(work / "out"), "--overwrite", "--no-progress"]
        if a.threads:
            cmd += ["--threads", str(a.threads)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))

        def cli() -> None:
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)

        variants["bare 512"] = _bare(manet_models, lr512)
        variants["cli 512"] = cli
    variants["bare 256"] = _bare(manet_models, lr256)
    variants["upscale manet 256"] = lambda: upscale(img256, UpscaleOptions(method="manet"), manet_models)
    variants["bare sftmd 256"] = _bare_sftmd(ikc_models, lr256)
    variants["upscale ikc 256"] = lambda: upscale(img256, UpscaleOptions(method="ikc", ikc_steps=a.ikc_steps),
                                                  ikc_models)
    for loop in a.ikc_loop_pixels or []:
        opts = UpscaleOptions(method="ikc", ikc_steps=a.ikc_steps, ikc_loop_pixels=loop)
        variants[f"upscale ikc 256, loop {loop} px"] = lambda opts=opts: upscale(img256, opts, ikc_models)
    print(f"{a.repeats} rounds of {', '.join(variants)} (interleaved, after a warm-up round)", file=sys.stderr)
    times = interleaved(variants, a.repeats)
    med = medians(times)
    rows = [[name, f"{med[name]:.3f}", f"{min(times[name]):.3f}", f"{max(times[name]):.3f}",
             f"≤ {TARGETS[name]:.1f} s" if name in TARGETS else ""] for name in variants]
    ratios = {}
    if "cli 512" in med:
        ratios["cli 512 / bare 512"] = med["cli 512"] / med["bare 512"]
    ratios["upscale manet 256 / bare 256"] = med["upscale manet 256"] / med["bare 256"]
    ratios["upscale ikc 256 / bare sftmd 256"] = med["upscale ikc 256"] / med["bare sftmd 256"]
    for name, value in ratios.items():
        target = f"≤ {TARGETS[name]:.1f}" if name in TARGETS else ""
        rows.append([name, f"{value:.2f}×", "", "", target])
    report(cond, "upscale overhead", rows, ["variant", "median s", "min s", "max s", "target"],
           {"repeats": a.repeats, "ikc_steps": a.ikc_steps, "threads": a.threads})
    return 0


if __name__ == "__main__":
    sys.exit(main())
