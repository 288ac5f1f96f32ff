"""MATLAB-compatible bicubic ``imresize`` in vectorised numpy (IKC downsampling, bicubic baseline).

The formula (per axis, separable), for an input of length ``n``, scale factor ``f`` and output
length ``m = ceil(n * f)``:

- cubic kernel with ``a = -0.5``: ``k(x) = 1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1``,
  ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``, else 0;
- when downscaling (``f < 1``) the kernel is stretched for antialiasing: ``h(x) = f * k(f * x)``
  with support width ``4 / f``; when upscaling ``h = k`` with width 4;
- output pixel ``x = 1..m`` (1-based) maps to input position ``u = x / f + 0.5 * (1 - 1/f)``; it
  uses inputs ``left + p`` for ``p = 0..P-1`` with ``left = floor(u - width/2)``,
  ``P = ceil(width) + 2``, weights ``h(u - index)`` normalised to sum 1;
- out-of-range indices are mirrored symmetrically (``..., 2, 1, 1, 2, ..., n, n, n-1, ...``).

Weights and indices are precomputed per axis; the image is then resized by a short loop over the
``P`` taps (no per-pixel Python). ``imresize`` is linear and does not clip; ``bicubic_upsample``
clips to [0, 1].
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (``a = -0.5``), evaluated elementwise (float64)."""
    ax = np.abs(np.asarray(x, dtype=np.float64))
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return inner + outer


def output_length(in_length: int, scale_factor: float) -> int:
    """``ceil(in_length * scale_factor)``, tolerant of float round-off (99 * (1/3) -> 33)."""
    return max(1, int(math.ceil(in_length * scale_factor - 1e-9)))


def contributions(
    in_length: int, out_length: int, scale_factor: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output weights ``(out_length, P)`` float64 and 0-based input indices ``(out_length, P)``.

    Taps whose weight is zero for every output are dropped (as MATLAB does).
    """
    f = float(scale_factor)
    if f <= 0:
        raise ValueError(f"scale factor must be positive, got {scale_factor!r}")
    width = 4.0
    if f < 1.0 and antialiasing:
        width = width / f
        kernel_scale = f
    else:
        kernel_scale = 1.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / f + 0.5 * (1.0 - 1.0 / f)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx1 = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    weights = kernel_scale * cubic(kernel_scale * (u[:, None] - idx1))
    weights /= weights.sum(axis=1, keepdims=True)
    # symmetric mirroring of 1-based indices, then 0-based
    period = 2 * in_length
    m = np.mod(idx1.astype(np.int64) - 1, period)
    idx0 = np.where(m < in_length, m, period - 1 - m)
    keep = np.any(weights != 0.0, axis=0)
    return weights[:, keep], idx0[:, keep]


def _resize_axis(img: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    w32 = weights.astype(np.float32)
    shape = [1] * img.ndim
    shape[axis] = weights.shape[0]
    out = np.zeros(img.shape[:axis] + (weights.shape[0],) + img.shape[axis + 1 :], dtype=np.float32)
    for p in range(weights.shape[1]):
        out += np.take(img, indices[:, p], axis=axis) * w32[:, p].reshape(shape)
    return out


def imresize(img: np.ndarray, scale_factor: float, antialiasing: bool = True) -> np.ndarray:
    """Resize ``img`` (H x W or H x W x C, e.g. ``rgb_f32`` in [0, 1]) like MATLAB ``imresize(img, f)``.

    Bicubic (``a = -0.5``), antialiased when downscaling, symmetric padding; output size
    ``ceil(H * f) x ceil(W * f)``; float32 out, *not* clipped (bicubic overshoots slightly).
    """
    x = np.asarray(img, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    h, w = x.shape[:2]
    oh, ow = output_length(h, scale_factor), output_length(w, scale_factor)
    wr, ir = contributions(h, oh, scale_factor, antialiasing)
    wc, ic = contributions(w, ow, scale_factor, antialiasing)
    # MATLAB resizes the most-reduced dimension first; equal factors here, so rows first.
    out = _resize_axis(x, 0, wr, ir)
    return _resize_axis(out, 1, wc, ic)


def bicubic_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: ``imresize(lr, scale)`` clipped to [0, 1] (``rgb_f32`` HWC or grey HW)."""
    return np.clip(imresize(lr, float(scale)), 0.0, 1.0)
