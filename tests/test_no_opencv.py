"""The runtime works without OpenCV: the installer bundle leaves cv2 out (issue 7).

A fresh interpreter with ``cv2`` made unimportable reads and writes every format and layout,
degrades (both conventions, noise and JPEG), builds painted kernel fields, scores SSIM/PSNR, draws
kernel pictures and training curves, and imports the CLI and the GUI modules. The import-linter
contract in pyproject.toml checks the static imports; this catches imports made at run time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import io, sys, tempfile
    from pathlib import Path
    sys.modules["cv2"] = None  # "import cv2" now raises ImportError anywhere in this process

    import numpy as np
    from PIL import Image as PILImage

    from engine.imageio import Image, decode_image_bytes, read_image, write_image

    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp())
    rgb = rng.random((24, 20, 3), dtype=np.float32)
    alpha = rng.random((24, 20), dtype=np.float32)
    written = 0
    for suffix in (".png", ".jpg", ".tif", ".bmp", ".webp"):
        for depth in (8, 16):
            for with_alpha in (False, True):
                for grey in (False, True):
                    pixels = np.repeat(rgb[..., :1], 3, axis=2) if grey else rgb
                    image = Image(pixels, alpha if with_alpha else None, bit_depth=depth, was_grey=grey)
                    path = folder / f"x{depth}{int(with_alpha)}{int(grey)}{suffix}"
                    write_image(path, image, keep_grey=grey, quality=100)
                    back = read_image(path)
                    assert back.rgb_f32.shape == (24, 20, 3), path
                    if suffix in (".png", ".tif"):
                        assert back.bit_depth == depth, path
                    written += 1
    buffer = io.BytesIO()
    PILImage.fromarray((rgb[..., 0] * 255).astype(np.uint8)).quantize(8).save(buffer, "PNG", transparency=2)
    assert decode_image_bytes(buffer.getvalue(), "palette").alpha_f32 is not None

    from engine.degradation import PhotoCorruption, degrade_ikc, degrade_manet, manet_mode_field, region_field
    from engine.degradation.kernels import anisotropic_gaussian_kernels

    hr = rng.random((64, 64, 3), dtype=np.float32)
    lr = degrade_ikc(hr, 2.0, 4, rng, PhotoCorruption(noise_sigma_255=5, jpeg_quality=80))
    lr = degrade_ikc(hr, anisotropic_gaussian_kernels(5.0, 1.0, 0.3, 4), 4, None, PhotoCorruption(jpeg_quality=60))
    lr = degrade_manet(hr, manet_mode_field(5, (16, 16), 4, rng=rng), 4, rng, PhotoCorruption(noise_sigma_255=3, jpeg_quality=90))
    labels = np.zeros((16, 16), np.int32)
    labels[4:10, 4:10] = 1
    field = region_field(labels, anisotropic_gaussian_kernels(5.0, 1.0, 0.3, 4)[None], 4)

    from engine.metrics import psnr, ssim
    assert 0 < ssim(hr[:16, :16], lr, crop_border=2) < 1 and psnr(hr[:16, :16], lr, crop_border=2) > 0

    from engine.visualize import kernel_heatmap_u8
    assert kernel_heatmap_u8(field[3, 3], 64).shape == (64, 64, 3)
    from engine.training.plot import plot_curves
    plot_curves(folder / "curve.png", [1, 2, 3], [1.0, 0.5, 0.2], [3], [20.0])
    assert read_image(folder / "curve.png").width == 1000

    from app.analysis import error_map_rgb
    assert error_map_rgb(rng.random((8, 8))).shape == (8, 8, 3)
    from engine.cli import build_parser
    build_parser()
    import app.main, app.window, app.selftest  # the GUI's module tree

    assert sys.modules["cv2"] is None
    print("ok", written)
    """
)


def test_runtime_works_with_cv2_unimportable():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ok", "40"]
