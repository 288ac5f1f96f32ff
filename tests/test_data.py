"""Tests for engine.data: shared-data paths, HR loading, the training pool and test-set builders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine import data
from engine.data import (
    BENCHMARKS,
    TRAIN_SETS,
    TestCase,
    TrainPool,
    benchmark_paths,
    build_test_set,
    crop_to_multiple,
    iter_test_set,
    load_hr,
    train_paths,
)
from engine.degradation import degrade_ikc, degrade_manet, manet_nine_kernels


# --- paths --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "count"), [("Set5", 5), ("Set14", 14), ("BSD100", 100)])
def test_benchmark_paths(shared_data, name: str, count: int) -> None:
    paths = benchmark_paths(name)
    assert len(paths) == count
    assert paths == sorted(paths)
    assert all(p.is_file() and p.parent == shared_data / "benchmarks" / name for p in paths)


@pytest.mark.parametrize(("name", "count"), [("bsds400", 400), ("t91", 91), ("sunhays80", 80)])
def test_train_paths_per_set(shared_data, name: str, count: int) -> None:
    paths = train_paths((name,))
    assert len(paths) == count
    assert paths == sorted(paths)


def test_train_paths_all_sets(shared_data) -> None:
    assert BENCHMARKS == ("Set5", "Set14", "BSD100")
    assert TRAIN_SETS == ("bsds400", "t91", "sunhays80")
    assert len(train_paths()) == 571
    assert train_paths("t91") == train_paths(("t91",))


def test_unknown_names_and_missing_folder(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark_paths("Urban100")
    with pytest.raises(ValueError, match="unknown training set"):
        train_paths(("div2k",))
    monkeypatch.setenv("KERNELSCOPE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        benchmark_paths("Set5")
    with pytest.raises(FileNotFoundError, match="KERNELSCOPE_DATA"):
        train_paths()


# --- HR loading ---------------------------------------------------------------------------------
def test_crop_to_multiple_is_top_left_anchored() -> None:
    img = np.arange(7 * 10 * 3, dtype=np.float32).reshape(7, 10, 3)
    for s in (2, 3, 4):
        out = crop_to_multiple(img, s)
        assert out.shape == (7 - 7 % s, 10 - 10 % s, 3)
        np.testing.assert_array_equal(out, img[: out.shape[0], : out.shape[1]])
    with pytest.raises(ValueError):
        crop_to_multiple(np.zeros((3, 3, 3)), 4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_load_hr_crops_to_multiple_of_scale(shared_data, scale: int) -> None:
    from engine.imageio import read_image

    path = benchmark_paths("Set14")[0]
    full = read_image(path).rgb_f32
    hr = load_hr(path, scale)
    assert hr.dtype == np.float32 and hr.ndim == 3 and hr.shape[2] == 3
    assert hr.shape[0] % scale == 0 and hr.shape[1] % scale == 0
    assert full.shape[0] - hr.shape[0] < scale and full.shape[1] - hr.shape[1] < scale
    np.testing.assert_array_equal(hr, full[: hr.shape[0], : hr.shape[1]])


def test_grey_bridge_loads_as_rgb(shared_data) -> None:
    bridge = shared_data / "benchmarks" / "Set14" / "bridge.png"
    hr = load_hr(bridge, 4)
    assert hr.ndim == 3 and hr.shape[2] == 3
    np.testing.assert_array_equal(hr[..., 0], hr[..., 1])
    np.testing.assert_array_equal(hr[..., 0], hr[..., 2])
    assert 0.0 <= hr.min() < hr.max() <= 1.0


# --- training pool -------------------------------------------------------------------------------
def _dihedral(img: np.ndarray) -> list[np.ndarray]:
    out = []
    for flipped in (img, img[:, ::-1]):
        out.extend(np.ascontiguousarray(np.rot90(flipped, k)) for k in range(4))
    return out


def test_train_pool_crops_come_from_the_pool(shared_data) -> None:
    pool = TrainPool(train_paths(("bsds400",)), max_images=2)
    assert len(pool) == 2 and all(im.dtype == np.uint8 for im in pool.images)
    assert pool.nbytes == sum(im.size for im in pool.images)
    rng = np.random.default_rng(0)
    for _ in range(4):
        crop = pool.random_crop(rng, 24)
        assert crop.shape == (24, 24, 3) and crop.dtype == np.float32
        assert 0.0 <= crop.min() and crop.max() <= 1.0
        u8 = np.round(crop * 255).astype(np.uint8)
        assert any(_contains_exactly(img, cand) for img in pool.images for cand in _dihedral(u8))


def _contains_exactly(img: np.ndarray, patch: np.ndarray) -> bool:
    """Whether ``patch`` is an exact window of ``img`` (best template match, then compared exactly)."""
    score = cv2.matchTemplate(img, patch, cv2.TM_SQDIFF)
    y, x = np.unravel_index(int(np.argmin(score)), score.shape)
    return bool(np.array_equal(img[y : y + patch.shape[0], x : x + patch.shape[1]], patch))


def test_train_pool_is_deterministic_and_augments(shared_data) -> None:
    pool = TrainPool(train_paths(("bsds400",)), max_images=1)
    a = pool.random_crops(np.random.default_rng(5), 6, 32)
    b = pool.random_crops(np.random.default_rng(5), 6, 32)
    assert a.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, pool.random_crops(np.random.default_rng(6), 6, 32))
    with pytest.raises(ValueError, match="at least"):
        pool.random_crop(np.random.default_rng(0), 1000)


def test_train_pool_min_size_filter(shared_data) -> None:
    pool = TrainPool(train_paths(("t91",)), max_images=12, min_size=150)
    assert 0 < len(pool) < 12  # T91 holds images from 78 px up
    assert all(min(im.shape[:2]) >= 150 for im in pool.images)
    with pytest.raises(ValueError, match="no training image"):
        TrainPool(train_paths(("t91",)), max_images=3, min_size=5000)


# --- test sets ----------------------------------------------------------------------------------
def test_gaussian8_cases(shared_data) -> None:
    cases = build_test_set("Set5", "gaussian8", 4, max_images=2)
    assert len(cases) == 16
    first = benchmark_paths("Set5")[0].stem
    assert cases[0].name == f"{first}_sig1.8" and cases[7].name == f"{first}_sig3.2"
    for case in cases:
        assert isinstance(case, TestCase) and case.protocol == "gaussian8"
        h, w = case.hr_rgb_f32.shape[:2]
        assert h % 4 == 0 and w % 4 == 0
        assert case.lr_rgb_f32.shape == (h // 4, w // 4, 3)
        np.testing.assert_array_equal(np.round(case.lr_rgb_f32 * 255) / 255, case.lr_rgb_f32)
        assert case.kernel_info["seed"] == 0 and case.kernel_info["convention"] == "ikc"
        k = case.true_kernels()
        assert k.shape == (21, 21) and abs(float(k.sum()) - 1) < 1e-5
    # cases of one image share the HR array; the LR is the IKC degradation of it
    assert cases[0].hr_rgb_f32 is cases[7].hr_rgb_f32
    assert not cases[0].hr_rgb_f32.flags.writeable
    c = cases[3]
    np.testing.assert_array_equal(c.lr_rgb_f32, degrade_ikc(c.hr_rgb_f32, c.kernel_info["sigma"], 4, None))
    sigmas = [c.kernel_info["sigma"] for c in cases[:8]]
    assert sigmas == pytest.approx([1.8, 2.0, 2.2, 2.4, 2.6, 2.8, 3.0, 3.2])


def test_gaussian8_other_scales_named_by_sigma(shared_data) -> None:
    cases = build_test_set("Set5", "gaussian8", 3, max_images=1)
    assert [c.name.split("_sig")[1] for c in cases] == ["1.35", "1.50", "1.65", "1.80", "1.95", "2.10", "2.25", "2.40"]
    assert all(c.lr_rgb_f32.shape[0] * 3 == c.hr_rgb_f32.shape[0] for c in cases)


def test_manet9_cases(shared_data) -> None:
    cases = build_test_set("Set5", "manet9", 2, max_images=1)
    assert len(cases) == 9
    kernels = manet_nine_kernels(2)
    for k, case in enumerate(cases):
        assert case.name.endswith(f"_k{k + 1}")
        np.testing.assert_allclose(case.true_kernels(), kernels[k], atol=1e-7)
        assert case.lr_rgb_f32.shape[:2] == (case.hr_rgb_f32.shape[0] // 2, case.hr_rgb_f32.shape[1] // 2)
        assert {"var1", "var2", "theta"} <= case.kernel_info.keys()
    np.testing.assert_array_equal(cases[4].lr_rgb_f32, degrade_manet(cases[4].hr_rgb_f32, kernels[4], 2, None))


def test_builds_are_deterministic(shared_data) -> None:
    for protocol in ("gaussian8", "variant5"):
        a = build_test_set("Set5", protocol, 4, seed=3, max_images=2)
        b = build_test_set("Set5", protocol, 4, seed=3, max_images=2)
        assert [c.name for c in a] == [c.name for c in b]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.lr_rgb_f32, y.lr_rgb_f32)
            assert x.kernel_info["rng_entropy"] == y.kernel_info["rng_entropy"]
            assert x.kernel_info["seed"] == 3


def test_variant_fields_regenerate_and_depend_on_seed(shared_data) -> None:
    (case,) = build_test_set("Set5", "variant5", 4, seed=0, max_images=1)
    field = case.true_kernels()
    h, w = case.lr_rgb_f32.shape[:2]
    assert field.shape == (h, w, 21, 21) and case.spatially_variant
    np.testing.assert_array_equal(degrade_manet(case.hr_rgb_f32, field, 4, None), case.lr_rgb_f32)
    (other,) = build_test_set("Set5", "variant5", 4, seed=1, max_images=1)
    assert not np.array_equal(other.lr_rgb_f32, case.lr_rgb_f32)
    # the per-image rng differs between images of the same set
    two = build_test_set("Set5", "variant5", 4, seed=0, max_images=2)
    assert two[0].kernel_info["field_entropy"] != two[1].kernel_info["field_entropy"]


@pytest.mark.parametrize("mode", [1, 2, 3, 4])
def test_deterministic_variant_modes_at_x3(shared_data, mode: int) -> None:
    (case,) = build_test_set("Set14", f"variant{mode}", 3, max_images=1)
    assert case.name.endswith(f"_variant{mode}")
    h, w = case.hr_rgb_f32.shape[:2]
    assert h % 3 == 0 and w % 3 == 0 and case.lr_rgb_f32.shape == (h // 3, w // 3, 3)
    assert case.kernel_info["mode"] == mode


def test_lazy_iteration_and_noise_options(shared_data) -> None:
    it = iter_test_set("Set5", "manet9", 4, max_images=1, noise_sigma_255=5.0)
    first = next(it)
    clean = build_test_set("Set5", "manet9", 4, max_images=1)[0]
    assert first.name == clean.name
    diff = np.abs(first.lr_rgb_f32 - clean.lr_rgb_f32)
    assert 1.0 / 255 < diff.mean() < 10.0 / 255  # noise of σ 5/255 after rounding
    again = next(iter_test_set("Set5", "manet9", 4, max_images=1, noise_sigma_255=5.0))
    np.testing.assert_array_equal(first.lr_rgb_f32, again.lr_rgb_f32)


def test_bad_protocol_and_scale() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        build_test_set("Set5", "gaussian9", 4)
    with pytest.raises(ValueError, match="gaussian8"):
        build_test_set("Set5", "gaussian8", 5)
    assert data.PROTOCOLS[:2] == ("gaussian8", "manet9") and len(data.PROTOCOLS) == 7


# --- photo-like protocols (issue 15) ------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian8_n15", "variant5_n5j85", "manet9_n15", "gaussian8_jpeg75", "gaussian8_n10j80"])
def test_photo_protocol_is_its_base_blur_plus_noise_and_jpeg(shared_data, name: str) -> None:
    photo = data.PHOTO_PROTOCOLS[name]
    case = next(iter_test_set("Set5", name, 4, max_images=1))
    clean = next(iter_test_set("Set5", photo.base, 4, max_images=1))
    assert case.protocol == name and data.base_protocol(name) == photo.base
    assert case.noisy and not clean.noisy
    # the same blur (variant5 draws its field from the image's seed): the noise-free LR is the clean case's LR
    np.testing.assert_array_equal(case.noise_free_lr(), clean.lr_rgb_f32)
    residual = (case.lr_rgb_f32 - clean.lr_rgb_f32) * 255.0
    if photo.jpeg_quality is None:  # 8-bit rounding and clipping only: the measured σ is the one asked for
        assert residual.std() == pytest.approx(photo.noise_sigma_255, rel=0.1)
    else:
        assert 0.5 < residual.std() < photo.noise_sigma_255 + 8.0
    again = next(iter_test_set("Set5", name, 4, max_images=1))
    np.testing.assert_array_equal(case.lr_rgb_f32, again.lr_rgb_f32)  # fixed per-image seed
    assert case.kernel_info["noise_sigma_255"] == photo.noise_sigma_255
    assert case.kernel_info["jpeg_quality"] == photo.jpeg_quality


def test_photo_protocol_refuses_extra_noise_and_unknown_names(shared_data) -> None:
    with pytest.raises(ValueError, match="fixes its own noise"):
        next(iter_test_set("Set5", "gaussian8_n5", 4, max_images=1, noise_sigma_255=3.0))
    with pytest.raises(ValueError, match="unknown protocol"):
        data.base_protocol("gaussian8_n7")
    assert set(data.ALL_PROTOCOLS) == set(data.PROTOCOLS) | set(data.PHOTO_PROTOCOLS)
    assert all(p.base in data.PROTOCOLS for p in data.PHOTO_PROTOCOLS.values())


def test_lr_psnr_of_the_true_kernel_needs_the_noise_free_lr(shared_data) -> None:
    """Why the evaluation scores LR-PSNR against the noise-free LR: against the noisy LR image even the
    true kernel scores about 30 dB at σ 15 (the noise), against the noise-free one far above 40 dB."""
    from engine.metrics import lr_psnr

    case = next(iter_test_set("Set5", "manet9_n15", 4, max_images=1))
    k = case.true_kernels()
    noisy = lr_psnr(case.hr_rgb_f32, case.lr_rgb_f32, k, 4, crop_border=4)
    clean = lr_psnr(case.hr_rgb_f32, case.noise_free_lr(), k, 4, crop_border=4)
    assert noisy < 32.0 and clean > 45.0


def test_training_centre_crops_are_centred_squares_of_a_multiple():
    from engine.data import train_paths, training_centre_crops
    from engine.imageio import read_image

    crops = training_centre_crops(2, 100, 12, ["t91"])
    assert len(crops) == 2 and all(c.shape == (96, 96, 3) and c.dtype == np.float32 for c in crops)
    pool = train_paths(["t91"])
    first = read_image(pool[0]).rgb_f32
    h, w = first.shape[:2]
    np.testing.assert_array_equal(crops[0], first[(h - 96) // 2 : (h - 96) // 2 + 96, (w - 96) // 2 : (w - 96) // 2 + 96])


def test_holdout_split_keeps_every_kth_image_out_and_loses_none(shared_data) -> None:
    from engine.data import holdout_split

    paths = train_paths()
    kept, held = holdout_split(paths, 8)
    assert held == paths[::8] and len(held) == -(-len(paths) // 8)
    assert not set(kept) & set(held) and sorted(kept + held) == sorted(paths)
    assert holdout_split(paths, 0) == (paths, [])
    with pytest.raises(ValueError, match="holdout_every"):
        holdout_split(paths, 1)


def test_a_run_with_holdout_records_it_and_rejects_one(tmp_path) -> None:
    from engine.training.config import ConfigError, TrainConfig

    assert TrainConfig(name="h", stage="ikc_corrector", holdout_every=8).holdout_every == 8
    with pytest.raises(ConfigError, match="holdout_every"):
        TrainConfig(name="h", stage="ikc_corrector", holdout_every=1)
