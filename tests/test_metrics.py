"""Tests for engine.metrics: PSNR/SSIM on Y with the published protocol, LR-PSNR, kernel error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal

from engine.metrics import kernel_error, psnr, rgb_to_y_bt601, ssim


def _smooth_image(rng: np.random.Generator, h: int = 48, w: int = 40) -> np.ndarray:
    """A smooth-ish random RGB image in [0, 1] (float32 HWC): low-res noise upsampled."""
    small = rng.random((h // 8 + 2, w // 8 + 2, 3))
    yy = np.linspace(0, small.shape[0] - 1.001, h)
    xx = np.linspace(0, small.shape[1] - 1.001, w)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None, None], (xx - x0)[None, :, None]
    img = (
        small[y0][:, x0] * (1 - fy) * (1 - fx)
        + small[y0 + 1][:, x0] * fy * (1 - fx)
        + small[y0][:, x0 + 1] * (1 - fy) * fx
        + small[y0 + 1][:, x0 + 1] * fy * fx
    )
    return img.astype(np.float32)


# --- Y conversion ------------------------------------------------------------------------------
def test_y_of_white_black_red() -> None:
    img = np.zeros((1, 3, 3), np.float32)
    img[0, 0] = 1.0  # white
    img[0, 2, 0] = 1.0  # pure red
    y = rgb_to_y_bt601(img)
    assert y.shape == (1, 3) and y.dtype == np.float32
    assert y[0, 0] == pytest.approx(235 / 255, abs=1e-6)
    assert y[0, 1] == pytest.approx(16 / 255, abs=1e-6)
    assert y[0, 2] == pytest.approx((16 + 65.481) / 255, abs=1e-6)


def test_y_rejects_non_rgb() -> None:
    with pytest.raises(ValueError):
        rgb_to_y_bt601(np.zeros((4, 4), np.float32))


# --- PSNR -----------------------------------------------------------------------------------------
def test_identical_images_give_inf_and_one() -> None:
    img = _smooth_image(np.random.default_rng(0))
    assert psnr(img, img.copy(), crop_border=4) == math.inf
    assert ssim(img, img.copy(), crop_border=4) == 1.0


@pytest.mark.parametrize("k", [1, 3, 10])
def test_psnr_constant_offset_known_value(k: int) -> None:
    # A grey image differing by exactly k/255 in every RGB channel: Y differs by
    # k/255 · (65.481 + 128.553 + 24.966)/255 = k/255 · 219/255.
    a = np.full((20, 20, 3), 100 / 255, np.float32)
    b = np.full((20, 20, 3), (100 + k) / 255, np.float32)
    dy = k / 255 * 219 / 255
    expected_y = 10 * math.log10(1.0 / dy**2)
    assert psnr(a, b, crop_border=2) == pytest.approx(expected_y, abs=1e-6)
    expected_rgb = 20 * math.log10(255 / k)
    assert psnr(a, b, crop_border=2, test_y_channel=False) == pytest.approx(expected_rgb, abs=1e-6)


def test_psnr_max_value_scales_peak() -> None:
    a = np.full((10, 10, 3), 0.2, np.float32)
    b = np.full((10, 10, 3), 0.3, np.float32)
    base = psnr(a, b, crop_border=0, test_y_channel=False, round_to_u8=False)
    assert base == pytest.approx(20.0, abs=1e-4)
    doubled = psnr(a, b, crop_border=0, test_y_channel=False, round_to_u8=False, max_value=2.0)
    assert doubled - base == pytest.approx(20 * math.log10(2.0), abs=1e-6)


def test_round_to_u8_removes_sub_level_differences() -> None:
    a = np.full((12, 12, 3), 100 / 255, np.float32)
    b = a + np.float32(0.2 / 255)  # rounds to the same 8-bit level
    assert psnr(a, b, crop_border=0) == math.inf
    assert math.isfinite(psnr(a, b, crop_border=0, round_to_u8=False))


def test_crop_border_shaves_every_side() -> None:
    rng = np.random.default_rng(1)
    a = _smooth_image(rng, 40, 40)
    clean = psnr(a, a + 0.01 * rng.standard_normal(a.shape).astype(np.float32), crop_border=4)
    for sl in [np.s_[:4, :], np.s_[-4:, :], np.s_[:, :4], np.s_[:, -4:]]:
        b = a.copy()
        b[sl] = 1.0 - b[sl]  # a big change confined to one 4-px border
        assert psnr(a, b, crop_border=4) == math.inf
        assert ssim(a, b, crop_border=4) == 1.0
        assert psnr(a, b, crop_border=3) < clean  # one pixel less shaved: the change counts


def test_size_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)), crop_border=0)


# --- SSIM ---------------------------------------------------------------------------------------
def _reference_ssim(a_u8_y: np.ndarray, b_u8_y: np.ndarray) -> float:
    """Independent SSIM: scipy 2-D 'valid' correlation with an outer-product Gaussian window."""
    x = np.arange(11) - 5.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    win = np.outer(g, g)
    win /= win.sum()
    f = lambda z: signal.correlate2d(z, win, mode="valid")  # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = f(a_u8_y), f(b_u8_y)
    sa = f(a_u8_y**2) - mu_a**2
    sb = f(b_u8_y**2) - mu_b**2
    sab = f(a_u8_y * b_u8_y) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (sa + sb + c2))
    return float(m.mean())


def test_ssim_matches_independent_scipy_computation() -> None:
    rng = np.random.default_rng(2)
    a = _smooth_image(rng, 50, 44)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    border = 3

    def y255(img: np.ndarray) -> np.ndarray:
        u8 = np.round(img.astype(np.float64) * 255)  # the 8-bit rounding of the protocol
        r, g, bl = u8[..., 0], u8[..., 1], u8[..., 2]
        y = 16 + (65.481 * r + 128.553 * g + 24.966 * bl) / 255
        return y[border:-border, border:-border]

    expected = _reference_ssim(y255(a), y255(b))
    assert ssim(a, b, crop_border=border) == pytest.approx(expected, abs=1e-9)
    assert 0.0 < expected < 1.0


def test_ssim_rgb_mode_averages_channels() -> None:
    rng = np.random.default_rng(3)
    a = _smooth_image(rng, 32, 32)
    b = np.clip(a + 0.04 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    per = [ssim(a[..., c], b[..., c], crop_border=2) for c in range(3)]
    assert ssim(a, b, crop_border=2, test_y_channel=False) == pytest.approx(np.mean(per), abs=1e-12)


def test_ssim_and_psnr_decrease_with_noise() -> None:
    rng = np.random.default_rng(4)
    a = _smooth_image(rng, 48, 48)
    noise = rng.standard_normal(a.shape).astype(np.float32)
    scores = [
        (ssim(a, np.clip(a + s * noise, 0, 1), crop_border=4), psnr(a, np.clip(a + s * noise, 0, 1), crop_border=4))
        for s in (0.01, 0.03, 0.1)
    ]
    ssims, psnrs = zip(*scores)
    assert ssims[0] > ssims[1] > ssims[2]
    assert psnrs[0] > psnrs[1] > psnrs[2]


def test_ssim_needs_window_sized_image() -> None:
    with pytest.raises(ValueError, match="SSIM"):
        ssim(np.zeros((14, 14, 3)), np.zeros((14, 14, 3)), crop_border=2)


# --- kernel error -------------------------------------------------------------------------------
def test_kernel_error_values() -> None:
    rng = np.random.default_rng(5)
    true = rng.random((3, 21, 21))
    true /= true.sum(axis=(-2, -1), keepdims=True)
    assert kernel_error(true, true.copy()) == {"mean_l1": 0.0, "psnr": math.inf}
    delta = 1e-4
    est = true + delta
    err = kernel_error(est, true)
    assert err["mean_l1"] == pytest.approx(delta, rel=1e-6)
    assert err["psnr"] == pytest.approx(10 * math.log10(true.max() ** 2 / delta**2), abs=1e-6)
    worse = kernel_error(true + 2 * delta, true)
    assert worse["psnr"] < err["psnr"] and worse["mean_l1"] > err["mean_l1"]


def test_kernel_error_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        kernel_error(np.zeros((21, 21)), np.zeros((2, 21, 21)))


# --- LR-PSNR ------------------------------------------------------------------------------------
def test_lr_psnr_true_kernels_high_wrong_kernels_lower() -> None:
    from engine.degradation import anisotropic_gaussian_kernels, degrade_manet, manet_mode_field
    from engine.metrics import lr_psnr

    rng = np.random.default_rng(6)
    scale = 4
    hr = _smooth_image(rng, 160, 120)
    hr = np.clip(hr + 0.03 * rng.standard_normal(hr.shape), 0, 1).astype(np.float32)  # some texture
    field = manet_mode_field(5, (40, 30), scale, rng=np.random.default_rng(7))
    lr = degrade_manet(hr, field, scale, None)
    # the true field reproduces the 8-bit LR image exactly
    assert lr_psnr(hr, lr, field, scale, crop_border=scale) == math.inf
    wrong = anisotropic_gaussian_kernels(0.7, 0.7, 0.0, scale)  # far too sharp everywhere
    # a nearly true estimate (2 % of a wrong kernel mixed in) still scores very high, but finite
    true_score = lr_psnr(hr, lr, 0.98 * field + 0.02 * wrong, scale, crop_border=scale)
    assert 45.0 <= true_score < math.inf
    wrong_score = lr_psnr(hr, lr, wrong, scale, crop_border=scale)
    assert wrong_score < true_score - 5.0
    other_field = manet_mode_field(5, (40, 30), scale, rng=np.random.default_rng(8))
    assert lr_psnr(hr, lr, other_field, scale, crop_border=scale) < true_score - 5.0


def test_lr_psnr_rejects_mismatched_sizes() -> None:
    from engine.metrics import lr_psnr

    with pytest.raises(ValueError, match="LR image"):
        lr_psnr(np.zeros((40, 40, 3)), np.zeros((9, 10, 3)), np.zeros((21, 21)), 4, crop_border=4)
    with pytest.raises(ValueError, match="kernels"):
        lr_psnr(np.zeros((40, 40, 3)), np.zeros((10, 10, 3)), np.zeros((9, 10, 21, 21)), 4, crop_border=4)


def _ssim_with_opencv(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two H×W float64 images on [0, 255] as engine.metrics computed it with OpenCV's
    sepFilter2D (before the runtime dropped OpenCV); OpenCV is only a test reference here."""
    import cv2

    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    g /= g.sum()

    def f(x: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = f(a), f(b)
    var_a, var_b, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    m = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(m.mean())


@pytest.mark.parametrize("test_y_channel", [True, False])
def test_ssim_agrees_with_the_former_opencv_filtering(test_y_channel: bool) -> None:
    rng = np.random.default_rng(11)
    a = _smooth_image(rng, 67, 53)
    b = np.clip(a + 0.08 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    planes_a = np.round(a.astype(np.float64) * 255)
    planes_b = np.round(b.astype(np.float64) * 255)
    if test_y_channel:  # BT.601 Y on [0, 255] from the 8-bit levels, in float64
        planes_a = (16 + planes_a @ np.array([65.481, 128.553, 24.966]) / 255)[..., None]
        planes_b = (16 + planes_b @ np.array([65.481, 128.553, 24.966]) / 255)[..., None]
    planes_a, planes_b = planes_a[2:-2, 2:-2], planes_b[2:-2, 2:-2]
    expected = np.mean([_ssim_with_opencv(planes_a[..., c], planes_b[..., c]) for c in range(planes_a.shape[2])])
    got = ssim(a, b, crop_border=2, test_y_channel=test_y_channel)
    assert got == pytest.approx(expected, abs=1e-10)
    assert 0.2 < got < 0.99
