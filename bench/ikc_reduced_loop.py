"""What does running IKC's correction loop on a crop cost in quality? Training photographs only.

For Gaussian σ values of the IKC protocol, blurs centred crops of training-pool photographs (never
the benchmarks), downsamples ×4 (``degrade_ikc``), and runs the shipped IKC (default 7 steps) twice:
the loop on the whole LR image, and the loop on the most detailed crop of ``--loop-pixels`` LR px
(what ``upscale()`` does; ``run_ikc(loop_max_pixels=...)``). Prints PSNR-Y (shave 4) of the final
iteration, the σ each code lies on, and the time of both (seconds; only comparable on an idle machine).

Run: ``.venv/bin/python bench/ikc_reduced_loop.py [--images 3] [--crop 1024] [--loop-pixels 16384 9216]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honest import require_idle  # noqa: E402

from engine.data import training_centre_crops  # noqa: E402
from engine.degradation import degrade_ikc  # noqa: E402
from engine.metrics import psnr  # noqa: E402
from engine.pipeline.ikc import IsotropicCodeCurve, run_ikc  # noqa: E402
from engine.pipeline.models import load_for_method  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--crop", type=int, default=1024, help="HR crop side in px (LR = crop / 4)")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.8, 2.4, 3.0])
    parser.add_argument("--loop-pixels", type=int, nargs="+", default=[96 * 96, 128 * 128])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--sets", nargs="+", default=["sunhays80"])
    args = parser.parse_args(argv)
    cond = require_idle(True)  # quality is what is measured; times are marked by the load line
    scale = 4
    models = load_for_method("ikc", scale, device="cpu")
    curve = IsotropicCodeCurve.for_basis(models.pca("sftmd"), scale)
    crops = training_centre_crops(args.images, args.crop, scale, args.sets)
    variants = [("whole", None)] + [(f"crop {n} px", n) for n in args.loop_pixels]
    print(cond.header())
    print("| σ | " + " | ".join(f"{name}: dB (σ found)" for name, _ in variants) + " |")
    print("|---|" + "---|" * len(variants))
    totals = {name: [] for name, _ in variants}
    seconds = {name: [] for name, _ in variants}
    for sigma in args.sigmas:
        cells = {name: [] for name, _ in variants}
        for hr in crops:
            lr = degrade_ikc(hr, sigma, scale, None)
            for name, loop in variants:
                t0 = time.perf_counter()
                res = run_ikc(lr, models, steps=args.steps, loop_max_pixels=loop)
                seconds[name].append(time.perf_counter() - t0)
                db = psnr(res.final.sr_rgb_f32, hr, crop_border=scale, test_y_channel=True)
                cells[name].append((db, curve.nearest(res.final.code)[1]))
                totals[name].append(db)
        print(f"| {sigma:.1f} | " + " | ".join(
            f"{np.mean([c[0] for c in cells[n]]):.2f} ({np.mean([c[1] for c in cells[n]]):.2f})" for n, _ in variants) + " |",
            flush=True)
    print("| all | " + " | ".join(f"{np.mean(totals[n]):.2f}" for n, _ in variants) + " |")
    cond.finish()
    print(f"median seconds per image ({cond.header()}): "
          + ", ".join(f"{n} {np.median(seconds[n]):.1f}" for n, _ in variants))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
