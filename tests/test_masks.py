"""Mask PNG files (engine.masks): painted label maps out and back, colour and grey."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.imageio import read_image
from engine.masks import REGION_COLOURS, read_mask, write_mask


def test_colour_mask_round_trip_and_suffix(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(REGION_COLOURS) + 1, (17, 23)).astype(np.uint8)
    path = write_mask(tmp_path / "mask", labels, overwrite=False)
    assert path.name == "mask.png"  # a name without a suffix becomes a PNG
    np.testing.assert_array_equal(read_mask(path), labels)
    picture = read_image(path)
    k = int(labels[0, 0])
    expected = (0, 0, 0) if k == 0 else REGION_COLOURS[k - 1]
    np.testing.assert_allclose(picture.rgb_f32[0, 0] * 255, expected, atol=0.5)


def test_grey_masks_are_label_values_and_others_unpainted(tmp_path):
    grey = np.array([[0, 1, 6], [7, 200, 3]], np.uint8)
    PILImage.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png"), [[0, 1, 6], [0, 0, 3]])


def test_unreadable_mask_raises(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises((OSError, ValueError)):
        read_mask(bad)
