"""fp32 against int8, per network, side by side in one process (issue 18): speed and quality.

    .venv/bin/python bench/bench_int8.py                        # the int8 graphs the cards ship
    .venv/bin/python bench/bench_int8.py --int8-dir /tmp/int8   # candidates of `python -m engine.quantize --out`
    .venv/bin/python bench/bench_int8.py --allow-load --quality-only   # results marked LOADED

**Speed** (refuses a busy machine unless ``--allow-load``, see ``bench/honest.py``): each network's
bare graph at ``--size``² LR (the corrector at the SR size) in fp32 and int8 sessions made by the
application's backend, interleaved (one run of each per round, ``--repeats`` rounds after a warm-up),
medians; then :func:`engine.upscale.upscale` of MANet + RRDB-SFT and of IKC at that size with the
fp32 graphs and with the CPU default (``precision="auto"``: int8 where shipped, or the candidates).

**Quality** (the same every run; load does not change it): PSNR-Y with ``scale`` px shaved
(``engine.metrics``, as ``kernelscope-cli evaluate`` scores) on the cases of
``engine.data.iter_test_set`` for Set5 and the first ``--bsd100`` BSD100 images, fp32 against
one network in int8 (the others fp32) and against the whole method in int8: MANet + RRDB-SFT under
Gaussian8 and variant1–5 (plus MANet's LR-PSNR under variant1–5), IKC at its card's fixed step under
Gaussian8. The issue's rule: int8 becomes the CPU default only where the loss is ≤ 0.05 dB PSNR-Y in
every (benchmark, protocol) mean, and for MANet ≤ 0.2 dB LR-PSNR.

Prints markdown tables ready for docs/PERFORMANCE.md and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import synthetic_lr  # noqa: E402
from honest import add_load_argument, interleaved, medians, report, require_idle, table  # noqa: E402

METHODS = {"manet": ("manet", "rrdb_sft"), "ikc": ("ikc_predictor", "sftmd", "ikc_corrector")}
PROTOCOLS = {"manet": ("gaussian8",) + tuple(f"variant{m}" for m in range(1, 6)), "ikc": ("gaussian8",)}
MAX_LOSS_DB = 0.05
MAX_LR_LOSS_DB = 0.2
SCALE = 4


def int8_card(card, int8_dir: Path | None):
    """The int8 card of ``card``: a candidate graph in ``int8_dir``, else the one the card ships (or None)."""
    from engine.modelcards import sha256_file

    if int8_dir is not None:
        path = (int8_dir / f"{card.id}_int8.onnx").resolve()
        if not path.is_file():
            return None
        extra = {k: v for k, v in card.extra.items() if k != "precisions"}
        return replace(card, graph=str(path), graph_sha256=sha256_file(path), extra={**extra, "precision": "int8"})
    return card.at_precision("int8") if "int8" in card.precisions else None


def load_sets(method: str, int8_dir: Path | None, threads: int | None):
    """(fp32 ModelSet, {network: int8 runner}) for ``method``."""
    from engine.backends.onnx_backend import OnnxBackend
    from engine.pipeline.models import load_for_method

    fp32 = load_for_method(method, SCALE, device="cpu", backend="onnx", threads=threads, precision="fp32")
    backend = OnnxBackend("cpu", threads, precision="fp32")  # runs exactly the card it is given
    int8 = {}
    for network in METHODS[method]:
        card = int8_card(fp32.cards[network], int8_dir)
        if card is not None:
            int8[network] = backend.load(card)
    return fp32, int8


def mixed(fp32, int8_runners: dict, networks) -> object:
    """``fp32`` with the runners of ``networks`` replaced by their int8 runners."""
    from engine.pipeline.models import ModelSet

    runners = {n: (int8_runners[n] if n in networks else r) for n, r in fp32.runners.items()}
    return ModelSet(scale=fp32.scale, runners=runners, cards=fp32.cards, pcas=fp32.pcas)


# --- speed ----------------------------------------------------------------------------------------
def bare_feed(network: str, card, size: int) -> dict[str, np.ndarray]:
    lr = np.ascontiguousarray(synthetic_lr(size, size).transpose(2, 0, 1)[None])
    code = {spec.name: spec for spec in card.inputs}.get("kernel_code")
    if network == "ikc_corrector":
        sr = np.ascontiguousarray(synthetic_lr(size * SCALE, size * SCALE, seed=2).transpose(2, 0, 1)[None])
        return {"sr_rgb": sr, "kernel_code": np.zeros((1, code.shape[1]), np.float32)}
    feed = {"lr_rgb": lr}
    if code is not None:
        shape = (1, code.shape[1]) + ((size, size) if code.rank == 4 else ())
        feed["kernel_code"] = np.zeros(shape, np.float32)
    if "noise_sigma_255" in {spec.name for spec in card.inputs}:
        feed["noise_sigma_255"] = np.zeros((1, 1, size, size), np.float32)
    return feed


def speed(sets: dict, size: int, repeats: int) -> tuple[dict, dict]:
    """Medians (s) of every bare graph in fp32 and int8, and of upscale() per method, fp32 and int8."""
    from engine.imageio import Image
    from engine.upscale import UpscaleOptions, upscale

    variants = {}
    for method, (fp32, int8) in sets.items():
        for network in METHODS[method]:
            if network not in int8:
                continue
            feed = bare_feed(network, fp32.cards[network], size)
            out = fp32.cards[network].output_names
            for label, runner in (("fp32", fp32.runners[network]), ("int8", int8[network])):
                variants[f"{network} {label}"] = (lambda s=runner.session, f=feed, o=out: s.run(o, f))
    img = Image(rgb_f32=synthetic_lr(size, size, seed=3))
    for method, (fp32, int8) in sets.items():
        if not int8:
            continue
        default = mixed(fp32, int8, set(int8))
        for label, mset in (("fp32", fp32), ("int8", default)):
            variants[f"upscale {method} {label}"] = (lambda m=mset, k=method: upscale(img, UpscaleOptions(method=k), m))
    times = interleaved(variants, repeats)
    return medians(times), times


# --- quality --------------------------------------------------------------------------------------
def cases(protocol: str, bsd100: int):
    from engine.data import iter_test_set

    yield from iter_test_set("Set5", protocol, SCALE)
    if bsd100:
        yield from iter_test_set("BSD100", protocol, SCALE, max_images=bsd100)


def _manet_case(case, fp32, int8: dict) -> dict[str, dict[str, float | None]]:
    """PSNR-Y (and LR-PSNR under the MANet convention) of every fp32/int8 pairing of MANet and
    RRDB-SFT on one case; each network runs once per precision (kernel maps are shared)."""
    from engine.metrics import lr_psnr, psnr
    from engine.pipeline.blind import estimate_kernel_map, sr_from_codes

    s, hr, lr = case.scale, case.hr_rgb_f32, case.lr_rgb_f32
    kmaps = {"fp32": estimate_kernel_map(lr, fp32)}
    if "manet" in int8:
        kmaps["int8"] = estimate_kernel_map(lr, mixed(fp32, int8, {"manet"}))
    srs = {"fp32": fp32}
    if "rrdb_sft" in int8:
        srs["int8"] = mixed(fp32, int8, {"rrdb_sft"})
    lr_scores = {}
    if case.kernel_info.get("convention") == "manet":
        for k, kmap in kmaps.items():
            lr_scores[k] = lr_psnr(hr, case.noise_free_lr(), kmap.reconstruct_all(), s, crop_border=s)
    out = {}
    for k, kmap in kmaps.items():
        for r, mset in srs.items():
            name = {("fp32", "fp32"): "fp32", ("int8", "fp32"): "manet int8", ("fp32", "int8"): "rrdb_sft int8",
                    ("int8", "int8"): "all int8"}[(k, r)]
            sr = sr_from_codes(lr, kmap.codes, mset)
            out[name] = {"psnr": psnr(sr, hr, crop_border=s, test_y_channel=True), "lr_psnr": lr_scores.get(k)}
    return out


def _ikc_case(case, fp32, int8: dict, steps: int) -> dict[str, dict[str, float | None]]:
    """PSNR-Y of IKC at ``steps`` corrections with fp32 networks, each network in int8, and all in int8."""
    from engine.metrics import psnr
    from engine.pipeline.ikc import run_ikc

    s = case.scale
    variants = {"fp32": fp32} | {f"{n} int8": mixed(fp32, int8, {n}) for n in int8}
    if len(int8) > 1:
        variants["all int8"] = mixed(fp32, int8, set(int8))
    out = {}
    for name, mset in variants.items():
        sr = run_ikc(case.lr_rgb_f32, mset, steps=steps).final.sr_rgb_f32
        out[name] = {"psnr": psnr(sr, case.hr_rgb_f32, crop_border=s, test_y_channel=True), "lr_psnr": None}
    return out


def quality(method: str, fp32, int8: dict, bsd100: int, protocols) -> dict:
    """{protocol: {benchmark: {variant: {"psnr": mean, "lr_psnr": mean|None, "cases": n}}}}; variants
    ``fp32``, ``<network> int8`` (that network in int8, the others fp32) and ``all int8``."""
    from engine.modelcards import ikc_steps_from_card

    steps = ikc_steps_from_card(fp32.cards.get("ikc_corrector")) if method == "ikc" else 0
    out: dict = {}
    for protocol in protocols:
        acc: dict = {}
        t0 = time.perf_counter()
        for case in cases(protocol, bsd100):
            bench = case.kernel_info["benchmark"]
            scores = _manet_case(case, fp32, int8) if method == "manet" else _ikc_case(case, fp32, int8, steps)
            for name, sc in scores.items():
                cell = acc.setdefault(bench, {}).setdefault(name, {"psnr": [], "lr_psnr": []})
                cell["psnr"].append(sc["psnr"])
                if sc["lr_psnr"] is not None:
                    cell["lr_psnr"].append(sc["lr_psnr"])
        out[protocol] = {b: {n: {k: (float(np.mean(v)) if v else None) for k, v in c.items()} | {"cases": len(c["psnr"])}
                             for n, c in cells.items()} for b, cells in acc.items()}
        print(f"  quality {method} {protocol}: {time.perf_counter() - t0:.0f} s "
              + json.dumps(out[protocol]), file=sys.stderr, flush=True)
    return out


def losses(q: dict, variant: str) -> tuple[float, float | None]:
    """Worst (largest) PSNR-Y loss and worst LR-PSNR loss of ``variant`` over (protocol, benchmark) means."""
    worst, worst_lr = -np.inf, None
    for cells in q.values():
        for per in cells.values():
            base, cand = per["fp32"], per[variant]
            worst = max(worst, base["psnr"] - cand["psnr"])
            if base["lr_psnr"] is not None and cand["lr_psnr"] is not None:
                worst_lr = max(worst_lr if worst_lr is not None else -np.inf, base["lr_psnr"] - cand["lr_psnr"])
    return float(worst), worst_lr


def quality_rows(q: dict, method: str) -> list[list[str]]:
    rows = []
    for protocol, cells in q.items():
        for bench, per in cells.items():
            base = per["fp32"]
            for name, cell in per.items():
                if name == "fp32":
                    continue
                d = cell["psnr"] - base["psnr"]
                changes_kernels = name in ("manet int8", "all int8")
                dlr = f"{cell['lr_psnr'] - base['lr_psnr']:+.3f}" if changes_kernels and cell["lr_psnr"] is not None else ""
                rows.append([method, protocol, f"{bench} ({base['cases']})", name, f"{base['psnr']:.3f}",
                             f"{d:+.3f}", dlr])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--int8-dir", type=Path, default=None,
                   help="candidate <id>_int8.onnx graphs (default: the int8 graphs the cards ship)")
    p.add_argument("--methods", nargs="+", choices=tuple(METHODS), default=tuple(METHODS))
    p.add_argument("--size", type=int, default=256, help="LR side for the speed runs (default 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: physical cores)")
    p.add_argument("--bsd100", type=int, default=20, help="first BSD100 images in the quality runs (default 20)")
    p.add_argument("--ikc-protocols", nargs="+", default=PROTOCOLS["ikc"], help="protocols for IKC's quality")
    p.add_argument("--manet-protocols", nargs="+", default=PROTOCOLS["manet"], help="protocols for MANet's quality")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--speed-only", action="store_true")
    what.add_argument("--quality-only", action="store_true")
    add_load_argument(p)
    a = p.parse_args(argv)
    cond = require_idle(a.allow_load) if not a.quality_only else None

    sets = {m: load_sets(m, a.int8_dir, a.threads) for m in a.methods}
    result: dict = {"int8_dir": None if a.int8_dir is None else str(a.int8_dir), "size": a.size}
    verdict: dict[str, str] = {}
    if not a.speed_only:
        q_rows = []
        for method, (fp32, int8) in sets.items():
            protocols = a.manet_protocols if method == "manet" else a.ikc_protocols
            q = quality(method, fp32, int8, a.bsd100, protocols)
            result.setdefault("quality", {})[method] = q
            q_rows += quality_rows(q, method)
            for network in int8:
                loss, lr_loss = losses(q, f"{network} int8")
                ok = loss <= MAX_LOSS_DB and (network != "manet" or (lr_loss is not None and lr_loss <= MAX_LR_LOSS_DB))
                verdict[network] = (f"{'passes' if ok else 'fails'}: worst PSNR-Y loss {loss:+.3f} dB"
                                    + (f", worst LR-PSNR loss {lr_loss:+.3f} dB" if network == "manet" else ""))
        print("## int8 quality (mean PSNR-Y, fp32 and the change with int8; positive = int8 better)")
        print(f"Set5 all + BSD100 first {a.bsd100}; scale ×{SCALE}; IKC at its card's fixed step")
        print()
        print(table(["method", "protocol", "benchmark (images)", "int8 in", "fp32 PSNR-Y", "Δ PSNR-Y dB",
                     "Δ LR-PSNR dB"], q_rows))
        print()
        print(table(["network", f"rule: loss ≤ {MAX_LOSS_DB} dB PSNR-Y (MANet also ≤ {MAX_LR_LOSS_DB} dB LR-PSNR)"],
                    [[n, v] for n, v in verdict.items()]))
        print()
        result["verdict"] = verdict
    if not a.quality_only:
        med, times = speed(sets, a.size, a.repeats)
        rows = []
        names = sorted({k.rsplit(" ", 1)[0] for k in med}, key=lambda n: list(med).index(f"{n} fp32"))
        for name in names:
            f, i = med[f"{name} fp32"], med[f"{name} int8"]
            network = name if not name.startswith("upscale") else ""
            rows.append([name, f"{1e3 * f:.0f}", f"{1e3 * i:.0f}", f"{i / f:.2f}", verdict.get(network, "")])
        report(cond, f"int8 against fp32 at {a.size}² LR (CPU, bare graphs and upscale())", rows,
               ["graph", "fp32 ms", "int8 ms", "int8 / fp32", "quality"],
               {**result, "repeats": a.repeats, "threads": a.threads})
    else:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
