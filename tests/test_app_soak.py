"""Soak: thousands of hover events over the views after a real run must not drift reference counts.

PySide6/shiboken6 6.12.0 on CPython 3.11 lowered ``None``'s reference count on every Qt call returning
nothing and ``True``'s on every ``Signal.emit()``: about 65 per mouse move over a view, so the studio
aborted ("Fatal Python error: none_dealloc") after a few hundred moves. Short GUI tests never hover
long enough to see it; this one does, and fails with the drift long before CPython would abort.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

pytest.importorskip("PySide6")
import pyqtgraph as pg  # noqa: E402
from PySide6 import QtCore, QtTest, QtWidgets  # noqa: E402

from app.window import MainWindow  # noqa: E402
from engine.imageio import Image, read_image, write_image  # noqa: E402
from engine.paths import resources_dir  # noqa: E402
from tests.qtwait import wait_until  # noqa: E402

MOVES = 2000
CHECK_EVERY = 500
SLACK = 64
"""Allowed drift of each count: caches filling up once, not a per-event leak (6.12.0 drifted ~65 per move)."""


def refcounts() -> dict[str, int]:
    gc.collect()
    return {"None": sys.getrefcount(None), "True": sys.getrefcount(True), "False": sys.getrefcount(False)}


def hover(view, fx: float, fy: float) -> None:
    """Move the mouse to fraction (fx, fy) of the view's viewport through Qt's input plumbing.

    Not ``QApplication.sendEvent`` from Python: in PySide6 6.11.3 each such call raises ``None``'s
    reference count by one (a leak upwards, harmless, but it would hide the drift this test looks for).
    """
    vp = view.widget.viewport()
    QtTest.QTest.mouseMove(vp, QtCore.QPoint(int(fx * vp.width()), int(fy * vp.height())))


@pytest.fixture
def no_mouse_rate_limit():
    """pyqtgraph drops moves faster than 100 Hz; the soak wants every one handled."""
    old = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", 0)
    yield
    pg.setConfigOption("mouseRateLimit", old)


def test_hovering_after_a_run_keeps_none_true_false_refcounts(qtbot, tmp_path, tiny_models_dir,
                                                              no_mouse_rate_limit):
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings, models_dir=tiny_models_dir)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    lr = read_image(resources_dir() / "sample_lr.png")
    path = tmp_path / "crop.png"
    write_image(path, Image(np.ascontiguousarray(lr.rgb_f32[20:68, 40:104])))
    w.open_path(path)
    wait_until(lambda: w.current is not None, what="opening the crop")
    rp = w.run_panel
    rp.method.setCurrentIndex(rp.method.findData("manet"))
    assert w.start_run() is not None
    qtbot.waitUntil(lambda: not w.is_running(), timeout=60_000)
    assert w.current.result is not None, "the MANet run gave no result"

    viewer = w.viewer
    views = [viewer.lr_view, viewer.sr_view]
    rng = np.random.default_rng(16)
    for view in views:  # warm-up: first hovers fill pyqtgraph's and the inspector's caches
        for fx, fy in rng.uniform(0.1, 0.9, (20, 2)):
            hover(view, fx, fy)
        QtWidgets.QApplication.processEvents()
    moves_seen = []
    for view in (viewer.lr_view, viewer.sr_view, viewer.split_view):
        view.widget.scene().sigMouseMoved.connect(moves_seen.append)
    before = refcounts()
    for i in range(MOVES):
        if i == MOVES // 2:
            viewer.set_split_mode(True)
            views = [viewer.split_view]
        fx, fy = rng.uniform(0.05, 0.95, 2)
        hover(views[i % len(views)], fx, fy)
        if i % 8 == 0:
            QtWidgets.QApplication.processEvents()  # paints the views (pyqtgraph's ViewBox.paint)
        if (i + 1) % CHECK_EVERY == 0:
            now = refcounts()
            drift = {k: now[k] - before[k] for k in now}
            assert all(abs(d) <= SLACK for d in drift.values()), \
                f"reference counts drift after {i + 1} hover events: {drift} (a leaking Qt binding?)"
    viewer.set_split_mode(False)
    QtWidgets.QApplication.processEvents()
    assert len(moves_seen) > 0.9 * MOVES, f"only {len(moves_seen)} of {MOVES} moves reached the views"
    moves_seen.clear()
    assert w.isVisible() and w.inspector_dock.isVisible()
    assert w.current.result is not None
    w.close()
