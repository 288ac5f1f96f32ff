"""Render screenshots of the real Kernelscope window into ``docs/screenshots/`` (offscreen Qt).

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/screenshots.py [--models DIR] [--out DIR]

Shots: ``start.png`` (the empty start screen), ``main.png`` (a MANet result, side by side),
``inspector.png`` (mid-hover), ``lattice.png`` (the kernel lattice with its legend), ``regions.png``
(painted regions, their statistics and an outlined region preview), ``split.png`` (before/after
divider), ``ikc.png`` (the IKC tab: iteration i next to the amplified difference to iteration 0)
and ``lab.png`` (the degradation lab round trip).
Uses the shipped models unless ``--models`` names another folder. Settings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's app/engine, not an installed one


def wait_until(app, predicate, timeout_s: float = 300.0) -> None:
    start = time.monotonic()
    while not predicate():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() - start > timeout_s:
            raise TimeoutError("the window did not finish in time")
    for _ in range(5):
        app.processEvents()


def hover(window, view, x_sr: float, y_sr: float) -> None:
    """Move the mouse over ``view`` (a viewer ``_View``) to scene point ``(x_sr, y_sr)``."""
    from PySide6 import QtCore, QtGui, QtWidgets

    scene_pt = view.vb.mapViewToScene(QtCore.QPointF(x_sr, y_sr))
    widget_pt = view.widget.mapFromScene(scene_pt)
    vp = view.widget.viewport()
    event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(widget_pt),
                              QtCore.QPointF(vp.mapToGlobal(widget_pt)), QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(vp, event)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "screenshots")
    args = parser.parse_args(argv)

    import numpy as np
    from PySide6 import QtCore

    from app.main import create_application
    from app.window import MainWindow, sample_image_path
    from engine.paths import resources_dir

    app = create_application()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QtCore.QSettings(str(Path(tmp) / "settings.ini"), QtCore.QSettings.Format.IniFormat)
        w = MainWindow(settings, models_dir=args.models)
        w.resize(1400, 900)
        w.show()
        wait_until(app, lambda: True)
        shot(w, args.out / "start.png")
        w.open_paths([sample_image_path(), resources_dir() / "sample_hr_coffee.png"])
        wait_until(app, lambda: not w.loader.busy())
        w.select_entry(w.entries[0])

        # 1. main view with a MANet result
        w.start_run()
        wait_until(app, lambda: not w.is_running())
        w.viewer.fit()
        wait_until(app, lambda: True)
        shot(w, args.out / "main.png")

        # 2. inspector mid-hover; then the kernel lattice on
        geo = w.viewer.geometry_
        hover(w, w.viewer.sr_view, geo.sr_w * 0.62, geo.sr_h * 0.45)
        wait_until(app, lambda: True)
        shot(w, args.out / "inspector.png")
        w.inspector.lattice.setChecked(True)
        hover(w, w.viewer.sr_view, geo.sr_w * 0.62, geo.sr_h * 0.45)
        wait_until(app, lambda: True)
        shot(w, args.out / "lattice.png")
        w.inspector.lattice.setChecked(False)

        # 3. painted regions with statistics
        w.regions_dock.raise_()
        lr_h, lr_w = w.regions.labels.shape
        w.regions.tool = "brush"
        w.regions.set_brush_radius(6)
        w.regions.label = 1
        w.regions.stroke([(lr_w * 0.15, lr_h * 0.2), (lr_w * 0.3, lr_h * 0.5), (lr_w * 0.2, lr_h * 0.8)])
        w.regions.label = 2
        w.regions.stroke([(lr_w * 0.7, lr_h * 0.25), (lr_w * 0.85, lr_h * 0.6)])
        w.regions.tool = None
        hover(w, w.viewer.lr_view, geo.sr_w * 0.25, geo.sr_h * 0.5)
        job = w.upscale_region(2)
        wait_until(app, lambda: not w.session.job_pending(job))
        shot(w, args.out / "regions.png")
        w.inspector_dock.raise_()

        # 4. before/after divider
        w.act_split.setChecked(True)
        w.viewer.fit()
        w.viewer.set_divider(geo.sr_w * 0.45)
        wait_until(app, lambda: True)
        shot(w, args.out / "split.png")
        w.act_split.setChecked(False)

        # 5. IKC iteration slider
        w.run_panel.method.setCurrentIndex(w.run_panel.method.findData("ikc"))
        w.start_run()
        wait_until(app, lambda: not w.is_running())
        w.tabs.setCurrentWidget(w.ikc_panel)
        panel = w.ikc_panel
        panel.compare.setCurrentIndex(panel.compare.findData("iteration"))
        panel.other.setValue(0)
        panel.difference.setChecked(True)
        panel.set_iteration(3)
        wait_until(app, lambda: True)
        shot(w, args.out / "ikc.png")

        # 6. degradation lab round trip
        w.tabs.setCurrentWidget(w.lab)
        w.lab_open_image(resources_dir() / "sample_hr_coffee.png")
        wait_until(app, lambda: not w.loader.busy())
        h, wd = w.lab.regions.labels.shape
        labels = np.zeros((h, wd), np.uint8)
        yy, xx = np.mgrid[0:h, 0:wd]
        labels[(yy - h * 0.45) ** 2 + (xx - wd * 0.42) ** 2 < (h * 0.3) ** 2] = 1
        labels[:, int(wd * 0.78):] = 2
        w.lab.regions.set_labels(labels)
        w.lab.set_region_params(1, 3.0, 0.9, 45.0)
        w.lab.set_region_params(2, 2.2, 2.2, 0.0)
        w.run_lab()
        wait_until(app, lambda: not w.is_running())
        shot(w, args.out / "lab.png")
        w.close()
    print(f"screenshots written to {args.out}")
    return 0


def shot(window, path: Path) -> None:
    window.grab().save(str(path))
    print(path)


if __name__ == "__main__":
    sys.exit(main())
