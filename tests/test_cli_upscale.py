"""kernelscope-cli upscale / estimate on tiny random-weight models: formats, batches, exit codes."""

import numpy as np
import pytest
import tifffile
from PIL import ImageCms

from engine.cli import main
from engine.imageio import Image, read_image, write_image


@pytest.fixture
def tiny_models(tiny_models_dir, monkeypatch):
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(tiny_models_dir))
    return tiny_models_dir


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # carries a timestamp: make once


def smooth_rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(x / 5 + c) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(0.5 + 0.4 * base + 0.02 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def test_16bit_rgba_tiff_keeps_depth_alpha_and_icc(tmp_path, tiny_models):
    src = tmp_path / "in.tiff"
    rgb = smooth_rgb(24, 32)
    alpha = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    write_image(src, Image(rgb_f32=rgb, alpha_f32=alpha, bit_depth=16, icc_profile=SRGB_ICC))
    out_dir = tmp_path / "out"
    assert main(["upscale", str(src), "--out", str(out_dir), "--no-progress"]) == 0
    dst = out_dir / "in_x4_manet.tiff"
    with tifffile.TiffFile(dst) as tif:
        page = tif.pages[0]
        assert page.dtype == np.uint16 and page.shape == (96, 128, 4)
        assert page.tags.get(34675) is not None  # ICC profile tag
    result = read_image(dst)
    assert result.bit_depth == 16 and result.icc_profile == SRGB_ICC
    # alpha was upscaled on its own: a horizontal ramp stays a ramp
    assert result.alpha_f32[:, 0].mean() < 0.5 < result.alpha_f32[:, -1].mean() + 0.5
    assert abs(result.alpha_f32.mean() - alpha.mean()) < 0.02


def test_batch_with_corrupt_file_processes_the_rest(tmp_path, tiny_models, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(2):
        write_image(folder / f"good{i}.png", Image(rgb_f32=smooth_rgb(16, 20, seed=i)))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    code = main(["upscale", str(folder), "--out", str(out), "--method", "bicubic", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good0_x4_bicubic.png", "good1_x4_bicubic.png"]
    assert "broken.png" in err and "2 written, 0 skipped, 1 failed" in err


def test_existing_output_is_not_overwritten_without_flag(tmp_path, tiny_models, capsys):
    src = tmp_path / "a.png"
    write_image(src, Image(rgb_f32=smooth_rgb(16, 16)))
    args = ["upscale", str(src), "--method", "bicubic", "--no-progress"]
    assert main(args) == 0
    dst = tmp_path / "a_x4_bicubic.png"
    before = dst.read_bytes()
    assert main(args) == 1
    assert "exists" in capsys.readouterr().err
    assert dst.read_bytes() == before
    assert main(args + ["--skip-existing"]) == 0
    assert main(args + ["--overwrite"]) == 0


def test_glob_ikc_and_saved_kernels(tmp_path, tiny_models):
    for name in ("x1.png", "x2.png"):
        write_image(tmp_path / name, Image(rgb_f32=smooth_rgb(16, 24)))
    code = main(["upscale", str(tmp_path / "x*.png"), "--method", "ikc", "--ikc-steps", "2",
                 "--save-kernels", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0
    data = np.load(tmp_path / "o" / "x1_x4_ikc_kernels.npz")
    assert data["codes"].shape == (3, 10) and data["kernels"].shape == (3, 21, 21)
    np.testing.assert_array_equal(data["iteration"], [0, 1, 2])
    np.testing.assert_allclose(data["kernels"].sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_estimate_writes_map_and_overview(tmp_path, tiny_models, capsys):
    src = tmp_path / "lr.png"
    write_image(src, Image(rgb_f32=smooth_rgb(40, 48)))
    assert main(["estimate", str(src)]) == 0
    data = np.load(tmp_path / "lr_kernels.npz")
    assert data["codes"].shape == (40, 48, 15)
    # smooth_rgb carries noise of std 0.02 = 5.1/255: the noise estimate is stored and printed
    assert 3.5 < float(data["noise_sigma_255"]) < 6.5
    assert data["noise_map_255"].shape == (3, 3) and int(data["noise_block_px"]) == 16
    assert "noise level ≈" in capsys.readouterr().out
    overview = read_image(tmp_path / "lr_kernels.png")
    assert overview.width >= 48 and overview.height >= 40
    assert main(["estimate", str(src)]) == 1  # refuses to overwrite


def test_unknown_input_and_bad_tile_exit_codes(tmp_path, tiny_models):
    assert main(["upscale", str(tmp_path / "nope.png"), "--no-progress"]) == 1
    assert main(["upscale", str(tmp_path), "--tile", "3", "--no-progress"]) == 2


def test_estimate_prints_and_stores_a_jpeg_inputs_quality(tmp_path, tiny_models, capsys):
    from PIL import Image as PILImage

    src = tmp_path / "photo.jpg"
    PILImage.fromarray((smooth_rgb(40, 48) * 255).round().astype(np.uint8)).save(src, quality=85)
    assert main(["estimate", str(src)]) == 0
    data = np.load(tmp_path / "photo_kernels.npz")
    assert int(data["jpeg_quality"]) == 85 and bool(data["jpeg_standard_tables"])
    assert "compression: JPEG q 85 " in capsys.readouterr().out
