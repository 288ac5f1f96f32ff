"""Blur kernels: anisotropic (MANet convention) and isotropic (IKC convention) Gaussians.

Conventions (shared by the whole project)
-----------------------------------------
- A kernel is a ``KERNEL_SIZE`` x ``KERNEL_SIZE`` (21 x 21) float32 array, non-negative, summing
  to 1, indexed ``[row, col]``. Blurring is cross-correlation: ``out[y, x] = sum_ab in[y+a-10,
  x+b-10] * K[a, b]`` (see :mod:`engine.degradation.degrade`).
- Coordinates inside a kernel are ``x`` = column and ``y`` = row (row index grows *downwards*).
- **MANet convention** (anisotropic, direct subsampling by ``s``): parameters are *variances*
  ``var1``, ``var2`` and an angle ``theta``; the covariance is ``R(theta) diag(var1, var2)
  R(theta)^T`` in ``(x, y)`` coordinates, so ``var1`` is the variance along the unit vector
  ``(cos theta, sin theta)`` (``theta = 0``: along the columns, i.e. horizontal; ``theta = pi/2``:
  vertical) and ``var2`` the variance across it. The Gaussian mean sits at
  ``kernel_center(s) = 10 + (s - 1) / 2`` on both axes (x2: 10.5, x3: 11, x4: 11.5) so that LR
  pixel ``i`` is centred on HR position ``s*i + (s-1)/2`` -- the alignment of area/bicubic
  resizing and PixelShuffle. Sampling: ``var1 ~ U[lo, hi]``, ``var2 ~ U[lo, var1]``,
  ``theta ~ U[0, pi]`` with ``(lo, hi) = MANET_VARIANCE_RANGE[s]``.
- **IKC convention** (isotropic, bicubic downsampling): a centred (mean at 10) isotropic Gaussian
  with *standard deviation* ``sigma ~ U[lo, hi]``, ``(lo, hi) = IKC_SIGMA_RANGE[s]``.
- Kernels are truncated to the 21 x 21 support and renormalised to sum 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

KERNEL_SIZE = 21
"""Side of every blur kernel (pixels)."""
N_TAPS = KERNEL_SIZE * KERNEL_SIZE
"""Taps of a flattened (row-major) kernel: 441."""

KERNEL_RADIUS = KERNEL_SIZE // 2
"""Index of the central tap (10); also the reflect-padding width used when blurring."""

MANET_VARIANCE_RANGE: dict[int, tuple[float, float]] = {2: (0.35, 5.0), 3: (0.525, 7.5), 4: (0.7, 10.0)}
"""MANet sampling range of the two *variances* per scale factor."""

IKC_SIGMA_RANGE: dict[int, tuple[float, float]] = {2: (0.2, 2.0), 3: (0.2, 3.0), 4: (0.2, 4.0)}
"""IKC sampling range of the isotropic *standard deviation* per scale factor."""

NONBLIND_SIGMA_RANGE_HR_PX: tuple[float, float] = (0.2, 6.0)
"""Standard deviations (HR px) a user-given kernel may have: below 0.2 px the 21 x 21 Gaussian is a
single tap, above 6 px its support cuts it at +-1.7 sigma."""

GAUSSIAN8_SIGMAS: tuple[float, ...] = (1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2)
"""The eight isotropic standard deviations of the "Gaussian8" x4 test kernels (IKC convention)."""

_EPS = 1e-12


def _check_scale(scale: int, table: dict[int, tuple[float, float]]) -> int:
    s = int(scale)
    if s != scale or s not in table:
        raise ValueError(f"unsupported scale {scale!r}; expected one of {sorted(table)}")
    return s


def kernel_center(scale: int) -> float:
    """Position (row and column) of the Gaussian mean in a MANet-convention kernel: ``10 + (s-1)/2``.

    With this centre, ``LR[i] = sum_a HRpad[s*i + a] K[a]`` samples the HR neighbourhood centred on
    HR position ``s*i + (s-1)/2``. ``kernel_center(1) == 10`` is the plain centred kernel.
    """
    s = int(scale)
    if s < 1:
        raise ValueError(f"scale must be >= 1, got {scale!r}")
    return KERNEL_RADIUS + (s - 1) / 2.0


def _grid(center: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(dx, dy)`` (float32, shape (21, 21)) of every tap from ``center``."""
    ax = np.arange(KERNEL_SIZE, dtype=np.float32) - np.float32(center)
    dy, dx = np.meshgrid(ax, ax, indexing="ij")  # dy varies along rows, dx along columns
    return dx, dy


def normalise_kernels(kernels: np.ndarray, axes: tuple[int, ...] = (-2, -1), *, clip_negative: bool = False
                      ) -> np.ndarray:
    """Kernels scaled to sum 1 over ``axes`` (default: the last two, ``(..., 21, 21)``), as a new float32 array.

    ``clip_negative`` first sets negative taps to 0 (estimated or PCA-reconstructed kernels); an
    all-zero kernel stays zero (its sum is floored at 1e-12).
    """
    k = np.asarray(kernels, dtype=np.float32)
    if clip_negative:
        k = np.maximum(k, np.float32(0.0))
    total = k.sum(axis=axes, keepdims=True)
    return (k / np.maximum(total, np.float32(_EPS))).astype(np.float32, copy=False)


class KernelParams(NamedTuple):
    """One MANet-convention Gaussian: standard deviations in HR px along and across the angle
    ``theta_rad`` (radians, from the columns axis towards the rows; see the module docstring)."""

    sigma1_hr_px: float
    sigma2_hr_px: float
    theta_rad: float

    @classmethod
    def from_variances(cls, var1_hr_px2: float, var2_hr_px2: float, theta_rad: float) -> KernelParams:
        """From MANet's parameters: variances in HR px² (≥ 0) and the angle in radians."""
        return cls(math.sqrt(max(float(var1_hr_px2), 0.0)), math.sqrt(max(float(var2_hr_px2), 0.0)),
                   float(theta_rad))

    def checked(self) -> KernelParams:
        """``self`` if usable as a user-given kernel; else ValueError naming SIGMA1, SIGMA2 or THETA
        and the reason (not finite, or a σ outside :data:`NONBLIND_SIGMA_RANGE_HR_PX`)."""
        lo, hi = NONBLIND_SIGMA_RANGE_HR_PX
        for name, value in (("SIGMA1", self.sigma1_hr_px), ("SIGMA2", self.sigma2_hr_px), ("THETA", self.theta_rad)):
            if not np.isfinite(value):
                raise ValueError(f"{name} = {value} is not a finite number")
            if name != "THETA" and not lo <= value <= hi:
                raise ValueError(f"{name} = {value:g} is outside {lo:g}..{hi:g} (standard deviation in HR px)")
        return self


def anisotropic_gaussian_kernels(
    var1_hr_px2: np.ndarray | float, var2_hr_px2: np.ndarray | float, theta_rad: np.ndarray | float, scale: int
) -> np.ndarray:
    """Vectorised MANet-convention kernels from MANet's parameters (variances, as it samples them).

    ``var1_hr_px2``, ``var2_hr_px2`` (variances in HR px², > 0) and ``theta_rad`` (radians)
    broadcast to a common shape ``S``; the result has shape ``S + (21, 21)``, float32, each kernel
    summing to 1, mean at :func:`kernel_center` ``(scale)``. For σ in HR px use
    :func:`anisotropic_gaussian_kernel`.
    """
    v1, v2, th = np.broadcast_arrays(
        np.asarray(var1_hr_px2, dtype=np.float32), np.asarray(var2_hr_px2, dtype=np.float32),
        np.asarray(theta_rad, dtype=np.float32)
    )
    if not (np.all(v1 > 0) and np.all(v2 > 0) and np.all(np.isfinite(v1)) and np.all(np.isfinite(v2))):
        raise ValueError("variances must be positive finite numbers")
    if not np.all(np.isfinite(th)):
        raise ValueError("theta must be a finite number")
    dx, dy = _grid(kernel_center(scale))
    c = np.cos(th)[..., None, None]
    s = np.sin(th)[..., None, None]
    u = dx * c + dy * s  # coordinate along the var1 axis (cos t, sin t)
    v = dy * c - dx * s  # coordinate along the var2 axis (-sin t, cos t)
    q = u * u / v1[..., None, None] + v * v / v2[..., None, None]
    k = np.exp(np.float32(-0.5) * q)
    return normalise_kernels(k)


def anisotropic_gaussian_kernel(params: KernelParams, scale: int) -> np.ndarray:
    """One MANet-convention kernel from σ1, σ2 in HR px and θ in radians: ``(21, 21)`` float32, sum 1."""
    if not isinstance(params, KernelParams):  # a bare tuple could be variances: say which units it has
        raise TypeError(f"anisotropic_gaussian_kernel takes KernelParams (σ in HR px, θ in rad), got {params!r}")
    return anisotropic_gaussian_kernels(params.sigma1_hr_px**2, params.sigma2_hr_px**2, params.theta_rad, scale)


def isotropic_gaussian_kernels(sigma: np.ndarray | float) -> np.ndarray:
    """Vectorised IKC-convention kernels: centred (mean at 10) isotropic Gaussians, std ``sigma``.

    Returns ``shape(sigma) + (21, 21)`` float32, each summing to 1.
    """
    sg = np.asarray(sigma, dtype=np.float32)
    if np.any(sg <= 0):
        raise ValueError("sigma must be positive")
    dx, dy = _grid(float(KERNEL_RADIUS))
    r2 = dx * dx + dy * dy
    k = np.exp(-r2 / (np.float32(2.0) * sg[..., None, None] ** 2))
    return normalise_kernels(k)


def isotropic_gaussian_kernel(sigma: float) -> np.ndarray:
    """One IKC-convention kernel: ``(21, 21)`` float32 isotropic Gaussian, std ``sigma``, centred at 10."""
    return isotropic_gaussian_kernels(float(sigma))


def sample_anisotropic_params(
    rng: np.random.Generator, scale: int, n: int | tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw MANet parameters ``(var1, var2, theta)`` for ``scale``.

    ``var1 ~ U[lo, hi]``, ``var2 ~ U[lo, var1]``, ``theta ~ U[0, pi]`` (draws in that order).
    ``n`` is a count or a shape; ``None`` gives 0-d arrays (one kernel).
    """
    lo, hi = MANET_VARIANCE_RANGE[_check_scale(scale, MANET_VARIANCE_RANGE)]
    var1 = rng.uniform(lo, hi, size=n)
    var2 = rng.uniform(lo, var1)
    theta = rng.uniform(0.0, np.pi, size=n)
    return np.asarray(var1), np.asarray(var2), np.asarray(theta)


def sample_isotropic_sigma(
    rng: np.random.Generator, scale: int, n: int | tuple[int, ...] | None = None
) -> np.ndarray:
    """Draw IKC standard deviations ``sigma ~ U[lo, hi]`` for ``scale`` (``n``: count, shape or None)."""
    lo, hi = IKC_SIGMA_RANGE[_check_scale(scale, IKC_SIGMA_RANGE)]
    return np.asarray(rng.uniform(lo, hi, size=n))


def kernel_centroid(kernels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass ``(row, col)`` of kernels ``(..., 21, 21)`` (weights need not sum to 1)."""
    k = np.asarray(kernels, dtype=np.float64)
    ax = np.arange(KERNEL_SIZE, dtype=np.float64)
    total = np.maximum(k.sum(axis=(-2, -1)), _EPS)
    row = (k.sum(axis=-1) * ax).sum(axis=-1) / total
    col = (k.sum(axis=-2) * ax).sum(axis=-1) / total
    return row, col


def fit_gaussian(
    kernels: np.ndarray, scale: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moment fit of Gaussian parameters ``(var1, var2, theta)`` to kernels ``(..., 21, 21)``.

    Second moments are taken about the nominal MANet centre :func:`kernel_center` ``(scale)`` when
    ``scale`` is given, or about each kernel's own centroid when ``scale`` is None (use that for
    estimated kernels, whose offset from the centre should not count as blur). The 2 x 2
    covariance in ``(x, y)`` = (col, row) coordinates is eigen-decomposed: ``var1 >= var2`` are the
    eigenvalues and ``theta`` in ``[0, pi)`` is the angle of the ``var1`` eigenvector, matching
    :func:`anisotropic_gaussian_kernels`. Truncation to 21 x 21 biases the fit low for wide
    kernels. Returns float64 arrays of the leading shape.
    """
    k = np.asarray(kernels, dtype=np.float64)
    if k.shape[-2:] != (KERNEL_SIZE, KERNEL_SIZE):
        raise ValueError(f"kernels must end in ({KERNEL_SIZE}, {KERNEL_SIZE}), got {k.shape}")
    total = np.maximum(k.sum(axis=(-2, -1)), _EPS)
    ax = np.arange(KERNEL_SIZE, dtype=np.float64)
    if scale is None:
        cy, cx = kernel_centroid(k)
    else:
        c = kernel_center(scale)
        cy = np.full(k.shape[:-2], c)
        cx = np.full(k.shape[:-2], c)
    dy = ax - np.asarray(cy)[..., None]  # (..., 21) offsets along rows
    dx = ax - np.asarray(cx)[..., None]  # (..., 21) offsets along columns
    wy = k.sum(axis=-1)  # (..., 21) row marginal
    wx = k.sum(axis=-2)  # (..., 21) column marginal
    sxx = (wx * dx * dx).sum(-1) / total
    syy = (wy * dy * dy).sum(-1) / total
    sxy = np.einsum("...ij,...i,...j->...", k, dy, dx) / total
    # closed-form eigen-decomposition of [[sxx, sxy], [sxy, syy]]
    half_tr = 0.5 * (sxx + syy)
    disc = np.sqrt(np.maximum(0.25 * (sxx - syy) ** 2 + sxy * sxy, 0.0))
    var1 = half_tr + disc
    var2 = np.maximum(half_tr - disc, 0.0)
    theta = np.mod(0.5 * np.arctan2(2.0 * sxy, sxx - syy), np.pi)
    theta = np.where(theta >= np.pi, 0.0, theta)  # np.mod may round a tiny negative up to pi
    return np.asarray(var1), np.asarray(var2), np.asarray(theta)
