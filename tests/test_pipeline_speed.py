"""The fast paths around the networks give what the straightforward computation gives (issue 18).

On tiny random-weight networks: MANet codes projected per tile, whole-image tiles, exact hover
kernels, and IKC's reduced-copy loop with lazily rendered iterations.
"""

import numpy as np
import pytest

from engine.noise import noise_map_255
from engine.pipeline import blind
from engine.pipeline import ikc as ikc_pipeline
from engine.pipeline.blind import estimate_kernel_map, run_manet
from engine.pipeline.ikc import detail_box, run_ikc


def lr_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([np.sin(x / (3 + c)) * np.cos(y / (5 - c)) for c in range(3)], axis=-1)
    return np.clip(0.5 + 0.3 * img + 0.05 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


class CountingRunner:
    """Wraps a runner and counts its runs (the pipeline only calls ``run`` and reads attributes)."""

    def __init__(self, runner):
        self._runner = runner
        self.calls = 0
        self.kept = []  # keep_memory of every run

    def run(self, inputs, *, keep_memory=False):
        self.calls += 1
        self.kept.append(keep_memory)
        return self._runner.run(inputs, keep_memory=keep_memory)

    def __getattr__(self, name):
        return getattr(self._runner, name)


def network_kernels(models, lr):
    """MANet on the whole image, padded to multiples of 8: (h, w, 441) float32, the reference."""
    h, w = lr.shape[:2]
    chw = np.ascontiguousarray(lr.transpose(2, 0, 1))
    padded = np.pad(chw, ((0, 0), (0, -h % 8), (0, -w % 8)), mode="edge")
    out = models.runner("manet").run({"lr_rgb": padded[None]})["kernels"][0][:, :h, :w]
    return np.moveaxis(out, 0, -1)


def test_manet_pipeline_equals_the_plain_computation(manet_models):
    """Codes projected tile by tile and the SR image: as computed whole, with pca.project and the
    input's noise map."""
    from engine.noise import noise_map_255

    lr = lr_image(45, 61, seed=1)
    reference_codes = manet_models.pca("rrdb_sft").project(network_kernels(manet_models, lr))
    chw = np.ascontiguousarray(lr.transpose(2, 0, 1))
    code_chw = np.ascontiguousarray(np.moveaxis(reference_codes, -1, 0))
    noise = noise_map_255(lr)[None, None]  # the input's estimated noise level, as the pipeline feeds it
    reference_sr = manet_models.runner("rrdb_sft").run({"lr_rgb": chw[None], "kernel_code": code_chw[None],
                                                        "noise_sigma_255": noise})
    reference_sr = np.clip(reference_sr["sr_rgb"][0].transpose(1, 2, 0), 0, 1)
    for tile in (None, 16):
        result = run_manet(lr, manet_models, tile=tile)
        np.testing.assert_allclose(result.kernel_map.codes, reference_codes, atol=2e-5)
        if tile is None:
            np.testing.assert_allclose(result.sr_rgb_f32, reference_sr, atol=1e-5)


def test_kernel_at_is_the_networks_kernel_and_full_kernels_are_built_only_on_request(manet_models):
    lr = lr_image(37, 50, seed=2)
    reference = network_kernels(manet_models, lr)
    kmap = estimate_kernel_map(lr, manet_models, tile=16)
    assert not kmap.kernels_stored  # nothing but codes on the hot path
    for x, y in [(0, 0), (49, 36), (17, 9), (8, 31), (40, 24)]:
        info = kmap.kernel_at(x, y)
        k = np.clip(reference[y, x], 0, None)
        assert info.exact
        np.testing.assert_allclose(info.kernel.reshape(-1), k / k.sum(), atol=1e-6)
    full = kmap.kernels_f16
    assert kmap.kernels_stored and full.shape == (37, 50, 441) and full.dtype == np.float16
    np.testing.assert_allclose(full.astype(np.float32), reference, atol=2e-3)
    too_big = estimate_kernel_map(lr, manet_models, keep_kernels_max_bytes=1000)
    assert too_big.kernels_f16 is None and too_big.kernel_at(3, 3).exact


def test_images_that_fit_the_budget_run_as_one_tile(manet_models, monkeypatch):
    lr = lr_image(100, 90, seed=3)
    counting = {name: CountingRunner(r) for name, r in manet_models.runners.items()}
    monkeypatch.setattr(manet_models, "runners", counting)
    run_manet(lr, manet_models)
    assert counting["manet"].calls == 1 and counting["rrdb_sft"].calls == 1
    # MANet leaves its working memory to RRDB-SFT, which gives it back at the end of the job
    assert counting["manet"].kept == [True] and counting["rrdb_sft"].kept == [False]
    # an image too large for the memory budget is still tiled
    assert blind._tile_for("manet", manet_models, None, 12, 8, hw=(1000, 900)) < 900
    assert blind._tile_for("manet", manet_models, None, 12, 8, hw=(100, 90)) == 104  # padded to 8


def test_detail_box_finds_the_textured_part():
    lr = np.full((3, 200, 160), 0.5, np.float32)
    rng = np.random.default_rng(0)
    lr[:, 120:180, 20:80] = rng.random((3, 60, 60), dtype=np.float32)
    y0, y1, x0, x1 = detail_box(lr, 64 * 64)
    assert (y1 - y0, x1 - x0) == (64, 64)
    assert y0 <= 120 + 16 and y1 >= 180 - 16 and x0 <= 20 + 16 and x1 >= 80 - 16
    assert detail_box(lr[:, :40, :], 64 * 64) == (0, 40, 0, min(160, 64 * 64 // 40))


def test_lazy_ikc_iterations_are_the_eager_images(ikc_models):
    lr = lr_image(40, 48, seed=4)
    lazy = run_ikc(lr, ikc_models, steps=3, loop_max_pixels=16 * 16)
    eager = run_ikc(lr, ikc_models, steps=3, loop_max_pixels=16 * 16, render_all=True)
    assert lazy.loop_box == eager.loop_box and lazy.loop_box is not None
    assert [it.stored for it in lazy.iterations] == [False, False, False, True]  # the chosen one at once
    assert all(it.stored for it in eager.iterations)
    for a, b in zip(lazy.iterations, eager.iterations):
        assert np.array_equal(a.code, b.code)
        assert np.array_equal(a.sr_rgb_f32, b.sr_rgb_f32)
        assert a.sr_rgb_f32.shape == (160, 192, 3)
    assert all(it.stored for it in lazy.iterations)  # rendered once, then kept (they fit the budget)
    image_change, code_change = lazy.changes()
    assert image_change.shape == code_change.shape == (4,) and image_change[0] == code_change[0] == 0
    codes = np.stack([it.code for it in lazy.iterations])
    np.testing.assert_allclose(code_change[1:], np.linalg.norm(np.diff(codes, axis=0), axis=1))
    np.testing.assert_array_equal(image_change, eager.changes()[0])
    y0, y1, x0, x1 = lazy.loop_box  # the image change is measured on the loop's crop
    crop = np.ascontiguousarray(lr[y0:y1, x0:x1])
    noise = noise_map_255(lr)[y0:y1, x0:x1]  # SFTMD's noise condition: the whole image's map, cropped
    sr2, sr3 = (ikc_pipeline.sftmd_sr(crop, lazy.iterations[i].code, ikc_models, noise_map_255=noise) for i in (2, 3))
    assert image_change[3] == pytest.approx(255 * np.mean(np.abs(sr3 - sr2)), rel=1e-5)


def test_ikc_on_the_whole_image_is_unchanged_by_a_large_loop_limit(ikc_models):
    lr = lr_image(24, 28, seed=5)
    plain = run_ikc(lr, ikc_models, steps=2)
    limited = run_ikc(lr, ikc_models, steps=2, loop_max_pixels=24 * 28)
    assert plain.loop_box is None and limited.loop_box is None
    for a, b in zip(plain.iterations, limited.iterations):
        assert np.array_equal(a.code, b.code) and np.array_equal(a.sr_rgb_f32, b.sr_rgb_f32)
    image_change, _ = plain.changes()
    manual = [255 * np.mean(np.abs(plain.iterations[i].sr_rgb_f32 - plain.iterations[i - 1].sr_rgb_f32))
              for i in range(1, 3)]
    np.testing.assert_allclose(image_change[1:], manual, atol=0.05)  # earlier images are kept as float16


def test_upscale_runs_ikc_on_a_reduced_copy(ikc_models):
    from engine.imageio import Image
    from engine.upscale import UpscaleOptions, upscale

    img = Image(rgb_f32=lr_image(40, 44, seed=6))
    res = upscale(img, UpscaleOptions(method="ikc", ikc_steps=2, ikc_loop_pixels=20 * 20), ikc_models)
    assert res.ikc.loop_box is not None and res.ikc.final.stored
    assert np.array_equal(res.image.rgb_f32, res.ikc.final.sr_rgb_f32)
    with pytest.raises(ValueError, match="ikc_loop_pixels"):
        UpscaleOptions(method="ikc", ikc_loop_pixels=10)


def test_kernels_at_many_points_are_the_networks_kernels(manet_models):
    lr = lr_image(52, 60, seed=7)
    reference = network_kernels(manet_models, lr)
    kmap = estimate_kernel_map(lr, manet_models)
    rng = np.random.default_rng(0)
    for n in (3, 400):  # a few windows; then so many points that one pass over the image is cheaper
        rows, cols = rng.integers(0, 52, n), rng.integers(0, 60, n)
        kernels, exact = kmap.kernels_at(rows, cols)
        assert exact and kernels.shape == (n, 21, 21)
        np.testing.assert_allclose(kernels.reshape(n, -1), reference[rows, cols], atol=1e-6)
    with pytest.raises(IndexError):
        kmap.kernels_at([52], [0])


def test_kernel_lattice_draws_the_hover_kernels(manet_models):
    """The lattice overlay (one batched kernels_at pass) draws the kernels kernel_at gives per point."""
    from app.analysis import lattice_overlay

    kmap = estimate_kernel_map(lr_image(48, 40, seed=8), manet_models)
    calls = []
    batched = kmap.kernels_at

    def counting(rows, cols):
        calls.append(len(rows))
        return batched(rows, cols)

    kmap.kernels_at = counting
    fast = lattice_overlay(kmap)
    assert len(calls) == 1 and calls[0] > 1  # every lattice point in one pass

    def per_point(rows, cols):  # the hover path, one point at a time
        return np.stack([kmap.kernel_at(int(c), int(r)).kernel for r, c in zip(rows, cols)]), True

    kmap.kernels_at = per_point
    slow = lattice_overlay(kmap)
    assert fast.rgba_u8.shape == slow.rgba_u8.shape and fast.rgba_u8[..., 3].max() > 0
    assert np.abs(fast.rgba_u8.astype(int) - slow.rgba_u8.astype(int)).max() <= 2
