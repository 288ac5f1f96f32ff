"""Painted-region masks as PNG files: the codec between a label map and a picture (no Qt).

A label map is (h, w) uint8 on the LR grid: 0 unpainted, ``k`` = region ``k`` (1..6). It is saved as a
colour PNG, region ``k`` in ``REGION_COLOURS[k − 1]`` on black, so the file is readable as a picture.
Reading takes that colour PNG back (each pixel to the nearest region colour) or a grey PNG whose
values are the labels themselves (values above 6 count as unpainted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.imageio import Image, write_image

REGION_COLOURS: tuple[tuple[int, int, int], ...] = (
    (239, 83, 80),  # 1 red
    (66, 165, 245),  # 2 blue
    (102, 187, 106),  # 3 green
    (255, 202, 40),  # 4 amber
    (171, 71, 188),  # 5 purple
    (38, 198, 218),  # 6 cyan
)
"""RGB colour of region label ``k`` is ``REGION_COLOURS[k - 1]`` (label 0 = unpainted)."""


def mask_picture(labels: np.ndarray) -> Image:
    """The 8-bit colour picture of a label map: region colours on black."""
    lut = np.zeros((256, 3), np.uint8)
    for k, rgb in enumerate(REGION_COLOURS, start=1):
        lut[k] = rgb
    return Image(lut[labels].astype(np.float32) / 255.0, bit_depth=8)


def write_mask(path: str | Path, labels: np.ndarray, *, overwrite: bool) -> Path:
    """Write ``labels`` as a colour PNG (``.png`` is added to a name without a suffix); returns the path.
    Raises :class:`engine.imageio.ImageIOError` with the reason when it cannot be written."""
    path = Path(path)
    return write_image(path.with_suffix(".png") if not path.suffix else path, mask_picture(labels),
                       overwrite=overwrite)


def read_mask(path: str | Path) -> np.ndarray:
    """The (h, w) uint8 label map in a mask PNG: region colours (as :func:`write_mask` saves them) or grey
    label values 0..6. Raises ``OSError`` or ``ValueError`` (Pillow's reason) when it cannot be read."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "P", "I;16", "I") else im.convert("L"))
    if arr.ndim == 2:
        return np.where(arr <= len(REGION_COLOURS), arr, 0).astype(np.uint8)
    palette = np.array([(0, 0, 0)] + list(REGION_COLOURS), np.int32)
    d = ((arr[:, :, None, :].astype(np.int32) - palette[None, None]) ** 2).sum(-1)
    return d.argmin(-1).astype(np.uint8)
