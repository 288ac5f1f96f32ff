"""Degradations: the fast blur against slow references, alignment, bicubic imresize, noise, JPEG."""

import cv2
import numpy as np
import pytest
from scipy import ndimage

from engine import degradation as deg


def _random_field(rng, h, w):
    """Arbitrary non-negative kernels summing to 1 (not Gaussians: exercises every tap)."""
    f = rng.random((h, w, 21, 21), dtype=np.float32) ** 4
    return f / f.sum(axis=(2, 3), keepdims=True)


def _slow_variant(hr, field, s):
    """Per-LR-pixel reference: reflect-pad by 10, slice the 21 x 21 HR patch, multiply-sum (float64)."""
    pad = np.pad(hr.astype(np.float64), ((10, 10), (10, 10), (0, 0)), mode="reflect")
    h, w = hr.shape[0] // s, hr.shape[1] // s
    out = np.zeros((h, w, hr.shape[2]))
    for i in range(h):
        for j in range(w):
            patch = pad[s * i : s * i + 21, s * j : s * j + 21]
            out[i, j] = np.tensordot(field[i, j].astype(np.float64), patch, axes=([0, 1], [0, 1]))
    return out


@pytest.mark.parametrize("scale, hw", [(2, (23, 17)), (3, (25, 31)), (4, (27, 22)), (4, (13, 9))])
def test_variant_blur_equals_slow_reference(scale, hw):
    rng = np.random.default_rng(scale * 100 + hw[0])
    hr = rng.random(hw + (3,), dtype=np.float32)
    h, w = hw[0] // scale, hw[1] // scale
    field = _random_field(rng, h, w)
    fast = deg.blur_subsample_variant(hr, field, scale)
    assert fast.shape == (h, w, 3) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, _slow_variant(hr, field, scale), atol=1e-5)


def test_variant_blur_wide_image_uses_several_row_bands():
    # w = 300 LR px: the fast path works in bands of 2048 // 300 = 6 rows (6 + 6 + 1 here)
    rng = np.random.default_rng(8)
    hr = rng.random((55, 1203, 3), dtype=np.float32)
    field = _random_field(rng, 13, 300)
    np.testing.assert_allclose(deg.blur_subsample_variant(hr, field, 4), _slow_variant(hr, field, 4), atol=1e-5)


def test_variant_blur_grey():
    rng = np.random.default_rng(3)
    hr = rng.random((19, 21), dtype=np.float32)
    field = _random_field(rng, 6, 7)
    grey = deg.blur_subsample_variant(hr, field, 3)
    assert grey.shape == (6, 7)
    np.testing.assert_allclose(grey, _slow_variant(hr[..., None], field, 3)[..., 0], atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_invariant_blur_matches_scipy_and_constant_field(scale):
    rng = np.random.default_rng(scale)
    hr = rng.random((37, 29, 3), dtype=np.float32)
    k = deg.anisotropic_gaussian_kernels(*[float(v) for v in (4.0, 1.5, 0.6)], scale)
    lr = deg.blur_subsample(hr, k, scale)
    h, w = 37 // scale, 29 // scale
    assert lr.shape == (h, w, 3)
    # scipy: correlate centred at tap (10, 10) with reflect-101 ('mirror'), then LR = full[s*i]
    full = np.stack([ndimage.correlate(hr[..., c].astype(np.float64), k.astype(np.float64), mode="mirror")
                     for c in range(3)], axis=-1)
    np.testing.assert_allclose(lr, full[::scale, ::scale][:h, :w], atol=1e-5)
    const = deg.blur_subsample_variant(hr, np.broadcast_to(k, (h, w, 21, 21)), scale)
    np.testing.assert_allclose(lr, const, atol=1e-6)
    # cv2.filter2D is a third, independent correlation
    cv = cv2.filter2D(hr, -1, k, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(lr, cv[::scale, ::scale][:h, :w], atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shift_by_scale_shifts_lr_by_one_pixel(scale):
    rng = np.random.default_rng(7)
    big = rng.random((80, 80, 3), dtype=np.float32)
    k = deg.anisotropic_gaussian_kernels(5.0, 1.0, 1.0, scale)
    a = deg.blur_subsample(big[: 60], k, scale)
    b = deg.blur_subsample(big[scale : 60 + scale], k, scale)  # HR shifted up by s rows
    # away from the padded borders, LR row i of b is LR row i + 1 of a
    m = 12 // scale + 1
    np.testing.assert_allclose(b[m:-m - 1, m:-m], a[m + 1:-m, m:-m], atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_symmetric_kernel_on_ramp_samples_documented_centre(scale):
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    ramp = (0.004 * yy + 0.007 * xx + 0.05).astype(np.float32)
    k = deg.anisotropic_gaussian_kernels(2.0, 2.0, 0.0, scale)  # isotropic, MANet centre
    lr = deg.blur_subsample(np.repeat(ramp[..., None], 3, axis=2), k, scale)[..., 0]
    h = 64 // scale
    i = np.arange(h, dtype=np.float64)
    pos = scale * i + (scale - 1) / 2.0
    expected = 0.004 * pos[:, None] + 0.007 * pos[None, :] + 0.05
    m = 12 // scale + 1  # reflect padding breaks the ramp near the borders
    np.testing.assert_allclose(lr[m:-m, m:-m], expected[m:-m, m:-m], atol=2e-5)
    # the old MANet centre (s*i - (s-1)/2) would be off by (s-1) HR pixels
    if scale > 1:
        wrong = 0.004 * (pos - (scale - 1))[:, None] + 0.007 * pos[None, :] + 0.05
        assert np.abs(lr[m:-m, m:-m] - wrong[m:-m, m:-m]).min() > 0.003


def test_delta_kernel_samples_hr_at_centre_for_odd_scale():
    rng = np.random.default_rng(0)
    hr = rng.random((30, 33, 3), dtype=np.float32)
    c = int(deg.kernel_center(3))
    k = np.zeros((21, 21), np.float32)
    k[c, c] = 1.0
    np.testing.assert_array_equal(deg.blur_subsample(hr, k, 3), hr[1::3, 1::3])


def test_alignment_with_bicubic_downsampling_on_real_image(shared_data):
    """With the documented centre, MANet-convention LR lines up with MATLAB bicubic 1/s resizing."""
    bgr = cv2.imread(str(shared_data / "benchmarks" / "Set5" / "baby.png"), cv2.IMREAD_COLOR)
    hr = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[100:292, 100:292].astype(np.float32) / 255.0
    scale = 4
    ref = deg.imresize(hr, 1 / scale)
    k = deg.anisotropic_gaussian_kernels(3.0, 3.0, 0.0, scale)
    errs = {}
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            shifted = np.roll(k, (dy, dx), axis=(0, 1))
            lr = deg.blur_subsample(hr, shifted, scale)
            errs[(dy, dx)] = float(np.mean((lr[4:-4, 4:-4] - ref[4:-4, 4:-4]) ** 2))
    assert min(errs, key=errs.get) == (0, 0), errs


def test_bad_field_shape_rejected():
    with pytest.raises(ValueError):
        deg.blur_subsample_variant(np.zeros((16, 16, 3), np.float32), np.zeros((3, 4, 21, 21), np.float32), 4)
    with pytest.raises(ValueError):
        deg.blur_subsample(np.zeros((16, 16, 3), np.float32), np.zeros((5, 5), np.float32), 4)


# --- MATLAB bicubic imresize ---------------------------------------------------------------------

def _cubic_ref(x):
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def _axis_weights_ref(n_in, n_out, f):
    """Dense (n_out, n_in) weights by direct per-pixel evaluation of the MATLAB formula."""
    width = 4.0 / f if f < 1 else 4.0
    k_scale = f if f < 1 else 1.0
    W = np.zeros((n_out, n_in))
    for x in range(1, n_out + 1):
        u = x / f + 0.5 * (1 - 1 / f)
        left = int(np.floor(u - width / 2))
        row = {}
        for j in range(left, left + int(np.ceil(width)) + 2):
            wgt = k_scale * _cubic_ref(k_scale * (u - j))
            jj = j
            while jj < 1 or jj > n_in:  # symmetric mirroring, edge repeated
                jj = 1 - jj if jj < 1 else 2 * n_in + 1 - jj
            row[jj - 1] = row.get(jj - 1, 0.0) + wgt
        total = sum(row.values())
        for jj, wgt in row.items():
            W[x - 1, jj] += wgt / total
    return W


def _slow_imresize(img, f, out_hw):
    wr = _axis_weights_ref(img.shape[0], out_hw[0], f)
    wc = _axis_weights_ref(img.shape[1], out_hw[1], f)
    out = np.zeros(out_hw + img.shape[2:])
    for y in range(out_hw[0]):
        for x in range(out_hw[1]):
            out[y, x] = np.tensordot(np.outer(wr[y], wc[x]), img.astype(np.float64), axes=([0, 1], [0, 1]))
    return out


@pytest.mark.parametrize("hw, f, out_hw", [((13, 11), 1 / 3, (5, 4)), ((7, 5), 4.0, (28, 20)),
                                           ((16, 12), 0.5, (8, 6)), ((9, 10), 1 / 4, (3, 3)),
                                           ((6, 8), 2.0, (12, 16))])
def test_imresize_matches_direct_formula(hw, f, out_hw):
    rng = np.random.default_rng(sum(hw))
    img = rng.random(hw + (3,), dtype=np.float32)
    fast = deg.imresize(img, f)
    assert fast.shape == out_hw + (3,) and fast.dtype == np.float32
    np.testing.assert_allclose(fast, _slow_imresize(img, f, out_hw), atol=1e-5)
    grey = deg.imresize(img[..., 1], f)
    np.testing.assert_allclose(grey, fast[..., 1], atol=1e-6)


@pytest.mark.parametrize("f", [0.25, 1 / 3, 0.5, 2.0, 3.0, 4.0])
def test_imresize_keeps_constant_image(f):
    img = np.full((24, 18, 3), 0.37, np.float32)
    np.testing.assert_allclose(deg.imresize(img, f), 0.37, atol=1e-6)


def test_imresize_output_size_tolerates_round_off():
    assert deg.imresize(np.zeros((99, 30), np.float32), 1 / 3).shape == (33, 10)
    assert deg.imresize(np.zeros((10, 7), np.float32), 0.5).shape == (5, 4)  # ceil like MATLAB


def test_upsample_then_downsample_is_near_identity_on_smooth_image():
    yy, xx = np.mgrid[0:32, 0:40].astype(np.float32)
    img = 0.5 + 0.3 * np.sin(xx / 6.0) * np.cos(yy / 5.0)
    back = deg.imresize(deg.imresize(img, 4.0), 0.25)
    assert back.shape == img.shape
    assert np.abs(back - img)[3:-3, 3:-3].max() < 5e-3


def test_upsampling_roughly_agrees_with_cv2_cubic():
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.random((30, 30, 3), dtype=np.float32), (0, 0), 1.5)
    ours = deg.imresize(img, 4.0)
    theirs = cv2.resize(img, (120, 120), interpolation=cv2.INTER_CUBIC)  # a = -0.75: only loosely equal
    diff = np.abs(ours - theirs)[8:-8, 8:-8]
    assert diff.mean() < 2e-3 and diff.max() < 2e-2
    assert not np.allclose(ours, theirs, atol=1e-6)


def test_bicubic_upsample_clips():
    img = np.zeros((8, 8, 3), np.float32)
    img[::2] = 1.0  # hard stripes overshoot
    up = deg.bicubic_upsample(img, 2)
    assert up.shape == (16, 16, 3) and up.min() >= 0.0 and up.max() <= 1.0
    assert deg.imresize(img, 2.0).max() > 1.0


# --- IKC convention -----------------------------------------------------------------------------

def test_blur_bicubic_equals_reference_pipeline():
    rng = np.random.default_rng(4)
    hr = rng.random((42, 37, 3), dtype=np.float32)
    k = deg.isotropic_gaussian_kernel(2.2)
    lr = deg.blur_bicubic(hr, 2.2, 4)
    assert lr.shape == (10, 9, 3)
    full = np.stack([ndimage.correlate(hr[..., c].astype(np.float64), k.astype(np.float64), mode="mirror")
                     for c in range(3)], axis=-1)
    ref = _slow_imresize(full[:40, :36], 0.25, (10, 9))
    np.testing.assert_allclose(lr, ref, atol=1e-5)
    np.testing.assert_array_equal(deg.blur_bicubic(hr, k, 4), lr)  # kernel == sigma
    assert deg.blur_bicubic(hr[..., 0], 2.2, 4).shape == (10, 9)


def test_blur_bicubic_small_image_and_constant():
    img = np.full((8, 9, 3), 0.6, np.float32)  # smaller than the kernel
    np.testing.assert_allclose(deg.blur_bicubic(img, 3.0, 2), 0.6, atol=1e-6)


# --- noise, JPEG, rounding, pipelines --------------------------------------------------------------

def test_noise_statistics_and_reproducibility():
    img = np.full((200, 200, 3), 0.5, np.float32)
    a = deg.add_gaussian_noise(img, 10.0, np.random.default_rng(1))
    b = deg.add_gaussian_noise(img, 10.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert abs(float((a - 0.5).std()) - 10 / 255) < 1e-3
    assert abs(float((a - 0.5).mean())) < 1e-3
    clipped = deg.add_gaussian_noise(np.ones((50, 50), np.float32), 15.0, np.random.default_rng(0))
    assert clipped.max() <= 1.0 and clipped.min() < 1.0
    np.testing.assert_array_equal(deg.add_gaussian_noise(img, 0, np.random.default_rng(0)), img)


def test_quantize_u8():
    x = np.array([-0.1, 0.0, 0.5, 0.2 / 255, 0.7 / 255, 1.2], np.float32)
    q = deg.quantize_u8(x)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q * 255, [0, 0, 128, 0, 1, 255], atol=1e-4)
    rng = np.random.default_rng(0)
    y = deg.quantize_u8(rng.random((10, 10, 3), dtype=np.float32))
    np.testing.assert_array_equal(deg.quantize_u8(y), y)
    np.testing.assert_allclose(y * 255, np.rint(y * 255), atol=1e-4)


def test_jpeg_quality_orders_error():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((64, 64, 3), dtype=np.float32), (0, 0), 5.0)
    img = np.clip((img - img.min()) / (img.max() - img.min()), 0, 1)
    hi = deg.jpeg_compress(img, 95)
    lo = deg.jpeg_compress(img, 20)
    assert hi.shape == img.shape and hi.dtype == np.float32
    e_hi, e_lo = np.abs(hi - img).mean(), np.abs(lo - img).mean()
    assert e_hi < e_lo and e_hi < 0.01
    # channel order survives (a red image stays red)
    red = np.zeros((16, 16, 3), np.float32)
    red[..., 0] = 1.0
    out = deg.jpeg_compress(red, 90)
    assert out[..., 0].mean() > 0.9 and out[..., 2].mean() < 0.1
    assert deg.jpeg_compress(img[..., 0], 80).shape == (64, 64)


def test_degrade_manet_pipeline():
    rng = np.random.default_rng(0)
    hr = rng.random((50, 46, 3), dtype=np.float32)
    k = deg.anisotropic_gaussian_kernels(3.0, 1.0, 0.4, 4)
    lr = deg.degrade_manet(hr, k, 4, None)
    assert lr.shape == (12, 11, 3) and lr.dtype == np.float32
    np.testing.assert_allclose(lr * 255, np.rint(lr * 255), atol=1e-4)
    np.testing.assert_allclose(lr, deg.blur_subsample(hr, k, 4), atol=0.5 / 255 + 1e-6)
    field = np.broadcast_to(k, (12, 11, 21, 21))
    np.testing.assert_array_equal(deg.degrade_manet(hr, field, 4, None), lr)
    photo = deg.PhotoCorruption(noise_sigma_255=10, jpeg_quality=80)
    n1 = deg.degrade_manet(hr, k, 4, np.random.default_rng(5), photo)
    n2 = deg.degrade_manet(hr, k, 4, np.random.default_rng(5), photo)
    np.testing.assert_array_equal(n1, n2)
    assert np.abs(n1 - lr).mean() > 5 / 255
    with pytest.raises(ValueError):
        deg.degrade_manet(hr, k, 4, None, deg.PhotoCorruption(noise_sigma_255=5))


def test_degrade_ikc_pipeline():
    rng = np.random.default_rng(0)
    hr = rng.random((48, 44, 3), dtype=np.float32)
    lr = deg.degrade_ikc(hr, 2.0, 4, None)
    assert lr.shape == (12, 11, 3)
    np.testing.assert_allclose(lr, np.clip(deg.blur_bicubic(hr, 2.0, 4), 0, 1), atol=0.5 / 255 + 1e-6)
    noisy = deg.degrade_ikc(hr, 2.0, 4, np.random.default_rng(1), deg.PhotoCorruption(noise_sigma_255=5))
    assert not np.array_equal(noisy, lr)


def test_noise_per_channel_or_shared_has_the_asked_sigma():
    img = np.full((200, 200, 3), 0.5, np.float32)
    for per_channel in (True, False):
        noisy = deg.add_gaussian_noise(img, 12.0, np.random.default_rng(3), per_channel=per_channel)
        residual = (noisy - img) * 255.0
        assert abs(residual.std() - 12.0) < 0.3
        shared = np.allclose(residual[..., 0], residual[..., 1]) and np.allclose(residual[..., 0], residual[..., 2])
        assert shared is (not per_channel)
        if per_channel:
            assert abs(np.corrcoef(residual[..., 0].ravel(), residual[..., 1].ravel())[0, 1]) < 0.05


def test_jpeg_equals_pillow_420_round_trip():
    import io

    from PIL import Image as PILImage

    rng = np.random.default_rng(4)
    img = np.clip(rng.random((48, 64, 3)).astype(np.float32), 0, 1)
    u8 = np.rint(img * 255).astype(np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(u8).save(buf, "JPEG", quality=83, subsampling="4:2:0")
    expected = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float32) / 255
    np.testing.assert_array_equal(deg.jpeg_compress(img, 83), expected)


def test_degradations_without_noise_and_jpeg_are_bit_identical_to_blur_and_rounding():
    rng = np.random.default_rng(6)
    hr = rng.random((64, 64, 3)).astype(np.float32)
    k = deg.isotropic_gaussian_kernel(1.7)
    # noise off: the rng is not touched and the output is the plain blur rounded to 8 bits
    gen = np.random.default_rng(9)
    state = gen.bit_generator.state
    out = deg.degrade_manet(hr, k, 4, gen, deg.PhotoCorruption(noise_sigma_255=0.0, jpeg_quality=None, noise_per_channel=False))
    assert gen.bit_generator.state == state
    np.testing.assert_array_equal(out, deg.quantize_u8(deg.blur_subsample(hr, k, 4)))
    np.testing.assert_array_equal(deg.degrade_ikc(hr, 1.7, 4, None), deg.quantize_u8(deg.blur_bicubic(hr, 1.7, 4)))


def test_training_stream_without_corruptions_is_unchanged_by_the_channel_option():
    from engine.training.batches import Augment

    draws = []
    for per_channel_prob in (0.0, 0.5, 1.0):
        rng = np.random.default_rng(2)
        draws.append(([Augment(noise_per_channel_prob=per_channel_prob).draw(rng) for _ in range(20)],
                      rng.bit_generator.state))
    assert draws[0] == draws[1] == draws[2]
