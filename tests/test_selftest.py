"""``kernelscope --selftest`` (app.selftest): passes on the shipped models, names what is broken, no Qt."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app import selftest
from engine.imageio import read_image, write_image
from engine.modelcards import find_card
from engine.paths import models_dir, resources_dir


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    """A 40×32 crop of the bundled sample (RGB, 8-bit): the same checks, a fraction of the time."""
    image = read_image(resources_dir() / selftest.SAMPLE_NAME)
    crop = image.with_pixels(np.ascontiguousarray(image.rgb_f32[:32, :40]))
    path = tmp_path_factory.mktemp("sample") / "small.png"
    write_image(path, crop)
    return path


def test_selftest_passes_on_shipped_models(small_sample):
    out = io.StringIO()
    code = selftest.run_selftest(sample=small_sample, device="cpu", out=out)
    text = out.getvalue()
    assert code == 0, text
    assert text.strip().endswith("SELFTEST PASSED")
    n_cards = len([p for p in models_dir().glob("*.json") if not p.name.startswith("pca_")])
    assert text.count("sha256 ok") >= n_cards
    from engine.modelcards import scales_with_models
    from engine.methods import networks_for

    for method in selftest.SELFTEST_METHODS:  # every shipped scale; the CPU default: int8 where a card ships it
        assert scales_with_models(method)
        for s in scales_with_models(method):
            cards = [find_card(n, s) for n in networks_for(method)]
            precision = "+".join(sorted({"int8" if "int8" in c.precisions else "fp32" for c in cards}))
            assert f"upscale {method} x{s}: 40x32 -> {40 * s}x{32 * s} on CPU · CPUExecutionProvider · {precision}" in text
    assert "CUDA: not used (CPU build of onnxruntime)" in text  # the dev environment has the CPU build


def test_selftest_names_a_corrupted_graph(tmp_path, small_sample):
    folder = tmp_path / "models"
    shutil.copytree(models_dir(), folder, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    card = find_card("sftmd", 4, models_dir=folder)  # whichever preset ships
    graph = card.graph_path
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))

    out = io.StringIO()
    code = selftest.run_selftest(folder, small_sample, device="cpu", out=out)
    text = out.getvalue()
    assert code == 1
    assert "SELFTEST FAILED: model cards: ModelError" in text and card.id in text
    assert "SELFTEST FAILED: upscale ikc" in text  # IKC needs SFTMD
    assert "upscale manet x4: 40x32 -> 160x128" in text  # MANet does not: still checked and reported
    assert "SELFTEST PASSED" not in text


def test_selftest_fails_clearly_without_models_and_never_imports_qt(tmp_path):
    """An empty models folder fails fast; the run (in a fresh interpreter) loads no Qt module."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from app.selftest import run_selftest
        code = run_selftest(Path({str(tmp_path)!r}))
        qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
        print("QT_MODULES", qt)
        sys.exit(code)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"SELFTEST FAILED: model cards: ModelError: no model cards found in {tmp_path}" in proc.stdout
    assert "QT_MODULES []" in proc.stdout


def test_check_upscale_rejects_wrong_output(monkeypatch, small_sample):
    """The output checks can fail: a method returning NaNs is reported, not passed."""
    import engine.upscale

    real = engine.upscale.upscale

    def nan_upscale(image, options, models, **kwargs):
        result = real(image, options, models, **kwargs)
        rgb = result.image.rgb_f32.copy()
        rgb[0, 0, 0] = np.nan
        result.image = result.image.with_pixels(rgb)
        return result

    monkeypatch.setattr(engine.upscale, "upscale", nan_upscale)
    with pytest.raises(AssertionError, match="non-finite"):
        selftest.check_upscale(small_sample, "manet", device="cpu")
