"""Robust image reading and writing: PNG, JPEG, TIFF, BMP and WebP, 8 and 16 bit.

Everything the rest of Kernelscope sees of an image file is one :class:`Image`: RGB pixels as
``float32`` in [0, 1] (H×W×3, RGB order), an optional alpha plane (H×W, [0, 1], straight, not
premultiplied), and the metadata worth carrying to the output (ICC profile, EXIF).

Reading (:func:`read_image`, :func:`decode_image_bytes`)
    1. The bytes are read by Python (non-ASCII paths work everywhere) and the format is recognised by
       its signature, not by the file name.
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

    Every failure is an :class:`ImageReadError` naming the file and a short, user-readable reason.
    OpenCV is not used (the runtime does not ship it).

    Thread safety: Pillow calls run inside ``warnings.catch_warnings()``, which swaps the global
    warning filters; harmless here (warnings are only silenced) but worth knowing.

Writing (:func:`write_image`)
    The format follows the suffix. PNG is encoded here (Sub filter on every row, zlib level 1 with
    the RLE strategy, strips deflated in parallel: the settings OpenCV uses by default, as fast and
    as small); the other formats by Pillow and tifffile. The file is encoded completely in memory,
    then published by :func:`engine.atomic.write_atomic` (temporary file beside the target, fsync,
    no-replace link, or rename with ``overwrite``): a failed or interrupted write leaves neither a
    partial file nor a temporary file, and without ``overwrite`` an existing file is never replaced,
    even one another process creates meanwhile (:class:`OutputExistsError`). The input file is
    never overwritten.

    ==========  ============  =====  =====================================================
    format      bit depth     alpha  metadata written
    ==========  ============  =====  =====================================================
    PNG         8 or 16       yes    ICC (``iCCP``), EXIF (``eXIf``)
    TIFF        8 or 16       yes    ICC (tag 34675); EXIF is not written (needs a sub-IFD)
    JPEG        8             no     ICC (APP2), EXIF (APP1, at most 64 KiB)
    WebP        8             yes    ICC, EXIF; lossless when ``quality=100``
    BMP         8             no     none
    ==========  ============  =====  =====================================================

    Alpha given to a format without transparency is dropped with a logged warning.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import pyspng
import tifffile

from engine.atomic import CreateError, TargetExists, same_file, write_atomic
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin
from PIL import Image as PILImage

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "READ_SUFFIXES",
    "Image",
    "ImageIOError",
    "IntegerImage",
    "ImageReadError",
    "ImageWriteError",
    "OutputExistsError",
    "decode_image_bytes",
    "format_for_suffix",
    "read_image",
    "rgb_to_u16",
    "rgb_to_u8",
    "write_image",
]

log = logging.getLogger(__name__)

MIN_SIDE = 4
"""Smallest accepted width and height in pixels (smaller images are too small to super-resolve)."""

MAX_SIDE = 65535
"""Largest accepted width or height in pixels (the JPEG maximum)."""

MAX_PIXELS = 20000 * 20000
"""Largest accepted width × height (400 megapixels; about 4.8 GB as float32 RGB)."""

MAX_FILE_BYTES = 2 * 1024**3
"""Largest accepted file size in bytes."""

# Suffix (lower case, with dot) -> format name used throughout this module.
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
"""Suffixes of files :func:`read_image` is meant for (it recognises the format by content anyway)."""

_ALPHA_FORMATS = frozenset({"png", "tiff", "webp"})
_SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})
_GREY_FORMATS = frozenset({"png", "tiff", "jpeg", "bmp"})  # formats that can store one channel

# Pillow header parsers, called directly (not through PIL.Image.open) so that Pillow's own
# decompression-bomb limit does not pre-empt ours: our limit is applied to the parsed size.
_PIL_HEADER_PARSERS: dict[str, type[PILImage.Image]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}
_PIL_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

_EXIF_PREFIX = b"Exif\x00\x00"
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_ORIENTATION_TAG = 274
_JPEG_MAX_EXIF_BYTES = 65533 - len(_EXIF_PREFIX)
_JPEG_MAX_SCANS = 1000
_DEFLATE_MAX_RATIO = 1100  # deflate cannot compress better than about 1032:1
# A Huffman-coded JPEG spends at least one bit per 8×8 block of its first component (the DC
# difference), so at most 512 pixels per byte of scan data. Arithmetic coding has no such floor.
_JPEG_MAX_PIXELS_PER_BYTE = 512
_JPEG_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})
# A BMP RLE code yields at most 255 pixels per 2 bytes (the skip codes, which can jump anywhere,
# are not counted: a file made of them is refused).
_BMP_RLE_MAX_PIXELS_PER_BYTE = 128
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CRITICAL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_PNG_ZLIB_LEVEL = 1
_PNG_STRIP_BYTES = 4 << 20  # filtered bytes per parallel deflate strip
_PNG_MAX_THREADS = 4
_PNG_IDAT_BYTES = 1 << 20  # largest IDAT chunk written

_REASON_EMPTY = "file is empty"
_REASON_EXISTS = "file already exists (overwrite not allowed)"
_REASON_CORRUPT = "truncated or corrupt image data"
_REASON_NOT_IMAGE = "not an image (unrecognised format)"
# Pillow's own decompression-bomb check (about 179 MP) can fire inside its WebP and TIFF parsers.
_REASON_DECODER_LIMIT = "image too large: exceeds the decoder's safety limit"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ImageIOError(Exception):
    """An image could not be read or written; ``path`` names the file, ``reason`` says why."""

    _verb = "process"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(path, reason)

    def __str__(self) -> str:
        return f"cannot {self._verb} {os.fspath(self.path)}: {self.reason}"

    def __reduce__(self):  # keep (path, reason) when pickled across processes
        return (type(self), (self.path, self.reason))


class ImageReadError(ImageIOError):
    """A file (or byte string) is not an image this program can use; the reason is user-readable."""

    _verb = "read"


class ImageWriteError(ImageIOError):
    """An image could not be written; nothing was left behind at the target."""

    _verb = "write"


class OutputExistsError(ImageWriteError):
    """The target exists and overwriting was not asked for (it may have appeared meanwhile, written
    by another process); it was left as it was."""


# --------------------------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, repr=False)
class Image:
    """Pixels plus the metadata worth carrying from an input file to an output file.

    Attributes:
        rgb_f32: H×W×3 ``float32``, RGB channel order, values in [0, 1].
        alpha_f32: H×W ``float32`` straight (not premultiplied) alpha in [0, 1], or ``None``.
        bit_depth: bits per channel of the source, 8 or 16 (float TIFF sources count as 16).
        icc_profile: raw ICC profile bytes, or ``None``.
        exif: raw EXIF as stored in a JPEG APP1 segment (``b"Exif\\0\\0"`` + TIFF structure), with the
            orientation already applied to the pixels and its tag reset to 1; or ``None``.
        source_path: absolute path of the file read, or ``None`` (bytes, or computed images).
            :func:`write_image` refuses to write onto this path.
        source_format: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``, ``"webp"`` or ``None``.
        was_grey: the source had one colour channel (grey or grey + alpha); the pixels are still
            RGB here, and are written as RGB unless ``write_image(..., keep_grey=True)``.
    """

    rgb_f32: np.ndarray
    alpha_f32: np.ndarray | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)
    source_path: Path | None = None
    source_format: str | None = None
    was_grey: bool = False

    def __post_init__(self) -> None:
        rgb = self.rgb_f32
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.float32:
            raise TypeError("Image.rgb_f32 must be a float32 numpy array")
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"Image.rgb_f32 must be H×W×3, got shape {rgb.shape}")
        alpha = self.alpha_f32
        if alpha is not None:
            if not isinstance(alpha, np.ndarray) or alpha.dtype != np.float32:
                raise TypeError("Image.alpha_f32 must be a float32 numpy array or None")
            if alpha.shape != rgb.shape[:2]:
                raise ValueError(
                    f"Image.alpha_f32 shape {alpha.shape} does not match the RGB size {rgb.shape[:2]}"
                )
        if self.bit_depth not in (8, 16):
            raise ValueError(f"Image.bit_depth must be 8 or 16, got {self.bit_depth}")

    def __repr__(self) -> str:
        alpha = "" if self.alpha_f32 is None else "+alpha"
        return (
            f"Image({self.width}×{self.height} RGB{alpha}, {self.bit_depth}-bit, "
            f"format={self.source_format}, grey={self.was_grey}, "
            f"icc={self.icc_profile is not None}, exif={self.exif is not None}, "
            f"source={self.source_path})"
        )

    @property
    def height(self) -> int:
        return int(self.rgb_f32.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb_f32.shape[1])

    @property
    def has_alpha(self) -> bool:
        return self.alpha_f32 is not None

    def with_pixels(self, rgb_f32: np.ndarray, alpha_f32: np.ndarray | None = None) -> Image:
        """A copy with new pixels (e.g. the upscaled result) and this image's metadata and source.

        Keeping ``source_path`` means the result can never be written over the input file.
        """
        return replace(self, rgb_f32=rgb_f32, alpha_f32=alpha_f32)


@dataclass(frozen=True, eq=False, repr=False)
class IntegerImage:
    """An image held as the integers a file stores: what a large result is built as, strip by
    strip, so that no full-size float copy ever exists (a 16000×12000 RGB result is 576 MB as
    uint8, 2.3 GB as float32). :func:`write_image` writes it exactly as it writes the
    :class:`Image` whose :func:`rgb_to_u8` / :func:`rgb_to_u16` values these are.

    Attributes:
        pixels: H×W×3 (RGB) or H×W×4 (RGB + straight alpha), ``uint8`` (8 bit) or ``uint16`` (16 bit).
        icc_profile, exif, source_path, source_format, was_grey: as in :class:`Image`.
    """

    pixels: np.ndarray
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)
    source_path: Path | None = None
    source_format: str | None = None
    was_grey: bool = False

    def __post_init__(self) -> None:
        values = self.pixels
        if not isinstance(values, np.ndarray) or values.dtype not in (np.uint8, np.uint16):
            raise TypeError("IntegerImage.pixels must be a uint8 or uint16 numpy array")
        if values.ndim != 3 or values.shape[2] not in (3, 4):
            raise ValueError(f"IntegerImage.pixels must be H×W×3 or H×W×4, got shape {values.shape}")

    @classmethod
    def like(cls, image: Image, pixels: np.ndarray) -> IntegerImage:
        """``pixels`` with ``image``'s metadata and source (so it is never written over its input)."""
        return cls(pixels, image.icc_profile, image.exif, image.source_path, image.source_format,
                   image.was_grey)

    def __repr__(self) -> str:
        alpha = "+alpha" if self.has_alpha else ""
        return f"IntegerImage({self.width}×{self.height} RGB{alpha}, {self.bit_depth}-bit, source={self.source_path})"

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4

    @property
    def rgb_f32(self) -> np.ndarray:
        """A new full-size float32 copy of the colour (what this class exists to avoid: costly)."""
        return _uint_to_float(self.pixels[:, :, :3])

    @property
    def alpha_f32(self) -> np.ndarray | None:
        """A new float32 copy of the alpha, or ``None``."""
        return _uint_to_float(self.pixels[:, :, 3]) if self.has_alpha else None


# --------------------------------------------------------------------------------------------
# Value conversions
# --------------------------------------------------------------------------------------------


def rgb_to_u8(values_f32: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] (any shape) to ``uint8`` in [0, 255]: clipped, rounded, NaN → 0."""
    return _float_to_uint(values_f32, 255.0, np.uint8)


def rgb_to_u16(values_f32: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] (any shape) to ``uint16`` in [0, 65535]: clipped, rounded, NaN → 0."""
    return _float_to_uint(values_f32, 65535.0, np.uint16)


_CONVERT_ELEMENTS = 1 << 22  # values converted per step: the float temporary stays ~16 MB


def _float_to_uint(values: np.ndarray, scale: float, dtype: type[np.unsignedinteger]) -> np.ndarray:
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=dtype)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)  # a view unless ``values`` is strided
    for i in range(0, flat_in.size, _CONVERT_ELEMENTS):
        scaled = np.multiply(flat_in[i : i + _CONVERT_ELEMENTS], np.float32(scale), dtype=np.float32)
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=scale, neginf=0.0)
        np.clip(scaled, 0.0, scale, out=scaled)
        np.rint(scaled, out=scaled)
        flat_out[i : i + _CONVERT_ELEMENTS] = scaled
    return out


def _all_finite(values: np.ndarray, rows: int = 256) -> bool:
    """No NaN or inf in ``values`` (checked a strip of rows at a time: no full-size mask)."""
    return all(np.isfinite(values[i : i + rows]).all() for i in range(0, values.shape[0], rows))


def _uint_to_float(values: np.ndarray) -> np.ndarray:
    """``uint8``/``uint16``/``bool``/float array to float32 in [0, 1] (a new array)."""
    if values.dtype == np.uint8:
        out = values.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
    elif values.dtype == np.uint16:
        out = values.astype(np.float32)
        out *= np.float32(1.0 / 65535.0)
    elif values.dtype == np.bool_:
        out = values.astype(np.float32)
    else:  # floating point, assumed to be in [0, 1]
        out = np.array(values, dtype=np.float32)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
    return out


def format_for_suffix(path: str | os.PathLike[str]) -> str | None:
    """The format name (``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``, ``"webp"``) for a file name's
    suffix, or ``None`` if the suffix is not supported."""
    return _SUFFIX_FORMATS.get(Path(path).suffix.lower())


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str]) -> Image:
    """Read an image file into an :class:`Image` (RGB float32 in [0, 1], HWC).

    Raises:
        ImageReadError: the file is missing, unreadable, empty, not a supported image, corrupt,
            too small or too large. The message names the file and the reason.
    """
    file_path = Path(path)
    try:
        info = file_path.stat()
    except FileNotFoundError:
        raise ImageReadError(file_path, "file not found") from None
    except OSError as exc:
        raise ImageReadError(file_path, f"cannot access the file ({_os_reason(exc)})") from None
    if file_path.is_dir():
        raise ImageReadError(file_path, "is a folder, not a file")
    if not file_path.is_file():
        raise ImageReadError(file_path, "not a regular file")
    if info.st_size == 0:
        raise ImageReadError(file_path, _REASON_EMPTY)
    if info.st_size > MAX_FILE_BYTES:
        raise ImageReadError(
            file_path, f"file too large: {info.st_size} bytes exceeds the limit of {MAX_FILE_BYTES}"
        )
    try:
        data = file_path.read_bytes()
    except PermissionError:
        raise ImageReadError(file_path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(file_path, f"cannot read the file ({_os_reason(exc)})") from None
    return _decode(data, file_path, Path(os.path.abspath(file_path)))


def decode_image_bytes(data: bytes, name: str = "<image data>") -> Image:
    """Decode an encoded image held in memory (pasted or dropped bytes) into an :class:`Image`.

    ``name`` only labels error messages; the format is recognised from the bytes. The result has
    ``source_path=None``.

    Raises:
        ImageReadError: as :func:`read_image`.
    """
    return _decode(bytes(data), name, None)


class _Header(NamedTuple):
    width: int
    height: int
    mode: str
    icc_profile: bytes | None
    exif: bytes | None  # normalised: b"Exif\0\0" + TIFF structure
    orientation: int
    grey: bool  # the file stores one colour channel


class _Pixels(NamedTuple):
    values: np.ndarray  # H×W or H×W×C (C in 1..4: grey, grey+alpha, RGB, RGBA), RGB order
    premultiplied: bool  # alpha is associated (TIFF "assocalpha")


def _decode(data: bytes, label: str | os.PathLike[str], source_path: Path | None) -> Image:
    if not data:
        raise ImageReadError(label, _REASON_EMPTY)
    fmt = _sniff_format(data)
    if fmt is None:
        raise ImageReadError(label, _describe_unsupported(data))
    header = _read_header(data, fmt, label)
    _check_size(header.width, header.height, label)
    if fmt == "jpeg":
        _check_jpeg_structure(data, header, label)
    elif fmt == "png" and not _png_structure_plausible(data, header):
        raise ImageReadError(label, _REASON_CORRUPT)
    elif fmt == "bmp" and not _bmp_structure_plausible(data):
        raise ImageReadError(label, _REASON_CORRUPT)
    if (fmt == "webp" and _webp_is_animated(data)) or (
        fmt == "png" and _png_find_chunk(data, b"acTL", before_idat=True) is not None
    ):
        log.warning("%s: animated %s; only its first frame is used", label, fmt.upper())
    pixels = _decode_pixels(data, fmt, header, label)
    try:
        return _to_image(pixels, header, fmt, source_path)
    except MemoryError:
        raise ImageReadError(
            label, f"not enough memory for a {header.width}×{header.height} px image"
        ) from None


def _to_image(pixels: _Pixels, header: _Header, fmt: str, source_path: Path | None) -> Image:
    """Decoded integer pixels → upright float32 RGB [0, 1] + alpha, with the carried metadata."""
    values = _apply_orientation(pixels.values, header.orientation)
    if values.ndim == 2:
        values = values[:, :, None]
    channels = values.shape[2]
    colour = values[:, :, :3] if channels >= 3 else values[:, :, :1]
    alpha_values = values[:, :, channels - 1] if channels in (2, 4) else None

    rgb = _uint_to_float(colour)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    alpha = None if alpha_values is None else _uint_to_float(alpha_values)
    if alpha is not None and pixels.premultiplied:
        safe = np.where(alpha > 0, alpha, np.float32(1.0))
        rgb /= safe[:, :, None]
        np.clip(rgb, 0.0, 1.0, out=rgb)

    bit_depth = 8 if values.dtype in (np.uint8, np.bool_) else 16
    was_grey = channels in (1, 2) or header.grey
    exif = header.exif
    if exif is not None and header.orientation != 1:
        exif = _exif_reset_orientation(exif)
    return Image(
        rgb_f32=rgb,
        alpha_f32=alpha,
        bit_depth=bit_depth,
        icc_profile=header.icc_profile,
        exif=exif,
        source_path=source_path,
        source_format=fmt,
        was_grey=was_grey,
    )


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _sniff_format(data: bytes) -> str | None:
    """Format name from the leading bytes (the file name is not trusted)."""
    if data.startswith(_PNG_SIGNATURE):
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


def _describe_unsupported(data: bytes) -> str:
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
    return _REASON_NOT_IMAGE


def _read_header(data: bytes, fmt: str, label: str | os.PathLike[str]) -> _Header:
    """Parse the header with Pillow (no pixel data is decoded)."""
    parser = _PIL_HEADER_PARSERS[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with parser(io.BytesIO(data)) as im:
                width, height = (int(v) for v in im.size)
                mode = str(im.mode)
                icc = im.info.get("icc_profile") or None
                raw_exif = im.info.get("exif") or None
                tiff_orientation = None
                if fmt == "tiff":
                    tiff_orientation = getattr(im, "tag_v2", {}).get(_TIFF_ORIENTATION_TAG)
    except PILImage.DecompressionBombError:
        raise ImageReadError(label, _REASON_DECODER_LIMIT) from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for bad headers
        if fmt == "tiff":  # Pillow does not know every TIFF layout (e.g. 16-bit grey + alpha)
            return _read_tiff_header_tifffile(data, label)
        raise ImageReadError(label, _REASON_CORRUPT) from None

    if isinstance(icc, str):
        icc = icc.encode("latin-1", errors="replace")
    if fmt == "png" and raw_exif is None:
        raw_exif = _png_find_chunk(data, b"eXIf")  # Pillow only sees eXIf before IDAT
    exif = _exif_normalise(raw_exif) if isinstance(raw_exif, (bytes, bytearray)) else None

    orientation = 1
    if exif is not None:
        found = _exif_find_orientation(exif[len(_EXIF_PREFIX) :])
        if found is not None:
            orientation = found[0]
    elif isinstance(tiff_orientation, int):
        orientation = tiff_orientation
    if orientation not in range(1, 9):
        orientation = 1
    grey = mode in _PIL_GREY_MODES
    if fmt == "png" and len(data) > 25:  # Pillow reports 16-bit grey + alpha as RGBA
        grey = grey or data[25] in (0, 4)  # IHDR colour type: grey, grey + alpha
    return _Header(width, height, mode, icc, exif, orientation, grey)


def _read_tiff_header_tifffile(data: bytes, label: str | os.PathLike[str]) -> _Header:
    """TIFF header via tifffile (first page), for layouts Pillow cannot parse."""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            if not isinstance(page, tifffile.TiffPage):
                raise ValueError("first page is not a plain TIFF page")
            height, width = int(page.imagelength), int(page.imagewidth)
            icc = page.iccprofile or None
            tag = page.tags.get(_TIFF_ORIENTATION_TAG)
            orientation = tag.value if tag is not None and isinstance(tag.value, int) else 1
            grey = page.photometric in (
                tifffile.PHOTOMETRIC.MINISBLACK,
                tifffile.PHOTOMETRIC.MINISWHITE,
            )
    except Exception:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ImageReadError(label, _REASON_CORRUPT) from None
    if orientation not in range(1, 9):
        orientation = 1
    mode = "L" if grey else "RGB"
    return _Header(width, height, mode, icc, None, orientation, grey)


def _check_size(width: int, height: int, label: str | os.PathLike[str]) -> None:
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


def _check_jpeg_structure(data: bytes, header: _Header, label: str | os.PathLike[str]) -> None:
    first_scan, frame = _jpeg_first_scan(data)
    # A JPEG that stops early decodes into a picture with a grey bottom (libjpeg only warns):
    # refuse it. Inside entropy-coded data every 0xFF byte is stuffed, so FF D9 / FF DA after the
    # first scan start are real markers.
    if first_scan is None or data.rfind(b"\xff\xd9") < first_scan:
        raise ImageReadError(label, _REASON_CORRUPT)
    # Progressive JPEGs with thousands of scans take minutes to decode; real ones have about ten.
    if data.count(b"\xff\xda", first_scan) > _JPEG_MAX_SCANS:
        raise ImageReadError(label, f"too many JPEG scans (more than {_JPEG_MAX_SCANS})")
    # Too little scan data for the claimed size: the decoder would allocate the whole canvas and
    # fill it with grey (a few hundred bytes claiming 400 megapixels).
    scan_bytes = len(data) - first_scan
    if frame in _JPEG_HUFFMAN_FRAMES and scan_bytes * _JPEG_MAX_PIXELS_PER_BYTE < header.width * header.height:
        raise ImageReadError(label, _REASON_CORRUPT)


def _png_structure_plausible(data: bytes, header: _Header) -> bool:
    """Cheap checks before the PNG decoder sees the data (it allocates what the file claims first).

    False if a chunk's declared length runs past the end of the data (the file was cut short, or a
    length field is corrupt), if a critical chunk (IHDR, PLTE, IDAT, IEND) fails its CRC (libpng
    refuses those; libspng is run without CRC checks), or if the IDAT data is too small to hold the
    pixels the header claims even at deflate's best ratio (about 1032:1).
    """
    view = memoryview(data)
    pos, idat_bytes = len(_PNG_SIGNATURE), 0
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if length > 0x7FFFFFFF or pos + 12 + length > len(data):
            return False
        if kind in _PNG_CRITICAL_CHUNKS:
            stored = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
            if zlib.crc32(view[pos + 4 : pos + 8 + length]) != stored:
                return False
        if kind == b"IDAT":
            idat_bytes += length
        elif kind == b"IEND":
            break
        pos += 12 + length
    if len(data) < 29:
        return False
    bits, colour_type = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour_type, 1)
    pixel_bytes = header.width * header.height * channels * max(int(bits), 1) // 8
    return idat_bytes * _DEFLATE_MAX_RATIO >= pixel_bytes


def _bmp_structure_plausible(data: bytes) -> bool:
    """False if a BMP's pixel data is too short for the size its header claims.

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


def _decode_pixels(
    data: bytes, fmt: str, header: _Header, label: str | os.PathLike[str]
) -> _Pixels:
    """Try the decoders for this format in order; the first whose output is valid wins."""
    decoders: list[Callable[[bytes, _Header], _Pixels | None]]
    if fmt == "tiff":
        decoders = [_decode_tifffile, _decode_pillow]  # Pillow: LZW, JPEG-in-TIFF, palette, CMYK...
    elif fmt == "png":
        # No fallback: Pillow fails where libspng fails, but only after allocating the canvas.
        decoders = [_decode_png]
    else:  # JPEG, WebP, BMP (after the structure checks in _decode)
        decoders = [_decode_pillow]
    first_failure = ""
    for decoder in decoders:
        try:
            pixels = decoder(data, header)
        except PILImage.DecompressionBombError:
            raise ImageReadError(label, _REASON_DECODER_LIMIT) from None
        except MemoryError:
            raise ImageReadError(label, "not enough memory to decode the image") from None
        except Exception as exc:  # noqa: BLE001 - a decoder failing just means "try the next"
            log.debug("%s: %s failed: %s", label, decoder.__name__, exc)
            first_failure = first_failure or str(exc)
            continue
        if pixels is not None and _valid_pixels(pixels.values, header):
            if fmt == "tiff" and decoder is not decoders[0]:
                _check_tiff_faithful(data, pixels.values, first_failure, label)
            return pixels
        first_failure = first_failure or f"{decoder.__name__.removeprefix('_decode_')} cannot decode this layout"
    raise ImageReadError(label, _REASON_CORRUPT)


def _check_tiff_faithful(
    data: bytes, values: np.ndarray, why_not_tifffile: str, label: str | os.PathLike[str]
) -> None:
    """Refuse a fallback decode that lost bits or the alpha channel the TIFF declares.

    Pillow reads what tifffile could not (e.g. a codec missing), but converts 16-bit colour and
    alpha to 8-bit RGB(A); a 16-bit file is then refused with the reason, never silently downgraded.
    """
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            bits = int(max(np.atleast_1d(page.bitspersample).tolist()))
            extra = tuple(page.extrasamples or ())
            compression = getattr(page.compression, "name", str(page.compression))
    except Exception:  # noqa: BLE001 - tags tifffile cannot parse: Pillow's reading is all there is
        return
    declares_alpha = any(e in (tifffile.EXTRASAMPLE.ASSOCALPHA, tifffile.EXTRASAMPLE.UNASSALPHA) for e in extra)
    channels = values.shape[2] if values.ndim == 3 else 1
    lost_depth = bits > 8 and values.dtype in (np.uint8, np.bool_)
    lost_alpha = declares_alpha and channels not in (2, 4)
    if lost_depth or lost_alpha:
        what = f"{bits}-bit" + (" + alpha" if declares_alpha else "")
        lost = " and ".join(
            part for part, flag in (("depth", lost_depth), ("alpha", lost_alpha)) if flag
        )
        raise ImageReadError(
            label,
            f"{what} TIFF ({compression} compression) cannot be decoded without losing its {lost} "
            f"({why_not_tifffile or 'unsupported layout'}); refusing to read it as 8-bit",
        )


def _webp_is_animated(data: bytes) -> bool:
    """VP8X header with the animation flag set."""
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def _valid_pixels(values: np.ndarray, header: _Header) -> bool:
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


def _decode_png(data: bytes, header: _Header) -> _Pixels | None:
    """PNG of any bit depth and colour type through libspng, 16 bit kept; tRNS becomes alpha.

    pyspng 0.1 offers the output layouts G8, GA8 (grey sources only), RGB8, RGBA8 and, as its
    automatic choice for 16-bit sources, GA16 (grey) and RGBA16 (the others), with an opaque filler
    alpha where the file has none; 16-bit grey + alpha is asked for as RGBA16 directly. libspng is
    run without its tRNS option (pyspng passes no flags), so transparency is applied here: a
    palette image's tRNS alphas through its palette indices (:func:`_png_palette_rgba`), a grey or
    RGB colour key by giving the pixels equal to the key alpha 0. Sub-byte grey is scaled to 8 bits
    by libspng (bit replication), and so is its key.
    """
    bits, colour_type = data[24], data[25]
    trns = _png_find_chunk(data, b"tRNS", before_idat=True)
    if colour_type == 3:
        if trns:
            return _Pixels(_png_palette_rgba(data, trns), premultiplied=False)
        return _Pixels(pyspng.load(data, "RGB"), premultiplied=False)
    if colour_type == 4:  # grey + alpha: through RGBA, then the grey and alpha planes
        if bits == 16:
            rgba = pyspng.c.spng_decode_image_bytes(data, pyspng.c.SPNG_FMT_RGBA16)
        else:
            rgba = pyspng.load(data, "RGBA")
        return _Pixels(rgba[:, :, [0, 3]], premultiplied=False)
    if bits == 16:
        values = pyspng.load(data)  # GA16 / RGBA16 with a filler alpha
        if values.dtype != np.uint16 or values.ndim != 3:
            return None
        if colour_type == 0:
            values = values[:, :, 0]
        elif colour_type == 2:
            values = values[:, :, :3]
    else:
        values = pyspng.load(data, {0: "L", 2: "RGB", 6: "RGBA"}.get(colour_type, "RGBA"))
    if trns is None or colour_type not in (0, 2):
        return _Pixels(values, premultiplied=False)
    top = (1 << bits) - 1
    key = [int.from_bytes(trns[i : i + 2], "big") for i in range(0, 2 if colour_type == 0 else 6, 2)]
    if len(trns) < 2 * len(key) or max(key) > top:
        return _Pixels(values, premultiplied=False)  # malformed key: ignored, as libpng does
    if bits < 8:
        key = [k * (255 // top) for k in key]
    if colour_type == 0:
        keyed = values == key[0]
    else:
        keyed = np.all(values == np.array(key, dtype=values.dtype), axis=2)
    maximum = np.iinfo(values.dtype).max
    alpha = np.where(keyed, values.dtype.type(0), values.dtype.type(maximum))
    colour = values[:, :, None] if values.ndim == 2 else values
    return _Pixels(np.dstack([colour, alpha]), premultiplied=False)


def _png_palette_rgba(data: bytes, trns: bytes) -> np.ndarray:
    """RGBA uint8 (H×W×4) of an indexed PNG with tRNS alphas.

    libspng cannot return palette indices, so the PLTE entries are replaced by ``(i, i, i)`` and
    the image decoded as RGB: its red plane is then the index plane, which looks up the real
    colours and the tRNS alphas (255 beyond the end of tRNS, as the PNG standard says).
    """
    for kind, start, end in _png_chunks(data):
        if kind == b"PLTE":
            break
    else:
        raise ValueError("indexed PNG without PLTE")
    entries = (end - start) // 3
    index_palette = np.repeat(np.arange(entries, dtype=np.uint8), 3).tobytes()
    recoded = data[: start - 8] + _png_chunk(b"PLTE", index_palette) + data[end + 4 :]
    index = pyspng.load(recoded, "RGB")[:, :, 0]
    lut = np.zeros((256, 4), np.uint8)
    lut[:entries, :3] = np.frombuffer(data, np.uint8, entries * 3, start).reshape(entries, 3)
    lut[:entries, 3] = 255
    lut[: min(entries, len(trns)), 3] = np.frombuffer(trns, np.uint8)[:entries]
    return lut[index]


def _decode_tifffile(data: bytes, header: _Header) -> _Pixels | None:
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        if not isinstance(page, tifffile.TiffPage):
            return None
        photometric = page.photometric
        if photometric not in (
            tifffile.PHOTOMETRIC.MINISBLACK,
            tifffile.PHOTOMETRIC.MINISWHITE,
            tifffile.PHOTOMETRIC.RGB,
        ):
            return None  # palette, CMYK, YCbCr...: Pillow converts those
        axes, shape = page.axes, page.shape
        if axes not in ("YX", "YXS", "SYX"):
            return None
        y, x = axes.index("Y"), axes.index("X")
        if (shape[y], shape[x]) != (header.height, header.width):
            return None  # check before allocating anything
        values = page.asarray()
        if axes == "SYX":
            values = np.moveaxis(values, 0, -1)
        if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            if values.dtype.kind == "u":
                values = np.iinfo(values.dtype).max - values
            elif values.dtype == np.bool_:
                values = ~values
            else:
                values = 1.0 - values
        extra = tuple(page.extrasamples or ())
        premultiplied = bool(extra) and extra[0] == tifffile.EXTRASAMPLE.ASSOCALPHA
        return _Pixels(np.ascontiguousarray(values), premultiplied)


def _decode_pillow(data: bytes, header: _Header) -> _Pixels | None:
    """Decode with Pillow's plugin for the sniffed format (not ``PIL.Image.open``, whose own
    decompression-bomb limit of about 179 megapixels is below ours), converted to L/LA/RGB/RGBA
    (16-bit grey kept)."""
    parser = _PIL_HEADER_PARSERS.get(_sniff_format(data) or "")
    if parser is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with parser(io.BytesIO(data)) as im:
            if im.size != (header.width, header.height):
                return None
            mode = im.mode
            has_trns = "transparency" in im.info
            if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                return _Pixels(np.asarray(im).astype(np.uint16), premultiplied=False)
            if mode == "I":
                values = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
                return _Pixels(values, premultiplied=False)
            if mode == "F":
                return _Pixels(np.asarray(im, dtype=np.float32), premultiplied=False)
            if mode in ("1", "L") and not has_trns:
                target = "L"
            elif mode in ("1", "L", "LA", "La"):
                target = "LA"
            elif mode in ("RGBA", "RGBa", "PA") or has_trns:
                target = "RGBA"
            else:  # RGB, P, CMYK, YCbCr, LAB, HSV, ...
                target = "RGB"
            converted = im.convert(target) if im.mode != target else im
            return _Pixels(np.asarray(converted, dtype=np.uint8), premultiplied=False)  # read-only


def _apply_orientation(values: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels (H×W or H×W×C) upright according to the EXIF orientation (1..8)."""
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


# --------------------------------------------------------------------------------------------
# EXIF and PNG chunk helpers
# --------------------------------------------------------------------------------------------


def _exif_normalise(raw: bytes) -> bytes | None:
    """EXIF as ``b"Exif\\0\\0"`` + TIFF structure (the APP1 form), or ``None`` if not TIFF-shaped."""
    body = bytes(raw)
    if body.startswith(_EXIF_PREFIX):
        body = body[len(_EXIF_PREFIX) :]
    if body[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    return _EXIF_PREFIX + body


def _exif_find_orientation(tiff: bytes) -> tuple[int, int] | None:
    """(value, byte offset of the value) of the Orientation tag in IFD0, or ``None``."""
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
        if tag == _EXIF_ORIENTATION_TAG and kind == 3 and n >= 1:  # SHORT
            return struct.unpack_from(endian + "H", tiff, entry + 8)[0], entry + 8
    return None


def _exif_reset_orientation(exif: bytes) -> bytes:
    """The same EXIF with Orientation set to 1 (patched in place: everything else is kept as is)."""
    tiff = bytearray(exif[len(_EXIF_PREFIX) :])
    found = _exif_find_orientation(bytes(tiff))
    if found is None:
        return exif
    endian = "<" if tiff[:2] == b"II" else ">"
    struct.pack_into(endian + "H", tiff, found[1], 1)
    return _EXIF_PREFIX + bytes(tiff)


def _png_chunks(data: bytes):
    """Yield (type, payload start, payload end) for each complete chunk of a PNG."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            return
        yield kind, start, end
        if kind == b"IEND":
            return
        pos = end + 4


def _png_find_chunk(data: bytes, kind: bytes, *, before_idat: bool = False) -> bytes | None:
    """Payload of the first chunk of this type (only up to the first IDAT if ``before_idat``)."""
    for chunk_kind, start, end in _png_chunks(data):
        if chunk_kind == kind:
            return data[start:end]
        if before_idat and chunk_kind == b"IDAT":
            return None
    return None


def _png_chunk(kind: bytes, payload: bytes | memoryview) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_image(
    path: str | os.PathLike[str],
    image: Image | IntegerImage,
    *,
    bit_depth: int | None = None,
    quality: int = 95,
    overwrite: bool = False,
    keep_grey: bool = False,
) -> Path:
    """Write ``image`` atomically; the suffix of ``path`` picks the format.

    Args:
        path: target file; ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp`` or ``.webp``.
        image: the pixels and metadata to write (an :class:`IntegerImage` is written as the
            :class:`Image` it was rounded from would be).
        bit_depth: 8 or 16; ``None`` keeps the source's depth. 16 bit is written only to PNG and
            TIFF; JPEG, WebP and BMP are always 8 bit.
        quality: JPEG/WebP quality 1..100. JPEG at 90 and above keeps full chroma resolution (4:4:4);
            WebP at 100 is lossless.
        overwrite: replace an existing file. The input file (``image.source_path``) is never
            replaced, whatever this says.
        keep_grey: write a grey source (``image.was_grey``) as one channel (luma, BT.601) where the
            format allows (PNG/TIFF/JPEG/BMP; PNG only without alpha).

    Returns:
        The path written.

    Raises:
        ImageWriteError: unsupported suffix, target is the input file, target exists without
            ``overwrite``, missing folder, encoding or disk failure. Nothing is left at the target
            (an existing file there stays untouched) and no temporary file remains.
        ValueError: ``bit_depth`` or ``quality`` out of range.
    """
    target = Path(path)
    if bit_depth not in (None, 8, 16):
        raise ValueError(f"bit_depth must be 8, 16 or None, got {bit_depth!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality!r}")
    fmt = format_for_suffix(target)
    if fmt is None:
        raise ImageWriteError(
            target,
            f"unsupported output format {target.suffix or '(no suffix)'!r} "
            "(use .png, .jpg, .tif, .bmp or .webp)",
        )
    if image.source_path is not None and same_file(target, image.source_path):
        raise ImageWriteError(target, "refusing to overwrite the input image")
    if os.path.isdir(target):
        raise ImageWriteError(target, "is a folder, not a file")
    if os.path.lexists(target) and not overwrite:
        raise OutputExistsError(target, _REASON_EXISTS)
    if not os.path.isdir(target.parent):
        raise ImageWriteError(target, f"folder does not exist: {target.parent}")

    depth = bit_depth if bit_depth is not None else image.bit_depth
    if depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:  # said, never silent (PNG/TIFF keep 16)
        log.warning("%s: %s is 8-bit only; the 16-bit image is written as 8 bit", target, fmt.upper())
        depth = 8
    try:
        data = _encode(fmt, image, depth, int(quality), keep_grey, target)
    except ImageWriteError:
        raise
    except Exception as exc:  # noqa: BLE001 - encoder failures become one error type
        raise ImageWriteError(target, f"could not encode the image ({exc})") from exc
    _write_atomically(target, data, overwrite=overwrite)
    return target


def _encode(
    fmt: str, image: Image | IntegerImage, depth: int, quality: int, keep_grey: bool, target: Path
) -> bytes:
    """Encode fully in memory; returns the file's bytes."""
    exif = _exif_normalise(image.exif) if image.exif else None
    if image.exif and exif is None:
        log.warning("%s: EXIF data is not TIFF-structured; not written", target)
    has_alpha = image.has_alpha
    if has_alpha and fmt not in _ALPHA_FORMATS:
        log.warning("%s: %s cannot store transparency; alpha channel dropped", target, fmt.upper())
        has_alpha = False
    grey = keep_grey and image.was_grey and fmt in _GREY_FORMATS
    if grey and fmt == "png" and has_alpha:
        log.info("%s: grey + alpha is written as RGBA PNG", target)
        grey = False

    if isinstance(image, IntegerImage) and not grey:
        colour = _integer_pixels(image.pixels, depth, keep_alpha=has_alpha)
    else:
        alpha = image.alpha_f32 if has_alpha else None
        for name, values in (("colour", image.rgb_f32), ("alpha", alpha)):
            if values is not None and not _all_finite(values):
                raise ImageWriteError(target, f"the {name} values hold NaN or inf (non-finite); not written")
        to_int = rgb_to_u16 if depth == 16 else rgb_to_u8
        if grey:
            r, g, b = (image.rgb_f32[:, :, i] for i in range(3))
            colour = to_int(np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b)
        else:
            colour = to_int(image.rgb_f32)
        if alpha is not None:
            alpha_int = to_int(alpha)
            colour = np.dstack([colour, alpha_int])

    if fmt == "png":
        return _encode_png(colour, image.icc_profile, exif)
    if fmt == "tiff":
        return _encode_tiff(colour, image.icc_profile, has_alpha=has_alpha)
    if fmt == "bmp":
        return _encode_pillow(colour, "BMP", {})
    if fmt == "jpeg":
        return _encode_jpeg(colour, quality, image.icc_profile, exif, target)
    return _encode_webp(colour, quality, image.icc_profile, exif)


def _integer_pixels(pixels: np.ndarray, depth: int, *, keep_alpha: bool) -> np.ndarray:
    """An :class:`IntegerImage`'s pixels at ``depth`` bits, alpha kept or dropped, copied only when
    that changes them. 16 → 8 bit is ``round(v / 257)``, what :func:`rgb_to_u8` gives for
    ``v / 65535``; 8 → 16 is ``v * 257``."""
    values = pixels if keep_alpha or pixels.shape[2] == 3 else pixels[:, :, :3]
    have = 16 if values.dtype == np.uint16 else 8
    if have == depth:
        return values
    out = np.empty(values.shape, np.uint16 if depth == 16 else np.uint8)
    rows = max(1, _CONVERT_ELEMENTS // max(1, values[0].size))
    for r0 in range(0, values.shape[0], rows):
        part = values[r0 : r0 + rows].astype(np.uint32)
        out[r0 : r0 + rows] = part * 257 if depth == 16 else (part + 128) // 257
    return out


def _encode_png(values: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytearray:
    """A PNG of ``values`` (H×W grey or H×W×C with C in 2..4: grey+alpha, RGB, RGBA; uint8 or
    uint16), with the ICC profile (``iCCP``) and EXIF (``eXIf``) before the image data."""
    height, width = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    depth = 16 if values.dtype == np.uint16 else 8
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    chunks = [_PNG_SIGNATURE, _png_chunk(b"IHDR", ihdr)]
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif[len(_EXIF_PREFIX) :]))
    # One growing buffer (no list of chunks joined at the end: the compressed image exists once).
    out = bytearray(b"".join(chunks))
    pending = bytearray()
    for piece in _png_deflate(values):  # IDAT chunks of _PNG_IDAT_BYTES, the last one shorter
        pending += piece
        while len(pending) >= _PNG_IDAT_BYTES:
            out += _png_chunk(b"IDAT", pending[:_PNG_IDAT_BYTES])
            del pending[:_PNG_IDAT_BYTES]
    if pending:
        out += _png_chunk(b"IDAT", pending)
    out += _png_chunk(b"IEND", b"")
    return out


def _png_filter_sub(values: np.ndarray) -> np.ndarray:
    """PNG scanlines with filter type 1 (Sub) on every row: (H, 1 + row bytes) uint8.

    Sub stores each byte minus the same byte of the pixel to its left (modulo 256); samples are
    big-endian. It is what OpenCV uses by default: one vectorised subtraction, and on photos about
    as small as adaptive filtering at deflate level 1.
    """
    height = values.shape[0]
    if values.dtype == np.uint16:
        values = values.astype(">u2")
    raw = np.ascontiguousarray(values).view(np.uint8).reshape(height, -1)
    bpp = (1 if values.ndim == 2 else values.shape[2]) * values.dtype.itemsize
    out = np.empty((height, raw.shape[1] + 1), np.uint8)
    out[:, 0] = 1
    out[:, 1 : 1 + bpp] = raw[:, :bpp]
    np.subtract(raw[:, bpp:], raw[:, :-bpp], out=out[:, 1 + bpp :])
    return out


def _png_deflate(values: np.ndarray) -> Iterator[bytes]:
    """One zlib stream of the Sub-filtered scanlines of ``values`` (level 1, RLE strategy),
    compressed in parallel and yielded in pieces.

    Strips of whole rows are filtered and deflated independently (raw deflate, each ended by a sync
    flush so it stops on a byte boundary) and concatenated, as pigz does; the stream's Adler-32 is
    computed over all the filtered data, a strip at a time. No full-size filtered copy exists:
    memory is the strips in flight plus the compressed output. zlib releases the GIL, so threads
    compress strips at the same time.
    """
    row_bytes = 1 + values[0].size * values.dtype.itemsize
    rows_per_strip = max(1, _PNG_STRIP_BYTES // row_bytes)
    starts = list(range(0, values.shape[0], rows_per_strip))
    last = len(starts) - 1

    def deflate(index: int) -> bytes:
        r0 = starts[index]
        compressor = zlib.compressobj(_PNG_ZLIB_LEVEL, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        body = compressor.compress(_png_filter_sub(values[r0 : r0 + rows_per_strip]))
        return body + compressor.flush(zlib.Z_FINISH if index == last else zlib.Z_SYNC_FLUSH)

    yield b"\x78\x01"
    threads = min(_PNG_MAX_THREADS, len(starts), os.cpu_count() or 1)
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="png-deflate") as pool:
            yield from pool.map(deflate, range(len(starts)))
    else:
        yield from map(deflate, range(len(starts)))
    adler = 1
    for r0 in starts:  # the filter again, a strip at a time: cheaper than keeping it
        adler = zlib.adler32(_png_filter_sub(values[r0 : r0 + rows_per_strip]), adler)
    yield adler.to_bytes(4, "big")


def _encode_tiff(values: np.ndarray, icc: bytes | None, *, has_alpha: bool) -> bytes:
    buffer = io.BytesIO()
    grey = values.ndim == 2 or values.shape[2] in (1, 2)
    tifffile.imwrite(
        buffer,
        values,
        photometric="minisblack" if grey else "rgb",
        planarconfig="contig",
        extrasamples=("unassalpha",) if has_alpha else None,
        compression="zlib",
        iccprofile=icc or None,
        metadata=None,
    )
    return buffer.getvalue()


def _pil_image(values: np.ndarray) -> PILImage.Image:
    if values.ndim == 2:
        return PILImage.fromarray(values, "L")
    return PILImage.fromarray(values, {3: "RGB", 4: "RGBA"}[values.shape[2]])


def _encode_jpeg(
    values: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None, target: Path
) -> bytes:
    options: dict[str, object] = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    if icc:
        options["icc_profile"] = icc
    if exif:
        if len(exif) - len(_EXIF_PREFIX) > _JPEG_MAX_EXIF_BYTES:
            log.warning("%s: EXIF too long for a JPEG segment (%d bytes); dropped", target, len(exif))
        else:
            options["exif"] = exif
    return _encode_pillow(values, "JPEG", options)


def _encode_webp(
    values: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None
) -> bytes:
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    options: dict[str, object] = {"quality": quality, "lossless": quality >= 100, "exact": True}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    return _encode_pillow(values, "WEBP", options)


def _encode_pillow(values: np.ndarray, pil_format: str, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _pil_image(values).save(buffer, pil_format, **options)
    return buffer.getvalue()


def _write_atomically(target: Path, data: bytes, *, overwrite: bool) -> None:
    """:func:`engine.atomic.write_atomic`, with failures as :class:`ImageWriteError` naming the target."""
    try:
        write_atomic(target, data, overwrite=overwrite)
    except TargetExists as exc:
        raise OutputExistsError(target, _REASON_EXISTS) from exc
    except CreateError as exc:
        raise ImageWriteError(target, f"cannot create a file here ({_os_reason(exc)})") from exc
    except OSError as exc:
        raise ImageWriteError(target, f"write failed ({_os_reason(exc)})") from exc


def write_bytes_atomically(target: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Atomically write ``data`` (e.g. an encoded ``.npz``) to ``target``: temp file, fsync, publish.

    For non-image outputs (kernel maps, reports) that need the same guarantees as images: no partial
    file, and an existing file is replaced only with ``overwrite`` (:class:`OutputExistsError`).
    Raises :class:`ImageWriteError` naming the target on failure.
    """
    path = Path(target)
    _write_atomically(path, data, overwrite=overwrite)
    return path
