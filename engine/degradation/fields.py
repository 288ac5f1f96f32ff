"""Spatially variant kernel fields on the LR grid: ``(h, w, 21, 21)`` float32, one kernel per LR pixel.

All kernels follow the MANet convention of :mod:`engine.degradation.kernels` (variances
``var1, var2``, angle ``theta``, mean at ``kernel_center(scale)``) and are applied with
:func:`engine.degradation.degrade.blur_subsample_variant`.

MANet test fields (``manet_mode_field``)
----------------------------------------
Kernels are constant over square blocks of ``block_hr`` HR pixels (default 40), i.e.
``block_lr = max(1, round(block_hr / s))`` LR pixels (x2: 20, x3: 13, x4: 10). With ``(lo, hi)`` the
scale's variance range (x4: 0.7..10), ``R`` block rows and ``C`` block columns, block ``(r, c)``
gets ``t_r = r / (R - 1)`` and ``t_c = c / (C - 1)`` (0 when there is a single block) and:

1. ``var1 = hi``, ``var2 = lo + t_r (hi - lo)`` (rises down the image), ``theta = 0``
   (major axis horizontal; the bottom rows are isotropic with variance ``hi``).
2. ``var1 = lo + t_c (hi - lo)`` (rises left to right), ``var2 = lo + t_r (hi - lo)`` (rises top
   to bottom), ``theta = 0``. ``var1`` and ``var2`` are the variances along x and y here and are
   not ordered.
3. ``var1 = lo + 0.75 (hi - lo)``, ``var2 = lo + 0.1 (hi - lo)``, ``theta = pi * r / R``
   (rotates from 0 towards pi down the image).
4. mode 2 with ``theta = pi * r / R``.
5. independent random ``(var1, var2, theta)`` per block drawn with
   :func:`~engine.degradation.kernels.sample_anisotropic_params` (row-major block order; needs
   ``rng``).

The fields are deterministic given ``(mode, lr_hw, scale, block_hr)`` and, for mode 5, the
generator's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.degradation.degrade import separable_correlate
from engine.degradation.kernels import (
    KERNEL_SIZE,
    MANET_VARIANCE_RANGE,
    anisotropic_gaussian_kernels,
    normalise_kernels,
    sample_anisotropic_params,
)

MANET_MODES: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The five MANet spatially variant test modes (see the module docstring)."""

NINE_KERNEL_SHAPES_X4: tuple[tuple[float, float], ...] = ((1.5, 1.2), (5.0, 2.0), (9.0, 1.0))
"""``(var1, var2)`` at x4 of the nine-kernel set: near-isotropic small, medium anisotropic,
strongly anisotropic large. Other scales multiply the variances by ``s / 4`` (the MANet ranges
scale the same way)."""

NINE_KERNEL_ANGLES: tuple[float, ...] = (0.0, np.pi / 4, np.pi / 2)
"""Angles of the nine-kernel set (radians)."""


def block_size_lr(scale: int, block_hr: int = 40) -> int:
    """LR size of a ``block_hr`` HR block: ``max(1, round(block_hr / scale))`` (x3: 13 for 40)."""
    return max(1, int(round(block_hr / int(scale))))


def _block_index(n: int, block: int) -> tuple[np.ndarray, int]:
    idx = np.arange(n) // block
    return idx, int(idx[-1]) + 1


def _ramp(count: int) -> np.ndarray:
    """``i / (count - 1)`` for ``i < count`` (zeros for a single block)."""
    if count <= 1:
        return np.zeros(count)
    return np.arange(count) / (count - 1)


def manet_mode_params(
    mode: int,
    lr_hw: tuple[int, int],
    scale: int,
    rng: np.random.Generator | None = None,
    block_hr: int = 40,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-block parameters of a MANet test field: ``(var1, var2, theta)`` of shape ``(R, C)`` and
    the block size in LR pixels. See the module docstring for the modes."""
    if mode not in MANET_MODES:
        raise ValueError(f"mode must be one of {MANET_MODES}, got {mode!r}")
    if scale not in MANET_VARIANCE_RANGE:
        raise ValueError(f"unsupported scale {scale!r}; expected one of {sorted(MANET_VARIANCE_RANGE)}")
    h, w = int(lr_hw[0]), int(lr_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"LR size must be positive, got {lr_hw!r}")
    lo, hi = MANET_VARIANCE_RANGE[scale]
    block = block_size_lr(scale, block_hr)
    n_rows = -(-h // block)
    n_cols = -(-w // block)
    tr = _ramp(n_rows)[:, None] * np.ones((1, n_cols))
    tc = np.ones((n_rows, 1)) * _ramp(n_cols)[None, :]
    rotation = np.pi * np.arange(n_rows)[:, None] / n_rows * np.ones((1, n_cols))
    zeros = np.zeros((n_rows, n_cols))
    if mode == 1:
        var1, var2, theta = np.full_like(tr, hi), lo + tr * (hi - lo), zeros
    elif mode == 2:
        var1, var2, theta = lo + tc * (hi - lo), lo + tr * (hi - lo), zeros
    elif mode == 3:
        var1 = np.full_like(tr, lo + 0.75 * (hi - lo))
        var2 = np.full_like(tr, lo + 0.1 * (hi - lo))
        theta = rotation
    elif mode == 4:
        var1, var2, theta = lo + tc * (hi - lo), lo + tr * (hi - lo), rotation
    else:
        if rng is None:
            raise ValueError("mode 5 (random per block) needs an rng (numpy.random.Generator)")
        var1, var2, theta = sample_anisotropic_params(rng, scale, (n_rows, n_cols))
    return var1, var2, theta, block


def expand_blocks(block_kernels: np.ndarray, lr_hw: tuple[int, int], block_lr: int) -> np.ndarray:
    """Spread per-block kernels ``(R, C, 21, 21)`` over the LR grid ``(h, w, 21, 21)``."""
    ri, _ = _block_index(int(lr_hw[0]), block_lr)
    ci, _ = _block_index(int(lr_hw[1]), block_lr)
    return np.ascontiguousarray(block_kernels[ri[:, None], ci[None, :]])


def manet_mode_field(mode: int, lr_hw: tuple[int, int], scale: int, **options: Any) -> np.ndarray:
    """MANet spatially variant test field ``(h, w, 21, 21)`` float32 for ``lr_hw = (h, w)``: the
    kernels of :func:`manet_mode_params` (``options``: its ``rng``, required for mode 5 only, and
    ``block_hr``) spread over the LR grid. ``mode`` 1..5 as in the module docstring."""
    var1, var2, theta, block = manet_mode_params(mode, lr_hw, scale, **options)
    kernels = anisotropic_gaussian_kernels(var1, var2, theta, scale)
    return expand_blocks(kernels, lr_hw, block)


def _gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian ``exp(-x^2 / (2 sigma^2))`` at ``x = -radius..radius``, float32 (sum 1)."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-(x * x) / (2.0 * float(sigma) ** 2))
    return (taps / taps.sum()).astype(np.float32)


def _soft_weights(weights: np.ndarray, softness_lr_px: float) -> np.ndarray:
    """Blur each weight plane ``(n, h, w)`` with a Gaussian of std ``softness_lr_px`` and renormalise.

    The Gaussian has radius ``ceil(3 sigma)`` and reflect-101 borders (mirror without repeating the
    edge pixel; repeated for planes smaller than the radius).
    """
    out = weights.astype(np.float32, copy=True)
    if softness_lr_px > 0:
        radius = int(np.ceil(3.0 * softness_lr_px))
        taps = _gaussian_taps(softness_lr_px, radius)
        # planes last (contiguous), so that rows and columns are the first two axes
        planes_last = np.ascontiguousarray(np.moveaxis(out, 0, -1))
        padded = np.pad(planes_last, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
        out = np.ascontiguousarray(np.moveaxis(separable_correlate(padded, taps, taps), -1, 0))
    total = out.sum(axis=0, keepdims=True)
    return out / np.maximum(total, np.float32(1e-8))


def region_field(
    labels_or_masks: np.ndarray,
    kernels: np.ndarray | Sequence[np.ndarray],
    scale: int,
    softness_lr_px: float = 2.0,
    default_kernel: np.ndarray | None = None,
) -> np.ndarray:
    """Kernel field ``(h, w, 21, 21)`` from painted regions on the LR grid, with soft boundaries.

    ``labels_or_masks`` is either an integer label map ``(h, w)`` where label ``k`` in ``1..n``
    means region ``k`` (``kernels[k - 1]``) and ``0`` (or any other value) means "no region", or a
    float stack ``(n, h, w)`` of masks in [0, 1] (mask ``k`` for ``kernels[k]``). Unpainted weight
    (``max(0, 1 - sum of masks)``) goes to ``default_kernel``; when that is None it is the sharpest
    kernel of the MANet range, ``anisotropic_gaussian_kernels(lo, lo, 0, scale)``. The weight planes
    are blurred with a Gaussian of std ``softness_lr_px`` LR pixels (0: hard edges), renormalised
    to sum 1 and the kernels mixed linearly, so every kernel of the field sums to 1.
    """
    ks = np.asarray(kernels, dtype=np.float32)
    if ks.ndim != 3 or ks.shape[1:] != (KERNEL_SIZE, KERNEL_SIZE):
        raise ValueError(f"kernels must be (n, {KERNEL_SIZE}, {KERNEL_SIZE}), got {ks.shape}")
    n = ks.shape[0]
    if default_kernel is None:
        lo = MANET_VARIANCE_RANGE[scale][0]
        default = anisotropic_gaussian_kernels(lo, lo, 0.0, scale)
    else:
        default = np.asarray(default_kernel, dtype=np.float32)
        if default.shape != (KERNEL_SIZE, KERNEL_SIZE):
            raise ValueError(f"default_kernel must be ({KERNEL_SIZE}, {KERNEL_SIZE}), got {default.shape}")
    lm = np.asarray(labels_or_masks)
    if lm.ndim == 2:
        if not np.issubdtype(lm.dtype, np.integer):
            raise ValueError("a 2-D label map must be an integer array (use an (n, h, w) stack for float masks)")
        labels = np.arange(1, n + 1).reshape(n, 1, 1)
        masks = (lm[None] == labels).astype(np.float32)
    elif lm.ndim == 3:
        if lm.shape[0] != n:
            raise ValueError(f"{lm.shape[0]} masks for {n} kernels")
        masks = np.clip(lm.astype(np.float32), 0.0, 1.0)
    else:
        raise ValueError(f"expected an (h, w) label map or (n, h, w) masks, got shape {lm.shape}")
    background = np.clip(1.0 - masks.sum(axis=0, keepdims=True), 0.0, 1.0)
    weights = _soft_weights(np.concatenate([masks, background], axis=0), softness_lr_px)
    all_kernels = np.concatenate([ks, default[None]], axis=0).reshape(n + 1, -1)
    h, w = weights.shape[1:]
    field = weights.reshape(n + 1, h * w).T @ all_kernels  # (h*w, 441)
    field = normalise_kernels(field, axes=(-1,))
    return field.reshape(h, w, KERNEL_SIZE, KERNEL_SIZE).astype(np.float32, copy=False)


def manet_nine_kernel_params(scale: int) -> list[tuple[float, float, float]]:
    """The nine-kernel benchmark set as ``(var1, var2, theta)``: 3 shapes x 3 angles.

    Shapes (x4 variances, scaled by ``s / 4`` for other scales): ``(1.5, 1.2)`` near-isotropic
    small, ``(5.0, 2.0)`` medium anisotropic, ``(9.0, 1.0)`` strongly anisotropic large; angles
    ``0, pi/4, pi/2``. Order: shape-major (shape 0 at the three angles first).
    """
    if scale not in MANET_VARIANCE_RANGE:
        raise ValueError(f"unsupported scale {scale!r}; expected one of {sorted(MANET_VARIANCE_RANGE)}")
    f = scale / 4.0
    return [(v1 * f, v2 * f, float(t)) for v1, v2 in NINE_KERNEL_SHAPES_X4 for t in NINE_KERNEL_ANGLES]


def manet_nine_kernels(scale: int) -> np.ndarray:
    """The nine-kernel benchmark set as kernels ``(9, 21, 21)`` float32 (see :func:`manet_nine_kernel_params`)."""
    p = np.asarray(manet_nine_kernel_params(scale))
    return anisotropic_gaussian_kernels(p[:, 0], p[:, 1], p[:, 2], scale)
