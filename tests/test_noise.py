"""engine.noise: the robust noise-level estimate (whole image and per block)."""

import numpy as np
import pytest

from engine.degradation.degrade import add_gaussian_noise, jpeg_compress, quantize_u8
from engine.noise import estimate_noise, highpass_response


def smooth_image(h=256, w=320):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.5 + 0.3 * np.sin(x / (23 + 5 * c)) * np.cos(y / (31 - 4 * c)) for c in range(3)],
                    axis=-1).astype(np.float32)


def test_highpass_ignores_planes_and_keeps_white_noise_std():
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    np.testing.assert_allclose(highpass_response(0.3 + 0.002 * x - 0.001 * y), 0.0, atol=1e-6)
    noise = np.random.default_rng(0).standard_normal((400, 400)).astype(np.float32)
    assert highpass_response(noise).std() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize("sigma_255", [5.0, 15.0])
@pytest.mark.parametrize("per_channel", [True, False])
def test_gaussian_noise_on_a_smooth_image_is_measured_within_20_percent(sigma_255, per_channel):
    rng = np.random.default_rng(1)
    noisy = quantize_u8(add_gaussian_noise(smooth_image(), sigma_255, rng, per_channel=per_channel))
    est = estimate_noise(noisy)
    assert est.sigma_255 == pytest.approx(sigma_255, rel=0.2)
    assert est.map_255.shape == (16, 20) and est.block_px == 16
    assert np.all(np.abs(est.map_255 - sigma_255) < 0.45 * sigma_255)  # every 16×16 block roughly right


def test_clean_image_reads_near_zero_and_jpeg_stays_finite_and_sensible():
    clean = quantize_u8(smooth_image())
    assert 0.0 <= estimate_noise(clean).sigma_255 < 1.0  # 8-bit rounding only (std 0.29)
    rng = np.random.default_rng(2)
    for sigma_255 in (0.0, 5.0, 15.0):
        noisy = quantize_u8(add_gaussian_noise(smooth_image(), sigma_255, rng)) if sigma_255 else clean
        for quality in (75, 95):
            est = estimate_noise(jpeg_compress(noisy, quality))
            assert np.isfinite(est.sigma_255) and np.all(np.isfinite(est.map_255))
            # JPEG removes part of the noise, never invents much
            assert 0.0 <= est.sigma_255 <= sigma_255 + 2.0


def test_block_map_localises_noise_and_grey_images_count_once():
    rng = np.random.default_rng(3)
    img = smooth_image(128, 128)
    img[:, :64] = add_gaussian_noise(img[:, :64], 10.0, rng)
    est = estimate_noise(quantize_u8(img))
    assert est.at(10, 60) == pytest.approx(10.0, rel=0.25) and est.at(120, 60) < 1.5
    assert est.at(-5, 10_000) == est.map_255[-1, 0]  # clamped to the image
    grey = quantize_u8(add_gaussian_noise(smooth_image()[:, :, :1], 8.0, rng))
    as_rgb = np.repeat(grey, 3, axis=2)
    assert estimate_noise(as_rgb).sigma_255 == pytest.approx(estimate_noise(grey[:, :, 0]).sigma_255)
    assert estimate_noise(as_rgb).sigma_255 == pytest.approx(8.0, rel=0.2)
    with pytest.raises(ValueError, match="at least 3×3"):
        estimate_noise(np.zeros((2, 8, 3), np.float32))


def test_noise_map_is_smooth_and_passes_through_the_block_estimates():
    """The per-pixel map RRDB-SFT reads: the block medians at the block centres, in between a bilinear
    blend (no step larger than the blocks' own difference), one value per pixel."""
    from engine.noise import noise_map_255

    rng = np.random.default_rng(4)
    img = smooth_image(64, 80)
    img[:, 40:] = add_gaussian_noise(img[:, 40:], 12.0, rng, per_channel=True)  # quiet left, noisy right
    est = estimate_noise(img)
    m = noise_map_255(img)
    assert m.shape == (64, 80) and m.dtype == np.float32
    # block (r, c) has its centre between pixels 16r + 7 and 16r + 8: the mean of the 2×2 pixels there
    centre = m[7:9, 7:9].mean(), m[23:25, 71:73].mean()
    assert centre[0] == pytest.approx(est.map_255[0, 0], abs=0.3)
    assert centre[1] == pytest.approx(est.map_255[1, 4], abs=0.3)
    assert m[:, :20].max() < 2.0 and m[:, 60:].min() > 8.0
    assert np.abs(np.diff(m, axis=1)).max() < (est.map_255.max() - est.map_255.min()) / 16 + 1e-3


def test_training_patch_estimate_equals_the_numpy_estimator():
    """engine.training.noise_level (torch, per training patch) gives estimate_noise's whole-image σ."""
    torch = pytest.importorskip("torch")
    from engine.training.noise_level import noise_condition, patch_sigma_255

    rng = np.random.default_rng(5)
    patches = [quantize_u8(add_gaussian_noise(smooth_image(20, 20), s, rng, per_channel=True)) for s in (0.0, 4.0, 14.0)]
    batch = torch.from_numpy(np.stack([p.transpose(2, 0, 1) for p in patches]))
    got = patch_sigma_255(batch).numpy()
    np.testing.assert_allclose(got, [estimate_noise(p).sigma_255 for p in patches], rtol=1e-4, atol=1e-4)
    assert got[0] < got[1] < got[2]
    cond = noise_condition(batch)
    assert cond.shape == (3, 1, 20, 20) and torch.equal(cond[:, 0, 5, 7], cond[:, 0, 0, 0])


def test_smooth_map_refuses_a_size_with_other_blocks():
    """The map is only defined for the image the blocks were measured on: another size is refused."""
    est = estimate_noise(smooth_image(64, 80))
    assert est.smooth_map_255(64, 80).shape == (64, 80)
    with pytest.raises(ValueError, match="blocks"):
        est.smooth_map_255(64, 96)


def test_a_manet_run_measures_the_noise_once_and_hands_it_to_the_display(manet_models, monkeypatch):
    """MANet's run estimates the input's noise once (it conditions RRDB-SFT) and returns it; the studio's
    display step reuses it instead of estimating again. Other methods leave it to the display step."""
    import app.jobs as jobs
    import engine.pipeline.blind as blind
    from engine.imageio import Image
    from engine.upscale import UpscaleOptions

    rng = np.random.default_rng(7)
    lr = quantize_u8(add_gaussian_noise(smooth_image(24, 32), 9.0, rng)).astype(np.float32)
    calls = []
    real = blind.estimate_noise
    monkeypatch.setattr(blind, "estimate_noise", lambda img: calls.append("pipeline") or real(img))
    monkeypatch.setattr(jobs, "estimate_noise", lambda img: calls.append("display") or real(img))
    out = jobs.run_for_display(lambda method, scale: manet_models, Image(lr),
                               UpscaleOptions(method="manet", scale=4))
    assert calls == ["pipeline"]
    assert out.noise.sigma_255 == pytest.approx(estimate_noise(lr).sigma_255)
    np.testing.assert_array_equal(out.noise.map_255, estimate_noise(lr).map_255)
    calls.clear()
    out = jobs.run_for_display(lambda method, scale: None, Image(lr),
                               UpscaleOptions(method="bicubic", scale=4))
    assert calls == ["display"] and out.noise.sigma_255 == pytest.approx(estimate_noise(lr).sigma_255)
