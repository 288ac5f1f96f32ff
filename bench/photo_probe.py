"""MANet + RRDB-SFT of several models folders side by side on photo-like inputs, training photos only.

Blurs centre crops of training-pool photographs (never the benchmarks) with isotropic Gaussians
spread over the Gaussian8 σ range (IKC convention, ``degrade_ikc``), adds each photo corruption
(none; noise σ 15/255; noise σ 10/255 + JPEG q 80; noise σ 5/255 + JPEG q 85; the image's own seed),
and prints the mean PSNR-Y (shave ``scale``) of the blind pipeline with each folder's models. A quick
look at a candidate (a run shipped into a copy of ``models/``) before any benchmark is run; it reads
images the networks trained on, so it can only rank candidates, not report quality.

Run: ``.venv/bin/python bench/photo_probe.py --models models /tmp/cand [--images 16] [--crop 192]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honest import require_idle  # noqa: E402

from engine.data import GAUSSIAN8_SIGMAS_BY_SCALE, training_centre_crops  # noqa: E402
from engine.degradation import degrade_ikc  # noqa: E402
from engine.degradation.degrade import PhotoCorruption  # noqa: E402
from engine.metrics import psnr  # noqa: E402
from engine.pipeline.blind import run_manet  # noqa: E402
from engine.pipeline.models import load_for_method  # noqa: E402

CORRUPTIONS: dict[str, PhotoCorruption] = {
    "clean": PhotoCorruption(),
    "σ 15": PhotoCorruption(15.0),
    "σ 10 + JPEG 80": PhotoCorruption(10.0, 80),
    "σ 5 + JPEG 85": PhotoCorruption(5.0, 85),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, default=[Path("models")], help="models folders to compare")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--crop", type=int, default=192, help="HR crop side in px")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--sets", nargs="+", default=["bsds400", "sunhays80"])
    args = parser.parse_args(argv)
    cond = require_idle(True)  # quality only; no timing is reported
    crops = training_centre_crops(args.images, args.crop, args.scale, args.sets)
    gaussian8 = GAUSSIAN8_SIGMAS_BY_SCALE[args.scale]
    sigmas = np.linspace(min(gaussian8), max(gaussian8), len(crops))
    model_sets = [load_for_method("manet", args.scale, device="cpu", threads=1, models_dir=d, precision="fp32") for d in args.models]
    print(cond.header())
    print(f"{len(crops)} training crops of {args.crop} px, σ {sigmas[0]:.2f} … {sigmas[-1]:.2f}; x{args.scale}")
    print("| input | " + " | ".join(f"{d} ({m.cards['rrdb_sft'].id})" for d, m in zip(args.models, model_sets)) + " |")
    print("|---|" + "---|" * len(model_sets))
    for name, photo in CORRUPTIONS.items():
        scores = np.zeros((len(model_sets), len(crops)))
        for i, (hr, sigma) in enumerate(zip(crops, sigmas)):
            lr = degrade_ikc(hr, float(sigma), args.scale, np.random.default_rng(i), photo)
            for j, models in enumerate(model_sets):
                scores[j, i] = psnr(run_manet(lr, models).sr_rgb_f32, hr, crop_border=args.scale)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in scores.mean(axis=1)) + " |", flush=True)
    cond.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
