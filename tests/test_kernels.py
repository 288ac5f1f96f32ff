"""Kernels: normalisation, centre, sampling ranges, reproducibility and the moment fit."""

import numpy as np
import pytest

from engine.degradation.kernels import (
    GAUSSIAN8_SIGMAS,
    IKC_SIGMA_RANGE,
    KERNEL_SIZE,
    MANET_VARIANCE_RANGE,
    KernelParams,
    anisotropic_gaussian_kernel,
    anisotropic_gaussian_kernels,
    fit_gaussian,
    isotropic_gaussian_kernel,
    isotropic_gaussian_kernels,
    kernel_center,
    kernel_centroid,
    normalise_kernels,
    sample_anisotropic_params,
    sample_isotropic_sigma,
)


def test_constants():
    assert KERNEL_SIZE == 21
    assert MANET_VARIANCE_RANGE == {2: (0.35, 5.0), 3: (0.525, 7.5), 4: (0.7, 10.0)}
    assert IKC_SIGMA_RANGE == {2: (0.2, 2.0), 3: (0.2, 3.0), 4: (0.2, 4.0)}
    assert np.allclose(GAUSSIAN8_SIGMAS, np.arange(1.8, 3.21, 0.2)) and len(GAUSSIAN8_SIGMAS) == 8


@pytest.mark.parametrize("scale, centre", [(1, 10.0), (2, 10.5), (3, 11.0), (4, 11.5)])
def test_kernel_center(scale, centre):
    assert kernel_center(scale) == centre


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_anisotropic_kernels_normalised_and_centred(scale):
    rng = np.random.default_rng(1)
    v1, v2, th = sample_anisotropic_params(rng, scale, 200)
    ks = anisotropic_gaussian_kernels(v1, v2, th, scale)
    assert ks.shape == (200, 21, 21) and ks.dtype == np.float32
    assert np.all(ks >= 0)
    np.testing.assert_allclose(ks.sum(axis=(1, 2)), 1.0, atol=1e-5)
    # small, untruncated kernels: centroid at the documented centre
    small = anisotropic_gaussian_kernels(np.full(5, 1.0), 0.5, np.linspace(0, 3, 5), scale)
    row, col = kernel_centroid(small)
    np.testing.assert_allclose(row, kernel_center(scale), atol=1e-4)
    np.testing.assert_allclose(col, kernel_center(scale), atol=1e-4)


def test_single_kernel_matches_vectorised_and_formula():
    k = anisotropic_gaussian_kernels(3.0, 1.0, 0.7, 4)
    assert k.shape == (21, 21) and k.dtype == np.float32
    ks = anisotropic_gaussian_kernels(np.array([[3.0]]), np.array([[1.0]]), np.array([[0.7]]), 4)
    assert ks.shape == (1, 1, 21, 21)
    np.testing.assert_array_equal(ks[0, 0], k)
    # independent evaluation of the density with the covariance matrix, float64
    c = kernel_center(4)
    rot = np.array([[np.cos(0.7), -np.sin(0.7)], [np.sin(0.7), np.cos(0.7)]])
    cov = rot @ np.diag([3.0, 1.0]) @ rot.T
    inv = np.linalg.inv(cov)
    yy, xx = np.mgrid[0:21, 0:21].astype(np.float64)
    d = np.stack([xx - c, yy - c], axis=-1)  # (x, y) = (col, row)
    ref = np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inv, d))
    np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-6)


def test_single_kernel_takes_sigmas_in_hr_px_and_theta_in_radians():
    params = KernelParams(sigma1_hr_px=3.0, sigma2_hr_px=1.0, theta_rad=0.7)
    np.testing.assert_array_equal(anisotropic_gaussian_kernel(params, 4), anisotropic_gaussian_kernels(9.0, 1.0, 0.7, 4))
    assert KernelParams.from_variances(9.0, 1.0, 0.7) == params
    with pytest.raises(TypeError, match="KernelParams"):  # a bare tuple could be variances
        anisotropic_gaussian_kernel((9.0, 1.0, 0.7), 4)
    assert KernelParams(2.0, 2.0, 0.0).checked() == (2.0, 2.0, 0.0)
    with pytest.raises(ValueError, match="SIGMA2 = 9 is outside"):
        KernelParams(2.0, 9.0, 0.0).checked()
    with pytest.raises(ValueError, match="THETA = nan is not a finite number"):
        KernelParams(2.0, 2.0, float("nan")).checked()


def test_normalise_kernels_sums_each_kernel_to_one_and_keeps_zeros():
    raw = np.stack([np.full((21, 21), 2.0), np.zeros((21, 21))])
    out = normalise_kernels(raw)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=(-2, -1)), [1.0, 0.0], atol=1e-6)
    flat = normalise_kernels(raw.reshape(2, -1), axes=(-1,))
    np.testing.assert_array_equal(flat.reshape(2, 21, 21), out)


def test_theta_zero_is_horizontal():
    k = anisotropic_gaussian_kernels(8.0, 0.5, 0.0, 1)
    assert k[10, 14] > 10 * k[14, 10]  # spread along columns (x), narrow along rows
    k90 = anisotropic_gaussian_kernels(8.0, 0.5, np.pi / 2, 1)
    np.testing.assert_allclose(k90, k.T, atol=1e-6)


def test_isotropic_kernel():
    k = isotropic_gaussian_kernel(2.0)
    assert k.shape == (21, 21) and k.dtype == np.float32
    np.testing.assert_allclose(k.sum(), 1.0, atol=1e-6)
    assert np.unravel_index(np.argmax(k), k.shape) == (10, 10)
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)
    var1, var2, theta = fit_gaussian(k, 1)
    np.testing.assert_allclose([var1, var2], [4.0, 4.0], rtol=1e-3)
    assert isotropic_gaussian_kernels(np.array(GAUSSIAN8_SIGMAS)).shape == (8, 21, 21)
    with pytest.raises(ValueError):
        isotropic_gaussian_kernel(0.0)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sampling_ranges_and_reproducibility(scale):
    lo, hi = MANET_VARIANCE_RANGE[scale]
    v1, v2, th = sample_anisotropic_params(np.random.default_rng(5), scale, 20_000)
    assert v1.shape == v2.shape == th.shape == (20_000,)
    assert np.all((v1 >= lo) & (v1 <= hi))
    assert np.all((v2 >= lo) & (v2 <= v1))
    assert np.all((th >= 0) & (th <= np.pi))
    # the whole range is used
    assert v1.min() < lo + 0.01 * (hi - lo) and v1.max() > hi - 0.01 * (hi - lo)
    assert th.min() < 0.01 and th.max() > np.pi - 0.01
    again = sample_anisotropic_params(np.random.default_rng(5), scale, 20_000)
    for a, b in zip((v1, v2, th), again):
        np.testing.assert_array_equal(a, b)
    other = sample_anisotropic_params(np.random.default_rng(6), scale, 20_000)
    assert not np.array_equal(v1, other[0])

    slo, shi = IKC_SIGMA_RANGE[scale]
    s = sample_isotropic_sigma(np.random.default_rng(5), scale, (100, 3))
    assert s.shape == (100, 3) and np.all((s >= slo) & (s <= shi))
    np.testing.assert_array_equal(s, sample_isotropic_sigma(np.random.default_rng(5), scale, (100, 3)))
    one = sample_anisotropic_params(np.random.default_rng(0), scale)
    assert all(np.ndim(p) == 0 for p in one)


def test_bad_scale_rejected():
    with pytest.raises(ValueError):
        sample_anisotropic_params(np.random.default_rng(0), 5)
    with pytest.raises(ValueError):
        sample_isotropic_sigma(np.random.default_rng(0), 1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fit_recovers_params_of_untruncated_kernels(scale):
    rng = np.random.default_rng(11)
    n = 300
    # keep the kernels well inside the 21 x 21 support (std <= ~2.2 px) so truncation is negligible
    var1 = rng.uniform(0.8, 5.0, n)
    var2 = rng.uniform(0.5, var1)
    theta = rng.uniform(0, np.pi, n)
    ks = anisotropic_gaussian_kernels(var1, var2, theta, scale)
    f1, f2, ft = fit_gaussian(ks, scale)
    assert f1.shape == (n,)
    np.testing.assert_allclose(f1, var1, rtol=2e-3)
    np.testing.assert_allclose(f2, var2, rtol=2e-3)
    assert np.all((ft >= 0) & (ft < np.pi))
    # the angle is only defined for anisotropic kernels; compare modulo pi
    aniso = var1 > 1.2 * var2
    d = np.abs(np.angle(np.exp(2j * (ft - theta)))) / 2
    assert np.all(d[aniso] < 0.01)
    # centroid-based fit agrees for centred kernels
    c1, c2, _ = fit_gaussian(ks)
    np.testing.assert_allclose(c1, f1, rtol=1e-4)


def test_fit_vectorised_over_leading_dims_and_shifted_kernel():
    ks = anisotropic_gaussian_kernels(np.full((2, 3), 4.0), 1.0, 0.3, 4)
    v1, v2, th = fit_gaussian(ks, 4)
    assert v1.shape == v2.shape == th.shape == (2, 3)
    shifted = np.roll(ks[0, 0], 2, axis=1)  # centroid moves; the shape does not
    a1, a2, _ = fit_gaussian(shifted)
    np.testing.assert_allclose([a1, a2], [4.0, 1.0], rtol=5e-3)
    b1, _, _ = fit_gaussian(shifted, 4)  # about the nominal centre: the offset counts as spread
    assert b1 > a1 + 3.0
