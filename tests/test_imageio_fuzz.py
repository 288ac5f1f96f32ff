"""Fuzz engine.imageio.decode_image_bytes with mutated images of every supported format.

Small valid images are encoded in memory, then bytes are flipped, inserted, deleted, truncated or
spliced from another image. Whatever comes in, the decoder must either return a valid Image or raise
ImageReadError: no other exception, no hang, no warning leaking out.
"""

from __future__ import annotations

import functools
import io
import warnings

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from engine.imageio import Image, ImageReadError, decode_image_bytes


@functools.cache
def _seeds() -> tuple[tuple[str, bytes], ...]:
    """(name, encoded bytes) of small valid images of every format, depth and layout."""
    rng = np.random.default_rng(20240601)
    yy, xx = np.mgrid[0:12, 0:10]
    rgb = np.stack([yy * 20, xx * 25, (yy + xx) * 10], axis=2).astype(np.uint8)
    rgba = np.dstack([rgb, rng.integers(0, 256, (12, 10), dtype=np.uint8)])
    rgb16 = rng.integers(0, 65536, (12, 10, 3), dtype=np.uint16)

    def pil(array: np.ndarray, fmt: str, **options) -> bytes:
        buffer = io.BytesIO()
        PILImage.fromarray(array).save(buffer, fmt, **options)
        return buffer.getvalue()

    def tiff(array: np.ndarray, **options) -> bytes:
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array, **options)
        return buffer.getvalue()

    exif = PILImage.Exif()
    exif[0x0112] = 6
    return (
        ("png-rgb8", pil(rgb, "PNG")),
        ("png-rgba8-exif", pil(rgba, "PNG", exif=exif.tobytes())),
        ("png-grey8", pil(rgb[:, :, 0], "PNG")),
        ("png-rgb16", cv2.imencode(".png", rgb16)[1].tobytes()),
        ("jpeg", pil(rgb, "JPEG", quality=90, exif=exif.tobytes())),
        ("jpeg-progressive", pil(rgb, "JPEG", quality=80, progressive=True)),
        ("tiff-rgb8", tiff(rgb, photometric="rgb")),
        ("tiff-rgba16-zlib", tiff(np.dstack([rgb16, rgb16[:, :, :1]]), photometric="rgb",
                                  extrasamples=("unassalpha",), compression="zlib")),
        ("tiff-lzw", pil(rgb, "TIFF", compression="tiff_lzw")),
        ("tiff-greyalpha16-bigendian", tiff(np.dstack([rgb16[:, :, 0], rgb16[:, :, 1]]),
                                            photometric="minisblack", extrasamples=("unassalpha",),
                                            byteorder=">")),
        ("png-palette-trns", _pil_converted(rgb, "P", "PNG", transparency=3)),
        ("png-grey-trns", pil(rgb[:, :, 0], "PNG", transparency=40)),
        ("jpeg-cmyk", _pil_converted(rgb, "CMYK", "JPEG", quality=90)),
        ("bmp", pil(rgb, "BMP")),
        ("bmp-grey", pil(rgb[:, :, 0], "BMP")),
        ("webp-lossy", pil(rgb, "WEBP", quality=80)),
        ("webp-lossless-rgba", pil(rgba, "WEBP", lossless=True)),
    )


def _pil_converted(array: np.ndarray, mode: str, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).convert(mode).save(buffer, fmt, **options)
    return buffer.getvalue()


def _mutate(data: bytes, ops: list[tuple], other: bytes) -> bytes:
    buffer = bytearray(data)
    for op in ops:
        kind = op[0]
        size = max(len(buffer), 1)
        if kind == "flip":
            if buffer:
                buffer[op[1] % size] ^= 1 << op[2]
        elif kind == "set":
            if buffer:
                buffer[op[1] % size] = op[2]
        elif kind == "insert":
            pos = op[1] % (len(buffer) + 1)
            buffer[pos:pos] = op[2]
        elif kind == "delete":
            pos = op[1] % size
            del buffer[pos : pos + op[2]]
        elif kind == "truncate":
            del buffer[op[1] % size :]
        elif kind == "splice":
            start = op[1] % max(len(other), 1)
            piece = other[start : start + op[2]]
            pos = op[3] % size
            buffer[pos : pos + len(piece)] = piece
    return bytes(buffer)


# Positions are drawn mostly from the header region, where mutations change how files are parsed.
_position = st.one_of(st.integers(0, 96), st.integers(0, 1 << 16))
_operation = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(0, 7)),
    st.tuples(st.just("set"), _position, st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF])),
    st.tuples(st.just("insert"), _position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _position, st.integers(1, 64)),
    st.tuples(st.just("truncate"), _position),
    st.tuples(st.just("splice"), _position, st.integers(1, 256), _position),
)


@pytest.mark.timeout(90)
@settings(
    max_examples=200,
    deadline=2000,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed_index=st.integers(0, len(_seeds()) - 1),
    other_index=st.integers(0, len(_seeds()) - 1),
    ops=st.lists(_operation, min_size=1, max_size=4),
)
def test_mutated_images_only_raise_image_read_error(seed_index, other_index, ops):
    name, data = _seeds()[seed_index]
    mutated = _mutate(data, ops, _seeds()[other_index][1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the decoder is a failure too
        try:
            image = decode_image_bytes(mutated, f"{name}-mutated")
        except ImageReadError as error:
            assert error.reason and f"{name}-mutated" in str(error)
            return
    assert isinstance(image, Image)
    assert image.rgb_f32.dtype == np.float32 and image.rgb_f32.ndim == 3
    assert image.rgb_f32.shape[2] == 3 and min(image.rgb_f32.shape[:2]) >= 4
    assert np.isfinite(image.rgb_f32).all()
    assert image.rgb_f32.min() >= 0.0 and image.rgb_f32.max() <= 1.0
    if image.alpha_f32 is not None:
        assert image.alpha_f32.shape == image.rgb_f32.shape[:2]
        assert image.alpha_f32.min() >= 0.0 and image.alpha_f32.max() <= 1.0


def test_every_seed_decodes_unmutated():
    """The fuzz seeds themselves are valid (otherwise the fuzz test would prove little)."""
    for name, data in _seeds():
        image = decode_image_bytes(data, name)
        assert image.rgb_f32.shape[:2] in ((12, 10), (10, 12)), name
