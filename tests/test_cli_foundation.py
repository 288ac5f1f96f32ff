"""Tests for the ``degrade`` and ``metrics`` sub-commands of kernelscope-cli, on a real Set5 image."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from engine.cli import main


@pytest.fixture()
def hr_path(shared_data):
    return shared_data / "benchmarks" / "Set5" / "butterfly.png"  # 256×256, the smallest of Set5


def _read(path):
    from engine.imageio import read_image

    return read_image(path)


def test_degrade_aniso_makes_quarter_size_image(hr_path, tmp_path, capsys) -> None:
    out = tmp_path / "lr.png"
    assert main(["degrade", str(hr_path), str(out), "--scale", "4", "--kernel", "aniso", "--seed", "0"]) == 0
    hr, lr = _read(hr_path).rgb_f32, _read(out).rgb_f32
    assert lr.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
    printed = capsys.readouterr().out
    assert re.search(r"var1=\d+\.\d+ var2=\d+\.\d+ theta=", printed)
    assert str(out) in printed


def test_degrade_is_seeded(hr_path, tmp_path, capsys) -> None:
    for name, seed in (("a.png", 1), ("b.png", 1), ("c.png", 2)):
        assert main(["degrade", str(hr_path), str(tmp_path / name), "--seed", str(seed), "--noise", "3"]) == 0
    a, b, c = (_read(tmp_path / n).rgb_f32 for n in ("a.png", "b.png", "c.png"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert "noise: sigma=3/255" in capsys.readouterr().out


def test_degrade_given_params_match_the_engine(hr_path, tmp_path, capsys) -> None:
    from engine.degradation import anisotropic_gaussian_kernels, degrade_manet

    out, kpath = tmp_path / "lr.png", tmp_path / "k.npz"
    args = ["degrade", str(hr_path), str(out), "--var1", "6", "--var2", "1.5", "--theta", "0.5",
            "--save-kernel", str(kpath)]
    assert main(args) == 0
    kernel = anisotropic_gaussian_kernels(6.0, 1.5, 0.5, 4)
    with np.load(kpath) as z:
        np.testing.assert_allclose(z["kernel"], kernel)
        assert float(z["var1"]) == 6.0 and str(z["convention"]) == "manet" and int(z["scale"]) == 4
    expected = degrade_manet(_read(hr_path).rgb_f32, kernel, 4, None)
    np.testing.assert_allclose(_read(out).rgb_f32, expected, atol=0.5 / 255)
    assert "var1=6.0000 var2=1.5000 theta=0.5000" in capsys.readouterr().out


def test_degrade_iso_gaussian8_and_variant(hr_path, tmp_path, capsys) -> None:
    assert main(["degrade", str(hr_path), str(tmp_path / "i.png"), "--kernel", "iso", "--sigma", "2.5",
                 "--scale", "2", "--save-kernel", str(tmp_path / "i.npz")]) == 0
    assert _read(tmp_path / "i.png").rgb_f32.shape == (128, 128, 3)
    with np.load(tmp_path / "i.npz") as z:
        assert float(z["sigma"]) == 2.5 and abs(float(z["kernel"].sum()) - 1) < 1e-5
    assert main(["degrade", str(hr_path), str(tmp_path / "g.png"), "--kernel", "gaussian8"]) == 0
    assert re.search(r"gaussian8 .*sigma=(1\.8|2\.[02468]|3\.[02])000", capsys.readouterr().out)
    assert main(["degrade", str(hr_path), str(tmp_path / "v.png"), "--kernel", "variant5",
                 "--save-kernel", str(tmp_path / "v.npz")]) == 0
    with np.load(tmp_path / "v.npz") as z:
        assert z["field"].shape == (64, 64, 21, 21) and int(z["mode"]) == 5
    assert "variant5" in capsys.readouterr().out


def test_degrade_refuses_to_overwrite(hr_path, tmp_path, capsys) -> None:
    out = tmp_path / "lr.png"
    out.write_bytes(b"keep me")
    assert main(["degrade", str(hr_path), str(out)]) == 1
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err
    assert out.read_bytes() == b"keep me"
    assert main(["degrade", str(hr_path), str(out), "--overwrite"]) == 0
    assert _read(out).rgb_f32.shape == (64, 64, 3)


def test_degrade_bad_input_is_one_clear_line(tmp_path, capsys) -> None:
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello, I am text")
    assert main(["degrade", str(bad), str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not_an_image.png" in err and "Traceback" not in err and len(err.splitlines()) == 1
    missing = tmp_path / "missing.png"
    assert main(["degrade", str(missing), str(tmp_path / "out.png")]) == 1
    assert "missing.png" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_degrade_contradictory_options(hr_path, tmp_path, capsys) -> None:
    assert main(["degrade", str(hr_path), str(tmp_path / "o.png"), "--kernel", "aniso", "--sigma", "2"]) == 2
    assert "--sigma" in capsys.readouterr().err
    assert main(["degrade", str(hr_path), str(tmp_path / "o.png"), "--var1", "3"]) == 2
    assert main(["degrade", str(hr_path), str(tmp_path / "o.png"), "--kernel", "gaussian8", "--sigma", "2.1"]) == 2
    assert "Gaussian8" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def _bicubic_sr(hr_path, tmp_path) -> tuple:
    from engine.degradation import bicubic_upsample
    from engine.imageio import write_image

    lr_path = tmp_path / "lr.png"
    assert main(["degrade", str(hr_path), str(lr_path), "--kernel", "iso", "--sigma", "1.2"]) == 0
    lr = _read(lr_path)
    sr_path = tmp_path / "sr.png"
    sr = np.clip(bicubic_upsample(lr.rgb_f32, 4), 0, 1).astype(np.float32)
    write_image(sr_path, dataclasses.replace(lr, rgb_f32=sr, alpha_f32=None, source_path=None))
    return sr_path, sr


def test_metrics_on_bicubic_upsampling(hr_path, tmp_path, capsys) -> None:
    from engine.metrics import psnr

    sr_path, sr = _bicubic_sr(hr_path, tmp_path)
    capsys.readouterr()
    assert main(["metrics", str(sr_path), str(hr_path), "--scale", "4"]) == 0
    out = capsys.readouterr().out
    value = float(re.search(r"PSNR-Y: ([\d.]+) dB", out).group(1))
    assert 15.0 < value < 40.0
    assert value == pytest.approx(psnr(sr, _read(hr_path).rgb_f32, crop_border=4), abs=0.01)
    ssim_value = float(re.search(r"SSIM-Y: ([\d.]+)", out).group(1))
    assert 0.3 < ssim_value < 1.0
    assert main(["metrics", str(sr_path), str(hr_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["psnr_y"] == pytest.approx(value, abs=0.005) and result["crop_border"] == 4
    assert result["hr_cropped"] is False


def test_metrics_crops_slightly_larger_hr(hr_path, tmp_path, capsys) -> None:
    from engine.imageio import write_image

    hr = _read(hr_path)
    sr_path = tmp_path / "sr.png"
    write_image(sr_path, dataclasses.replace(hr, rgb_f32=hr.rgb_f32[:253, :254].copy(), source_path=None))
    assert main(["metrics", str(sr_path), str(hr_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["hr_cropped"] is True and result["psnr_y"] is None and result["ssim_y"] == 1.0
    small = tmp_path / "small.png"
    write_image(small, dataclasses.replace(hr, rgb_f32=hr.rgb_f32[:250].copy(), source_path=None))
    assert main(["metrics", str(small), str(hr_path)]) == 1
    err = capsys.readouterr().err
    assert "size mismatch" in err and "small.png" in err


def test_metrics_unreadable_file(hr_path, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["metrics", str(bad), str(hr_path)]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err


def test_missing_training_extra_is_one_clear_line(monkeypatch, capsys):
    import builtins

    from engine.cli import main

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    for mod in [m for m in list(__import__("sys").modules) if m == "torch" or m.startswith(("torch.", "engine.export", "engine.archs"))]:
        monkeypatch.delitem(__import__("sys").modules, mod)
    assert main(["export", "--all"]) == 1
    err = capsys.readouterr().err
    assert "needs the training extras" in err and "Traceback" not in err
