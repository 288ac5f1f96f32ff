"""Scales: the CLI and the studio offer exactly the scales that have models, and ×2 runs end to end."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from engine.imageio import Image, read_image, write_image
from engine.modelcards import scales_with_models, upscale_scales


@pytest.fixture(scope="module")
def partial_models(tiny_models_dir, tmp_path_factory):
    """The tiny models at ×4 and ×2, but IKC's corrector only at ×4: IKC works at ×4 alone."""
    folder = tmp_path_factory.mktemp("partial_models")
    for path in tiny_models_dir.iterdir():
        if not path.name.startswith("ikc_corrector_tiny_x2"):
            shutil.copy(path, folder / path.name)
    return folder


def test_each_method_offers_the_scales_its_networks_have_cards_for(partial_models, tmp_path):
    assert scales_with_models("manet", partial_models) == (2, 4)
    assert scales_with_models("nonblind", partial_models) == (2, 4)
    assert scales_with_models("ikc", partial_models) == (4,)
    assert upscale_scales(partial_models) == (2, 4)
    assert scales_with_models("bicubic", partial_models) == (2, 4)  # what the models offer
    assert upscale_scales(tmp_path) == ()  # an empty folder offers nothing


@pytest.fixture
def cli_env(partial_models, monkeypatch):
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(partial_models))
    assert os.environ["KERNELSCOPE_MODELS"] == str(partial_models)


@pytest.fixture
def lr_png(tmp_path):
    path = tmp_path / "in.png"
    write_image(path, Image(np.random.default_rng(3).random((24, 32, 3), dtype=np.float32)))
    return path


def test_cli_upscales_at_x2_and_refuses_a_scale_without_models(cli_env, lr_png, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "out"
    assert main(["upscale", str(lr_png), "--scale", "2", "--method", "manet", "--out", str(out), "--no-progress"]) == 0
    assert read_image(out / "in_x2_manet.png").rgb_f32.shape == (48, 64, 3)
    capsys.readouterr()
    assert main(["upscale", str(lr_png), "--scale", "2", "--method", "ikc", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kernelscope-cli upscale: error: --scale 2: ikc has no models at x2 (it has x4)"]
    assert not (out / "in_x2_ikc.png").exists()
    with pytest.raises(SystemExit) as exc:  # ×3 has no models at all: not a choice
        main(["upscale", str(lr_png), "--scale", "3"])
    assert exc.value.code == 2
    assert "invalid choice: 3 (choose from 2, 4)" in capsys.readouterr().err


def test_studio_lists_the_chosen_methods_scales(qtbot, partial_models):
    pytest.importorskip("PySide6")
    from app.panels import RunPanel

    panel = RunPanel(models_dir=partial_models)
    qtbot.addWidget(panel)
    scales = lambda: [panel.scale.itemData(i) for i in range(panel.scale.count())]  # noqa: E731
    panel.method.setCurrentIndex(panel.method.findData("manet"))
    assert scales() == [2, 4] and panel.scale.currentData() == 4
    panel.scale.setCurrentIndex(panel.scale.findData(2))
    panel.method.setCurrentIndex(panel.method.findData("nonblind"))
    assert scales() == [2, 4] and panel.scale.currentData() == 2  # the choice is kept where it exists
    panel.method.setCurrentIndex(panel.method.findData("ikc"))
    assert scales() == [4] and panel.scale.currentData() == 4
    assert panel.options().scale == 4


def test_the_shipped_models_offer_x2_x3_and_x4_for_both_blind_methods():
    """What this installation ships (models/): every scale of the papers for MANet + RRDB-SFT and IKC."""
    for method in ("manet", "ikc"):
        assert scales_with_models(method) == (2, 3, 4), method
    assert upscale_scales() == (2, 3, 4)
