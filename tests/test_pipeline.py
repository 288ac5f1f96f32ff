"""Blind SR pipelines on tiny random-weight networks: shapes, tiling exactness, kernel lookup, IKC."""

import numpy as np
import pytest

from engine.degradation.kernels import KernelParams
from engine.pipeline.blind import estimate_kernel_map, run_bicubic, run_manet, run_nonblind, sr_from_codes
from engine.pipeline.ikc import run_ikc
from engine.progress import Cancelled, Progress


def lr_image(h=40, w=52, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((h // 4 + 1, w // 4 + 1, 3), dtype=np.float32)
    import cv2

    return np.clip(cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1).astype(np.float32)


def test_manet_pipeline_shapes_and_provider(manet_models):
    lr = lr_image()
    result = run_manet(lr, manet_models)
    assert result.sr_rgb_f32.shape == (160, 208, 3)
    assert result.sr_rgb_f32.min() >= 0 and result.sr_rgb_f32.max() <= 1
    assert result.kernel_map.lr_hw == (40, 52)
    assert result.provider == "CPUExecutionProvider"


def test_manet_tiling_is_exact(manet_models):
    lr = lr_image(45, 61, seed=1)
    whole = estimate_kernel_map(lr, manet_models, tile=512)
    tiled = estimate_kernel_map(lr, manet_models, tile=16)
    assert np.abs(whole.kernels_f16.astype(np.float32) - tiled.kernels_f16.astype(np.float32)).max() < 1e-3
    assert np.abs(whole.codes - tiled.codes).max() < 1e-3


def test_sr_tiling_within_one_grey_level(manet_models):
    lr = lr_image(48, 64, seed=2)
    codes = estimate_kernel_map(lr, manet_models).codes
    whole = sr_from_codes(lr, codes, manet_models, tile=512)
    tiled = sr_from_codes(lr, codes, manet_models, tile=16)
    assert np.abs(whole - tiled).max() < 1 / 255


def test_kernel_at_lr_and_sr_agree_and_recompute_is_exact(manet_models):
    lr = lr_image(40, 48, seed=3)
    stored = estimate_kernel_map(lr, manet_models)
    compact = estimate_kernel_map(lr, manet_models, keep_kernels_max_bytes=0)
    assert compact.kernels_f16 is None and compact.recompute is not None
    for (x, y) in [(0, 0), (47, 39), (20, 11), (5, 33)]:
        a = stored.kernel_at(x, y, space="lr")
        b = stored.kernel_at(4 * x + 3, 4 * y + 2, space="sr")
        c = compact.kernel_at(x + 0.5, y + 0.9, space="lr")
        assert a.lr_yx == b.lr_yx == c.lr_yx == (y, x)
        assert np.array_equal(a.kernel, b.kernel)
        assert np.abs(a.kernel - c.kernel).max() < 1e-3  # float16 storage vs exact recompute
        assert a.kernel.shape == (21, 21) and abs(a.kernel.sum() - 1) < 1e-3
        assert a.sigma1 >= a.sigma2 >= 0 and 0 <= a.theta < np.pi
    with pytest.raises(IndexError):
        stored.kernel_at(48, 0)


def test_nonblind_and_bicubic(manet_models):
    lr = lr_image(24, 32)
    sr = run_nonblind(lr, manet_models, KernelParams(sigma1_hr_px=2.0, sigma2_hr_px=1.0, theta_rad=0.3))
    assert sr.shape == (96, 128, 3)
    up = run_bicubic(lr, 4)
    assert up.shape == (96, 128, 3)
    assert abs(float(up.mean()) - float(lr.mean())) < 0.02


def test_ikc_keeps_every_iteration(ikc_models):
    lr = lr_image(32, 40)
    result = run_ikc(lr, ikc_models, steps=3)
    assert [it.index for it in result.iterations] == [0, 1, 2, 3]
    for it in result.iterations:
        assert it.sr_rgb_f32.shape == (128, 160, 3)
        assert it.code.shape == (10,)
        assert it.kernel.shape == (21, 21) and abs(it.kernel.sum() - 1) < 1e-4
    codes = np.stack([it.code for it in result.iterations])
    assert np.abs(np.diff(codes, axis=0)).max() > 0  # the corrector changed the code


def test_pipeline_cancel_raises(manet_models):
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        run_manet(lr_image(), manet_models, progress=progress)


def test_region_preview_matches_full_run(manet_models):
    from engine.pipeline.region import Box, run_on_region

    lr = lr_image(64, 72, seed=5)
    full = run_manet(lr, manet_models).sr_rgb_f32

    def sr_fn(crop):
        return run_manet(crop, manet_models).sr_rgb_f32

    box = Box(20, 37, 30, 51)
    res = run_on_region(sr_fn, lr, 4, box=box, context=32)
    assert res.sr_rgb_f32.shape == (17 * 4, 21 * 4, 3)
    assert np.abs(res.sr_rgb_f32 - full[80:148, 120:204]).max() < 1 / 255

    mask = np.zeros((64, 72), bool)
    mask[10:14, 5:9] = True
    masked = run_on_region(sr_fn, lr, 4, mask=mask)
    assert masked.box == Box(10, 14, 5, 9)
    assert np.abs(masked.sr_rgb_f32 - full[40:56, 20:36]).max() < 1 / 255
    with pytest.raises(ValueError, match="empty"):
        run_on_region(sr_fn, lr, 4, mask=np.zeros((64, 72), bool))


def test_ikc_large_results_keep_codes_and_render_on_demand(ikc_models):
    lr = lr_image(24, 32, seed=6)
    kept = run_ikc(lr, ikc_models, steps=2)
    lean = run_ikc(lr, ikc_models, steps=2, keep_images_max_bytes=0)
    assert [it.stored for it in lean.iterations] == [False, False, True]
    assert [it.stored for it in kept.iterations] == [True, True, True]
    assert kept.iterations[0].sr_rgb_f32.dtype == np.float32
    for a, b in zip(kept.iterations, lean.iterations):
        assert np.array_equal(a.code, b.code)
        assert np.abs(a.sr_rgb_f32 - b.sr_rgb_f32).max() < 1e-3  # float16 storage vs re-rendered


def test_isotropic_code_curve_finds_the_sigma_of_a_perturbed_code(ikc_models):
    from engine.degradation.kernels import isotropic_gaussian_kernels
    from engine.pipeline.ikc import IsotropicCodeCurve

    pca = ikc_models.pca("sftmd")
    curve = IsotropicCodeCurve.for_basis(pca, 4)
    assert curve.sigmas[0] == 0.2 and curve.sigmas[-1] == 4.0 and np.all(np.diff(curve.sigmas) > 0)
    rng = np.random.default_rng(3)
    for sigma in (0.6, 1.7, 2.5, 3.3):
        true = pca.project(isotropic_gaussian_kernels(np.array([sigma])))[0]
        noisy = true + rng.normal(0.0, 1e-3, true.shape)
        code, found = curve.nearest(noisy)
        assert abs(found - sigma) < 0.05
        assert np.abs(code - true).max() < np.abs(noisy - true).max()  # the off-curve part is gone
    assert curve.nearest(np.full(10, 50.0, np.float32))[1] in (0.2, 4.0)  # far away: an end of the range


def test_ikc_codes_are_codes_of_isotropic_gaussians(ikc_models):
    from dataclasses import replace

    from engine.pipeline.ikc import IsotropicCodeCurve

    curve = IsotropicCodeCurve.for_basis(ikc_models.pca("sftmd"), 4)

    class Pushy:  # a corrector that pushes every component far up
        provider = "test"

        def run(self, feeds):
            return {"code_delta": np.full((1, 10), 5.0, np.float32)}

    models = replace(ikc_models, runners={**ikc_models.runners, "ikc_corrector": Pushy()})
    result = run_ikc(lr_image(32, 40), models, steps=2)
    for it in result.iterations:
        d2 = np.square(curve.codes - it.code).sum(axis=1)
        assert d2.min() == 0.0  # exactly a point of the curve
    ends = {curve.sigmas[0], curve.sigmas[-1]}
    assert curve.nearest(result.iterations[-1].code)[1] in ends  # pushed to an end of the σ range


def test_ikc_default_steps_come_from_the_corrector_card(ikc_models, tiny_models_dir, tmp_path):
    """No step count given: IKC runs the step the evaluation recorded in the corrector's card (issue 15),
    the same number the CLI, the studio and default_ikc_steps() use."""
    import json
    import shutil
    from dataclasses import replace

    from engine.evaluation import card_metrics
    from engine.modelcards import IKC_STEPS_FALLBACK, default_ikc_steps, ikc_steps_from_card, load_card
    from engine.upscale import UpscaleOptions

    assert default_ikc_steps(models_dir=tiny_models_dir) == IKC_STEPS_FALLBACK  # no evaluation recorded
    assert UpscaleOptions(method="ikc").ikc_steps is None  # resolved by run_ikc from the loaded card
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    card_path = folder / "ikc_corrector_tiny_x4.json"
    card = json.loads(card_path.read_text())
    results = {"ikc_fixed_step": {"step": 2, "rule": "auto"}, "methods": ["ikc"], "cells": {}, "images": {},
               "kernel_estimation": {}}
    card["metrics"] = card_metrics(results, "ikc_corrector")
    card_path.write_text(json.dumps(card))
    assert default_ikc_steps(models_dir=folder) == 2
    corrector = load_card(card_path)
    assert ikc_steps_from_card(corrector) == 2
    # cards written before the step had its own entry: the Set5 Gaussian8 cell's fixed step
    corrector.metrics = {"ikc": {"gaussian8": {"Set5": {"psnr_y": 30.1, "fixed_step": 3}}}}
    assert ikc_steps_from_card(corrector) == 3
    models = replace(ikc_models, cards={**ikc_models.cards, "ikc_corrector": corrector})
    assert len(run_ikc(lr_image(32, 40), models).iterations) == 4  # t = 0 … 3


def test_large_image_corrections_are_pooled_by_the_pieces_detail():
    """IKC's corrector runs on pieces of a large SR image; their corrections are averaged with the
    pieces' detail as weights (engine.detail), so a flat piece barely moves the code."""
    from engine.detail import detail_weight_sum
    from engine.pipeline.ikc import _pooled

    rng = np.random.default_rng(3)
    sr = np.full((3, 16, 32), 0.5, np.float32)
    sr[:, :, 16:] = rng.random((3, 16, 16), dtype=np.float32)  # flat left piece, textured right piece

    def correction(crops):  # +1 from a flat piece, -1 from a textured one
        return np.array([1.0 if crops[0].std() < 1e-6 else -1.0])

    assert _pooled(correction, [sr], 16 * 16)[0] == pytest.approx(0.0)  # by area
    by_detail = _pooled(correction, [sr], 16 * 16, weight=detail_weight_sum)[0]
    w_flat, w_textured = detail_weight_sum(sr[:, :, :16]), detail_weight_sum(sr[:, :, 16:])
    assert by_detail == pytest.approx((w_flat - w_textured) / (w_flat + w_textured)) and by_detail < -0.8


def test_ikc_harmonic_step_applies_one_t_th_of_each_correction(ikc_models):
    from engine.pipeline.ikc import _code_curve

    lr = lr_image(32, 40, seed=7)
    full = run_ikc(lr, ikc_models, steps=3, correction_step="full")
    harm = run_ikc(lr, ikc_models, steps=3, correction_step="harmonic")
    for t in (0, 1):  # the prediction and the first correction are the same under both schedules
        assert np.array_equal(full.iterations[t].code, harm.iterations[t].code)
        assert np.array_equal(full.iterations[t].sr_rgb_f32, harm.iterations[t].sr_rgb_f32)
    curve = _code_curve(ikc_models.pca("sftmd"), ikc_models.scale)
    corrector = ikc_models.runner("ikc_corrector")
    for t in (2, 3):
        prev = harm.iterations[t - 1]
        delta = corrector.run({"sr_rgb": prev.sr_rgb_f32.transpose(2, 0, 1)[None],
                               "kernel_code": prev.code[None]})["code_delta"][0]
        expected = curve.nearest(prev.code + delta / t)[0]
        assert np.allclose(harm.iterations[t].code, expected, atol=1e-6)
        assert not np.allclose(curve.nearest(prev.code + delta)[0], expected, atol=1e-6)  # a full step lands elsewhere
    with pytest.raises(ValueError):
        run_ikc(lr, ikc_models, steps=1, correction_step="half")


def test_ikc_correction_step_defaults_to_the_corrector_card(ikc_models):
    from dataclasses import replace

    from engine.modelcards import ModelError, ikc_correction_step_from_card

    card = ikc_models.cards["ikc_corrector"]
    assert ikc_correction_step_from_card(card) == "full" and ikc_correction_step_from_card(None) == "full"
    harmonic_card = replace(card, extra={**card.extra, "ikc_loop": {"correction_step": "harmonic"}})
    assert ikc_correction_step_from_card(harmonic_card) == "harmonic"
    with pytest.raises(ModelError, match="correction_step"):
        ikc_correction_step_from_card(replace(card, extra={"ikc_loop": {"correction_step": "half"}}))
    models = replace(ikc_models, cards={**ikc_models.cards, "ikc_corrector": harmonic_card})
    lr = lr_image(32, 40, seed=8)
    by_card = run_ikc(lr, models, steps=2)
    explicit = run_ikc(lr, ikc_models, steps=2, correction_step="harmonic")
    assert np.array_equal(by_card.final.code, explicit.final.code)


def test_shipped_x4_corrector_card_names_its_correction_step():
    from engine.modelcards import find_card, ikc_correction_step_from_card

    assert ikc_correction_step_from_card(find_card("ikc_corrector", 4)) == "harmonic"


def test_ikc_conditions_sftmd_on_the_images_noise_map(ikc_models):
    from engine.noise import noise_map_255
    from engine.pipeline.ikc import sftmd_sr

    rng = np.random.default_rng(9)
    lr = np.clip(lr_image(32, 40, seed=9) + rng.normal(0, 12 / 255, (32, 40, 3)), 0, 1).astype(np.float32)
    final = run_ikc(lr, ikc_models, steps=1).final
    by_estimate = sftmd_sr(lr, final.code, ikc_models)
    assert np.array_equal(final.sr_rgb_f32, by_estimate)
    assert np.array_equal(by_estimate, sftmd_sr(lr, final.code, ikc_models, noise_map_255=noise_map_255(lr)))
    quiet = sftmd_sr(lr, final.code, ikc_models, noise_map_255=np.zeros((32, 40), np.float32))
    assert np.abs(quiet - by_estimate).max() > 1e-4  # the tiny network's noise weights are not zero
