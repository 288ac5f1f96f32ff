"""The two in-memory image types: :class:`Image` (float pixels, what the rest of Kernelscope sees)
and :class:`IntegerImage` (the integers a file stores, for results too large for a float copy).

Both carry the same metadata from an input file to an output file (:class:`CarriedMetadata`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from engine.imageio.convert import uint_to_float
from engine.imageio.jpegquality import JpegQuality


@dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class CarriedMetadata:
    """What an image carries from its input file to an output file (keyword-only fields).

    Attributes:
        icc_profile: raw ICC profile bytes, or ``None``.
        exif: raw EXIF as stored in a JPEG APP1 segment (``b"Exif\\0\\0"`` + TIFF structure), with the
            orientation already applied to the pixels and its tag reset to 1; or ``None``.
        source_path: absolute path of the file read, or ``None`` (bytes, or computed images).
            :func:`~engine.imageio.write.write_image` refuses to write onto this path.
        source_format: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"``, ``"webp"`` or ``None``.
        was_grey: the source had one colour channel (grey or grey + alpha); the pixels are still
            RGB here, and are written as RGB unless ``write_image(..., keep_grey=True)``.
    """

    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)
    source_path: Path | None = None
    source_format: str | None = None
    was_grey: bool = False

    def carried(self) -> dict[str, Any]:
        """The metadata fields by name (to give another image the same metadata and source)."""
        return {f.name: getattr(self, f.name) for f in fields(CarriedMetadata)}

    def _hw_array(self) -> np.ndarray:
        """The H×W×C array whose first two axes are the image's size."""
        raise NotImplementedError

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self._hw_array().shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self._hw_array().shape[1])


@dataclass(frozen=True, eq=False, repr=False)
class Image(CarriedMetadata):
    """Pixels plus the metadata worth carrying from an input file to an output file.

    Attributes:
        rgb_f32: H×W×3 ``float32``, RGB channel order, values in [0, 1].
        alpha_f32: H×W ``float32`` straight (not premultiplied) alpha in [0, 1], or ``None``.
        bit_depth: bits per channel of the source, 8 or 16 (float TIFF sources count as 16).
        icc_profile, exif, source_path, source_format, was_grey: keyword-only, see
            :class:`CarriedMetadata`.
        jpeg_quality: keyword-only; for a JPEG source, how strongly it was compressed
            (:class:`~engine.imageio.jpegquality.JpegQuality`), else ``None``. A fact of the file read, so
            images made from this one (:meth:`with_pixels`) do not carry it.
    """

    rgb_f32: np.ndarray
    alpha_f32: np.ndarray | None = None
    bit_depth: int = 8
    jpeg_quality: JpegQuality | None = field(default=None, kw_only=True)

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

    def _hw_array(self) -> np.ndarray:
        return self.rgb_f32

    @property
    def has_alpha(self) -> bool:
        """An alpha plane is present."""
        return self.alpha_f32 is not None

    def with_pixels(self, rgb_f32: np.ndarray, alpha_f32: np.ndarray | None = None) -> Image:
        """A copy with new pixels (e.g. the upscaled result) and this image's metadata and source.

        Keeping ``source_path`` means the result can never be written over the input file. The
        source file's ``jpeg_quality`` is not this copy's, so it is dropped.
        """
        return replace(self, rgb_f32=rgb_f32, alpha_f32=alpha_f32, jpeg_quality=None)


@dataclass(frozen=True, eq=False, repr=False)
class IntegerImage(CarriedMetadata):
    """An image held as the integers a file stores: what a large result is built as, strip by
    strip, so that no full-size float copy ever exists (a 16000×12000 RGB result is 576 MB as
    uint8, 2.3 GB as float32). :func:`~engine.imageio.write.write_image` writes it exactly as it
    writes the :class:`Image` whose :func:`~engine.imageio.convert.to_u8` /
    :func:`~engine.imageio.convert.to_u16` values these are.

    Attributes:
        pixels: H×W×3 (RGB) or H×W×4 (RGB + straight alpha), ``uint8`` (8 bit) or ``uint16`` (16 bit).
        icc_profile, exif, source_path, source_format, was_grey: keyword-only, see
            :class:`CarriedMetadata`.
    """

    pixels: np.ndarray

    def __post_init__(self) -> None:
        values = self.pixels
        if not isinstance(values, np.ndarray) or values.dtype not in (np.uint8, np.uint16):
            raise TypeError("IntegerImage.pixels must be a uint8 or uint16 numpy array")
        if values.ndim != 3 or values.shape[2] not in (3, 4):
            raise ValueError(f"IntegerImage.pixels must be H×W×3 or H×W×4, got shape {values.shape}")

    @classmethod
    def like(cls, image: Image, pixels: np.ndarray) -> IntegerImage:
        """``pixels`` (uint8/uint16 H×W×3/4) with ``image``'s metadata and source (so it is never
        written over its input)."""
        return cls(pixels, **image.carried())

    def __repr__(self) -> str:
        alpha = "+alpha" if self.has_alpha else ""
        return f"IntegerImage({self.width}×{self.height} RGB{alpha}, {self.bit_depth}-bit, source={self.source_path})"

    def _hw_array(self) -> np.ndarray:
        return self.pixels

    @property
    def bit_depth(self) -> int:
        """8 (uint8 pixels) or 16 (uint16)."""
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        """The pixels have a fourth (alpha) channel."""
        return self.pixels.shape[2] == 4

    @property
    def rgb_f32(self) -> np.ndarray:
        """A new full-size float32 copy of the colour in [0, 1] (what this class exists to avoid: costly)."""
        return uint_to_float(self.pixels[:, :, :3])

    @property
    def alpha_f32(self) -> np.ndarray | None:
        """A new float32 copy of the alpha in [0, 1], or ``None``."""
        return uint_to_float(self.pixels[:, :, 3]) if self.has_alpha else None
