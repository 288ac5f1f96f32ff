"""What does projecting IKC's codes onto the isotropic-Gaussian curve buy? Training photographs only.

For each Gaussian8 σ (1.8 … 3.2, the IKC protocol) blurs centred crops of training-pool photographs
(never the benchmarks), downsamples with MATLAB bicubic ×4, rounds to 8 bits, runs the shipped
predictor, and super-resolves with the shipped SFTMD from three codes: the predictor's raw code, the
nearest point of :class:`engine.pipeline.ikc.IsotropicCodeCurve` (what ``run_ikc`` uses), and the
true code (the oracle). Prints PSNR-Y (shave 4) per σ, the σ read off the curve, and the code MSE.

Run: ``.venv/bin/python bench/ikc_code_projection.py [--images 6] [--crop 512] [--models-dir models]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.data import training_centre_crops
from engine.degradation import degrade_ikc
from engine.degradation.kernels import isotropic_gaussian_kernels
from engine.metrics import psnr
from engine.pipeline.ikc import IsotropicCodeCurve, sftmd_sr
from engine.pipeline.models import load_models

GAUSSIAN8_SIGMAS = (1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6, help="training photographs to crop (default 6)")
    parser.add_argument("--crop", type=int, default=512, help="HR crop side in px (default 512)")
    parser.add_argument("--sets", nargs="+", default=["sunhays80"], help="training sets to draw from")
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    scale = 4

    models = load_models(("ikc_predictor", "sftmd"), scale, device="cpu", models_dir=args.models_dir)
    pca = models.pca("sftmd")
    curve = IsotropicCodeCurve.for_basis(pca, scale)
    predictor = models.runner("ikc_predictor")
    crops = training_centre_crops(args.images, args.crop, scale, args.sets)

    print(f"predictor {predictor.card.id} ({predictor.card.training.get('steps', '?')} steps), "
          f"SFTMD {models.runner('sftmd').card.id} ({models.runner('sftmd').card.training.get('steps', '?')} steps), "
          f"{len(crops)} training crops, x{scale}")
    print("| σ | raw code (dB) | nearest curve code (dB) | true code (dB) | σ from curve, mean ± sd | code MSE raw / curve |")
    print("|---|---|---|---|---|---|")
    totals = {"raw": [], "curve": [], "true": []}
    for sigma in GAUSSIAN8_SIGMAS:
        true = pca.project(isotropic_gaussian_kernels(np.array([sigma])))[0].astype(np.float32)
        row = {"raw": [], "curve": [], "true": [], "sigma": [], "mse_raw": [], "mse_curve": []}
        for hr in crops:
            lr = degrade_ikc(hr, sigma, scale, None)
            raw = predictor.run({"lr_rgb": np.ascontiguousarray(lr.transpose(2, 0, 1))[None]})["kernel_code"][0]
            on_curve, found = curve.nearest(raw)
            for name, code in (("raw", raw), ("curve", on_curve), ("true", true)):
                row[name].append(psnr(sftmd_sr(lr, code, models), hr, crop_border=scale))
            row["sigma"].append(found)
            row["mse_raw"].append(float(np.mean((raw - true) ** 2)))
            row["mse_curve"].append(float(np.mean((on_curve - true) ** 2)))
        for name in totals:
            totals[name] += row[name]
        print(f"| {sigma:.1f} | {np.mean(row['raw']):.2f} | {np.mean(row['curve']):.2f} | {np.mean(row['true']):.2f} | "
              f"{np.mean(row['sigma']):.2f} ± {np.std(row['sigma']):.2f} | "
              f"{np.mean(row['mse_raw']):.2e} / {np.mean(row['mse_curve']):.2e} |")
    print(f"| all | {np.mean(totals['raw']):.2f} | {np.mean(totals['curve']):.2f} | {np.mean(totals['true']):.2f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
