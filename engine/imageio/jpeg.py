"""JPEG: the structure checks run before decoding (Pillow decodes), and the encoder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from engine.imageio.errors import REASON_CORRUPT, ImageReadError
from engine.imageio.exif import EXIF_PREFIX
from engine.imageio.header import Header
from engine.imageio.pillow import encode_pillow

log = logging.getLogger(__name__)

_JPEG_MAX_EXIF_BYTES = 65533 - len(EXIF_PREFIX)
_JPEG_MAX_SCANS = 1000
# A Huffman-coded JPEG spends at least one bit per 8×8 block of its first component (the DC
# difference), so at most 512 pixels per byte of scan data. Arithmetic coding has no such floor.
_JPEG_MAX_PIXELS_PER_BYTE = 512
_JPEG_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})


def check_jpeg_structure(data: bytes, header: Header, label: str | os.PathLike[str]) -> None:
    """Refuse JPEG bytes that would decode into a grey-filled canvas or take minutes: no complete
    first scan or no end marker after it, too many scans, too little scan data for the size.

    Raises:
        ImageReadError: naming ``label`` and the reason.
    """
    first_scan, frame = _jpeg_first_scan(data)
    # A JPEG that stops early decodes into a picture with a grey bottom (libjpeg only warns):
    # refuse it. Inside entropy-coded data every 0xFF byte is stuffed, so FF D9 / FF DA after the
    # first scan start are real markers.
    if first_scan is None or data.rfind(b"\xff\xd9") < first_scan:
        raise ImageReadError(label, REASON_CORRUPT)
    # Progressive JPEGs with thousands of scans take minutes to decode; real ones have about ten.
    if data.count(b"\xff\xda", first_scan) > _JPEG_MAX_SCANS:
        raise ImageReadError(label, f"too many JPEG scans (more than {_JPEG_MAX_SCANS})")
    # Too little scan data for the claimed size: the decoder would allocate the whole canvas and
    # fill it with grey (a few hundred bytes claiming 400 megapixels).
    scan_bytes = len(data) - first_scan
    if frame in _JPEG_HUFFMAN_FRAMES and scan_bytes * _JPEG_MAX_PIXELS_PER_BYTE < header.width * header.height:
        raise ImageReadError(label, REASON_CORRUPT)


def _jpeg_first_scan(data: bytes) -> tuple[int | None, int | None]:
    """(offset of the first start-of-scan marker FF DA, the SOFn marker byte before it), walking
    the marker segments; ``None`` for what was not found."""
    pos, size, frame = 2, len(data), None
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return None, frame
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
            continue
        if marker == 0xD9:  # end of image before any scan
            return None, frame
        if marker == 0xDA:
            return pos, frame
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # DHT, JPG, DAC are not frames
            frame = marker
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None, frame


def encode_jpeg(
    values: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None, target: Path
) -> bytes:
    """uint8 pixels (H×W grey or H×W×3 RGB), quality 1..100 → the JPEG's bytes, with the ICC
    profile and the EXIF (dropped with a warning when over a segment's 64 KiB); 4:4:4 chroma at
    quality 90 and above, else 4:2:0."""
    options: dict[str, object] = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    if icc:
        options["icc_profile"] = icc
    if exif:
        if len(exif) - len(EXIF_PREFIX) > _JPEG_MAX_EXIF_BYTES:
            log.warning("%s: EXIF too long for a JPEG segment (%d bytes); dropped", target, len(exif))
        else:
            options["exif"] = exif
    return encode_pillow(values, "JPEG", options)
