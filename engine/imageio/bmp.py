"""BMP: the structure check run before decoding (Pillow decodes and encodes)."""

from __future__ import annotations

import struct

# A BMP RLE code yields at most 255 pixels per 2 bytes (the skip codes, which can jump anywhere,
# are not counted: a file made of them is refused).
_BMP_RLE_MAX_PIXELS_PER_BYTE = 128


def bmp_structure_plausible(data: bytes) -> bool:
    """BMP bytes → False if the pixel data is too short for the size the header claims.

    Uncompressed rows must all be there (the last one may lack its padding); RLE data must hold at
    least one byte per :data:`_BMP_RLE_MAX_PIXELS_PER_BYTE` pixels. Other layouts are left to the
    decoder.
    """
    if len(data) < 26:
        return False
    offset, dib_size = struct.unpack_from("<II", data, 10)
    if dib_size == 12:  # BITMAPCOREHEADER: 16-bit sizes, never compressed
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
        compression = 0
    elif dib_size >= 40 and len(data) >= 34:
        width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    else:
        return True
    width, height = abs(width), abs(height)
    available = len(data) - offset
    if compression in (0, 3, 6):  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
        row_bytes = (width * bits + 7) // 8
        stride = (width * bits + 31) // 32 * 4
        return height == 0 or available >= stride * (height - 1) + row_bytes
    if compression in (1, 2):  # BI_RLE8, BI_RLE4
        return available * _BMP_RLE_MAX_PIXELS_PER_BYTE >= width * height
    return True
