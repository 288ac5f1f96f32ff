"""The degradation lab's experiment as plain data: paint regions on a sharp image, give each its own
kernel, synthesise the spatially variant LR image, run MANet on it and compare its kernels with the
painted ones. :func:`synthesise_and_estimate` runs on the studio's engine worker; the interactive front
end is :class:`app.lab.LabPanel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.degradation.degrade import blur_subsample_variant, quantize_u8
from engine.degradation.fields import region_field
from engine.degradation.kernels import KernelParams, anisotropic_gaussian_kernel, normalise_kernels
from engine.metrics import kernel_error
from engine.progress import NULL_PROGRESS, Progress

DEFAULT_PARAMS = ((3.0, 1.0, 30.0), (1.0, 1.0, 0.0), (2.5, 2.5, 0.0), (3.0, 0.8, 120.0), (2.0, 1.2, 75.0),
                  (1.5, 0.7, 160.0))
"""Default (σ1, σ2 in HR px, θ in degrees) per region label 1..6."""


@dataclass
class LabResult:
    """What the lab experiment produced: the synthesised LR image, the painted (true) and estimated kernel
    fields on the LR grid, the per-pixel error map, and summary errors (overall and per region)."""

    lr_rgb_f32: np.ndarray
    true_kernels: np.ndarray  # (h, w, 21, 21)
    est_kernels: np.ndarray  # (h, w, 21, 21)
    error_map: np.ndarray  # (h, w) mean |est − true| per pixel
    overall: dict[str, float]
    per_region: dict[int, float]
    provider: str


def region_kernels_from_params(params: dict[int, tuple[float, float, float]], n_labels: int, scale: int
                               ) -> np.ndarray:
    """(n, 21, 21) kernels for labels 1..n from ``{label: (σ1, σ2 HR px, θ degrees)}`` (MANet convention)."""
    out = []
    for label in range(1, n_labels + 1):
        s1, s2, th = params.get(label, DEFAULT_PARAMS[(label - 1) % len(DEFAULT_PARAMS)])
        out.append(anisotropic_gaussian_kernel(KernelParams(s1, s2, math.radians(th)), scale))
    return np.stack(out).astype(np.float32)


def synthesise_and_estimate(
    hr_rgb_f32: np.ndarray,
    labels_lr: np.ndarray,
    params: dict[int, tuple[float, float, float]],
    scale: int,
    models,
    *,
    softness_lr_px: float = 1.5,
    progress: Progress = NULL_PROGRESS,
) -> LabResult:
    """Blur + subsample ``hr_rgb_f32`` (H×W×3, [0, 1]) with the painted kernel field, round to 8 bit, run
    MANet, and compare its kernels with the painted ones. ``labels_lr`` is (H//s, W//s) uint8."""
    from engine.pipeline.blind import estimate_kernel_map

    s = int(scale)
    h, w = labels_lr.shape
    hr = np.ascontiguousarray(hr_rgb_f32[: h * s, : w * s], np.float32)
    n = max(1, int(labels_lr.max()))
    kernels = region_kernels_from_params(params, n, s)
    field = region_field(labels_lr.astype(np.int32), kernels, s, softness_lr_px=softness_lr_px)
    progress.set_progress(0.05, "synthesising")
    lr = quantize_u8(blur_subsample_variant(hr, field, s))
    progress.check_cancelled()
    progress.set_progress(0.25, "estimating kernels")
    kmap = estimate_kernel_map(lr, models, progress=progress.sub_progress(0.25, 0.7))
    est = normalise_kernels(kmap.reconstruct_all(), clip_negative=True)
    emap = kernel_error_map(est, field)
    per_region = {int(k): float(emap[labels_lr == k].mean()) for k in np.unique(labels_lr)}
    progress.set_progress(1.0)
    return LabResult(lr, field, est, emap, kernel_error(est, field), per_region, models.provider)


def kernel_error_map(est_kernels: np.ndarray, true_kernels: np.ndarray) -> np.ndarray:
    """(h, w) float32: mean |est − true| over the 441 taps of each LR pixel's kernel (both (h, w, 21, 21))."""
    est = np.asarray(est_kernels, np.float32)
    true = np.asarray(true_kernels, np.float32)
    if est.shape != true.shape or est.ndim != 4:
        raise ValueError(f"need two (h, w, 21, 21) arrays, got {est.shape} and {true.shape}")
    return np.abs(est - true).mean(axis=(2, 3)).astype(np.float32)
