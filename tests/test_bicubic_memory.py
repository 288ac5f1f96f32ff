"""Bicubic in bounded memory: strips of output rows, float32, the result streamed into one
preallocated array; the same numbers as the whole-image implementation it replaced."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.degradation.resize import bicubic_upsample, contributions, imresize, output_length
from engine.imageio import Image, IntegerImage, read_image, rgb_to_u8, rgb_to_u16, write_image

ROOT = Path(__file__).resolve().parents[1]


def _reference_imresize(img, f):
    """The whole-image implementation before the strips (kept here as the reference)."""
    x = np.asarray(img, dtype=np.float32)
    out = x
    for axis, n in ((0, x.shape[0]), (1, x.shape[1])):
        weights, indices = contributions(n, output_length(n, f), f)
        w32 = weights.astype(np.float32)
        shape = [1] * out.ndim
        shape[axis] = weights.shape[0]
        acc = np.zeros(out.shape[:axis] + (weights.shape[0],) + out.shape[axis + 1 :], np.float32)
        for p in range(weights.shape[1]):
            acc += np.take(out, indices[:, p], axis=axis) * w32[:, p].reshape(shape)
        out = acc
    return out


@pytest.mark.parametrize("factor", [2.0, 3.0, 4.0, 1 / 4, 1 / 3])
@pytest.mark.parametrize("shape", [(37, 23, 3), (19, 41), (5, 6, 3)])
def test_strips_give_the_whole_image_result(shape, factor):
    img = np.random.default_rng(0).random(shape, dtype=np.float32) * 1.2 - 0.1
    ref = _reference_imresize(img, factor)
    for rows in (None, 1, 7):
        got = imresize(img, factor, strip_rows=rows)
        assert got.dtype == np.float32 and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_upscale_bicubic_integer_output_equals_the_float_path():
    from engine.upscale import UpscaleOptions, upscale

    rng = np.random.default_rng(3)
    for depth, to_int in ((8, rgb_to_u8), (16, rgb_to_u16)):
        image = Image(rgb_f32=rng.random((21, 34, 3), dtype=np.float32),
                      alpha_f32=rng.random((21, 34), dtype=np.float32), bit_depth=depth, icc_profile=b"icc")
        floats = upscale(image, UpscaleOptions(method="bicubic", scale=3), None).image
        ints = upscale(image, UpscaleOptions(method="bicubic", scale=3, integer_output=True), None).image
        assert isinstance(ints, IntegerImage) and ints.bit_depth == depth and ints.icc_profile == b"icc"
        ref_rgb = np.clip(_reference_imresize(image.rgb_f32, 3.0), 0, 1)
        ref_alpha = np.clip(_reference_imresize(image.alpha_f32, 3.0), 0, 1)
        np.testing.assert_allclose(floats.rgb_f32, ref_rgb, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ints.pixels[:, :, :3], to_int(ref_rgb))
        np.testing.assert_array_equal(ints.pixels[:, :, 3], to_int(ref_alpha))


@pytest.mark.parametrize("suffix", [".png", ".tiff", ".jpg", ".webp"])
def test_integer_image_writes_the_same_file_as_the_float_image(tmp_path, suffix):
    rng = np.random.default_rng(5)
    for depth in (8, 16):
        image = Image(rgb_f32=rng.random((12, 9, 3), dtype=np.float32),
                      alpha_f32=rng.random((12, 9), dtype=np.float32), bit_depth=depth)
        to_int = rgb_to_u16 if depth == 16 else rgb_to_u8
        ints = IntegerImage.like(image, np.dstack([to_int(image.rgb_f32), to_int(image.alpha_f32)]))
        a, b = tmp_path / f"a{depth}{suffix}", tmp_path / f"b{depth}{suffix}"
        write_image(a, image)
        write_image(b, ints)
        assert a.read_bytes() == b.read_bytes()
        back = read_image(b)
        assert back.bit_depth == (depth if suffix in (".png", ".tiff") else 8)


_PEAK = """
import resource, sys
import numpy as np
from engine.imageio import Image
from engine.upscale import UpscaleOptions, upscale
image = Image(rgb_f32=np.random.default_rng(0).random((750, 1000, 3), dtype=np.float32))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = upscale(image, UpscaleOptions(method="bicubic", scale=4, **eval(sys.argv[1])), None)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_bicubic_peak_memory_is_the_output_and_little_more():
    """×4 of a 1000×750 image: 36 MB of uint8 output; the whole-image float64/float32 path took
    ~0.45 GB. Measured in a fresh process (ru_maxrss growth while upscaling, MiB)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, "{'integer_output': True}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    grown_mib = int(proc.stdout.split()[-1])
    assert grown_mib < 150, grown_mib  # this branch: ~93 (36 output + strips); before: ~450
