"""A randomized monkey test: 200 UI actions (seeded) raise nothing and leave no widget behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
import shiboken6  # noqa: E402
from PySide6 import QtCore, QtGui, QtTest, QtWidgets  # noqa: E402

from app.window import MainWindow  # noqa: E402
from engine.imageio import Image, read_image, write_image  # noqa: E402
from tests.qtwait import wait_until  # noqa: E402
from engine.paths import resources_dir  # noqa: E402

N_ACTIONS = 200
SEED = int(os.environ.get("KERNELSCOPE_MONKEY_SEED", "20261123"))


def _address(widget: QtWidgets.QWidget) -> int:
    """The C++ object's address (Python wrappers of the same widget may differ between calls)."""
    return shiboken6.getCppPointer(widget)[0]


def _key(w: QtWidgets.QWidget, key: QtCore.Qt.Key, text: str = "") -> None:
    QtTest.QTest.keyClick(w, key)


def test_monkey_200_actions(qtbot, tmp_path, tiny_models_dir):
    rng = np.random.default_rng(SEED)
    lr = read_image(resources_dir() / "sample_lr.png").rgb_f32
    small = tmp_path / "small.png"
    write_image(small, Image(np.ascontiguousarray(lr[20:52, 40:80])))
    other = tmp_path / "other.png"
    write_image(other, Image(np.ascontiguousarray(lr[60:84, 100:132])))
    sharp = tmp_path / "sharp.png"
    hr = read_image(resources_dir() / "sample_hr_coffee.png").rgb_f32
    write_image(sharp, Image(np.ascontiguousarray(hr[100:196, 200:328])))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    before = {_address(w) for w in QtWidgets.QApplication.topLevelWidgets()}
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    w = MainWindow(settings, models_dir=tiny_models_dir)
    w.show()
    qtbot.waitExposed(w)
    w.open_paths([small])
    wait_until(lambda: not w.loader.busy(), what="reading")
    outcomes: list[str] = []
    w.bridge.finished.connect(lambda _j, kind, _r: outcomes.append(f"{kind} ok"))
    w.bridge.failed.connect(lambda _j, kind, _r: outcomes.append(f"{kind} failed"))
    w.bridge.cancelled.connect(lambda _j, kind: outcomes.append(f"{kind} cancelled"))

    def hover():
        v = w.viewer
        if v.geometry_ is None:
            return
        view = v.split_view if v.split_mode else (v.lr_view, v.sr_view)[int(rng.integers(2))]
        x, y = rng.uniform(-0.1, 1.1) * v.geometry_.sr_w, rng.uniform(-0.1, 1.1) * v.geometry_.sr_h
        pt = view.widget.mapFromScene(view.vb.mapViewToScene(QtCore.QPointF(x, y)))
        QtTest.QTest.qWait(12)
        QtWidgets.QApplication.sendEvent(view.widget.viewport(), QtGui.QMouseEvent(
            QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pt), QtCore.QPointF(pt), QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier))

    def paint(model):
        h, wd = model.labels.shape
        model.tool = ("brush", "eraser")[int(rng.integers(2))]
        model.label = int(rng.integers(1, 7))
        pts = [(float(rng.uniform(0, wd)), float(rng.uniform(0, h))) for _ in range(int(rng.integers(1, 4)))]
        model.stroke(pts)

    def set_method():
        rp = w.run_panel
        rp.method.setCurrentIndex(int(rng.integers(rp.method.count())))
        rp.ikc_steps.setValue(int(rng.integers(0, 3)))
        rp.tile.setValue(int(rng.choice([0, 16, 32, 64])))
        rp.scale.setCurrentIndex(int(rng.integers(rp.scale.count())))  # a scale the tiny models have

    def select_row():
        if w.queue.count():
            w.queue.setCurrentRow(int(rng.integers(w.queue.count())))

    def lab_round():
        if w.lab.hr_rgb_f32 is None:
            w.lab_open_image(sharp)
            wait_until(lambda: not w.loader.busy(), what="reading")
        paint(w.lab.regions)
        w.lab.set_region_params(int(rng.integers(1, 4)), float(rng.uniform(0.3, 4)), float(rng.uniform(0.3, 2)),
                                float(rng.uniform(0, 180)))
        w.run_lab()

    def ikc_moves():
        p = w.ikc_panel
        p.slider.setValue(int(rng.integers(0, p.slider.maximum() + 1)))
        p.compare.setCurrentIndex(int(rng.integers(2)))
        p.other.setValue(int(rng.integers(0, p.other.maximum() + 1)))
        if rng.random() < 0.3:
            p.play.toggle()

    actions = [
        (3, lambda: w.open_paths([[small, other, broken][int(rng.integers(3))]])),
        (4, select_row),
        (1, w.remove_current),
        (3, lambda: w.act_split.toggle()),
        (3, lambda: _key(w, QtCore.Qt.Key.Key_F)),
        (2, lambda: _key(w, QtCore.Qt.Key.Key_1)),
        (3, lambda: w.act_lattice.toggle()),
        (14, hover),
        (6, lambda: paint(w.regions)),
        (2, lambda: _key(w, QtCore.Qt.Key.Key_BracketRight)),
        (2, lambda: _key(w, QtCore.Qt.Key.Key_BracketLeft)),
        (2, lambda: w.regions_panel.set_tool([None, "brush", "eraser"][int(rng.integers(3))])),
        (4, set_method),
        (6, w.start_run),
        (3, w.cancel_run),
        (1, lambda: _key(w, QtCore.Qt.Key.Key_Escape)),
        (5, lambda: qtbot.wait(int(rng.integers(5, 60)))),
        (2, lambda: w.upscale_region(int(rng.integers(1, 4)))),
        (1, w.clear_regions),
        (3, lambda: w.tabs.setCurrentIndex(int(rng.integers(3)))),
        (3, ikc_moves),
        (1, lab_round),
        (1, lambda: w.save_result(tmp_path / f"out_{int(rng.integers(3))}.png")),
        (1, lambda: w.notice.dismiss()),
        (1, lambda: w.viewer.set_divider(float(rng.uniform(-50, 300)))),
    ]
    weights = np.array([a[0] for a in actions], float)
    picks = rng.choice(len(actions), size=N_ACTIONS, p=weights / weights.sum())
    for index in picks:
        actions[index][1]()
        QtWidgets.QApplication.processEvents()
    w.cancel_run()
    qtbot.waitUntil(lambda: not w.bridge.busy(), timeout=60_000)
    assert len(w.entries) == w.queue.count()
    assert "upscale ok" in outcomes, outcomes  # the monkey did get results, not only cancellations
    w.close()
    w.deleteLater()
    qtbot.wait(10)
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    QtWidgets.QApplication.processEvents()
    left = [x for x in QtWidgets.QApplication.topLevelWidgets() if _address(x) not in before]
    assert left == [], f"widgets left behind: {left}"
