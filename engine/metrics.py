"""Image and kernel quality metrics, following the published super-resolution protocol.

Protocol (what the SR tables use, and what every function here does by default):

- Inputs are ``rgb_f32`` arrays, H×W×3 float32, RGB order, values in [0, 1] (grey H×W or H×W×1
  arrays are accepted and used as they are).
- ``round_to_u8=True`` first rounds both images to 8-bit levels (SR outputs are saved as 8-bit PNGs
  before they are scored).
- ``test_y_channel=True`` scores the luma Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr`` defines it,
  ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` (Y in [16/255, 235/255]); Y is kept as a float
  (not rounded again), as BasicSR does.
- ``crop_border`` pixels are shaved from every side (the scale factor, by convention).
- PSNR has its peak at ``max_value`` (1.0 for [0, 1] images); SSIM is the Wang et al. (2004) index
  with an 11×11 Gaussian window (σ 1.5), K1 = 0.01, K2 = 0.03, computed on the [0, 255] scale with
  'valid' filtering, averaged over the map (and over channels when ``test_y_channel=False``).

Every metric goes through :func:`_prepare_pair` so there is one value-range convention, and every
PSNR through :func:`_psnr_from_mse`.
"""

from __future__ import annotations

import math

import numpy as np

from engine.degradation import blur_subsample, blur_subsample_variant, quantize_u8
from engine.degradation.degrade import separable_correlate

__all__ = [
    "rgb_to_y_bt601",
    "psnr",
    "ssim",
    "lr_psnr",
    "kernel_error",
]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def rgb_to_y_bt601(rgb_f32: np.ndarray) -> np.ndarray:
    """Luma Y of BT.601 (MATLAB ``rgb2ycbcr``) of an H×W×3 RGB image in [0, 1].

    Returns an H×W float32 array in [16/255, 235/255] for inputs in [0, 1]:
    ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``.
    """
    rgb = np.asarray(rgb_f32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    y = (16.0 + rgb.astype(np.float64) @ _Y_WEIGHTS) / 255.0
    return y.astype(np.float32)


def _prepare_pair(
    img1: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int,
    test_y_channel: bool,
    round_to_u8: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Bring two [0, 1] images to the scored form: float64 H'×W'×C in [0, 1], border shaved.

    The one place that decides rounding, colour space and shaving for PSNR and SSIM alike.
    """
    a = np.asarray(img1)
    b = np.asarray(img2)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"expected H×W, H×W×1 or H×W×3 images, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    h, w = a.shape[:2]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise ValueError(f"image {w}×{h} px is too small to shave {crop_border} px from each side")

    def one(img: np.ndarray) -> np.ndarray:
        img = img.astype(np.float64)
        if round_to_u8:
            img = np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0
        if test_y_channel and img.shape[-1] == 3:
            img = ((16.0 + img @ _Y_WEIGHTS) / 255.0)[..., None]
        if crop_border:
            img = img[crop_border:-crop_border, crop_border:-crop_border]
        return img

    return one(a), one(b)


def _psnr_from_mse(mse: float, peak: float) -> float:
    """``10 log10(peak² / mse)`` in dB; ``inf`` when ``mse`` is 0."""
    if mse <= 0.0:
        return math.inf
    return float(10.0 * math.log10(peak * peak / mse))


def psnr(
    img1: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    max_value: float = 1.0,
    round_to_u8: bool = True,
) -> float:
    """PSNR in dB between two ``rgb_f32`` images (H×W×3, [0, 1]); ``inf`` when identical.

    Args:
        img1, img2: images of the same shape, float in [0, 1] (H×W×3 RGB, or grey H×W / H×W×1).
        crop_border: pixels shaved from every side before scoring (the scale, by convention).
        test_y_channel: score the BT.601 luma Y (MATLAB ``rgb2ycbcr``) instead of the RGB channels.
        max_value: the peak signal value (1.0 for [0, 1] images).
        round_to_u8: round both images to 8-bit levels first (SR outputs are saved as 8-bit).
    """
    a, b = _prepare_pair(
        img1, img2, crop_border=crop_border, test_y_channel=test_y_channel, round_to_u8=round_to_u8
    )
    return _psnr_from_mse(float(np.mean((a - b) ** 2)), max_value)


def _gaussian_window_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, window_1d: np.ndarray) -> np.ndarray:
    """Separable correlation of an H×W float64 image with ``window_1d``, 'valid' part only."""
    return separable_correlate(np.asarray(img, dtype=np.float64), window_1d, window_1d)


def _ssim_channel(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two H×W float64 images on the [0, 255] scale."""
    c1 = (_SSIM_K1 * 255.0) ** 2
    c2 = (_SSIM_K2 * 255.0) ** 2
    win = _gaussian_window_1d(_SSIM_WINDOW, _SSIM_SIGMA)
    mu_a = _filter_valid(a, win)
    mu_b = _filter_valid(b, win)
    var_a = _filter_valid(a * a, win) - mu_a * mu_a
    var_b = _filter_valid(b * b, win) - mu_b * mu_b
    cov = _filter_valid(a * b, win) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(
    img1: np.ndarray,
    img2: np.ndarray,
    *,
    crop_border: int,
    test_y_channel: bool = True,
    round_to_u8: bool = True,
) -> float:
    """Mean SSIM (Wang et al. 2004) between two ``rgb_f32`` images (H×W×3, [0, 1]); 1.0 when identical.

    Computed on the [0, 255] scale with an 11×11 Gaussian window (σ 1.5), K1 0.01, K2 0.03 and
    'valid' filtering (no padding), after the same rounding / Y conversion / shaving as :func:`psnr`.
    With ``test_y_channel=False`` the per-channel SSIMs are averaged. The shaved image must be at least
    11×11 px.
    """
    a, b = _prepare_pair(
        img1, img2, crop_border=crop_border, test_y_channel=test_y_channel, round_to_u8=round_to_u8
    )
    if min(a.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}×{_SSIM_WINDOW} px after shaving, got {a.shape[1]}×{a.shape[0]}")
    a = a * 255.0
    b = b * 255.0
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[-1])]))


def lr_psnr(
    hr_rgb_f32: np.ndarray,
    lr_rgb_f32: np.ndarray,
    kernels_lr: np.ndarray,
    scale: int,
    *,
    crop_border: int,
) -> float:
    """LR-PSNR (MANet): how well estimated kernels explain the LR image, in dB (PSNR-Y).

    The ground-truth HR image (H×W×3, [0, 1]) is re-degraded with the estimated kernels under the MANet
    convention (per-LR-pixel blur + direct subsampling, ``blur_subsample_variant``), rounded to 8 bits
    and compared with the observed LR image (h×w×3, [0, 1], ``h = H // scale``) on Y with
    ``crop_border`` LR pixels shaved.

    Args:
        kernels_lr: ``(h, w, 21, 21)`` one kernel per LR pixel, or a single ``(21, 21)`` kernel used
            everywhere.
    """
    hr = np.asarray(hr_rgb_f32, dtype=np.float32)
    lr = np.asarray(lr_rgb_f32, dtype=np.float32)
    k = np.asarray(kernels_lr, dtype=np.float32)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    if lr.shape[:2] != (h, w):
        raise ValueError(f"LR image is {lr.shape[1]}×{lr.shape[0]} px; HR {hr.shape[1]}×{hr.shape[0]} "
                         f"at ×{scale} gives {w}×{h}")
    if k.ndim == 2:
        redegraded = blur_subsample(hr, k, scale)
    elif k.ndim == 4 and k.shape[:2] == (h, w):
        redegraded = blur_subsample_variant(hr, k, scale)
    else:
        raise ValueError(f"kernels must be (21, 21) or ({h}, {w}, 21, 21), got {k.shape}")
    return psnr(quantize_u8(redegraded), lr, crop_border=crop_border, test_y_channel=True)


def kernel_error(est_kernels: np.ndarray, true_kernels: np.ndarray) -> dict[str, float]:
    """Error between estimated and true kernels of shape (..., 21, 21) (same shape).

    Returns ``{"mean_l1": mean |est − true| over all taps, "psnr": dB}``. The PSNR peak is the
    largest value of the *true* kernels (over the whole array), so it measures the error relative to
    the kernel's own height (kernels sum to 1, their values are far below 1); ``inf`` when equal.
    """
    est = np.asarray(est_kernels, dtype=np.float64)
    true = np.asarray(true_kernels, dtype=np.float64)
    if est.shape != true.shape:
        raise ValueError(f"kernel arrays differ in shape: {est.shape} vs {true.shape}")
    if est.ndim < 2:
        raise ValueError(f"expected kernels of shape (..., k, k), got {est.shape}")
    diff = est - true
    return {
        "mean_l1": float(np.mean(np.abs(diff))),
        "psnr": _psnr_from_mse(float(np.mean(diff * diff)), float(true.max())),
    }
