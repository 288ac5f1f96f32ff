"""Every file a model card names is checked against its sha256 when it is loaded, not only by
``--selftest``: an edited but still valid PCA basis is refused with one clear line."""

import shutil

import numpy as np
import pytest

from engine.cli import main
from engine.imageio import Image, write_image
from engine.paths import models_dir

NEEDED = ("manet_small_x4", "rrdb_sft_small_x4")


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """The shipped ×4 MANet + RRDB-SFT models and their PCA basis, copied to a folder of our own."""
    folder = tmp_path / "models"
    folder.mkdir()
    for stem in NEEDED:  # the card, its fp32 graph and any other precision's graph (<stem>_int8.onnx)
        for path in [models_dir() / f"{stem}.json", *models_dir().glob(f"{stem}*.onnx")]:
            shutil.copy(path, folder)
    for suffix in (".json", ".npz"):
        shutil.copy(models_dir() / f"pca_manet_x4{suffix}", folder)
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(folder))
    return folder


def _edit_basis(folder):
    """Rewrite pca_manet_x4.npz as a valid basis with a slightly different mean kernel."""
    from engine.pca import KernelPCA

    path = folder / "pca_manet_x4.npz"
    basis = KernelPCA.load(path)
    mean = basis.mean.copy()
    mean[220] += 1e-3
    KernelPCA(mean, basis.components, basis.explained_variance, basis.meta).save(path)
    KernelPCA.load(path)  # still a readable, valid basis
    return path


def _image(tmp_path):
    src = tmp_path / "in.png"
    write_image(src, Image(rgb_f32=np.random.default_rng(1).random((16, 16, 3), dtype=np.float32)))
    return src


@pytest.mark.parametrize("command", ["upscale", "estimate"])
def test_edited_pca_basis_is_refused(tmp_path, models_copy, capsys, command):
    src = _image(tmp_path)
    out = tmp_path / "out"
    args = [command, str(src), "--out", str(out)] + (["--no-progress"] if command == "upscale" else [])
    assert main(args) == 0  # the untouched copy works
    shutil.rmtree(out)
    capsys.readouterr()
    _edit_basis(models_copy)
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert "pca_manet_x4.npz" in err[0] and "sha256" in err[0], err
    assert not out.exists() or not any(out.iterdir())


def test_basis_without_its_card_is_refused(tmp_path, models_copy):
    from engine.errors import ModelError
    from engine.pipeline.models import load_for_method

    (models_copy / "pca_manet_x4.json").unlink()
    with pytest.raises(ModelError, match="pca_manet_x4.json"):
        load_for_method("estimate", 4, device="cpu", backend="onnx")


def test_each_file_is_hashed_once_per_process(models_copy, monkeypatch):
    import engine.modelcards as modelcards
    from engine.pca import load_checked_basis

    calls = []
    real = modelcards.sha256_file
    monkeypatch.setattr(modelcards, "sha256_file", lambda p: calls.append(str(p)) or real(p))
    path = models_copy / "pca_manet_x4.npz"
    first = load_checked_basis(path)
    second = load_checked_basis(path)
    assert np.array_equal(first.mean, second.mean)
    assert calls.count(str(path)) <= 1
