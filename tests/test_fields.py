"""Kernel fields: MANet test modes, painted regions, the nine-kernel set."""

import numpy as np
import pytest

from engine.degradation.degrade import blur_subsample, blur_subsample_variant
from engine.degradation.fields import (
    block_size_lr,
    manet_mode_field,
    manet_mode_params,
    manet_nine_kernel_params,
    manet_nine_kernels,
    region_field,
)
from engine.degradation.kernels import (
    MANET_VARIANCE_RANGE,
    anisotropic_gaussian_kernels,
    fit_gaussian,
    kernel_center,
)


def _moments(kernels, scale):
    """Second moments (sxx, syy) about the nominal centre: x = column, y = row."""
    c = kernel_center(scale)
    ax = np.arange(21) - c
    sxx = (kernels.sum(axis=-2) * ax**2).sum(-1)
    syy = (kernels.sum(axis=-1) * ax**2).sum(-1)
    return sxx, syy


@pytest.mark.parametrize("scale, block", [(2, 20), (3, 13), (4, 10)])
def test_block_size(scale, block):
    assert block_size_lr(scale) == block


@pytest.mark.parametrize("mode", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_mode_fields_shape_and_normalisation(mode, scale):
    hw = (31, 27)
    f = manet_mode_field(mode, hw, scale, rng=np.random.default_rng(0))
    assert f.shape == hw + (21, 21) and f.dtype == np.float32
    assert np.all(f >= 0)
    np.testing.assert_allclose(f.sum(axis=(2, 3)), 1.0, atol=1e-5)
    b = block_size_lr(scale)
    # constant inside a block, and blocks tile from the top-left corner
    np.testing.assert_array_equal(f[0, 0], f[b - 1, b - 1])
    np.testing.assert_array_equal(f[b, b], f[min(2 * b, hw[0]) - 1, min(2 * b, hw[1]) - 1])
    lo, hi = MANET_VARIANCE_RANGE[scale]
    v1, v2, th, _ = manet_mode_params(mode, hw, scale, np.random.default_rng(0))
    assert np.all((v1 >= lo - 1e-9) & (v1 <= hi + 1e-9) & (v2 >= lo - 1e-9) & (v2 <= hi + 1e-9))
    assert np.all((th >= 0) & (th <= np.pi))


def test_mode1_var2_rises_down_the_image():
    scale = 4
    f = manet_mode_field(1, (60, 40), scale)
    v1, v2, th, b = manet_mode_params(1, (60, 40), scale)
    assert np.all(np.diff(v2[:, 0]) > 0) and np.all(v1 == v1[0, 0]) and np.all(th == th[0, 0])
    assert np.all(v2 == v2[:, :1])  # constant across a row
    _, syy = _moments(f[::b, 0], scale)  # theta = 0: var2 is the vertical spread
    assert np.all(np.diff(syy) > 0)
    sxx, _ = _moments(f[::b, 0], scale)
    np.testing.assert_allclose(sxx, sxx[0], rtol=1e-3)  # var1 fixed
    np.testing.assert_array_equal(f[:, 0], f[:, -1])


@pytest.mark.parametrize("mode", [2, 4])
def test_mode2_and_4_var1_across_var2_down(mode):
    scale = 3
    v1, v2, th, b = manet_mode_params(mode, (52, 52), scale)
    assert np.all(np.diff(v1, axis=1) > 0) and np.all(np.diff(v1, axis=0) == 0)
    assert np.all(np.diff(v2, axis=0) > 0) and np.all(np.diff(v2, axis=1) == 0)
    lo, hi = MANET_VARIANCE_RANGE[scale]
    assert v1[0, 0] == pytest.approx(lo) and v1[0, -1] == pytest.approx(hi)
    if mode == 2:
        f = manet_mode_field(2, (52, 52), scale)
        sxx, syy = _moments(f[0, ::b], scale)
        assert np.all(np.diff(sxx) > 0) and np.ptp(syy) < 1e-3
        sxx, syy = _moments(f[::b, 0], scale)
        assert np.all(np.diff(syy) > 0) and np.ptp(sxx) < 1e-3
    else:
        assert np.all(np.diff(th[:, 0]) > 0) and np.all(np.diff(th, axis=1) == 0)


def test_mode3_theta_rotates_down_the_image():
    scale = 2
    f = manet_mode_field(3, (100, 30), scale)
    b = block_size_lr(scale)
    fv1, fv2, ft = fit_gaussian(f[::b, 0], scale)
    np.testing.assert_allclose(fv1, fv1[0], rtol=1e-3)  # shape fixed
    np.testing.assert_allclose(fv2, fv2[0], rtol=1e-3)
    assert np.all(fv1 > 2 * fv2)
    assert np.all(np.diff(ft) > 0) and ft[0] == pytest.approx(0, abs=1e-4)
    np.testing.assert_allclose(np.diff(ft), np.pi / 5, atol=1e-3)  # 5 block rows over [0, pi)


def test_mode5_random_per_block_and_reproducible():
    a = manet_mode_field(5, (40, 40), 4, rng=np.random.default_rng(3))
    b = manet_mode_field(5, (40, 40), 4, rng=np.random.default_rng(3))
    c = manet_mode_field(5, (40, 40), 4, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    blocks = a[::10, ::10].reshape(16, -1)
    assert len(np.unique(blocks, axis=0)) == 16
    with pytest.raises(ValueError):
        manet_mode_field(5, (40, 40), 4)
    with pytest.raises(ValueError):
        manet_mode_field(6, (40, 40), 4)


def test_mode_field_drives_variant_blur():
    rng = np.random.default_rng(0)
    hr = rng.random((80, 80, 3), dtype=np.float32)
    f = manet_mode_field(1, (20, 20), 4)
    lr = blur_subsample_variant(hr, f, 4)
    # the top block row uses one kernel: equal to the invariant blur with that kernel there
    np.testing.assert_allclose(lr[:10], blur_subsample(hr, f[0, 0], 4)[:10], atol=1e-6)
    np.testing.assert_allclose(lr[10:], blur_subsample(hr, f[-1, 0], 4)[10:], atol=1e-6)


def test_region_field_labels():
    scale = 4
    k1 = anisotropic_gaussian_kernels(8.0, 1.0, 0.0, scale)
    k2 = anisotropic_gaussian_kernels(6.0, 6.0, 0.0, scale)
    default = anisotropic_gaussian_kernels(1.0, 1.0, 0.0, scale)
    labels = np.zeros((30, 40), np.int32)
    labels[:, :20] = 1
    labels[20:, 20:] = 2
    f = region_field(labels, [k1, k2], scale, softness_lr_px=2.0, default_kernel=default)
    assert f.shape == (30, 40, 21, 21) and f.dtype == np.float32
    np.testing.assert_allclose(f.sum(axis=(2, 3)), 1.0, atol=1e-5)
    np.testing.assert_allclose(f[15, 2], k1, atol=1e-6)  # deep inside region 1
    np.testing.assert_allclose(f[27, 37], k2, atol=1e-6)  # deep inside region 2
    np.testing.assert_allclose(f[3, 37], default, atol=1e-6)  # unpainted
    # soft boundary: at the edge between 1 and default, a mixture of the two
    edge = f[5, 20]
    w = np.linalg.lstsq(np.stack([k1.ravel(), default.ravel()], 1), edge.ravel(), rcond=None)[0]
    assert 0.2 < w[0] < 0.8 and w.sum() == pytest.approx(1.0, abs=1e-4)
    # hard edges with softness 0
    hard = region_field(labels, [k1, k2], scale, softness_lr_px=0.0, default_kernel=default)
    np.testing.assert_allclose(hard[5, 19], k1, atol=1e-6)
    np.testing.assert_allclose(hard[5, 20], default, atol=1e-6)


def test_region_field_masks_equal_labels_and_default_kernel():
    scale = 2
    k1 = anisotropic_gaussian_kernels(4.0, 0.5, 1.0, scale)
    labels = np.zeros((24, 24), np.int64)
    labels[10:18, 10:18] = 1  # (0, 0) lies beyond the 3-sigma support of the softening blur
    masks = (labels == 1)[None].astype(np.float32)
    a = region_field(labels, [k1], scale, softness_lr_px=1.5)
    b = region_field(masks, np.asarray([k1]), scale, softness_lr_px=1.5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    lo = MANET_VARIANCE_RANGE[scale][0]
    np.testing.assert_allclose(a[0, 0], anisotropic_gaussian_kernels(lo, lo, 0.0, scale), atol=1e-6)
    # half-strength mask mixes half-and-half with the default
    half = region_field(masks * 0.5, [k1], scale, softness_lr_px=0.0)
    np.testing.assert_allclose(half[14, 14], 0.5 * k1 + 0.5 * a[0, 0], atol=1e-6)
    with pytest.raises(ValueError):
        region_field(labels.astype(np.float32), [k1], scale)
    with pytest.raises(ValueError):
        region_field(np.zeros((2, 16, 16), np.float32), [k1], scale)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_nine_kernels(scale):
    params = manet_nine_kernel_params(scale)
    assert len(params) == 9
    lo, hi = MANET_VARIANCE_RANGE[scale]
    for v1, v2, th in params:
        assert lo <= v2 <= v1 <= hi and 0 <= th < np.pi
    ks = manet_nine_kernels(scale)
    assert ks.shape == (9, 21, 21) and ks.dtype == np.float32
    np.testing.assert_allclose(ks.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert len(np.unique(ks.reshape(9, -1), axis=0)) == 9
    fv1, fv2, ft = fit_gaussian(ks, scale)
    p = np.asarray(params)
    np.testing.assert_allclose(fv2, p[:, 1], rtol=0.02)
    aniso = p[:, 0] > 2 * p[:, 1]
    d = np.abs(np.angle(np.exp(2j * (ft - p[:, 2])))) / 2
    assert np.all(d[aniso] < 0.01)
