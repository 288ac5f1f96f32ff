"""Reading: a file or encoded bytes → an :class:`~engine.imageio.image.Image`, with every check
that lets bad input fail early and clearly.

    1. The bytes are read by Python (non-ASCII paths work everywhere) and the format is recognised
       by its signature, not by the file name.
    2. Pillow parses the header only (no pixels): size, mode, ICC profile, EXIF, orientation. The size
       is checked against :data:`MIN_SIDE`, :data:`MAX_SIDE` and :data:`MAX_PIXELS` *before* any pixel
       memory is allocated (decompression bombs are refused here).
    3. Cheap structure checks run before any decoder allocates the canvas the header claims (a
       decoder given a corrupt file allocates first and fails later, so a 100-byte file could
       otherwise cost gigabytes): PNG chunk lengths and critical-chunk CRCs, and enough compressed
       data for the claimed size (PNG IDAT, Huffman-coded JPEG scans, BMP pixel data).
    4. Pixels are decoded from memory: PNG by libspng (``pyspng``: every bit depth, palette and tRNS,
       16 bit kept), TIFF by tifffile, everything else (and TIFF layouts tifffile does not read) by
       Pillow. A decoded array is accepted only if its dtype, channel count and size agree with the
       header.
    5. The EXIF orientation is applied to the pixels and reset to 1 in the EXIF that is carried on.

Every failure is an :class:`~engine.imageio.errors.ImageReadError` naming the file and a short,
user-readable reason. OpenCV is not used (the runtime does not ship it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from engine.imageio.bmp import bmp_structure_plausible
from engine.imageio.convert import uint_to_float
from engine.imageio.errors import (
    REASON_CORRUPT,
    REASON_DECODER_LIMIT,
    REASON_EMPTY,
    ImageReadError,
    os_reason,
)
from engine.imageio.exif import apply_orientation, exif_reset_orientation
from engine.imageio.formats import describe_unsupported, sniff_format
from engine.imageio.header import Header, Pixels, valid_pixels
from engine.imageio.image import Image
from engine.imageio.jpeg import check_jpeg_structure
from engine.imageio.jpegquality import JpegQuality
from engine.imageio.pillow import decode_pillow, read_header_pillow
from engine.imageio.png import decode_png, png_is_animated, png_structure_plausible
from engine.imageio.tiff import check_tiff_faithful, decode_tifffile, read_header_tifffile
from engine.imageio.webp import webp_is_animated
from PIL import Image as PILImage

log = logging.getLogger(__name__)

MIN_SIDE = 4
"""Smallest accepted width and height in pixels (smaller images are too small to super-resolve)."""

MAX_SIDE = 65535
"""Largest accepted width or height in pixels (the JPEG maximum)."""

MAX_PIXELS = 20000 * 20000
"""Largest accepted width × height (400 megapixels; about 4.8 GB as float32 RGB)."""

MAX_FILE_BYTES = 2 * 1024**3
"""Largest accepted file size in bytes."""


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file into an :class:`Image` (RGB float32 in [0, 1], HWC).

    Raises:
        ImageReadError: the file is missing, unreadable, empty, not a supported image, corrupt,
            too small or too large. The message names the file and the reason.
    """
    file_path = Path(path)
    try:
        info = file_path.stat()
    except OSError as exc:
        raise _os_failure(file_path, exc, "access", FileNotFoundError, "file not found") from None
    if file_path.is_dir():
        raise ImageReadError(file_path, "is a folder, not a file")
    if not file_path.is_file():
        raise ImageReadError(file_path, "not a regular file")
    if info.st_size == 0:
        raise ImageReadError(file_path, REASON_EMPTY)
    if info.st_size > MAX_FILE_BYTES:
        raise ImageReadError(
            file_path, f"file too large: {info.st_size} bytes exceeds the limit of {MAX_FILE_BYTES}"
        )
    try:
        data = file_path.read_bytes()
    except OSError as exc:
        raise _os_failure(file_path, exc, "read", PermissionError, "permission denied") from None
    return _decode(data, file_path, Path(os.path.abspath(file_path)))


def _os_failure(path: Path, exc: OSError, doing: str, named: type[OSError], name: str) -> ImageReadError:
    """The read error for ``exc`` raised while ``doing`` ("access", "read") the file: ``name`` if
    it is a ``named`` error, else "cannot <doing> the file (<the OS's reason>)"."""
    return ImageReadError(path, name if isinstance(exc, named) else f"cannot {doing} the file ({os_reason(exc)})")


def decode_image_bytes(data: bytes, name: str = "<image data>") -> Image:
    """Decode an encoded image held in memory (pasted or dropped bytes) into an :class:`Image`
    (RGB float32 in [0, 1], HWC).

    ``name`` only labels error messages; the format is recognised from the bytes. The result has
    ``source_path=None``.

    Raises:
        ImageReadError: as :func:`read_image`.
    """
    return _decode(bytes(data), name, None)


def _decode(data: bytes, label: str | os.PathLike[str], source_path: Path | None) -> Image:
    if not data:
        raise ImageReadError(label, REASON_EMPTY)
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageReadError(label, describe_unsupported(data))
    header = read_header_pillow(data, fmt, label)
    if header is None:
        if fmt != "tiff":
            raise ImageReadError(label, REASON_CORRUPT)
        header = read_header_tifffile(data, label)  # Pillow does not know every TIFF layout
    check_size(header.width, header.height, label)
    if fmt == "jpeg":
        check_jpeg_structure(data, header, label)
    elif fmt == "png" and not png_structure_plausible(data, header):
        raise ImageReadError(label, REASON_CORRUPT)
    elif fmt == "bmp" and not bmp_structure_plausible(data):
        raise ImageReadError(label, REASON_CORRUPT)
    if (fmt == "webp" and webp_is_animated(data)) or (fmt == "png" and png_is_animated(data)):
        log.warning("%s: animated %s; only its first frame is used", label, fmt.upper())
    pixels = decode_pixels(data, fmt, header, label)
    try:
        return _to_image(pixels, header, fmt, source_path)
    except MemoryError:
        raise ImageReadError(
            label, f"not enough memory for a {header.width}×{header.height} px image"
        ) from None


def check_size(width: int, height: int, label: str | os.PathLike[str]) -> None:
    """Refuse a size (px) outside :data:`MIN_SIDE`, :data:`MAX_SIDE` and :data:`MAX_PIXELS`.

    Raises:
        ImageReadError: naming ``label`` and the limit.
    """
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageReadError(
            label, f"image too small: {width}×{height} px, at least {MIN_SIDE}×{MIN_SIDE} needed"
        )
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            label,
            f"image too large: {width}×{height} px exceeds the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels",
        )
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ImageReadError(
            label, f"image too large: {width}×{height} px exceeds the limit of {MAX_SIDE} px per side"
        )


def decode_pixels(data: bytes, fmt: str, header: Header, label: str | os.PathLike[str]) -> Pixels:
    """Encoded bytes → their pixels from the first of this format's decoders whose output agrees
    with ``header``.

    Raises:
        ImageReadError: no decoder gave valid pixels, a decoder's size limit fired, memory ran out,
            or a TIFF fallback would lose depth or alpha.
    """
    decoders: list[Callable[[bytes, Header], Pixels | None]]
    if fmt == "tiff":
        decoders = [decode_tifffile, decode_pillow]  # Pillow: LZW, JPEG-in-TIFF, palette, CMYK...
    elif fmt == "png":
        # No fallback: Pillow fails where libspng fails, but only after allocating the canvas.
        decoders = [decode_png]
    else:  # JPEG, WebP, BMP (after the structure checks in _decode)
        decoders = [decode_pillow]
    first_failure = ""
    for decoder in decoders:
        try:
            pixels = decoder(data, header)
        except PILImage.DecompressionBombError:
            raise ImageReadError(label, REASON_DECODER_LIMIT) from None
        except MemoryError:
            raise ImageReadError(label, "not enough memory to decode the image") from None
        except Exception as exc:  # noqa: BLE001 - a decoder failing just means "try the next"
            log.debug("%s: %s failed: %s", label, decoder.__name__, exc)
            first_failure = first_failure or str(exc)
            continue
        if pixels is not None and valid_pixels(pixels.values, header):
            if fmt == "tiff" and decoder is not decoders[0]:
                check_tiff_faithful(data, pixels.values, first_failure, label)
            return pixels
        first_failure = first_failure or f"{decoder.__name__.removeprefix('decode_')} cannot decode this layout"
    raise ImageReadError(label, REASON_CORRUPT)


def _to_image(pixels: Pixels, header: Header, fmt: str, source_path: Path | None) -> Image:
    """Decoded integer pixels → upright float32 RGB [0, 1] + alpha, with the carried metadata."""
    values = apply_orientation(pixels.values, header.orientation)
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    colour = values[:, :, :3] if channels >= 3 else values[:, :, :1]
    alpha_values = values[:, :, channels - 1] if channels in (2, 4) else None

    rgb = uint_to_float(colour)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    alpha = None if alpha_values is None else uint_to_float(alpha_values)
    if alpha is not None and pixels.premultiplied:
        safe = np.where(alpha > 0, alpha, np.float32(1.0))
        rgb /= safe[:, :, None]
        np.clip(rgb, 0.0, 1.0, out=rgb)

    bit_depth = 8 if values.dtype in (np.uint8, np.bool_) else 16
    was_grey = channels in (1, 2) or header.grey
    exif = header.exif
    if exif is not None and header.orientation != 1:
        exif = exif_reset_orientation(exif)
    return Image(
        rgb_f32=rgb,
        alpha_f32=alpha,
        bit_depth=bit_depth,
        icc_profile=header.icc_profile,
        exif=exif,
        source_path=source_path,
        source_format=fmt,
        was_grey=was_grey,
        jpeg_quality=None if header.jpeg_luma_qtable is None else JpegQuality.from_qtable(header.jpeg_luma_qtable),
    )
