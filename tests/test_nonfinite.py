"""NaN and inf never become a silent black image: bad kernel arguments are refused before any work,
a network output with non-finite values is an error, and the writer refuses non-finite pixels."""

import warnings

import numpy as np
import pytest

from engine.cli import main
from engine.imageio import Image, ImageWriteError, rgb_to_u8, write_image


def _small_png(tmp_path):
    src = tmp_path / "in.png"
    rng = np.random.default_rng(0)
    write_image(src, Image(rgb_f32=rng.random((16, 16, 3), dtype=np.float32)))
    return src


@pytest.mark.parametrize(
    "sigmas, says",
    [
        (("nan", "nan", "nan"), "not a finite number"),
        (("2", "2", "inf"), "THETA"),
        (("-1", "2", "0"), "SIGMA1"),
        (("2", "0", "0"), "SIGMA2"),
        (("2", "40", "0"), "SIGMA2"),
    ],
)
def test_nonblind_kernel_arguments_are_refused_before_any_work(tmp_path, capsys, sigmas, says):
    src = _small_png(tmp_path)
    out = tmp_path / "out"
    code = main(["upscale", str(src), "--method", "nonblind", "--kernel-sigmas", *sigmas,
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "--kernel-sigmas" in err[0] and says in err[0], err
    assert not out.exists() or not any(out.iterdir())


def test_upscale_options_refuse_non_finite_kernel():
    from engine.upscale import UpscaleOptions

    with pytest.raises(ValueError, match="finite"):
        UpscaleOptions(method="nonblind", nonblind_sigmas=(float("nan"), 2.0, 0.0))
    UpscaleOptions(method="nonblind", nonblind_sigmas=(2.0, 1.2, 0.5))  # in range: accepted


def test_kernel_builder_refuses_nan_parameters():
    from engine.degradation.kernels import anisotropic_gaussian_kernels

    with pytest.raises(ValueError):
        anisotropic_gaussian_kernels(float("nan"), 4.0, 0.0, 4)
    with pytest.raises(ValueError):
        anisotropic_gaussian_kernels(4.0, 4.0, float("inf"), 4)


def _card():
    from engine.modelcards import ModelCard, TensorSpec

    return ModelCard(id="fake_x4", network="manet", preset="tiny", scale=4, graph="fake.onnx",
                     graph_sha256="", inputs=[TensorSpec("lr_rgb", ["N", 3, "H", "W"])],
                     outputs=[TensorSpec("kernels", ["N", 441, "H", "W"])])


def test_a_network_output_with_nan_is_an_error_naming_the_model():
    from engine.backends.base import Runner
    from engine.errors import ModelError

    class NanRunner(Runner):
        def _run(self, feed, *, keep_memory=False):
            out = np.zeros((1, 441) + feed["lr_rgb"].shape[2:], np.float32)
            out[0, 5, 1, 2] = np.nan
            return {"kernels": out}

    runner = NanRunner(_card(), "CPUExecutionProvider")
    with pytest.raises(ModelError, match="fake_x4.*non-finite"):
        runner.run({"lr_rgb": np.zeros((1, 3, 8, 8), np.float32)})


def test_writer_refuses_non_finite_pixels(tmp_path):
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    rgb[3, 4, 1] = np.nan
    target = tmp_path / "a.png"
    with pytest.raises(ImageWriteError, match="non-finite"):
        write_image(target, Image(rgb_f32=rgb))
    assert not target.exists() and list(tmp_path.iterdir()) == []
    alpha = np.ones((8, 8), np.float32)
    alpha[0, 0] = np.inf
    with pytest.raises(ImageWriteError, match="non-finite"):
        write_image(tmp_path / "b.tiff", Image(rgb_f32=np.zeros((8, 8, 3), np.float32), alpha_f32=alpha))


def test_one_float_to_u8_everywhere_and_nan_does_not_warn():
    from engine.degradation.degrade import to_u8

    values = np.array([[-1.0, 0.2, np.nan], [1.0, 0.5, 3.0]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns "invalid value encountered in cast" on NaN → uint8
        np.testing.assert_array_equal(to_u8(values), rgb_to_u8(values))


def test_bicubic_integer_output_refuses_nan_input():
    from engine.upscale import UpscaleOptions, upscale

    rgb = np.full((8, 8, 3), 0.5, np.float32)
    rgb[2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        upscale(Image(rgb_f32=rgb), UpscaleOptions(method="bicubic", integer_output=True), None)
