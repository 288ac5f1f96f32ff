"""The supported formats: file-name suffixes, what each format can store, and recognising a
format by its leading bytes (the file name is never trusted for reading)."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from engine.imageio.errors import REASON_NOT_IMAGE
from PIL import Image as PILImage

# Suffix (lower case, with dot) -> format name used throughout this package.
_SUFFIX_FORMATS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
    ".webp": "webp",
}
READ_SUFFIXES: tuple[str, ...] = tuple(_SUFFIX_FORMATS)
"""Suffixes of files :func:`~engine.imageio.read.read_image` is meant for (it recognises the format
by content anyway)."""
WRITE_SUFFIXES: tuple[str, ...] = tuple(_SUFFIX_FORMATS)
"""Suffixes :func:`~engine.imageio.write.write_image` accepts; the suffix chooses the output format."""

ALPHA_FORMATS = frozenset({"png", "tiff", "webp"})
SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})
GREY_FORMATS = frozenset({"png", "tiff", "jpeg", "bmp"})  # formats that can store one channel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def format_for_suffix(path: str | os.PathLike[str]) -> str | None:
    """The format name (``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``, ``"webp"``) for a file name's
    suffix, or ``None`` if the suffix is not supported."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


def sniff_format(data: bytes) -> str | None:
    """Encoded bytes → their format name from the leading bytes, or ``None`` if not one of ours."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def describe_unsupported(data: bytes) -> str:
    """Reason for bytes that are not one of our formats: name the format if Pillow knows it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with PILImage.open(io.BytesIO(data)) as im:
                name = im.format
    except Exception:  # noqa: BLE001 - any failure means "not something we can name"
        name = None
    if name:
        return f"unsupported format: {name} (supported: PNG, JPEG, TIFF, BMP, WebP)"
    return REASON_NOT_IMAGE
