"""Tests for engine.visualize: the inferno-like colour map, kernel heat maps, the lattice overview."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from engine.degradation.kernels import anisotropic_gaussian_kernels
from engine.visualize import (
    INFERNO_ANCHORS_RGB,
    colormap_inferno_u8,
    kernel_heatmap_u8,
    kernel_lattice_overview,
)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_colormap_hits_its_anchors_and_rises_in_luminance():
    levels = np.arange(256, dtype=np.uint8)
    rgb = colormap_inferno_u8(levels)
    assert rgb.shape == (256, 3) and rgb.dtype == np.uint8
    anchors_at = np.rint(np.linspace(0, 255, len(INFERNO_ANCHORS_RGB))).astype(int)  # within half a level
    assert np.abs(rgb[anchors_at].astype(int) - np.array(INFERNO_ANCHORS_RGB)).max() <= 2
    assert np.all(np.diff(_luma(rgb)) > 0)  # a heat map: brighter always means more
    assert tuple(rgb[0]) == (0, 0, 4) and rgb[255, 0] > 240 and rgb[255, 2] > 150  # black → pale yellow


def test_colormap_looks_like_opencv_inferno():
    """Within a few levels of OpenCV's COLORMAP_INFERNO (test reference only) everywhere."""
    levels = np.arange(256, dtype=np.uint8).reshape(1, -1)
    theirs = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)[0, :, ::-1].astype(int)
    ours = colormap_inferno_u8(levels[0]).astype(int)
    assert np.abs(ours - theirs).max() <= 20
    assert np.abs(ours - theirs).mean() < 4


def test_colormap_keeps_shape_and_does_not_share_memory():
    grey = np.array([[0, 128], [255, 64]], np.uint8)
    out = colormap_inferno_u8(grey)
    assert out.shape == (2, 2, 3)
    out[:] = 7  # writable, and the table behind it is untouched
    assert tuple(colormap_inferno_u8(np.uint8(0))) == INFERNO_ANCHORS_RGB[0]


def test_kernel_heatmap_scales_to_the_peak_and_enlarges_by_nearest_neighbour():
    k = anisotropic_gaussian_kernels(6.0, 1.5, 0.5, 4)
    small = kernel_heatmap_u8(k)
    assert small.shape == (21, 21, 3)
    peak = np.unravel_index(np.argmax(k), k.shape)
    np.testing.assert_array_equal(small[peak], INFERNO_ANCHORS_RGB[-1])
    np.testing.assert_array_equal(small[0, 0], colormap_inferno_u8(np.uint8(np.rint(255 * k[0, 0] / k.max()))))
    for size in (21, 42, 50, 13):
        big = kernel_heatmap_u8(k, size)
        assert big.shape == (size, size, 3)
        src = (np.arange(size) * 21) // size
        np.testing.assert_array_equal(big, small[src][:, src])
    np.testing.assert_array_equal(kernel_heatmap_u8(np.zeros((21, 21))), np.broadcast_to(INFERNO_ANCHORS_RGB[0], (21, 21, 3)))


def test_kernel_heatmap_enlargement_matches_opencv_nearest_at_integer_zoom():
    k = anisotropic_gaussian_kernels(3.0, 1.0, 1.2, 4)
    small = kernel_heatmap_u8(k)
    np.testing.assert_array_equal(kernel_heatmap_u8(k, 63), cv2.resize(small, (63, 63), interpolation=cv2.INTER_NEAREST))


def test_lattice_overview_draws_kernels_on_the_dimmed_photo():
    rng = np.random.default_rng(0)
    h, w = 30, 40
    lr = rng.random((h, w, 3), dtype=np.float32)
    kernels = {}

    def kernel_at(col, row, space="lr"):
        assert space == "lr"
        kernels[(row, col)] = anisotropic_gaussian_kernels(1.0 + row / 5, 0.8, col / 10, 4)
        return SimpleNamespace(kernel=kernels[(row, col)])

    def kernels_at(rows, cols):  # the lattice asks for all its kernels in one call
        return np.stack([kernel_at(int(c), int(r)).kernel for r, c in zip(rows, cols)]), True

    canvas = kernel_lattice_overview(lr, SimpleNamespace(kernels_at=kernels_at), step_lr=10, target_px=120)
    zoom = 3  # round(120 / 40)
    assert canvas.shape == (h * zoom, w * zoom, 3) and canvas.dtype == np.uint8
    assert sorted(kernels) == [(r, c) for r in (5, 15, 25) for c in (5, 15, 25, 35)]
    photo = np.clip(np.rint(lr * 255), 0, 255).astype(np.uint8)
    dimmed = (np.repeat(np.repeat(photo, zoom, 0), zoom, 1).astype(np.float32) * 0.8).astype(np.uint8)
    cell = 18  # int(10 * 3 * 0.6)
    drawn = np.zeros(canvas.shape[:2], bool)
    for (row, col), k in kernels.items():
        cy, cx = row * zoom + zoom // 2, col * zoom + zoom // 2
        y0, x0 = cy - cell // 2, cx - cell // 2
        np.testing.assert_array_equal(canvas[y0 : y0 + cell, x0 : x0 + cell], kernel_heatmap_u8(k, cell))
        drawn[y0 : y0 + cell, x0 : x0 + cell] = True
    np.testing.assert_array_equal(canvas[~drawn], dimmed[~drawn])


@pytest.mark.parametrize("vmax", [None, 0.5])
def test_app_error_map_uses_the_same_colours(vmax):
    from app.analysis import error_map_rgb

    error = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    rgb = error_map_rgb(error, vmax)
    top = vmax or float(np.percentile(error, 99))
    expected = colormap_inferno_u8(np.clip(np.rint(255 * error / top), 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(rgb, expected)
