"""Robust image reading and writing: PNG, JPEG, TIFF, BMP and WebP, 8 and 16 bit.

Everything the rest of Kernelscope sees of an image file is one :class:`Image`: RGB pixels as
``float32`` in [0, 1] (H×W×3, RGB order), an optional alpha plane (H×W, [0, 1], straight, not
premultiplied), and the metadata worth carrying to the output (ICC profile, EXIF).

One job per module; import the names below from this package:

===============  ==============================================================================
``image``        :class:`Image`, :class:`IntegerImage` and the metadata they carry
``convert``      float [0, 1] ↔ uint8/uint16 (:func:`to_u8`, the one float → uint8 conversion)
``errors``       :class:`ImageIOError` and its kinds, the user-readable reasons
``formats``      suffixes, what each format stores, recognising a format by its bytes
``read``         :func:`read_image`, :func:`decode_image_bytes`, the size limits, the decoder chain
``write``        :func:`write_image`, :func:`write_bytes_atomically` (atomic publishing)
``header``       the parsed header and decoded pixels the readers hand on
``exif``         EXIF normal form and orientation
``png``          PNG checks, libspng decoding, the PNG encoder
``jpeg``         JPEG checks and encoder; ``bmp``, ``webp``: their checks (and WebP's encoder)
``jpegquality``  a JPEG's quality setting from its quantisation table (:class:`JpegQuality`)
``tiff``         TIFF through tifffile: header fallback, decoding, faithfulness check, encoder
``pillow``       Pillow's header parsing, decoding and encoding
===============  ==============================================================================
"""

from engine.imageio.convert import rgb_to_u8, rgb_to_u16, to_u8, to_u16
from engine.imageio.errors import ImageIOError, ImageReadError, ImageWriteError, OutputExistsError
from engine.imageio.formats import READ_SUFFIXES, WRITE_SUFFIXES, format_for_suffix
from engine.imageio.image import Image, IntegerImage
from engine.imageio.read import MAX_FILE_BYTES, MAX_PIXELS, MAX_SIDE, MIN_SIDE, decode_image_bytes, read_image
from engine.imageio.write import write_bytes_atomically, write_image

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "READ_SUFFIXES",
    "WRITE_SUFFIXES",
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
    "to_u16",
    "to_u8",
    "write_bytes_atomically",
    "write_image",
]
