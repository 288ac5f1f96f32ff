"""EXIF metadata: its normal form, the Orientation tag, and turning pixels upright by it."""

from __future__ import annotations

import struct

import numpy as np

EXIF_PREFIX = b"Exif\x00\x00"
TIFF_ORIENTATION_TAG = 274  # 0x0112, the same tag in EXIF's IFD0 and in a TIFF file's own tags


def exif_normalise(raw: bytes) -> bytes | None:
    """EXIF bytes (with or without the prefix) → ``b"Exif\\0\\0"`` + TIFF structure (the APP1 form),
    or ``None`` if not TIFF-shaped."""
    body = bytes(raw)
    if body.startswith(EXIF_PREFIX):
        body = body[len(EXIF_PREFIX) :]
    if body[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return EXIF_PREFIX + body


def exif_find_orientation(tiff: bytes) -> tuple[int, int] | None:
    """EXIF TIFF structure (no prefix) → (value, byte offset of the value) of the Orientation tag
    in IFD0, or ``None``."""
    if len(tiff) < 8:
        return None
    endian = "<" if tiff[:2] == b"II" else ">"
    ifd = struct.unpack_from(endian + "I", tiff, 4)[0]
    if ifd + 2 > len(tiff):
        return None
    count = struct.unpack_from(endian + "H", tiff, ifd)[0]
    for index in range(count):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag, kind, n = struct.unpack_from(endian + "HHI", tiff, entry)
        if tag == TIFF_ORIENTATION_TAG and kind == 3 and n >= 1:  # SHORT
            return struct.unpack_from(endian + "H", tiff, entry + 8)[0], entry + 8
    return None


def exif_reset_orientation(exif: bytes) -> bytes:
    """Normal-form EXIF → the same EXIF with Orientation set to 1 (patched in place: everything
    else is kept as is)."""
    tiff = bytearray(exif[len(EXIF_PREFIX) :])
    found = exif_find_orientation(bytes(tiff))
    if found is None:
        return exif
    endian = "<" if tiff[:2] == b"II" else ">"
    struct.pack_into(endian + "H", tiff, found[1], 1)
    return EXIF_PREFIX + bytes(tiff)


def apply_orientation(values: np.ndarray, orientation: int) -> np.ndarray:
    """Stored pixels (H×W or H×W×C) and an EXIF orientation (1..8) → the pixels turned upright
    (the array itself for 1 or an unknown value, else a contiguous copy)."""
    if orientation == 2:  # mirrored left-right
        out = values[:, ::-1]
    elif orientation == 3:  # rotated 180°
        out = values[::-1, ::-1]
    elif orientation == 4:  # mirrored top-bottom
        out = values[::-1]
    elif orientation == 5:  # transposed (mirror about the main diagonal)
        out = np.swapaxes(values, 0, 1)
    elif orientation == 6:  # stored rotated 90° anticlockwise: turn clockwise
        out = np.rot90(values, k=-1)
    elif orientation == 7:  # transverse (mirror about the anti-diagonal)
        out = np.swapaxes(values, 0, 1)[::-1, ::-1]
    elif orientation == 8:  # stored rotated 90° clockwise: turn anticlockwise
        out = np.rot90(values, k=1)
    else:
        return values
    return np.ascontiguousarray(out)
