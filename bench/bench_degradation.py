"""Benchmark of the degradation code (CPU, numpy).

Times, on a 1024 x 1024 HR RGB image at x4 (LR 256 x 256), the median of several runs of:
mode-5 field generation, ``blur_subsample_variant`` with that field (target < 1 s on 2 cores),
the spatially invariant ``blur_subsample``, ``blur_bicubic`` and ``imresize`` down/up.

Run: ``.venv/bin/python bench/bench_degradation.py [--runs 5] [--size 1024]`` (refuses a busy machine
unless ``--allow-load``; the steps run interleaved, one of each per round).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honest import add_load_argument, interleaved, medians, report, require_idle  # noqa: E402

from engine.degradation.degrade import blur_bicubic, blur_subsample, blur_subsample_variant
from engine.degradation.fields import manet_mode_field
from engine.degradation.resize import imresize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="HR side in pixels")
    parser.add_argument("--scale", type=int, default=4)
    add_load_argument(parser)
    args = parser.parse_args(argv)
    cond = require_idle(args.allow_load)

    rng = np.random.default_rng(0)
    s = args.scale
    hr = rng.random((args.size, args.size, 3), dtype=np.float32)
    lr_hw = (args.size // s, args.size // s)

    field_holder: dict[str, np.ndarray] = {}

    def make_field() -> None:
        field_holder["f"] = manet_mode_field(5, lr_hw, s, rng=np.random.default_rng(1))

    rows = [("mode-5 field generation", make_field)]
    make_field()
    field = field_holder["f"]
    rows += [
        ("blur_subsample_variant (mode-5 field)", lambda: blur_subsample_variant(hr, field, s)),
        ("blur_subsample (one kernel)", lambda: blur_subsample(hr, field[0, 0], s)),
        ("blur_bicubic (sigma 2.6)", lambda: blur_bicubic(hr, 2.6, s)),
        (f"imresize 1/{s}", lambda: imresize(hr, 1.0 / s)),
        (f"imresize x{s} of the LR image", lambda: imresize(hr[: lr_hw[0], : lr_hw[1]], float(s))),
    ]
    times = interleaved(dict(rows), args.runs, progress=False)
    med = medians(times)
    table = [[name, f"{med[name] * 1000:.1f}", f"{min(times[name]) * 1000:.1f}", f"{max(times[name]) * 1000:.1f}"]
             for name, _ in rows]
    report(cond, f"degradation, HR {args.size}x{args.size} RGB float32, x{s} (LR {lr_hw[0]}x{lr_hw[1]}), "
                 f"field {field.nbytes / 2**20:.0f} MiB, median of {args.runs} interleaved rounds",
           table, ["step", "median ms", "min ms", "max ms"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
