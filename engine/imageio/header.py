"""What a format's reader hands on: the parsed header (before any pixel is decoded) and the
decoded pixels, with the check that the two agree."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Header(NamedTuple):
    """An image file's header, parsed without decoding pixels."""

    width: int
    height: int
    mode: str  # Pillow's mode name ("L", "RGB", "I;16", ...)
    icc_profile: bytes | None
    exif: bytes | None  # normalised: b"Exif\0\0" + TIFF structure
    orientation: int  # EXIF orientation 1..8
    grey: bool  # the file stores one colour channel
    jpeg_luma_qtable: tuple[int, ...] | None = None  # a JPEG's first quantisation table, 64 steps in natural order


class Pixels(NamedTuple):
    """What a decoder returns."""

    values: np.ndarray  # H×W or H×W×C (C in 1..4: grey, grey+alpha, RGB, RGBA), RGB order
    premultiplied: bool  # alpha is associated (TIFF "assocalpha")


def valid_pixels(values: np.ndarray, header: Header) -> bool:
    """A decoded array has a pixel dtype, 1 to 4 channels and the size the header claims."""
    if not isinstance(values, np.ndarray):
        return False
    if values.dtype not in (np.uint8, np.uint16, np.bool_, np.float16, np.float32, np.float64):
        return False
    if values.ndim == 3:
        if values.shape[2] not in (1, 2, 3, 4):
            return False
    elif values.ndim != 2:
        return False
    return values.shape[:2] == (header.height, header.width)
