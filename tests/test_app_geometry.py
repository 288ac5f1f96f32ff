"""Pure (Qt-free) logic behind the studio: hover → LR pixel, ETA, lattice, regions, lab and IKC numbers."""

import math

import numpy as np
import pytest

from app.analysis import comparison_picture, ikc_changes, label_bbox, labels_rgba, region_stats, stamp_disk
from app.geometry import ImageGeometry, RunEta, format_duration, hover_hit, lattice_points
from engine.degradation.kernels import KernelParams, anisotropic_gaussian_kernel
from engine.pca import load_shipped_basis
from engine.paths import models_dir
from engine.pipeline.kernelmap import KernelMap
from engine.pipeline.lab import kernel_error_map


def _kernel_map(h: int, w: int, kernels_hw: np.ndarray, scale: int = 4) -> KernelMap:
    pca = load_shipped_basis("manet", scale, models_dir())
    flat = kernels_hw.reshape(h, w, 441)
    return KernelMap(scale, pca.project(flat).astype(np.float32), pca, kernels_f16=flat.astype(np.float16))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_hover_hit_agrees_with_kernel_map_lr_index(scale):
    rng = np.random.default_rng(0)
    h, w = 7, 11
    kmap = KernelMap(scale, np.zeros((h, w, 15), np.float32), pca=None)
    geo = ImageGeometry(w, h, scale)
    for x, y in rng.uniform([0, 0], [geo.sr_w, geo.sr_h], size=(300, 2)):
        hit = hover_hit(float(x), float(y), geo)
        assert hit is not None
        assert (hit.lr_row, hit.lr_col) == kmap.lr_index(x, y, space="sr")
        assert (hit.lr_row, hit.lr_col) == kmap.lr_index(hit.lr_x, hit.lr_y, space="lr")
        assert hit.sr_x == pytest.approx(x) and hit.lr_x == pytest.approx(x / scale)


def test_hover_hit_edges_and_outside():
    geo = ImageGeometry(5, 3, 4)
    assert hover_hit(0.0, 0.0, geo).lr_row == 0
    assert (hover_hit(3.999, 0, geo).lr_col, hover_hit(4.0, 0, geo).lr_col) == (0, 1)
    last = hover_hit(19.999, 11.999, geo)
    assert (last.lr_row, last.lr_col) == (2, 4)
    for x, y in ((-0.01, 1), (1, -0.01), (20.0, 1), (1, 12.0), (math.nan, 1), (math.inf, 1)):
        assert hover_hit(x, y, geo) is None


def test_eta_from_the_pace_of_the_work_not_the_loading_and_duration_text():
    eta = RunEta()
    assert eta.update(0.0, 0.0, "loading models") is None
    assert eta.update(20.0, 0.0, "models loaded") is None  # 20 s of loading: not counted
    assert eta.update(22.0, 0.005, "estimating kernels · tile 1 of 40") is None  # too little to judge
    assert eta.update(30.0, 0.25, "super-resolving · tile 2 of 8") == pytest.approx(30.0)  # 10 s per 25 %
    assert eta.update(31.0, 1.0, "done") == 0.0
    assert format_duration(None) == "–"
    assert format_duration(42.4) == "42 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(3720) == "1 h 02 min"


def test_lattice_points_cover_the_image_evenly():
    pts = lattice_points(100, 150)
    step = round(150 / 12)
    assert len(pts) == len(range(step // 2, 100, step)) * len(range(step // 2, 150, step))
    rows = sorted({r for r, _ in pts})
    assert all(b - a == step for a, b in zip(rows, rows[1:]))
    assert lattice_points(0, 10) == []


def test_stamp_disk_paints_a_disk_and_reports_change():
    labels = np.zeros((20, 20), np.uint8)
    assert stamp_disk(labels, 10.0, 10.0, 3.0, 2)
    yy, xx = np.mgrid[0:20, 0:20]
    expected = (yy + 0.5 - 10) ** 2 + (xx + 0.5 - 10) ** 2 <= 9
    assert np.array_equal(labels == 2, expected)
    assert not stamp_disk(labels, 10.0, 10.0, 3.0, 2)  # nothing new
    assert stamp_disk(labels, 10.0, 10.0, 1.0, 0)  # eraser
    assert not stamp_disk(labels, -50, -50, 2, 1)


def test_region_stats_recover_painted_kernels():
    h, w, s = 12, 16, 4
    k_left = anisotropic_gaussian_kernel(KernelParams(3.0, 1.0, 0.5), s)
    k_right = anisotropic_gaussian_kernel(KernelParams(1.5, 1.5, 0.0), s)
    field = np.empty((h, w, 21, 21), np.float32)
    field[:, : w // 2] = k_left
    field[:, w // 2 :] = k_right
    kmap = _kernel_map(h, w, field, s)
    labels = np.zeros((h, w), np.uint8)
    labels[2:10, 1:6] = 1
    labels[3:6, 10:15] = 3
    stats = region_stats(labels, kmap)
    assert [st.label for st in stats] == [1, 3]
    assert [st.n_pixels for st in stats] == [40, 15]
    one, three = stats
    np.testing.assert_allclose(one.mean_kernel, k_left / k_left.sum(), atol=2e-3)
    assert one.summary()["sigma1"][0] > 2.0 > three.summary()["sigma1"][0]
    assert three.summary()["sigma1"][0] == pytest.approx(three.summary()["sigma2"][0], rel=0.05)
    assert one.summary()["sigma1"][1] < 0.05  # one kernel everywhere: no spread
    with pytest.raises(ValueError):
        region_stats(np.zeros((3, 3), np.uint8), kmap)


def test_label_bbox_with_margin():
    labels = np.zeros((10, 10), np.uint8)
    labels[3:5, 6:9] = 2
    assert label_bbox(labels, 2) == (3, 5, 6, 9)
    assert label_bbox(labels, 2, margin=4) == (0, 9, 2, 10)
    assert label_bbox(labels, 1) is None


def test_kernel_error_map_and_ikc_changes():
    rng = np.random.default_rng(1)
    a = rng.random((3, 4, 21, 21)).astype(np.float32)
    b = a.copy()
    b[1, 2] += 0.5
    err = kernel_error_map(b, a)
    assert err.shape == (3, 4)
    assert err[1, 2] == pytest.approx(0.5) and np.count_nonzero(err) == 1
    srs = [np.zeros((4, 4, 3), np.float32), np.full((4, 4, 3), 0.1, np.float32), np.full((4, 4, 3), 0.1, np.float32)]
    codes = [np.zeros(10), np.ones(10), np.ones(10)]
    image_change, code_change = ikc_changes(srs, codes)
    np.testing.assert_allclose(image_change, [0.0, 25.5, 0.0], atol=1e-4)
    np.testing.assert_allclose(code_change, [0.0, math.sqrt(10), 0.0])


def test_comparison_picture_and_label_colours():
    lr = np.random.default_rng(2).random((5, 7, 3)).astype(np.float32)
    sr = np.zeros((20, 28, 3), np.float32)
    pic = comparison_picture(lr, sr, gap_px=6)
    assert pic.shape == (20, 28 + 6 + 28, 3)
    np.testing.assert_array_equal(pic[:4, :4], np.broadcast_to(lr[0, 0], (4, 4, 3)))
    rgba = labels_rgba(np.array([[0, 1], [2, 0]], np.uint8))
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] > 0 and tuple(rgba[0, 1, :3]) != tuple(rgba[1, 0, :3])
