"""16-bit in means 16-bit out: TIFFs in every common compression keep their depth and alpha, and a
file that cannot be decoded faithfully is refused instead of being read as 8 bit."""

import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

import engine.imageio as imageio
import engine.imageio.read as imageio_read
from engine.cli import main
from engine.imageio import ImageReadError, read_image

ROOT = Path(__file__).resolve().parents[1]


def _rgba16(h=24, w=32, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    smooth = (x * 1500 + y * 700)[:, :, None] + np.arange(4) * 3000
    return (smooth + rng.integers(0, 64, (h, w, 4))).astype(np.uint16)


def test_pyproject_declares_imagecodecs():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("imagecodecs") for d in deps), deps


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "lzw"},
        {"compression": "lzw", "predictor": True},  # OpenCV's and most editors' 16-bit default
        {"compression": "adobe_deflate", "predictor": True},
        {"compression": "zlib"},
        {"compression": "zstd"},
        {"compression": "lzma"},
        {"compression": "packbits"},
        {"compression": "lzw", "tile": (16, 16)},
        {"compression": "lzw", "planarconfig": "separate"},
        {"compression": "lzw", "byteorder": ">"},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_16bit_rgba_tiff_is_read_exactly(tmp_path, options):
    values = _rgba16()
    path = tmp_path / "in.tif"
    kwargs = {"photometric": "rgb", "extrasamples": ("unassalpha",), **options}
    if kwargs.get("planarconfig") == "separate":
        tifffile.imwrite(path, np.moveaxis(values, -1, 0), **kwargs)
    else:
        tifffile.imwrite(path, values, **kwargs)
    image = read_image(path)
    assert image.bit_depth == 16 and image.alpha_f32 is not None
    np.testing.assert_array_equal(imageio.rgb_to_u16(image.rgb_f32), values[:, :, :3])
    np.testing.assert_array_equal(imageio.rgb_to_u16(image.alpha_f32), values[:, :, 3])


def test_16bit_lzw_tiff_upscales_to_16bit_rgba(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, _rgba16(), photometric="rgb", extrasamples=("unassalpha",),
                     compression="lzw", predictor=True)
    assert main(["upscale", str(path), "--method", "bicubic", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    with tifffile.TiffFile(tmp_path / "o" / "in_x4_bicubic.tiff") as tif:
        assert tif.pages[0].dtype == np.uint16 and tif.pages[0].shape == (96, 128, 4)


@pytest.mark.parametrize("alpha", [True, False])
def test_tiff_that_cannot_be_decoded_faithfully_is_refused(tmp_path, monkeypatch, alpha):
    """Without the codec (simulated: tifffile fails as it does when imagecodecs is missing), the
    Pillow fallback would give 8-bit RGBA: that is refused with the reason, never used."""
    values = _rgba16() if alpha else _rgba16()[:, :, :3]
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, values, photometric="rgb", extrasamples=("unassalpha",) if alpha else None,
                     compression="lzw")

    def no_codec(data, header):
        raise ValueError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(imageio_read, "decode_tifffile", no_codec)
    with pytest.raises(ImageReadError, match="16-bit") as info:
        read_image(path)
    assert "imagecodecs" in str(info.value)


def test_8bit_tiff_fallback_to_pillow_still_works(tmp_path, monkeypatch):
    """An 8-bit file loses nothing in Pillow's hands: the fallback stays for those (palette, CMYK…)."""
    values = (_rgba16()[:, :, :3] >> 8).astype(np.uint8)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, values, photometric="rgb", compression="lzw")
    monkeypatch.setattr(imageio_read, "decode_tifffile", lambda data, header: None)
    image = read_image(path)
    assert image.bit_depth == 8
    np.testing.assert_array_equal(imageio.rgb_to_u8(image.rgb_f32), values)


_ROUND_TRIP = """
import io, sys
import numpy as np, tifffile
from engine.imageio import decode_image_bytes
values = np.arange(8 * 8 * 4, dtype=np.uint16).reshape(8, 8, 4) * 900
for compression, predictor in (("lzw", True), ("adobe_deflate", True), ("zlib", False), ("zstd", False),
                               ("lzma", False), ("packbits", False), ("jpeg", False)):
    data = values if compression != "jpeg" else (values[:, :, :3] >> 8).astype(np.uint8)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, data, photometric="rgb", compression=compression, predictor=predictor)
    decode_image_bytes(buffer.getvalue(), compression)
print(" ".join(sorted(m for m in sys.modules if m.startswith("imagecodecs."))))
"""


def test_installer_bundles_every_codec_module_a_tiff_needs():
    """imagecodecs loads its compiled modules through importlib, which PyInstaller cannot follow:
    the spec's hidden imports must name every one a TIFF round trip loads."""
    import subprocess
    import sys

    src = (ROOT / "installer" / "kernelscope.spec").read_text(encoding="utf-8")
    start = src.index("IMAGECODECS_MODULES = [")
    namespace: dict = {}
    exec(src[start : src.index("\n", src.index("HIDDEN_IMPORTS = ", start))], namespace)
    proc = subprocess.run([sys.executable, "-c", _ROUND_TRIP], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split()) - {"imagecodecs.imagecodecs"}  # the pure-Python entry point
    assert loaded and loaded <= set(namespace["HIDDEN_IMPORTS"]), sorted(loaded - set(namespace["HIDDEN_IMPORTS"]))


def test_writing_16bit_to_an_8bit_format_says_so(tmp_path, caplog):
    from engine.imageio import Image, write_image

    image = Image(rgb_f32=np.full((8, 8, 3), 0.3, np.float32), bit_depth=16)
    with caplog.at_level("WARNING", logger="engine.imageio"):
        write_image(tmp_path / "a.jpg", image)
        write_image(tmp_path / "a.png", image)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "a.jpg" in messages[0] and "8-bit only" in messages[0], messages
