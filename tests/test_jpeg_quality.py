"""How strongly a JPEG input was compressed, read from its luma quantisation table (engine.imageio.jpegquality)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from app.session import file_text
from engine.imageio import Image, decode_image_bytes, read_image, write_image
from engine.imageio.jpegquality import JPEG_STD_LUMA_QTABLE, JpegQuality, ijg_luma_qtable


def _photo(rng: np.random.Generator, h: int = 40, w: int = 48) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pillow_jpeg(values: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(values).save(buf, "JPEG", **options)
    return buf.getvalue()


@pytest.mark.parametrize("quality", [1, 10, 49, 50, 51, 75, 80, 95, 100])
def test_pillow_jpegs_read_back_their_quality_setting(quality):
    data = _pillow_jpeg(_photo(np.random.default_rng(quality)), quality=quality)
    assert decode_image_bytes(data).jpeg_quality == JpegQuality(quality, True)


@pytest.mark.parametrize("quality", [30, 80, 92])
def test_opencv_jpegs_read_back_their_quality_setting(tmp_path, quality):
    """An independent encoder (OpenCV's libjpeg), grey and colour, read from a file."""
    rng = np.random.default_rng(quality)
    for name, values in (("rgb.jpg", _photo(rng)), ("grey.jpg", _photo(rng)[:, :, 0])):
        path = tmp_path / name
        assert cv2.imwrite(str(path), values, [cv2.IMWRITE_JPEG_QUALITY, quality])
        image = read_image(path)
        assert image.jpeg_quality == JpegQuality(quality, True)
        assert file_text(image) == f"JPEG q {quality}"


def test_own_tables_give_the_nearest_quality_and_say_so():
    """A camera's own table (here the standard one at 0.7× the q 50 steps, which no IJG quality
    writes exactly) reads as the nearest IJG quality, flagged as not standard."""
    own = [max(1, round(0.7 * v)) for v in JPEG_STD_LUMA_QTABLE]
    data = _pillow_jpeg(_photo(np.random.default_rng(1)), qtables=[own, own])
    quality = decode_image_bytes(data).jpeg_quality
    assert quality is not None and not quality.standard
    assert 62 <= quality.quality <= 68  # factor 70 ≈ 200 − 2q at q 65
    assert quality.describe() == f"JPEG ≈ q {quality.quality} (own tables)"
    with pytest.raises(ValueError, match="64 steps"):
        JpegQuality.from_qtable([1] * 63)
    with pytest.raises(ValueError, match="1..100"):
        ijg_luma_qtable(0)


def test_only_a_jpeg_source_has_a_quality_and_results_do_not_inherit_it(tmp_path):
    rng = np.random.default_rng(3)
    png = tmp_path / "in.png"
    write_image(png, Image(rgb_f32=_photo(rng).astype(np.float32) / 255))
    assert read_image(png).jpeg_quality is None and file_text(read_image(png)) == "PNG"
    jpeg = decode_image_bytes(_pillow_jpeg(_photo(rng), quality=70))
    assert jpeg.jpeg_quality == JpegQuality(70, True)
    assert jpeg.with_pixels(jpeg.rgb_f32).jpeg_quality is None  # an upscaled result is not that file
    assert file_text(Image(rgb_f32=jpeg.rgb_f32)) == "–"  # made in memory: no file
