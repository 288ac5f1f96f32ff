"""bench/real_gallery.py: the deterministic window, the pictures it writes, and kept observations."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "real_gallery.py"


@pytest.fixture(scope="module")
def gallery():
    spec = importlib.util.spec_from_file_location("real_gallery", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["real_gallery"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["real_gallery"]


def test_window_is_the_most_textured_and_fits_small_images(gallery):
    rng = np.random.default_rng(0)
    img = np.full((200, 300, 3), 0.5, np.float32)
    img[120:184, 40:104] = rng.random((64, 64, 3), dtype=np.float32)  # the only texture
    y, x, side = gallery.most_textured_window(img, 64)
    assert (y, x, side) == (120, 40, 64)
    assert gallery.most_textured_window(img[:50, :70], 96)[2] == 50  # shrinks to the shorter side


def test_gallery_renders_panels_and_keeps_written_observations(gallery, shared_data, tiny_models_dir, tmp_path):
    md, out = tmp_path / "docs" / "REAL.md", tmp_path / "docs" / "real"
    argv = ["--previous-models", str(tiny_models_dir), "--models-dir", str(tiny_models_dir), "--photos", "0014.jpg",
            "--window", "32", "--margin", "4", "--md", str(md), "--out-dir", str(out)]
    assert gallery.main(argv) == 0
    text = md.read_text()
    names = {p.name for p in out.iterdir()}
    assert names == {"0014_input.png", "0014_bicubic.jpg", "0014_prev_manet.jpg", "0014_prev_ikc.jpg",
                     "0014_new_manet.jpg", "0014_new_ikc.jpg", "0014_prev_lattice.jpg", "0014_new_lattice.jpg"}
    for name in names:
        assert f"](real/{name})" in text
    assert "Previous: IKC (t = 7)" in text  # the tiny cards record no evaluated step: the fallback
    assert "not written yet" in text and "0014.jpg" in text
    # a person writes what they saw; a re-render keeps it
    md.write_text(text.replace("*Observations:* (not written yet — to be written after looking at the panels.)",
                               "Grain on the cap; bicubic is smoother.")
                  .replace("**Summary:** (not written yet — to be written after looking at every photo.)",
                           "**Summary.** Every method keeps the blocks."))
    assert gallery.main(argv) == 0
    again = md.read_text()
    assert "Grain on the cap; bicubic is smoother." in again and "not written yet" not in again
    assert "<!-- summary -->\n**Summary.** Every method keeps the blocks.\n<!-- /summary -->" in again
    assert gallery.main(argv) == 0  # re-rendering again changes nothing but the wall time (no blank lines pile up)
    def drop_time(t):
        return [line for line in t.splitlines() if not line.startswith("- Wall time")]
    assert drop_time(md.read_text()) == drop_time(again)
    other = argv[:4] + ["--photos", "0030.jpg", "--md", str(md), "--out-dir", str(out)]
    with pytest.raises(SystemExit, match="holds observations of 0014"):  # would drop what was written
        gallery.main(other)
    assert "Grain on the cap" in md.read_text()
    with pytest.raises(SystemExit, match="not in"):
        gallery.main(argv[:4] + ["--photos", "missing.jpg", "--md", str(md), "--out-dir", str(out)])
