"""What Pillow does here: parse headers (every format), decode JPEG, WebP, BMP and the TIFF
layouts tifffile does not read, and encode JPEG, WebP and BMP.

Pillow's format plugins are called directly, not through ``PIL.Image.open``, so that Pillow's own
decompression-bomb limit (about 179 megapixels) does not pre-empt ours: our limit is applied to the
parsed size. Pillow calls run inside ``warnings.catch_warnings()``, which swaps the global warning
filters; harmless here (warnings are only silenced) but worth knowing.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np

from engine.imageio.errors import REASON_DECODER_LIMIT, ImageReadError
from engine.imageio.exif import EXIF_PREFIX, TIFF_ORIENTATION_TAG, exif_find_orientation, exif_normalise
from engine.imageio.formats import sniff_format
from engine.imageio.header import Header, Pixels
from engine.imageio.png import png_find_chunk, png_stores_grey
from PIL import BmpImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin
from PIL import Image as PILImage

_PIL_PARSERS: dict[str, type[PILImage.Image]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "tiff": TiffImagePlugin.TiffImageFile,
    "bmp": BmpImagePlugin.BmpImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
}
_PIL_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def read_header_pillow(data: bytes, fmt: str, label: str | os.PathLike[str]) -> Header | None:
    """Encoded bytes of format ``fmt`` → their :class:`Header` parsed by Pillow (no pixel data is
    decoded), or ``None`` if Pillow cannot parse it.

    Raises:
        ImageReadError: Pillow's own size limit fired (a WebP or TIFF far too large).
    """
    parser = _PIL_PARSERS[fmt]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with parser(io.BytesIO(data)) as im:
                width, height = (int(v) for v in im.size)
                mode = str(im.mode)
                icc = im.info.get("icc_profile") or None
                raw_exif = im.info.get("exif") or None
                tiff_orientation = None
                qtable = _first_qtable(im) if fmt == "jpeg" else None
                if fmt == "tiff":
                    tiff_orientation = getattr(im, "tag_v2", {}).get(TIFF_ORIENTATION_TAG)
    except PILImage.DecompressionBombError:
        raise ImageReadError(label, REASON_DECODER_LIMIT) from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for bad headers
        return None

    if isinstance(icc, str):
        icc = icc.encode("latin-1", errors="replace")
    if fmt == "png" and raw_exif is None:
        raw_exif = png_find_chunk(data, b"eXIf")  # Pillow only sees eXIf before IDAT
    exif = exif_normalise(raw_exif) if isinstance(raw_exif, (bytes, bytearray)) else None

    orientation = 1
    if exif is not None:
        found = exif_find_orientation(exif[len(EXIF_PREFIX) :])
        if found is not None:
            orientation = found[0]
    elif isinstance(tiff_orientation, int):
        orientation = tiff_orientation
    if orientation not in range(1, 9):
        orientation = 1
    grey = mode in _PIL_GREY_MODES
    if fmt == "png":
        grey = grey or png_stores_grey(data)
    return Header(width, height, mode, icc, exif, orientation, grey, qtable)


def _first_qtable(im: PILImage.Image) -> tuple[int, ...] | None:
    """A JPEG's quantisation table 0 (the luma one in every camera JPEG) as 64 ints in natural
    order, as Pillow reports it; ``None`` when there is none or it is not 64 entries."""
    tables = getattr(im, "quantization", None) or {}
    table = tables.get(0)
    if table is None or len(table) != 64:
        return None
    return tuple(int(v) for v in table)


def decode_pillow(data: bytes, header: Header) -> Pixels | None:
    """Encoded bytes → pixels decoded by Pillow's plugin for the sniffed format, converted to
    L/LA/RGB/RGBA uint8 (16-bit grey kept as uint16, float grey as float32); ``None`` if the size
    differs from ``header``'s."""
    parser = _PIL_PARSERS.get(sniff_format(data) or "")
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
                return Pixels(np.asarray(im).astype(np.uint16), premultiplied=False)
            if mode == "I":
                values = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
                return Pixels(values, premultiplied=False)
            if mode == "F":
                return Pixels(np.asarray(im, dtype=np.float32), premultiplied=False)
            if mode in ("1", "L") and not has_trns:
                target = "L"
            elif mode in ("1", "L", "LA", "La"):
                target = "LA"
            elif mode in ("RGBA", "RGBa", "PA") or has_trns:
                target = "RGBA"
            else:  # RGB, P, CMYK, YCbCr, LAB, HSV, ...
                target = "RGB"
            converted = im.convert(target) if im.mode != target else im
            return Pixels(np.asarray(converted, dtype=np.uint8), premultiplied=False)  # read-only


def encode_pillow(values: np.ndarray, pil_format: str, options: dict[str, object]) -> bytes:
    """uint8 pixels (H×W grey, H×W×3 RGB or H×W×4 RGBA) → the bytes of a ``pil_format`` file
    ("JPEG", "WEBP", "BMP") saved with ``options``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _pil_image(values).save(buffer, pil_format, **options)
    return buffer.getvalue()


def _pil_image(values: np.ndarray) -> PILImage.Image:
    if values.ndim == 2:
        return PILImage.fromarray(values, "L")
    return PILImage.fromarray(values, {3: "RGB", 4: "RGBA"}[values.shape[2]])
