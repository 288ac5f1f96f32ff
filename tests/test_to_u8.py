"""The one float → uint8 conversion (engine.imageio.convert.to_u8) and the places that use it:
NaN, inf and out-of-range values map as documented everywhere, finite values as before."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from app.analysis import error_map_rgb
from engine.degradation import degrade
from engine.imageio import convert, rgb_to_u8, rgb_to_u16, to_u8, to_u16
from engine.visualize import colormap_inferno_u8, kernel_heatmap_u8

# NaN, -inf, +inf, below 0, 0, inside, a rounding tie (127.5 → 128, half to even), 1, above 1
_VALUES = np.array([np.nan, -np.inf, np.inf, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5], np.float32)


def _near_ties(rng: np.random.Generator, n: int = 200_000) -> np.ndarray:
    """float32 values in [0, 1] many of which sit within a few ulps of k + 0.5 levels."""
    levels = rng.integers(0, 255, n).astype(np.float32) + np.float32(0.5)
    ties = levels / np.float32(255.0)
    ulps = rng.integers(-3, 4, n).astype(np.float32) * np.spacing(ties)
    return np.concatenate([ties + ulps, rng.random(n, dtype=np.float32)])


def test_to_u8_maps_nan_inf_and_out_of_range_as_documented():
    out = to_u8(_VALUES)
    assert out.dtype == np.uint8 and out.shape == _VALUES.shape
    np.testing.assert_array_equal(out, [0, 0, 255, 0, 0, 64, 128, 255, 255])


def test_to_u16_maps_nan_inf_and_out_of_range_as_documented():
    out = to_u16(_VALUES)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, [0, 0, 65535, 0, 0, 16384, 32768, 65535, 65535])


def test_full_scale_maps_that_value_to_255():
    values = np.array([np.nan, -1.0, 0.0, 2.0, 4.0, 8.0, np.inf], np.float32)
    np.testing.assert_array_equal(to_u8(values, full_scale=4.0), [0, 0, 0, 128, 255, 255, 255])


def test_float64_is_converted_as_float32_and_shape_kept_across_blocks(monkeypatch):
    monkeypatch.setattr(convert, "CONVERT_ELEMENTS", 7)  # many blocks, the last one short
    values = np.random.default_rng(0).random((5, 6, 3)) * 1.4 - 0.2
    values[1, 2, 0] = np.nan
    out = to_u8(values)
    assert out.shape == values.shape
    np.testing.assert_array_equal(out, to_u8(values.astype(np.float32)))
    np.testing.assert_array_equal(out, np.rint(np.clip(np.nan_to_num(values.astype(np.float32)) * 255, 0, 255)))


def test_old_names_are_the_one_conversion():
    assert rgb_to_u8 is to_u8 and rgb_to_u16 is to_u16 and degrade.to_u8 is to_u8


def test_users_map_non_finite_values_like_to_u8_without_warnings():
    """Before: NaN reached ``astype(np.uint8)`` ("invalid value encountered in cast", an undefined
    value) or stayed NaN (quantize_u8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(degrade.quantize_u8(_VALUES), to_u8(_VALUES) / np.float32(255.0))
        grid = np.array([[np.nan, 0.5, np.inf], [2.0, -1.0, 0.25]], np.float32)
        np.testing.assert_array_equal(error_map_rgb(grid, vmax=1.0), colormap_inferno_u8(to_u8(grid)))
        kernel = np.zeros((21, 21), np.float32)
        kernel[10, 10], kernel[3, 4] = 1.0, np.nan
        heat = kernel_heatmap_u8(kernel)
    assert (heat == colormap_inferno_u8(np.zeros(1, np.uint8))[0]).all()  # a NaN peak: all level 0


@pytest.mark.parametrize("seed", [1, 2])
def test_users_keep_their_finite_levels(seed):
    """The places that now call to_u8 give the levels their own formulas gave, ties included."""
    rng = np.random.default_rng(seed)
    x = _near_ties(rng)
    np.testing.assert_array_equal(
        degrade.quantize_u8(x), (np.clip(np.rint(x * 255.0), 0.0, 255.0) / 255.0).astype(np.float32)
    )
    kernel = np.abs(rng.standard_normal((21, 21), dtype=np.float32)) * np.float32(0.01)
    k = np.clip(kernel, 0.0, None)
    old_grey = np.rint(255.0 * k / float(k.max())).astype(np.uint8)
    np.testing.assert_array_equal(kernel_heatmap_u8(kernel), colormap_inferno_u8(old_grey))
    error = x.reshape(400, 1000) * np.float32(3.0)
    top = float(np.percentile(error, 99))
    old_error = np.clip(np.rint(255.0 * error / top), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(error_map_rgb(error), colormap_inferno_u8(old_error))
