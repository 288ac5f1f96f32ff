"""The application shell opens images from paths and drops, and reports bad files in the status bar."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6 import QtCore, QtGui  # noqa: E402

from app.main import MainWindow  # noqa: E402
from engine.paths import resources_dir  # noqa: E402

SAMPLE = resources_dir() / "sample_hr_coffee.png"


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_opens_bundled_sample(window):
    assert window.open_path(SAMPLE)
    shown = window.image_item.image
    assert shown.shape == (400, 600, 3) and shown.dtype == np.uint8
    assert "600×400" in window.hint.text()


def test_corrupt_file_is_reported_not_raised(window, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_text("this is not a picture")
    assert not window.open_path(bad)
    message = window.statusBar().currentMessage()
    assert "broken.png" in message
    assert window.current_path is None


def test_drop_skips_bad_file_and_opens_next(window, tmp_path, qtbot):
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(bad)), QtCore.QUrl.fromLocalFile(str(SAMPLE))])
    pos = QtCore.QPointF(window.width() / 2, window.height() / 2)
    event = QtGui.QDropEvent(
        pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert window.current_path == Path(SAMPLE)


def test_screenshot_flag_writes_png(tmp_path):
    from app.main import main

    out = tmp_path / "shot.png"
    assert main([str(SAMPLE), "--screenshot", str(out)]) == 0
    assert out.stat().st_size > 1000
