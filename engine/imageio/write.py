"""Writing: an :class:`~engine.imageio.image.Image` (or
:class:`~engine.imageio.image.IntegerImage`) → a file, and the same atomic publishing for
non-image outputs (:func:`write_bytes_atomically`).

The format follows the suffix. PNG is encoded by :mod:`engine.imageio.png`, the other formats by
Pillow and tifffile. The file is encoded completely in memory, then published by
:func:`engine.atomic.write_atomic` (temporary file beside the target, fsync, no-replace link, or
rename with ``overwrite``): a failed or interrupted write leaves neither a partial file nor a
temporary file, and without ``overwrite`` an existing file is never replaced, even one another
process creates meanwhile (:class:`~engine.imageio.errors.OutputExistsError`). The input file is
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

import logging
import os
from pathlib import Path

import numpy as np

from engine.atomic import CreateError, TargetExists, same_file, write_atomic
from engine.imageio.convert import all_finite, change_depth, to_u8, to_u16
from engine.imageio.errors import REASON_EXISTS, ImageWriteError, OutputExistsError, os_reason
from engine.imageio.exif import exif_normalise
from engine.imageio.formats import ALPHA_FORMATS, GREY_FORMATS, SIXTEEN_BIT_FORMATS, format_for_suffix
from engine.imageio.image import Image, IntegerImage
from engine.imageio.jpeg import encode_jpeg
from engine.imageio.pillow import encode_pillow
from engine.imageio.png import encode_png
from engine.imageio.tiff import encode_tiff
from engine.imageio.webp import encode_webp

log = logging.getLogger(__name__)


def write_image(
    path: str | os.PathLike[str],
    image: Image | IntegerImage,
    *,
    bit_depth: int | None = None,
    quality: int = 95,
    overwrite: bool = False,
    keep_grey: bool = False,
) -> Path:
    """Encode ``image`` in the format the suffix of ``path`` names and write it atomically; returns
    the path written.

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
        raise OutputExistsError(target, REASON_EXISTS)
    if not os.path.isdir(target.parent):
        raise ImageWriteError(target, f"folder does not exist: {target.parent}")

    depth = bit_depth if bit_depth is not None else image.bit_depth
    if depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:  # said, never silent (PNG/TIFF keep 16)
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


def write_bytes_atomically(target: str | os.PathLike[str], data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` (e.g. an encoded ``.npz``) to ``target`` atomically (temp file, fsync,
    publish); returns the path written.

    For non-image outputs (kernel maps, reports) that need the same guarantees as images: no partial
    file, and an existing file is replaced only with ``overwrite`` (:class:`OutputExistsError`).
    Raises :class:`ImageWriteError` naming the target on failure.
    """
    path = Path(target)
    _write_atomically(path, data, overwrite=overwrite)
    return path


def _encode(
    fmt: str, image: Image | IntegerImage, depth: int, quality: int, keep_grey: bool, target: Path
) -> bytes:
    """Encode fully in memory; returns the file's bytes."""
    exif = exif_normalise(image.exif) if image.exif else None
    if image.exif and exif is None:
        log.warning("%s: EXIF data is not TIFF-structured; not written", target)
    has_alpha = image.has_alpha
    if has_alpha and fmt not in ALPHA_FORMATS:
        log.warning("%s: %s cannot store transparency; alpha channel dropped", target, fmt.upper())
        has_alpha = False
    grey = keep_grey and image.was_grey and fmt in GREY_FORMATS
    if grey and fmt == "png" and has_alpha:
        log.info("%s: grey + alpha is written as RGBA PNG", target)
        grey = False

    if isinstance(image, IntegerImage) and not grey:
        colour = change_depth(image.pixels, depth, keep_alpha=has_alpha)
    else:
        colour = _float_pixels(image, depth, has_alpha=has_alpha, grey=grey, target=target)

    if fmt == "png":
        return encode_png(colour, image.icc_profile, exif)
    if fmt == "tiff":
        return encode_tiff(colour, image.icc_profile, has_alpha=has_alpha)
    if fmt == "bmp":
        return encode_pillow(colour, "BMP", {})
    if fmt == "jpeg":
        return encode_jpeg(colour, quality, image.icc_profile, exif, target)
    return encode_webp(colour, quality, image.icc_profile, exif)


def _float_pixels(
    image: Image | IntegerImage, depth: int, *, has_alpha: bool, grey: bool, target: Path
) -> np.ndarray:
    """The float pixels as the integers to store: H×W grey (BT.601 luma) or H×W×3 RGB, alpha
    stacked on when ``has_alpha``; refused if any value is NaN or inf."""
    alpha = image.alpha_f32 if has_alpha else None
    for name, values in (("colour", image.rgb_f32), ("alpha", alpha)):
        if values is not None and not all_finite(values):
            raise ImageWriteError(target, f"the {name} values hold NaN or inf (non-finite); not written")
    to_int = to_u16 if depth == 16 else to_u8
    if grey:
        r, g, b = (image.rgb_f32[:, :, i] for i in range(3))
        colour = to_int(np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b)
    else:
        colour = to_int(image.rgb_f32)
    if alpha is not None:
        colour = np.dstack([colour, to_int(alpha)])
    return colour


def _write_atomically(target: Path, data: bytes, *, overwrite: bool) -> None:
    """:func:`engine.atomic.write_atomic`, with failures as :class:`ImageWriteError` naming the target."""
    try:
        write_atomic(target, data, overwrite=overwrite)
    except TargetExists as exc:
        raise OutputExistsError(target, REASON_EXISTS) from exc
    except CreateError as exc:
        raise ImageWriteError(target, f"cannot create a file here ({os_reason(exc)})") from exc
    except OSError as exc:
        raise ImageWriteError(target, f"write failed ({os_reason(exc)})") from exc
