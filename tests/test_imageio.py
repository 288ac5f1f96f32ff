"""Tests for engine.imageio: formats, depths, layouts, metadata, atomic writes and bad input."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from engine.imageio import png as imageio_png
from engine.imageio import read as imageio_read
from engine.imageio import write as imageio_write
from engine.imageio import (
    MAX_SIDE,
    MIN_SIDE,
    Image,
    ImageReadError,
    ImageWriteError,
    decode_image_bytes,
    read_image,
    rgb_to_u8,
    rgb_to_u16,
    write_image,
)

LAYOUTS = ("grey", "grey_alpha", "rgb", "rgba")
CHANNELS = {"grey": 1, "grey_alpha": 2, "rgb": 3, "rgba": 4}
ALPHA_FORMATS = {"png", "tiff", "webp"}
SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "webp": ".webp"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _random_ints(rng: np.random.Generator, layout: str, depth: int, h: int = 12, w: int = 17):
    """Random integer pixels H×W×C for a layout (channel order: grey[, alpha] or RGB[A])."""
    dtype = np.uint16 if depth == 16 else np.uint8
    top = 65536 if depth == 16 else 256
    return rng.integers(0, top, size=(h, w, CHANNELS[layout]), dtype=dtype)


def _as_image(ints: np.ndarray, depth: int, **meta) -> Image:
    """An Image holding the exact values of integer pixels (grey expanded to RGB)."""
    scale = 65535.0 if depth == 16 else 255.0
    values = ints.astype(np.float32) / np.float32(scale)
    channels = ints.shape[2]
    colour = values[:, :, :3] if channels >= 3 else np.repeat(values[:, :, :1], 3, axis=2)
    alpha = values[:, :, -1] if channels in (2, 4) else None
    return Image(
        rgb_f32=np.ascontiguousarray(colour),
        alpha_f32=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=depth,
        was_grey=channels in (1, 2),
        **meta,
    )


def _expected_rgb_ints(ints: np.ndarray) -> np.ndarray:
    colour = ints[:, :, :3] if ints.shape[2] >= 3 else np.repeat(ints[:, :, :1], 3, axis=2)
    return colour


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _raw_png(ints: np.ndarray | None, *, width=None, height=None, depth=8, colour_type=None) -> bytes:
    """A PNG written by hand (independent of the code under test).

    With ``ints`` (H×W×C, uint8/uint16) a real image; without, a header claiming width×height
    followed by a tiny IDAT (a decompression-bomb style file).
    """
    if ints is not None:
        height, width, channels = ints.shape
        depth = 16 if ints.dtype == np.uint16 else 8
        colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
        rows = ints.astype(">u2" if depth == 16 else "u1").reshape(height, -1).view(np.uint8)
        raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()
    else:
        colour_type = 2 if colour_type is None else colour_type
        raw = b"\x00" * 64
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _pil_bytes(pil_image: PILImage.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    pil_image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif_bytes(orientation: int | None = None) -> bytes:
    exif = PILImage.Exif()
    exif[0x010F] = "Kernelscope Test Camera"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    return exif.tobytes()


def _quadrants(h: int = 32, w: int = 48) -> np.ndarray:
    """uint8 RGB picture with four flat, distinct quadrants (orientation survives JPEG)."""
    out = np.zeros((h, w, 3), np.uint8)
    out[: h // 2, : w // 2] = (230, 20, 20)
    out[: h // 2, w // 2 :] = (20, 230, 20)
    out[h // 2 :, : w // 2] = (20, 20, 230)
    out[h // 2 :, w // 2 :] = (230, 230, 20)
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


# ---------------------------------------------------------------------------------------------
# reading files made by independent encoders
# ---------------------------------------------------------------------------------------------


def _encode_independently(ints: np.ndarray, fmt: str, depth: int) -> bytes:
    channels = ints.shape[2]
    if fmt == "png":
        return _raw_png(ints)
    if fmt == "tiff":
        buffer = io.BytesIO()
        tifffile.imwrite(
            buffer,
            ints if channels > 1 else ints[:, :, 0],
            photometric="rgb" if channels >= 3 else "minisblack",
            extrasamples=("unassalpha",) if channels in (2, 4) else None,
        )
        return buffer.getvalue()
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    pil = PILImage.fromarray(ints if channels > 1 else ints[:, :, 0], mode)
    if fmt == "webp":
        return _pil_bytes(pil, "WEBP", lossless=True, exact=True)
    if fmt == "bmp":
        return _pil_bytes(pil, "BMP")
    return _pil_bytes(pil, "JPEG", quality=95)


READ_CASES = (
    [("png", d, lay) for d in (8, 16) for lay in LAYOUTS]
    + [("tiff", d, lay) for d in (8, 16) for lay in LAYOUTS]
    + [("webp", 8, lay) for lay in ("rgb", "rgba")]
    + [("bmp", 8, lay) for lay in ("grey", "rgb")]
    + [("jpeg", 8, lay) for lay in ("grey", "rgb")]
)


@pytest.mark.parametrize(("fmt", "depth", "layout"), READ_CASES)
def test_read_independently_encoded(tmp_path, fmt, depth, layout):
    rng = np.random.default_rng(zlib.crc32(f"{fmt}{depth}{layout}".encode()))
    if fmt == "jpeg":  # lossy: use a smooth picture and a quality bound
        yy, xx = np.mgrid[0:24, 0:32]
        base = np.stack([yy * 8, xx * 6, (yy + xx) * 4], axis=2).astype(np.uint8)
        ints = base if layout == "rgb" else base[:, :, :1]
    else:
        ints = _random_ints(rng, layout, depth)
    path = tmp_path / f"in{SUFFIX[fmt]}"
    path.write_bytes(_encode_independently(ints, fmt, depth))

    image = read_image(path)

    scale = 65535.0 if depth == 16 else 255.0
    assert image.rgb_f32.dtype == np.float32 and image.rgb_f32.shape == ints.shape[:2] + (3,)
    assert image.bit_depth == depth
    assert image.source_format == fmt
    assert image.was_grey == (layout in ("grey", "grey_alpha"))
    assert image.source_path == path.absolute()
    expected = _expected_rgb_ints(ints).astype(np.float32) / np.float32(scale)
    if fmt == "jpeg":
        assert _psnr(image.rgb_f32, expected) > 35.0
    else:
        np.testing.assert_array_equal(np.rint(image.rgb_f32 * scale), _expected_rgb_ints(ints))
    if CHANNELS[layout] in (2, 4):
        assert image.alpha_f32 is not None
        np.testing.assert_array_equal(np.rint(image.alpha_f32 * scale), ints[:, :, -1])
    else:
        assert image.alpha_f32 is None


def test_shared_grey_png_loads_as_rgb(shared_data):
    path = shared_data / "benchmarks" / "Set14" / "bridge.png"
    with PILImage.open(path) as pil:
        assert pil.mode == "L"  # the quirk this test is about
        grey = np.asarray(pil)
    image = read_image(path)
    assert image.was_grey
    assert image.rgb_f32.shape == grey.shape + (3,)
    np.testing.assert_array_equal(image.rgb_f32[:, :, 0], image.rgb_f32[:, :, 2])
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32[:, :, 1]), grey)


def test_quirky_inputs_palette_trns_lzw_cmyk_miniswhite(tmp_path):
    rng = np.random.default_rng(7)
    grey = rng.integers(0, 256, (10, 9), dtype=np.uint8)
    rgb = rng.integers(0, 256, (10, 9, 3), dtype=np.uint8)

    # grey PNG with a tRNS colour key: the keyed value becomes transparent
    key = int(grey[0, 0])
    image = decode_image_bytes(_pil_bytes(PILImage.fromarray(grey), "PNG", transparency=key), "t.png")
    assert image.alpha_f32 is not None
    np.testing.assert_array_equal(image.alpha_f32 == 0, grey == key)

    # palette PNG with transparency
    pal = PILImage.fromarray(grey).convert("P")
    image = decode_image_bytes(_pil_bytes(pal, "PNG", transparency=3), "p.png")
    assert image.alpha_f32 is not None and image.rgb_f32.shape == (10, 9, 3)

    # LZW TIFF (tifffile cannot decode it without imagecodecs: a fallback decoder must)
    data = _pil_bytes(PILImage.fromarray(rgb), "TIFF", compression="tiff_lzw")
    image = decode_image_bytes(data, "lzw.tif")
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), rgb)

    # CMYK JPEG comes out as 3-channel RGB
    cmyk = PILImage.fromarray(rgb).convert("CMYK")
    image = decode_image_bytes(_pil_bytes(cmyk, "JPEG", quality=95), "cmyk.jpg")
    assert image.rgb_f32.shape == (10, 9, 3) and image.alpha_f32 is None

    # min-is-white TIFF is inverted to normal grey
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, grey, photometric="miniswhite")
    image = decode_image_bytes(buffer.getvalue(), "mw.tif")
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32[:, :, 0]), 255 - grey)


def test_decode_image_bytes_has_no_source_path():
    ints = _random_ints(np.random.default_rng(1), "rgb", 8)
    image = decode_image_bytes(_raw_png(ints), "clipboard")
    assert image.source_path is None and image.source_format == "png"
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), ints)


def test_format_is_recognised_by_content_not_suffix(tmp_path):
    ints = _random_ints(np.random.default_rng(2), "rgb", 8)
    path = tmp_path / "actually_png.jpg"
    path.write_bytes(_raw_png(ints))
    image = read_image(path)
    assert image.source_format == "png"
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), ints)


# ---------------------------------------------------------------------------------------------
# write → read round trips
# ---------------------------------------------------------------------------------------------

WRITE_CASES = [
    (f, d, lay, keep)
    for f, depths in (("png", (8, 16)), ("tiff", (8, 16)), ("webp", (8,)), ("bmp", (8,)), ("jpeg", (8,)))
    for d in depths
    for lay in LAYOUTS
    for keep in ((False, True) if lay in ("grey", "grey_alpha") else (False,))
]


@pytest.mark.parametrize(("fmt", "depth", "layout", "keep_grey"), WRITE_CASES)
def test_write_read_round_trip(tmp_path, fmt, depth, layout, keep_grey):
    rng = np.random.default_rng(zlib.crc32(f"{fmt}{depth}{layout}".encode()))
    if fmt == "jpeg":
        yy, xx = np.mgrid[0:24, 0:32]
        smooth = np.stack([yy * 8, xx * 6, (yy + xx) * 4, 255 - yy * 5], axis=2).astype(np.uint8)
        ints = smooth[:, :, {"grey": [0], "grey_alpha": [0, 3], "rgb": [0, 1, 2], "rgba": [0, 1, 2, 3]}[layout]]
    else:
        ints = _random_ints(rng, layout, depth)
    source = _as_image(ints, depth)
    target = tmp_path / f"out{SUFFIX[fmt]}"

    written = write_image(target, source, quality=100, keep_grey=keep_grey)
    assert written == target and target.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temp file left

    back = read_image(target)
    stored_depth = depth if fmt in ("png", "tiff") else 8
    assert back.bit_depth == stored_depth
    expected = _expected_rgb_ints(ints).astype(np.float32) / np.float32(
        65535.0 if depth == 16 else 255.0
    )
    if fmt == "jpeg":
        assert _psnr(back.rgb_f32, expected) > 38.0
    elif stored_depth == 16:
        np.testing.assert_array_equal(rgb_to_u16(back.rgb_f32), _expected_rgb_ints(ints))
    else:
        assert np.max(np.abs(back.rgb_f32 - expected)) <= 1.0 / 255.0 + 1e-6

    has_alpha = CHANNELS[layout] in (2, 4)
    if has_alpha and fmt in ALPHA_FORMATS:
        assert back.alpha_f32 is not None
        if stored_depth == 16:
            np.testing.assert_array_equal(rgb_to_u16(back.alpha_f32), ints[:, :, -1])
        else:
            expected_alpha = ints[:, :, -1].astype(np.float32) / 255.0
            assert np.max(np.abs(back.alpha_f32 - expected_alpha)) <= 1.0 / 255.0 + 1e-6
    else:
        assert back.alpha_f32 is None

    grey_stored = keep_grey and fmt in ("png", "tiff", "jpeg", "bmp")
    grey_stored = grey_stored and not (fmt == "png" and has_alpha)
    assert back.was_grey == grey_stored


def test_written_files_are_standard(tmp_path):
    """Independent decoders read what write_image wrote (16-bit PNG, 16-bit RGBA TIFF, 8-bit JPEG)."""
    rng = np.random.default_rng(3)
    rgb16 = _random_ints(rng, "rgb", 16)
    write_image(tmp_path / "a.png", _as_image(rgb16, 16))
    decoded = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[:, :, ::-1], rgb16)

    rgba16 = _random_ints(rng, "rgba", 16)
    write_image(tmp_path / "a.tif", _as_image(rgba16, 16))
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        np.testing.assert_array_equal(tif.pages[0].asarray(), rgba16)
        assert tif.pages[0].extrasamples[0] == tifffile.EXTRASAMPLE.UNASSALPHA

    write_image(tmp_path / "a.jpg", _as_image(_random_ints(rng, "rgba", 8), 8))
    with PILImage.open(tmp_path / "a.jpg") as pil:
        assert pil.format == "JPEG" and pil.mode == "RGB"


def test_bit_depth_argument_and_8bit_only_formats(tmp_path):
    ints = _random_ints(np.random.default_rng(4), "rgb", 8)
    image = _as_image(ints, 8)
    write_image(tmp_path / "up.png", image, bit_depth=16)
    assert read_image(tmp_path / "up.png").bit_depth == 16
    image16 = _as_image(_random_ints(np.random.default_rng(5), "rgb", 16), 16)
    write_image(tmp_path / "down.png", image16, bit_depth=8)
    assert read_image(tmp_path / "down.png").bit_depth == 8
    write_image(tmp_path / "x.webp", image16, quality=100)
    assert read_image(tmp_path / "x.webp").bit_depth == 8
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", image, bit_depth=12)
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.jpg", image, quality=0)


def test_dropping_alpha_is_logged(tmp_path, caplog):
    image = _as_image(_random_ints(np.random.default_rng(6), "rgba", 8), 8)
    with caplog.at_level("WARNING", logger="engine.imageio"):
        write_image(tmp_path / "a.jpg", image)
    assert any("alpha" in record.getMessage() for record in caplog.records)
    assert read_image(tmp_path / "a.jpg").alpha_f32 is None


def test_float_to_int_helpers_round_clip_and_handle_nan():
    values = np.array([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 7.0, np.nan], np.float32)
    np.testing.assert_array_equal(rgb_to_u8(values), [0, 0, 0, 1, 128, 255, 255, 0])
    np.testing.assert_array_equal(rgb_to_u16(values)[[0, 4, 5, 6, 7]], [0, 32768, 65535, 65535, 0])
    ints = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(rgb_to_u16(ints.astype(np.float32) / 65535.0), ints)


def test_image_validates_its_arrays():
    with pytest.raises(ValueError):
        Image(rgb_f32=np.zeros((4, 4), np.float32))
    with pytest.raises(TypeError):
        Image(rgb_f32=np.zeros((4, 4, 3), np.float64))
    with pytest.raises(ValueError):
        Image(rgb_f32=np.zeros((4, 4, 3), np.float32), alpha_f32=np.zeros((4, 5), np.float32))
    base = Image(rgb_f32=np.zeros((4, 4, 3), np.float32), source_path=Path("/x/in.png"))
    upscaled = base.with_pixels(np.ones((16, 16, 3), np.float32))
    assert upscaled.source_path == Path("/x/in.png") and upscaled.width == 16


# ---------------------------------------------------------------------------------------------
# metadata: EXIF orientation, ICC and EXIF carried through
# ---------------------------------------------------------------------------------------------


def test_jpeg_orientation_6_is_rotated_and_reset(tmp_path):
    pixels = _quadrants()  # 32×48
    path = tmp_path / "rotated.jpg"
    path.write_bytes(
        _pil_bytes(PILImage.fromarray(pixels), "JPEG", quality=95, exif=_exif_bytes(6))
    )
    image = read_image(path)
    assert image.rgb_f32.shape == (48, 32, 3)  # turned upright
    # 6 means "turn 90° clockwise to view": the red top-left quadrant ends up top-right
    np.testing.assert_allclose(image.rgb_f32[2, -2], np.array([230, 20, 20]) / 255.0, atol=0.03)
    np.testing.assert_allclose(image.rgb_f32[2, 2], np.array([20, 20, 230]) / 255.0, atol=0.03)
    with PILImage.open(path) as pil:
        upright = np.asarray(ImageOps.exif_transpose(pil)).astype(np.float32) / 255.0
    assert _psnr(image.rgb_f32, upright) > 40.0
    exif = PILImage.Exif()
    exif.load(image.exif)
    assert exif.get(0x0112, 1) == 1
    assert exif[0x010F] == "Kernelscope Test Camera"

    write_image(tmp_path / "out.jpg", image)  # not rotated a second time by viewers
    with PILImage.open(tmp_path / "out.jpg") as pil:
        assert pil.size == (32, 48)
        assert pil.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_orientations_match_pillow(orientation):
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    data = _pil_bytes(PILImage.fromarray(pixels), "PNG", exif=_exif_bytes(orientation))
    image = decode_image_bytes(data, "o.png")
    with PILImage.open(io.BytesIO(data)) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil))
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), expected)


@pytest.mark.parametrize(
    ("source_fmt", "target_fmt", "depth"),
    [("png", "png", 8), ("png", "tiff", 16), ("jpeg", "jpeg", 8), ("png", "webp", 8)],
)
def test_icc_profile_carried_through(tmp_path, source_fmt, target_fmt, depth):
    icc = _srgb_icc()
    pixels = np.random.default_rng(8).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    source = tmp_path / f"in{SUFFIX[source_fmt]}"
    pil_fmt = {"png": "PNG", "jpeg": "JPEG"}[source_fmt]
    source.write_bytes(
        _pil_bytes(PILImage.fromarray(pixels), pil_fmt, icc_profile=icc, exif=_exif_bytes())
    )
    image = read_image(source)
    assert image.icc_profile == icc

    target = tmp_path / f"out{SUFFIX[target_fmt]}"
    write_image(target, image, bit_depth=depth)
    with PILImage.open(target) as pil:  # an independent reader sees the profile
        assert pil.info.get("icc_profile") == icc
        if target_fmt != "tiff":
            assert pil.getexif().get(0x010F) == "Kernelscope Test Camera"
    if target_fmt == "tiff":
        with tifffile.TiffFile(target) as tif:
            assert tif.pages[0].iccprofile == icc
            assert tif.pages[0].dtype == np.uint16
    back = read_image(target)
    assert back.icc_profile == icc
    assert back.bit_depth == depth


def test_png_exif_after_idat_is_found():
    ints = _random_ints(np.random.default_rng(9), "rgb", 8)
    png = _raw_png(ints)
    exif_tiff = _exif_bytes(3)[6:]  # Pillow's bytes start with b"Exif\0\0"
    cut = png.rindex(b"IEND") - 4
    data = png[:cut] + _png_chunk(b"eXIf", exif_tiff) + png[cut:]
    image = decode_image_bytes(data, "late-exif.png")
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), ints[::-1, ::-1])


# ---------------------------------------------------------------------------------------------
# atomic writes and refusals
# ---------------------------------------------------------------------------------------------


def test_encoding_failure_leaves_nothing(tmp_path, monkeypatch):
    image = _as_image(_random_ints(np.random.default_rng(10), "rgb", 8), 8)

    def broken_encoder(*args, **kwargs):
        raise RuntimeError("simulated encoder crash")

    monkeypatch.setattr(imageio_write, "encode_png", broken_encoder)
    with pytest.raises(ImageWriteError, match="could not encode"):
        write_image(tmp_path / "out.png", image)
    assert list(tmp_path.iterdir()) == []


def test_disk_failure_during_write_leaves_no_temp_and_keeps_old_file(tmp_path, monkeypatch):
    image = _as_image(_random_ints(np.random.default_rng(11), "rgb", 8), 8)
    target = tmp_path / "out.png"
    target.write_bytes(b"old contents")

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ImageWriteError, match="No space left"):
        write_image(target, image, overwrite=True)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert target.read_bytes() == b"old contents"


def test_overwrite_rules(tmp_path):
    image = _as_image(_random_ints(np.random.default_rng(12), "rgb", 8), 8)
    target = tmp_path / "out.png"
    write_image(target, image)
    first = target.read_bytes()
    with pytest.raises(ImageWriteError, match="already exists"):
        write_image(target, image)
    brighter = image.with_pixels(np.clip(image.rgb_f32 + 0.25, 0, 1).astype(np.float32))
    write_image(target, brighter, overwrite=True)
    assert target.read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_never_overwrites_the_input(tmp_path):
    source = tmp_path / "input.png"
    source.write_bytes(_raw_png(_random_ints(np.random.default_rng(13), "rgb", 8)))
    original = source.read_bytes()
    image = read_image(source)
    (tmp_path / "sub").mkdir()
    os.link(source, tmp_path / "hardlink.png")
    for spelling in (source, tmp_path / "sub" / ".." / "input.png", tmp_path / "hardlink.png"):
        with pytest.raises(ImageWriteError, match="refusing to overwrite the input") as info:
            write_image(spelling, image, overwrite=True)
        assert str(spelling) in str(info.value)
    upscaled = image.with_pixels(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ImageWriteError, match="input"):
        write_image(source, upscaled, overwrite=True)
    assert source.read_bytes() == original


def test_write_refusals_name_the_problem(tmp_path):
    image = _as_image(_random_ints(np.random.default_rng(14), "rgb", 8), 8)
    with pytest.raises(ImageWriteError, match="unsupported output format '.gif'"):
        write_image(tmp_path / "x.gif", image)
    with pytest.raises(ImageWriteError, match="folder does not exist"):
        write_image(tmp_path / "missing" / "x.png", image)
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageWriteError, match="is a folder"):
        write_image(tmp_path / "dir.png", image, overwrite=True)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff", "webp", "bmp"])
def test_non_ascii_paths(tmp_path, fmt):
    folder = tmp_path / "ordner ünï"
    folder.mkdir()
    path = folder / f"ünïcødé 画像{SUFFIX[fmt]}"
    ints = _random_ints(np.random.default_rng(15), "rgb", 8)
    write_image(path, _as_image(ints, 8), quality=100)
    image = read_image(path)
    assert image.source_path == path.absolute()
    if fmt != "jpeg":
        np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), ints)


# ---------------------------------------------------------------------------------------------
# bad input: ImageReadError with a readable reason, no warnings leaking
# ---------------------------------------------------------------------------------------------


def _assert_read_error(path: Path, reason: str) -> ImageReadError:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert reason in info.value.reason
    assert str(path) in str(info.value) and reason in str(info.value)
    return info.value


pytestmark_bad = pytest.mark.filterwarnings("error")


@pytestmark_bad
def test_missing_file_and_folder(tmp_path):
    _assert_read_error(tmp_path / "nope.png", "file not found")
    _assert_read_error(tmp_path, "is a folder")


@pytestmark_bad
def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_read_error(path, "file is empty")
    with pytest.raises(ImageReadError, match="file is empty"):
        decode_image_bytes(b"", "pasted")


@pytestmark_bad
@pytest.mark.parametrize(
    "relative", ["benchmarks/Set5/butterfly.png", "train/bsds400/100007.jpg"]
)
def test_real_file_cut_in_half(tmp_path, shared_data, relative):
    data = (shared_data / relative).read_bytes()
    path = tmp_path / ("half" + Path(relative).suffix)
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "truncated or corrupt image data")


@pytestmark_bad
def test_jpeg_missing_only_its_last_bytes(tmp_path):
    data = _pil_bytes(PILImage.fromarray(_quadrants(64, 64)), "JPEG", quality=90)
    path = tmp_path / "short.jpg"
    path.write_bytes(data[:-40])
    _assert_read_error(path, "truncated or corrupt image data")


@pytestmark_bad
def test_jpeg_with_thousands_of_scans_is_refused():
    data = _pil_bytes(PILImage.fromarray(_quadrants()), "JPEG", quality=90)
    eoi = data.rindex(b"\xff\xd9")
    scan = data.index(b"\xff\xda")
    header = struct.unpack(">H", data[scan + 2 : scan + 4])[0]
    sos_segment = data[scan : scan + 2 + header]
    flood = data[:eoi] + sos_segment * 1200 + data[eoi:]  # a scan-bomb shape (empty scans)
    with pytest.raises(ImageReadError, match="too many JPEG scans"):
        decode_image_bytes(flood, "scans.jpg")
    # the same bytes tucked into a comment segment before the scan are not scans
    comment = b"\xff\xfe" + struct.pack(">H", 2 + 4 * 1200) + b"\xff\xda\x00\x00" * 1200
    image = decode_image_bytes(data[:2] + comment + data[2:], "comment.jpg")
    assert image.rgb_f32.shape == (32, 48, 3)


@pytestmark_bad
def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("These are my holiday notes, not a picture.\n", encoding="utf-8")
    _assert_read_error(path, "not an image (unrecognised format)")


@pytestmark_bad
def test_unsupported_format_is_named(tmp_path):
    path = tmp_path / "anim.gif"
    path.write_bytes(_pil_bytes(PILImage.new("RGB", (8, 8), (1, 2, 3)), "GIF"))
    error = _assert_read_error(path, "unsupported format: GIF")
    assert "PNG, JPEG" in error.reason


@pytestmark_bad
def test_decompression_bomb_is_refused_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(imageio_read, "decode_pixels", lambda *args: pytest.fail("pixels decoded"))
    path = tmp_path / "bomb.png"
    path.write_bytes(_raw_png(None, width=50000, height=50000))
    assert path.stat().st_size < 200
    tracemalloc.start()
    try:
        error = _assert_read_error(path, "image too large: 50000×50000 px exceeds the limit")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "megapixels" in error.reason
    assert peak < 5_000_000  # nothing near 50000² pixels was allocated


@pytestmark_bad
def test_png_too_small_to_hold_its_claimed_size(tmp_path, monkeypatch):
    """Within the size limits, but 64 bytes of IDAT cannot inflate to 10000×10000 px: refused
    before any decoder runs (a decoder would allocate the whole canvas first)."""
    path = tmp_path / "liar.png"
    path.write_bytes(_raw_png(None, width=10000, height=10000))
    monkeypatch.setattr(imageio_read, "decode_pixels", lambda *args: pytest.fail("pixels decoded"))
    _assert_read_error(path, "truncated or corrupt image data")


@pytestmark_bad
def test_per_side_limit(tmp_path):
    path = tmp_path / "strip.png"
    path.write_bytes(_raw_png(None, width=MAX_SIDE + 1, height=8))
    _assert_read_error(path, f"exceeds the limit of {MAX_SIDE} px per side")


@pytestmark_bad
def test_pillow_bomb_error_is_converted():
    # a WebP header claiming 16383×16383: Pillow's own bomb check fires inside its parser
    size = (16383 - 1) | ((16383 - 1) << 14)
    payload = b"\x2f" + size.to_bytes(4, "little") + b"\x00" * 16
    chunk = b"VP8L" + len(payload).to_bytes(4, "little") + payload
    data = b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk
    with pytest.raises(ImageReadError, match="image too large"):
        decode_image_bytes(data, "huge.webp")


@pytestmark_bad
@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 40), (40, 3)])
def test_too_small(tmp_path, width, height):
    path = tmp_path / "tiny.png"
    ints = np.full((height, width, 3), 128, np.uint8)
    path.write_bytes(_raw_png(ints))
    _assert_read_error(
        path, f"image too small: {width}×{height} px, at least {MIN_SIDE}×{MIN_SIDE} needed"
    )


# ---------------------------------------------------------------------------------------------
# PNG details: libspng decoding, the own encoder, structure checks of the other formats
# ---------------------------------------------------------------------------------------------


def _with_chunk_before_idat(png: bytes, kind: bytes, payload: bytes) -> bytes:
    cut = png.index(b"IDAT") - 4
    return png[:cut] + _png_chunk(kind, payload) + png[cut:]


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("layout", ["grey", "rgb"])
def test_png_colour_key_becomes_alpha(depth, layout):
    rng = np.random.default_rng(30 + depth)
    ints = _random_ints(rng, layout, depth, h=9, w=11)
    ints[2, 3] = ints[0, 0]
    ints[5, 7] = ints[0, 0]
    key = ints[0, 0]
    payload = b"".join(int(v).to_bytes(2, "big") for v in key)
    image = decode_image_bytes(_with_chunk_before_idat(_raw_png(ints), b"tRNS", payload), "key.png")
    keyed = np.all(ints == key, axis=2)
    assert image.bit_depth == depth and image.alpha_f32 is not None
    np.testing.assert_array_equal(image.alpha_f32 == 0, keyed)
    np.testing.assert_array_equal(image.alpha_f32[~keyed], 1.0)
    scale = 65535.0 if depth == 16 else 255.0
    np.testing.assert_array_equal(np.rint(image.rgb_f32 * scale), _expected_rgb_ints(ints))


def test_png_sub_byte_grey_with_colour_key():
    """4-bit grey: samples are scaled by bit replication (3 -> 0x33), the key with them."""
    rows = b"".join(b"\x00" + bytes([0x01, 0x23, 0x45, 0x67]) for _ in range(4))
    ihdr = struct.pack(">IIBBBBB", 8, 4, 4, 0, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"tRNS", b"\x00\x03")
        + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    )
    image = decode_image_bytes(data, "grey4.png")
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32[0, :, 0]), np.arange(8) * 17)
    np.testing.assert_array_equal(image.alpha_f32[0], [1, 1, 1, 0, 1, 1, 1, 1])


def test_png_palette_with_partial_transparency_matches_pillow():
    rng = np.random.default_rng(31)
    pal = PILImage.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).quantize(16)
    alphas = bytes(range(0, 256, 16))
    data = _pil_bytes(pal, "PNG", transparency=alphas)
    image = decode_image_bytes(data, "pal.png")
    with PILImage.open(io.BytesIO(data)) as pil:
        expected = np.asarray(pil.convert("RGBA"))
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32), expected[:, :, :3])
    np.testing.assert_array_equal(rgb_to_u8(image.alpha_f32), expected[:, :, 3])


def test_png_bad_crc_in_image_data_is_refused():
    data = bytearray(_raw_png(_random_ints(np.random.default_rng(32), "rgb", 8)))
    crc_at = data.index(b"IEND") - 8  # last 4 bytes of the IDAT chunk
    data[crc_at] ^= 0xFF
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        decode_image_bytes(bytes(data), "crc.png")


def _idat_stream(png: bytes) -> bytes:
    return b"".join(png[start:end] for kind, start, end in imageio_png.png_chunks(png) if kind == b"IDAT")


@pytest.mark.parametrize("strip_bytes", [97, 1 << 22])
@pytest.mark.parametrize(("layout", "depth"), [("rgb", 16), ("rgba", 8), ("grey", 8), ("grey", 16), ("rgba", 16)])
def test_png_encoder_output_is_standard(tmp_path, monkeypatch, strip_bytes, layout, depth):
    """The own encoder (Sub filter, strips deflated in parallel) writes PNGs that zlib, libpng
    (through OpenCV) and Pillow read back exactly, whether the stream is one strip or many."""
    monkeypatch.setattr(imageio_png, "PNG_STRIP_BYTES", strip_bytes)
    ints = _random_ints(np.random.default_rng(33), layout, depth, h=40, w=23)
    ints[10:20] = ints[10:11]  # some repetition for the deflate matcher
    target = tmp_path / "out.png"
    write_image(target, _as_image(ints, depth), keep_grey=True)
    png = target.read_bytes()

    raw = zlib.decompress(_idat_stream(png))  # checks the Adler-32 too
    row_bytes = 1 + ints.shape[1] * ints.shape[2] * depth // 8
    assert len(raw) == ints.shape[0] * row_bytes
    assert set(raw[::row_bytes]) == {1}  # Sub filter on every row
    if strip_bytes < 100:
        assert len(imageio_png.png_filter_sub(ints)) > 1

    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3 and decoded.shape[2] >= 3:
        decoded = decoded[:, :, [2, 1, 0, 3][: decoded.shape[2]]]
    np.testing.assert_array_equal(decoded.reshape(ints.shape), ints)
    if depth == 8:
        with PILImage.open(target) as pil:
            np.testing.assert_array_equal(np.asarray(pil).reshape(ints.shape), ints)


def test_png_metadata_chunks_come_before_the_image_data(tmp_path):
    icc = _srgb_icc()
    image = _as_image(_random_ints(np.random.default_rng(34), "rgb", 8), 8, icc_profile=icc,
                      exif=_exif_bytes())
    write_image(tmp_path / "m.png", image)
    png = (tmp_path / "m.png").read_bytes()
    kinds = [kind for kind, _, _ in imageio_png.png_chunks(png)]
    assert kinds[:3] == [b"IHDR", b"iCCP", b"eXIf"] and kinds[-1] == b"IEND"
    assert set(kinds[3:-1]) == {b"IDAT"}


@pytestmark_bad
def test_jpeg_claiming_more_pixels_than_its_data_can_hold(monkeypatch):
    """A real 32×48 JPEG whose frame header is patched to 20000×20000: a few hundred bytes of scan
    data cannot code 400 megapixels, so it is refused before any decoder allocates the canvas."""
    data = bytearray(_pil_bytes(PILImage.fromarray(_quadrants()), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 20000, 20000)
    monkeypatch.setattr(imageio_read, "decode_pixels", lambda *args: pytest.fail("pixels decoded"))
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        decode_image_bytes(bytes(data), "liar.jpg")


@pytestmark_bad
@pytest.mark.parametrize("compression", ["raw", "rle8"])
def test_bmp_too_short_for_its_size_is_refused(monkeypatch, compression):
    grey = np.full((64, 64), 7, np.uint8)
    if compression == "raw":
        data = _pil_bytes(PILImage.fromarray(grey), "BMP")[:-100]
    else:  # hand-made RLE8: every row a single 64-pixel run, then the height patched up
        rows = b"".join(b"\x40\x07\x00\x00" for _ in range(64)) + b"\x00\x01"
        palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
        offset = 14 + 40 + len(palette)
        info = struct.pack("<IiiHHIIiiII", 40, 64, 64 * 1000, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
        data = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows
    monkeypatch.setattr(imageio_read, "decode_pixels", lambda *args: pytest.fail("pixels decoded"))
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        decode_image_bytes(data, "short.bmp")


def test_rle_bmp_decodes():
    rows = b"".join(bytes([0x40, 9 * r]) + b"\x00\x00" for r in range(8)) + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, 64, 8, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    data = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows
    image = decode_image_bytes(data, "rle.bmp")
    assert image.was_grey and image.rgb_f32.shape == (8, 64, 3)
    np.testing.assert_array_equal(rgb_to_u8(image.rgb_f32[:, 0, 0]), 9 * np.arange(8)[::-1])  # bottom-up


@pytest.mark.parametrize("fmt", ["jpeg", "bmp", "webp"])
def test_pillow_own_bomb_limit_does_not_cap_ours(monkeypatch, fmt):
    """Pillow refuses images above its MAX_IMAGE_PIXELS in Image.open; our limit (MAX_PIXELS) is
    the one that counts, so JPEG and BMP are decoded through the format plugins directly."""
    pixels = _quadrants(64, 96)
    options = {"jpeg": {"quality": 95, "subsampling": 0}, "bmp": {}, "webp": {"lossless": True}}[fmt]
    data = _pil_bytes(PILImage.fromarray(pixels), {"jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP"}[fmt], **options)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 64×96 = 6144 > 2 × 1000
    if fmt == "webp":  # Pillow's WebP parser checks the size itself: refused with its own reason
        with pytest.raises(ImageReadError, match="decoder's safety limit"):
            decode_image_bytes(data, "big.webp")
        return
    image = decode_image_bytes(data, f"big.{fmt}")
    assert image.rgb_f32.shape == (64, 96, 3)
    assert _psnr(image.rgb_f32, pixels.astype(np.float32) / 255.0) > 30.0


def test_errors_pickle_with_path_and_reason(tmp_path):
    error = ImageReadError(tmp_path / "a.png", "file is empty")
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, ImageReadError)
    assert clone.reason == "file is empty" and str(clone) == str(error)
