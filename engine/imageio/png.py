"""PNG: chunk walking, the structure checks run before decoding, decoding through libspng
(``pyspng``), and the encoder.

The encoder uses the Sub filter on every row and zlib level 1 with the RLE strategy, strips
deflated in parallel: the settings OpenCV uses by default, as fast and as small.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pyspng

from engine.imageio.exif import EXIF_PREFIX
from engine.imageio.formats import PNG_SIGNATURE
from engine.imageio.header import Header, Pixels

_PNG_CRITICAL_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND"})
_DEFLATE_MAX_RATIO = 1100  # deflate cannot compress better than about 1032:1
_PNG_ZLIB_LEVEL = 1
PNG_STRIP_BYTES = 4 << 20
"""Filtered bytes per parallel deflate strip."""
_PNG_MAX_THREADS = 4
_PNG_IDAT_BYTES = 1 << 20  # largest IDAT chunk written


# --------------------------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------------------------


def png_chunks(data: bytes):
    """PNG bytes → yields (type, payload start, payload end) for each complete chunk."""
    pos = len(PNG_SIGNATURE)
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


def png_find_chunk(data: bytes, kind: bytes, *, before_idat: bool = False) -> bytes | None:
    """PNG bytes → payload of the first chunk of this type (only up to the first IDAT if
    ``before_idat``), or ``None``."""
    for chunk_kind, start, end in png_chunks(data):
        if chunk_kind == kind:
            return data[start:end]
        if before_idat and chunk_kind == b"IDAT":
            return None
    return None


def png_chunk(kind: bytes, payload: bytes | memoryview) -> bytes:
    """A chunk's type and payload → the chunk's bytes (length, type, payload, CRC)."""
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return len(payload).to_bytes(4, "big") + kind + payload + crc.to_bytes(4, "big")


def png_is_animated(data: bytes) -> bool:
    """An APNG: an ``acTL`` chunk before the image data."""
    return png_find_chunk(data, b"acTL", before_idat=True) is not None


def png_stores_grey(data: bytes) -> bool:
    """The IHDR colour type is grey or grey + alpha (Pillow reports 16-bit grey + alpha as RGBA)."""
    return len(data) > 25 and data[25] in (0, 4)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def png_structure_plausible(data: bytes, header: Header) -> bool:
    """Cheap checks before the PNG decoder sees the data (it allocates what the file claims first).

    False if a chunk's declared length runs past the end of the data (the file was cut short, or a
    length field is corrupt), if a critical chunk (IHDR, PLTE, IDAT, IEND) fails its CRC (libpng
    refuses those; libspng is run without CRC checks), or if the IDAT data is too small to hold the
    pixels the header claims even at deflate's best ratio (about 1032:1).
    """
    view = memoryview(data)
    pos, idat_bytes = len(PNG_SIGNATURE), 0
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


def decode_png(data: bytes, header: Header) -> Pixels | None:
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
    trns = png_find_chunk(data, b"tRNS", before_idat=True)
    if colour_type == 3:
        if trns:
            return Pixels(_png_palette_rgba(data, trns), premultiplied=False)
        return Pixels(pyspng.load(data, "RGB"), premultiplied=False)
    if colour_type == 4:  # grey + alpha: through RGBA, then the grey and alpha planes
        if bits == 16:
            rgba = pyspng.c.spng_decode_image_bytes(data, pyspng.c.SPNG_FMT_RGBA16)
        else:
            rgba = pyspng.load(data, "RGBA")
        return Pixels(rgba[:, :, [0, 3]], premultiplied=False)
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
        return Pixels(values, premultiplied=False)
    top = (1 << bits) - 1
    key = [int.from_bytes(trns[i : i + 2], "big") for i in range(0, 2 if colour_type == 0 else 6, 2)]
    if len(trns) < 2 * len(key) or max(key) > top:
        return Pixels(values, premultiplied=False)  # malformed key: ignored, as libpng does
    if bits < 8:
        key = [k * (255 // top) for k in key]
    if colour_type == 0:
        keyed = values == key[0]
    else:
        keyed = np.all(values == np.array(key, dtype=values.dtype), axis=2)
    maximum = np.iinfo(values.dtype).max
    alpha = np.where(keyed, values.dtype.type(0), values.dtype.type(maximum))
    colour = values[:, :, None] if values.ndim == 2 else values
    return Pixels(np.dstack([colour, alpha]), premultiplied=False)


def _png_palette_rgba(data: bytes, trns: bytes) -> np.ndarray:
    """RGBA uint8 (H×W×4) of an indexed PNG with tRNS alphas.

    libspng cannot return palette indices, so the PLTE entries are replaced by ``(i, i, i)`` and
    the image decoded as RGB: its red plane is then the index plane, which looks up the real
    colours and the tRNS alphas (255 beyond the end of tRNS, as the PNG standard says).
    """
    for kind, start, end in png_chunks(data):
        if kind == b"PLTE":
            break
    else:
        raise ValueError("indexed PNG without PLTE")
    entries = (end - start) // 3
    index_palette = np.repeat(np.arange(entries, dtype=np.uint8), 3).tobytes()
    recoded = data[: start - 8] + png_chunk(b"PLTE", index_palette) + data[end + 4 :]
    index = pyspng.load(recoded, "RGB")[:, :, 0]
    lut = np.zeros((256, 4), np.uint8)
    lut[:entries, :3] = np.frombuffer(data, np.uint8, entries * 3, start).reshape(entries, 3)
    lut[:entries, 3] = 255
    lut[: min(entries, len(trns)), 3] = np.frombuffer(trns, np.uint8)[:entries]
    return lut[index]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def encode_png(values: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytearray:
    """Integer pixels (H×W grey or H×W×C with C in 2..4: grey+alpha, RGB, RGBA; uint8 or uint16)
    → the PNG's bytes, with the ICC profile (``iCCP``) and EXIF (``eXIf``) before the image data."""
    height, width = values.shape[:2]
    channels = 1 if values.ndim == 2 else values.shape[2]
    depth = 16 if values.dtype == np.uint16 else 8
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    chunks = [PNG_SIGNATURE, png_chunk(b"IHDR", ihdr)]
    if icc:
        chunks.append(png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append(png_chunk(b"eXIf", exif[len(EXIF_PREFIX) :]))
    # One growing buffer (no list of chunks joined at the end: the compressed image exists once).
    out = bytearray(b"".join(chunks))
    pending = bytearray()
    for piece in png_deflate(values):  # IDAT chunks of _PNG_IDAT_BYTES, the last one shorter
        pending += piece
        while len(pending) >= _PNG_IDAT_BYTES:
            out += png_chunk(b"IDAT", pending[:_PNG_IDAT_BYTES])
            del pending[:_PNG_IDAT_BYTES]
    if pending:
        out += png_chunk(b"IDAT", pending)
    out += png_chunk(b"IEND", b"")
    return out


def png_filter_sub(values: np.ndarray) -> np.ndarray:
    """Integer pixels (H×W or H×W×C, uint8/uint16) → PNG scanlines with filter type 1 (Sub) on
    every row: (H, 1 + row bytes) uint8.

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


def png_deflate(values: np.ndarray) -> Iterator[bytes]:
    """Integer pixels → yields, in pieces, one zlib stream of their Sub-filtered scanlines (level 1,
    RLE strategy), compressed in parallel.

    Strips of whole rows are filtered and deflated independently (raw deflate, each ended by a sync
    flush so it stops on a byte boundary) and concatenated, as pigz does; the stream's Adler-32 is
    computed over all the filtered data, a strip at a time. No full-size filtered copy exists:
    memory is the strips in flight plus the compressed output. zlib releases the GIL, so threads
    compress strips at the same time.
    """
    row_bytes = 1 + values[0].size * values.dtype.itemsize
    rows_per_strip = max(1, PNG_STRIP_BYTES // row_bytes)
    starts = list(range(0, values.shape[0], rows_per_strip))
    last = len(starts) - 1

    def deflate(index: int) -> bytes:
        r0 = starts[index]
        compressor = zlib.compressobj(_PNG_ZLIB_LEVEL, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
        body = compressor.compress(png_filter_sub(values[r0 : r0 + rows_per_strip]))
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
        adler = zlib.adler32(png_filter_sub(values[r0 : r0 + rows_per_strip]), adler)
    yield adler.to_bytes(4, "big")
