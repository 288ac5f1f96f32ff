"""Does the shipped MANet respond to the blur? Estimated vs true kernel width on training images.

For each of several isotropic MANet-convention kernels (variance in HR px²), blurs crops of
training-pool photographs (never the benchmarks), subsamples ×s, runs MANet and reports the mean
width of the estimated kernels (square root of the per-axis second moment, HR px) next to the true
width, plus the correlation between true and estimated width over all crops. A network that has not
learned kernel estimation returns the same width whatever the blur (correlation near 0); a good
one tracks the true width.

Run: ``.venv/bin/python bench/manet_sensitivity.py [--images 8] [--models-dir models]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.data import training_centre_crops
from engine.degradation.degrade import blur_subsample, quantize_u8
from engine.degradation.kernels import KERNEL_SIZE, anisotropic_gaussian_kernels, normalise_kernels
from engine.pipeline.models import load_models

VARIANCES_HR_PX2 = (0.5, 1.5, 3.0, 6.0, 10.0)


def kernel_width_hr_px(kernels: np.ndarray) -> np.ndarray:
    """Per-axis standard deviation ``sqrt((var_y + var_x) / 2)`` of (..., 21, 21) kernels, HR px."""
    k = normalise_kernels(kernels)
    grid = np.arange(KERNEL_SIZE, dtype=np.float64)
    py, px = k.sum(axis=-1), k.sum(axis=-2)
    cy, cx = (py * grid).sum(-1), (px * grid).sum(-1)
    vy = (py * (grid - cy[..., None]) ** 2).sum(-1)
    vx = (px * (grid - cx[..., None]) ** 2).sum(-1)
    return np.sqrt((vy + vx) / 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="training photographs to crop (default 8)")
    parser.add_argument("--crop", type=int, default=256, help="HR crop side in px (default 256)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    models = load_models(("manet",), args.scale, device="cpu", models_dir=args.models_dir)
    manet = models.runner("manet")
    crops = training_centre_crops(args.images, args.crop, 8 * args.scale)  # MANet: multiples of 8 LR px

    true_w, est_w = [], []
    print(f"MANet ({manet.card.id}, {manet.card.training.get('steps', '?')} training steps) on {len(crops)} "
          f"training crops at x{args.scale}")
    print("| true variance (HR px²) | true width (HR px) | estimated width, mean ± sd over crops |")
    print("|---|---|---|")
    for var in VARIANCES_HR_PX2:
        kernel = anisotropic_gaussian_kernels(var, var, 0.0, args.scale)
        tw = float(kernel_width_hr_px(kernel))
        widths = []
        for hr in crops:
            lr = quantize_u8(blur_subsample(hr, kernel, args.scale))
            out = manet.run({"lr_rgb": np.ascontiguousarray(lr.transpose(2, 0, 1))[None]})["kernels"][0]
            k = out.reshape(KERNEL_SIZE, KERNEL_SIZE, *out.shape[1:]).transpose(2, 3, 0, 1)
            widths.append(float(np.median(kernel_width_hr_px(k))))
            true_w.append(tw)
            est_w.append(widths[-1])
        print(f"| {var:g} | {tw:.2f} | {np.mean(widths):.2f} ± {np.std(widths):.2f} |")
    corr = float(np.corrcoef(true_w, est_w)[0, 1]) if np.std(est_w) > 0 else 0.0
    print(f"correlation(true width, estimated width) over {len(true_w)} cases: {corr:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
