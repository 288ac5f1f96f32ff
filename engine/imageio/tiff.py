"""TIFF through tifffile: the header of layouts Pillow cannot parse, decoding (16 bit, float,
alpha kept), the check that a Pillow fallback lost nothing, and the encoder."""

from __future__ import annotations

import io
import os

import numpy as np
import tifffile

from engine.imageio.errors import REASON_CORRUPT, ImageReadError
from engine.imageio.exif import TIFF_ORIENTATION_TAG
from engine.imageio.header import Header, Pixels


def read_header_tifffile(data: bytes, label: str | os.PathLike[str]) -> Header:
    """TIFF bytes → the :class:`Header` of the first page via tifffile, for layouts Pillow cannot
    parse (e.g. 16-bit grey + alpha).

    Raises:
        ImageReadError: tifffile cannot parse it either (a corrupt file).
    """
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            if not isinstance(page, tifffile.TiffPage):
                raise ValueError("first page is not a plain TIFF page")
            height, width = int(page.imagelength), int(page.imagewidth)
            icc = page.iccprofile or None
            tag = page.tags.get(TIFF_ORIENTATION_TAG)
            orientation = tag.value if tag is not None and isinstance(tag.value, int) else 1
            grey = page.photometric in (
                tifffile.PHOTOMETRIC.MINISBLACK,
                tifffile.PHOTOMETRIC.MINISWHITE,
            )
    except Exception:  # noqa: BLE001 - any parse failure is a corrupt file
        raise ImageReadError(label, REASON_CORRUPT) from None
    if orientation not in range(1, 9):
        orientation = 1
    mode = "L" if grey else "RGB"
    return Header(width, height, mode, icc, None, orientation, grey)


def decode_tifffile(data: bytes, header: Header) -> Pixels | None:
    """TIFF bytes → the first page's pixels as stored (uint8/uint16/bool/float, MINISWHITE
    inverted), or ``None`` for layouts left to Pillow (palette, CMYK, YCbCr, other axes, a size
    other than ``header``'s)."""
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
        return Pixels(np.ascontiguousarray(values), premultiplied)


def check_tiff_faithful(
    data: bytes, values: np.ndarray, why_not_tifffile: str, label: str | os.PathLike[str]
) -> None:
    """Refuse a fallback decode that lost bits or the alpha channel the TIFF declares.

    Pillow reads what tifffile could not (e.g. a codec missing), but converts 16-bit colour and
    alpha to 8-bit RGB(A); a 16-bit file is then refused with the reason, never silently downgraded.

    Raises:
        ImageReadError: naming ``label``, what was declared, what would be lost and why.
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


def encode_tiff(values: np.ndarray, icc: bytes | None, *, has_alpha: bool) -> bytes:
    """Integer pixels (H×W or H×W×C, uint8/uint16; the last channel alpha if ``has_alpha``) → a
    zlib-compressed TIFF's bytes with the ICC profile (tag 34675)."""
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
