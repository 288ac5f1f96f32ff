"""Tests for the numpy filters that replaced OpenCV in engine.degradation: separable and FFT
correlation, the soft region weights (Gaussian blur), and the JPEG round trip. OpenCV and scipy are
independent references here (test dependencies only)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from engine.degradation import degrade, fields
from engine.degradation.degrade import correlate_valid, jpeg_compress, separable_correlate, to_u8
from engine.degradation.kernels import anisotropic_gaussian_kernels, isotropic_gaussian_kernel


def _valid_reference(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'Valid' correlation by scipy, in float64, channel by channel."""
    kh, kw = kernel.shape
    planes = x[..., None] if x.ndim == 2 else x
    out = np.stack(
        [ndimage.correlate(planes[..., c].astype(np.float64), kernel.astype(np.float64), mode="constant")
         for c in range(planes.shape[2])],
        axis=-1,
    )
    cy, cx = kh // 2, kw // 2  # scipy centres the kernel; keep the fully covered outputs
    out = out[cy : out.shape[0] - (kh - 1 - cy), cx : out.shape[1] - (kw - 1 - cx)]
    return out[..., 0] if x.ndim == 2 else out


@pytest.mark.parametrize("shape", [(41, 37, 3), (30, 64), (21, 21, 3), (90, 23, 2)])
@pytest.mark.parametrize("kind", ["isotropic", "anisotropic"])
def test_correlate_valid_matches_scipy(shape, kind):
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape, dtype=np.float32)
    k = isotropic_gaussian_kernel(1.7) if kind == "isotropic" else anisotropic_gaussian_kernels(7.0, 1.2, 0.9, 4)
    out = correlate_valid(x, k)
    assert out.dtype == np.float32 and out.shape == (shape[0] - 20, shape[1] - 20) + shape[2:]
    np.testing.assert_allclose(out, _valid_reference(x, k), atol=2e-6)


def test_correlate_valid_takes_the_separable_path_only_for_separable_kernels(monkeypatch):
    calls = []
    real = degrade.separable_correlate
    monkeypatch.setattr(degrade, "separable_correlate", lambda *a: calls.append(1) or real(*a))
    x = np.random.default_rng(0).random((40, 40, 3), dtype=np.float32)
    correlate_valid(x, isotropic_gaussian_kernel(2.5))
    assert calls == [1]
    correlate_valid(x, anisotropic_gaussian_kernels(7.0, 1.2, 0.9, 4))  # rank > 1: FFT
    assert calls == [1]
    box = np.ones((3, 5)) / 15.0  # separable, not square
    np.testing.assert_allclose(correlate_valid(x, box), _valid_reference(x, box), atol=1e-6)
    assert calls == [1, 1]


@pytest.mark.parametrize("strip_bytes", [1, 700, 1 << 19])
def test_separable_correlate_strips_give_the_same_result(monkeypatch, strip_bytes):
    """Strips of 1 row, a few rows and the whole image agree exactly; values match scipy (float64)."""
    rng = np.random.default_rng(5)
    x = rng.random((57, 33, 3))
    ty, tx = rng.random(7), rng.random(4)
    monkeypatch.setattr(degrade, "_STRIP_BYTES", strip_bytes)
    out = separable_correlate(x, ty, tx)
    assert out.dtype == np.float64 and out.shape == (51, 30, 3)
    np.testing.assert_allclose(out, _valid_reference(x, np.outer(ty, tx)), rtol=0, atol=1e-12)
    monkeypatch.setattr(degrade, "_STRIP_BYTES", 1 << 30)
    np.testing.assert_array_equal(separable_correlate(x, ty, tx), out)


def test_separable_correlate_refuses_arrays_smaller_than_the_taps():
    with pytest.raises(ValueError, match="smaller than the taps"):
        separable_correlate(np.zeros((5, 30)), np.ones(7), np.ones(3))


def test_blur_bicubic_agrees_with_the_former_opencv_blur():
    """The blur step equals what cv2.filter2D computed before (reflect-101 padding, valid part)."""
    rng = np.random.default_rng(6)
    hr = rng.random((64, 48, 3), dtype=np.float32)
    for k in (isotropic_gaussian_kernel(2.6), anisotropic_gaussian_kernels(6.0, 2.0, 0.3, 4)):
        expected = cv2.filter2D(hr, -1, k, borderType=cv2.BORDER_REFLECT_101)
        padded = np.pad(hr, ((10, 10), (10, 10), (0, 0)), mode="reflect")
        np.testing.assert_allclose(correlate_valid(padded, k), expected, atol=2e-6)


@pytest.mark.parametrize(("shape", "sigma"), [((3, 40, 50), 2.0), ((2, 5, 7), 2.5), ((4, 1, 9), 0.7)])
def test_soft_weights_match_opencv_gaussian_blur(shape, sigma):
    """Gaussian of radius ceil(3 sigma), reflect-101 borders (also on planes smaller than the
    radius), renormalised: as cv2.GaussianBlur computed it before."""
    w = np.random.default_rng(7).random(shape).astype(np.float32)
    radius = int(np.ceil(3 * sigma))
    ksize = 2 * radius + 1
    blurred = np.stack([
        cv2.GaussianBlur(w[i], (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
        for i in range(shape[0])
    ])
    expected = blurred / np.maximum(blurred.sum(axis=0, keepdims=True), 1e-8)
    got = fields._soft_weights(w, sigma)
    assert got.shape == shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=0), 1.0, atol=1e-5)


@pytest.mark.parametrize("quality", [5, 50, 75, 95, 100])
def test_jpeg_round_trip_equals_opencv_defaults(quality):
    """Pillow with 4:2:0 gives what cv2.imencode('.jpg') + imdecode gave (same libjpeg settings)."""
    rng = np.random.default_rng(quality)
    img = cv2.GaussianBlur(rng.random((45, 62, 3), dtype=np.float32), (0, 0), 2.0)
    u8 = to_u8(img)
    ok, buf = cv2.imencode(".jpg", u8[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    expected = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
    got = jpeg_compress(img, quality)
    assert got.shape == img.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1.0 / 255.0 + 1e-7  # identical today; one level of slack
    grey = jpeg_compress(img[..., 1], quality)
    ok, buf = cv2.imencode(".jpg", u8[..., 1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    expected_grey = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    assert np.abs(grey - expected_grey).max() <= 1.0 / 255.0 + 1e-7
