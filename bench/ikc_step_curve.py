"""Does IKC's correction loop improve with its step count? PSNR-Y per iteration, training photos only.

Blurs crops of training-pool photographs (never the benchmarks) with isotropic Gaussians spread over
the scale's σ range (IKC convention: blur + bicubic ×s, ``degrade_ikc``), runs IKC for ``--steps``
iterations with the models of each ``--models`` folder, and prints the mean PSNR-Y (shave ``scale``)
of every iteration t = 0..steps, side by side, plus the σ each final code lies on. A corrector that
corrects keeps the curve flat or rising; one that drifts makes it fall. Used to compare a corrector
being trained (its run shipped into a copy of ``models/``) with the shipped one, without looking at
any benchmark.

Run: ``.venv/bin/python bench/ikc_step_curve.py --models models /tmp/cand [--images 8] [--scale 4]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honest import require_idle  # noqa: E402

from engine.data import TRAIN_SETS, holdout_split, train_paths, training_centre_crops  # noqa: E402
from engine.degradation import IKC_SIGMA_RANGE, degrade_ikc  # noqa: E402
from engine.detail import detail_weights_np  # noqa: E402
from engine.metrics import psnr  # noqa: E402
from engine.pipeline.ikc import run_ikc  # noqa: E402
from engine.pipeline.models import load_for_method  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=[Path("models")], help="models folders to compare")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256, help="HR crop side in px")
    parser.add_argument("--sigmas", type=int, default=4, help="σ values spread evenly over the range")
    parser.add_argument("--sigma-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                        help="σ range in HR px (default: the scale's training range, IKC_SIGMA_RANGE)")
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--sets", nargs="+", default=["bsds400", "sunhays80"])
    parser.add_argument("--holdout-every", type=int, default=0, metavar="K",
                        help="use only the pool photographs a run with holdout_every K never trained on")
    parser.add_argument("--pick", choices=("even", "smoothest", "most-detailed"), default="even",
                        help="which crops: spread evenly over the pool, or the --images smoothest / most "
                             "detailed (engine.detail) of --candidates crops spread evenly")
    parser.add_argument("--candidates", type=int, default=80, help="crops to choose from with --pick")
    parser.add_argument("--correction-step", nargs="+", choices=("card", "full", "harmonic"), default=["card"],
                        help="the loop's correction step schedule(s) to compare (card: each corrector card's)")
    args = parser.parse_args(argv)
    cond = require_idle(True)  # quality only; no timing is reported
    lo, hi = args.sigma_range or IKC_SIGMA_RANGE[args.scale]
    edges = np.linspace(lo, hi, args.sigmas + 1)
    sigmas = (edges[:-1] + edges[1:]) / 2  # the middle of each of --sigmas equal parts of the range
    held_out = None
    if args.holdout_every:  # split as a run on the default pool (all TRAIN_SETS, in order) does
        held_out = [p for p in holdout_split(train_paths(TRAIN_SETS), args.holdout_every)[1] if p.parent.name in args.sets]
    if args.pick == "even":
        crops = training_centre_crops(args.images, args.crop, args.scale, args.sets, paths=held_out)
    else:  # a smooth image shows little of its blur: the corrector must not drift there
        pool = training_centre_crops(args.candidates, args.crop, args.scale, args.sets, paths=held_out)
        pool.sort(key=lambda hr: float(detail_weights_np(hr.transpose(2, 0, 1)).mean()))
        crops = pool[: args.images] if args.pick == "smoothest" else pool[-args.images :]
    cases = [(hr, float(s), degrade_ikc(hr, float(s), args.scale, None)) for hr in crops for s in sigmas]
    print(cond.header())
    which = f"held-out (every {args.holdout_every}th)" if args.holdout_every else "training"
    which += "" if args.pick == "even" else f", the {args.pick} of {args.candidates},"
    print(f"{len(crops)} {which} crops of {args.crop} px x σ {', '.join(f'{s:.2f}' for s in sigmas)}; x{args.scale}")
    header = "| models | " + " | ".join(f"t={t}" for t in range(args.steps + 1)) + " | t=7 − t=1 |"
    print(header)
    print("|---|" + "---|" * (args.steps + 2))
    for folder in args.models:
        models = load_for_method("ikc", args.scale, device="cpu", models_dir=folder)
        for schedule in args.correction_step:
            per_t = np.zeros((len(cases), args.steps + 1))
            for i, (hr, _sigma, lr) in enumerate(cases):
                res = run_ikc(lr, models, steps=args.steps, render_all=True,
                              correction_step=None if schedule == "card" else schedule)
                for t, it in enumerate(res.iterations):
                    per_t[i, t] = psnr(it.sr_rgb_f32, hr, crop_border=args.scale, test_y_channel=True)
            mean = per_t.mean(axis=0)
            last_minus_first = mean[-1] - mean[1] if args.steps >= 1 else 0.0
            name = f"{folder} ({schedule} step)"
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in mean) + f" | {last_minus_first:+.3f} |", flush=True)
    cond.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
