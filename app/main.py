"""``kernelscope``: opens the desktop studio window.

This is the application shell: a main window with an image view, File ▸ Open, drag-and-drop and a
status bar. The studio panels (run panel, kernel inspector, regions, IKC slider) are added on top of it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine import __version__
from engine.imageio import ImageReadError, apply_opencv_limits, read_image

log = logging.getLogger(__name__)

APP_NAME = "Kernelscope"


class MainWindow(QtWidgets.QMainWindow):
    """The main window: one image view for now, fed by File ▸ Open, drag-and-drop or the command line."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.setAcceptDrops(True)
        self.resize(1100, 750)

        pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
        self.view = pg.GraphicsLayoutWidget()
        self.viewbox = self.view.addViewBox(lockAspect=True, invertY=True)
        self.image_item = pg.ImageItem()
        self.viewbox.addItem(self.image_item)
        self.setCentralWidget(self.view)

        self.hint = QtWidgets.QLabel("Drop an image here, or use File ▸ Open (Ctrl+O)")
        self.hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.statusBar().addPermanentWidget(self.hint)
        self.current_path: Path | None = None

        file_menu = self.menuBar().addMenu("&File")
        open_action = QtGui.QAction("&Open…", self)
        open_action.setShortcut(QtGui.QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self._on_open)
        file_menu.addAction(open_action)
        quit_action = QtGui.QAction("&Quit", self)
        quit_action.setShortcut(QtGui.QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

    # opening ---------------------------------------------------------------------------------
    def open_path(self, path: Path) -> bool:
        """Show the image at ``path``; on failure, say why in the status bar and return False."""
        try:
            image = read_image(path)
        except ImageReadError as exc:
            self.statusBar().showMessage(str(exc), 10_000)
            return False
        rgb_u8 = np.clip(np.rint(image.rgb_f32 * 255.0), 0, 255).astype(np.uint8)
        self.image_item.setImage(rgb_u8, autoLevels=False, levels=(0, 255))
        self.viewbox.autoRange(padding=0.0)
        self.current_path = Path(path)
        h, w = rgb_u8.shape[:2]
        self.hint.setText(f"{Path(path).name} — {w}×{h} px, {image.bit_depth}-bit")
        self.setWindowTitle(f"{Path(path).name} — {APP_NAME}")
        return True

    @QtCore.Slot()
    def _on_open(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Open image", "", "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp)"
        )
        if name:
            self.open_path(Path(name))

    # drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt API)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        for path in paths:
            if self.open_path(path):
                break
        event.acceptProposedAction()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kernelscope", description="Kernelscope desktop studio")
    parser.add_argument("image", nargs="?", type=Path, help="image to open")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the window and quit")
    parser.add_argument("--version", action="version", version=f"kernelscope {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_opencv_limits()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    window = MainWindow()
    window.show()
    if args.image is not None:
        window.open_path(args.image)
    if args.screenshot is not None:
        # Let the window lay itself out and paint, then grab it.
        def grab() -> None:
            window.grab().save(str(args.screenshot))
            app.quit()

        QtCore.QTimer.singleShot(500, grab)
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
