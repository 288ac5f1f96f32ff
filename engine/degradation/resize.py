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
``P`` taps (no per-pixel Python), one strip of output rows at a time (bounded memory: a 12 MP image
×4 needs the output array and ~50 MB more). ``imresize`` is linear and does not clip; ``bicubic_upsample``
clips to [0, 1].
"""

from __future__ import annotations

import math
from typing import Callable

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


STRIP_ELEMENTS = 1 << 22
"""Output values (rows x columns x channels) computed per strip: ~16 MB of float32 at a time."""


def _taps(src: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``sum_p take(src, indices[:, p], axis) * weights[:, p]`` in float32, taps in order."""
    w32 = weights.astype(np.float32)
    shape = [1] * src.ndim
    shape[axis] = weights.shape[0]
    out = np.zeros(src.shape[:axis] + (weights.shape[0],) + src.shape[axis + 1 :], dtype=np.float32)
    for p in range(weights.shape[1]):
        out += np.take(src, indices[:, p], axis=axis) * w32[:, p].reshape(shape)
    return out


def imresize_strips(
    img: np.ndarray,
    scale_factor: float,
    store: Callable[[int, int, np.ndarray], None],
    antialiasing: bool = True,
    strip_rows: int | None = None,
) -> tuple[int, ...]:
    """:func:`imresize` a strip of output rows at a time: ``store(r0, r1, strip_f32)`` receives
    output rows ``r0:r1`` (float32, not clipped) and must copy what it keeps.

    Each strip reads only the input rows its taps reach, so memory is bounded by the strip, not
    the image; the values are those of resizing the whole image at once (same float32 operations in
    the same order). Returns the output shape.
    """
    x = np.asarray(img, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    h, w = x.shape[:2]
    oh, ow = output_length(h, scale_factor), output_length(w, scale_factor)
    wr, ir = contributions(h, oh, scale_factor, antialiasing)
    wc, ic = contributions(w, ow, scale_factor, antialiasing)
    per_row = ow * (x.shape[2] if x.ndim == 3 else 1)
    rows = strip_rows or max(1, STRIP_ELEMENTS // per_row)
    # MATLAB resizes the most-reduced dimension first; equal factors here, so rows first.
    for r0 in range(0, oh, rows):
        r1 = min(r0 + rows, oh)
        taps = ir[r0:r1]
        lo, hi = int(taps.min()), int(taps.max()) + 1
        strip = _taps(x[lo:hi], 0, wr[r0:r1], taps - lo)
        store(r0, r1, _taps(strip, 1, wc, ic))
    return (oh, ow) + x.shape[2:]


def imresize(
    img: np.ndarray, scale_factor: float, antialiasing: bool = True, *, strip_rows: int | None = None
) -> np.ndarray:
    """Resize ``img`` (H x W or H x W x C, e.g. ``rgb_f32`` in [0, 1]) like MATLAB ``imresize(img, f)``.

    Bicubic (``a = -0.5``), antialiased when downscaling, symmetric padding; output size
    ``ceil(H * f) x ceil(W * f)``; float32 out, *not* clipped (bicubic overshoots slightly).
    Computed in strips (:func:`imresize_strips`) into the one output array.
    """
    x = np.asarray(img, dtype=np.float32)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C image, got shape {x.shape}")
    shape = (output_length(x.shape[0], scale_factor), output_length(x.shape[1], scale_factor)) + x.shape[2:]
    out = np.empty(shape, dtype=np.float32)

    def store(r0: int, r1: int, strip: np.ndarray) -> None:
        out[r0:r1] = strip

    imresize_strips(x, scale_factor, store, antialiasing, strip_rows)
    return out


def bicubic_upsample(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: ``imresize(lr, scale)`` clipped to [0, 1] (``rgb_f32`` HWC or grey HW)."""
    out = imresize(lr, float(scale))
    return np.clip(out, 0.0, 1.0, out=out)
