"""The window's frame: the notice strip, the docks and their layout, and the settings that persist
(run panel, window geometry and dock state). Dock widths at a window size come from :mod:`app.layout`.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engine.imageio import Image, to_u8

from app.layout import MIN_WIDTH_PX, PREFERRED_WIDTH_PX, balanced_widths
from app.panels import RunPanel
from app.session import QueueEntry

Area = QtCore.Qt.DockWidgetArea
THUMB_PX = 96
"""Longer side of a queue thumbnail."""


class NoticeBar(QtWidgets.QFrame):
    """A non-modal message strip above the viewer (bad files, OOM retries); closes on click."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QtWidgets.QToolButton(text="✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        self.messages: list[str] = []
        self.hide()

    def add(self, message: str) -> None:
        self.messages = (self.messages + [message])[-6:]
        self.label.setText("\n".join(self.messages))
        self.show()

    @QtCore.Slot()
    def dismiss(self) -> None:
        self.messages = []
        self.hide()


class QueueList(QtWidgets.QListWidget):
    """The queue dock's list: one row per opened image, thumbnail, name and size."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QtWidgets.QListView.ViewMode.ListMode)
        self.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.setSpacing(2)
        self.setUniformItemSizes(True)
        self.setWordWrap(False)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        self.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def add_entry(self, entry: QueueEntry) -> None:
        image = entry.image
        item = QtWidgets.QListWidgetItem(thumbnail(image), f"{entry.name}\n{image.width}×{image.height}")
        item.setToolTip(str(entry.path) if entry.path else entry.name)
        item.setData(QtCore.Qt.ItemDataRole.UserRole, entry.entry_id)
        self.addItem(item)


def thumbnail(image: Image) -> QtGui.QIcon:
    """The queue's icon of ``image``: every n-th pixel, at most :data:`THUMB_PX` on the longer side."""
    rgb = image.rgb_f32
    step = max(1, -(-max(rgb.shape[:2]) // THUMB_PX))
    small = np.ascontiguousarray(to_u8(rgb[::step, ::step]))
    qimg = QtGui.QImage(small.data, small.shape[1], small.shape[0], small.strides[0],
                        QtGui.QImage.Format.Format_RGB888).copy()
    return QtGui.QIcon(QtGui.QPixmap.fromImage(qimg))


def add_dock(window: QtWidgets.QMainWindow, title: str, widget: QtWidgets.QWidget, area: Area,
             footer: QtWidgets.QWidget | None = None) -> QtWidgets.QDockWidget:
    """A dock whose ``widget`` scrolls when the dock is small; ``footer`` stays below it, never scrolled."""
    dock = QtWidgets.QDockWidget(title, window)
    dock.setObjectName(title.replace(" ", "_").lower())
    if isinstance(widget, QtWidgets.QListWidget):
        dock.setWidget(widget)
    else:
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(widget)
        scroll.setMinimumHeight(60)
        if footer is None:
            dock.setWidget(scroll)
        else:
            holder = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(holder)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(0)
            column.addWidget(scroll, 1)
            column.addWidget(footer)
            dock.setWidget(holder)
    dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    window.addDockWidget(area, dock)
    return dock


class Docks:
    """The studio's four docks (queue left; run, inspector and regions right) and their layout."""

    def __init__(self, window: QtWidgets.QMainWindow, queue: QtWidgets.QListWidget, run_panel: RunPanel,
                 inspector: QtWidgets.QWidget, regions_panel: QtWidgets.QWidget) -> None:
        self.window = window
        self.queue = add_dock(window, "Queue", queue, Area.LeftDockWidgetArea)
        self.run = add_dock(window, "Run", run_panel, Area.RightDockWidgetArea, footer=run_panel.footer)
        self.inspector = add_dock(window, "Kernel inspector", inspector, Area.RightDockWidgetArea)
        self.regions = add_dock(window, "Regions", regions_panel, Area.RightDockWidgetArea)
        window.tabifyDockWidget(self.inspector, self.regions)
        self.inspector.raise_()
        self.queue.setMinimumWidth(MIN_WIDTH_PX["queue"])
        for dock in (self.run, self.inspector, self.regions):
            dock.setMinimumWidth(MIN_WIDTH_PX["right"])
        self._size_side_docks()
        window.resizeDocks([self.run, self.inspector], [305, 545], QtCore.Qt.Orientation.Vertical)
        self.default_state = window.saveState()  # View > Reset layout
        self.balance_timer = QtCore.QTimer(window)  # restarted on every resize: balance once it settles
        self.balance_timer.setSingleShot(True)
        self.balance_timer.setInterval(150)
        self.balance_timer.timeout.connect(self.balance)

    def all(self) -> tuple[QtWidgets.QDockWidget, ...]:
        return self.queue, self.run, self.inspector, self.regions

    def _size_side_docks(self) -> None:
        self.window.resizeDocks([self.queue, self.run], [PREFERRED_WIDTH_PX["queue"], PREFERRED_WIDTH_PX["right"]],
                                QtCore.Qt.Orientation.Horizontal)

    def reset(self) -> None:
        """Every panel back in its place, at widths that suit the window."""
        self.window.restoreState(self.default_state)
        for dock in self.all():
            dock.setFloating(False)
            dock.show()
        self.inspector.raise_()
        self._size_side_docks()
        self.balance()

    @QtCore.Slot()
    def balance(self) -> None:
        """Give side panels back the width they lost at a small window size (see :mod:`app.layout`)."""
        docks = {"queue": self.queue, "right": self.run}
        current = {name: d.width() for name, d in docks.items() if d.isVisible() and not d.isFloating()}
        wanted = balanced_widths(self.window.width(), current)
        changed = [name for name in wanted if abs(wanted[name] - current[name]) > 2]
        if changed:
            self.window.resizeDocks([docks[n] for n in changed], [wanted[n] for n in changed],
                                    QtCore.Qt.Orientation.Horizontal)


# settings that persist -----------------------------------------------------------------------------------
RUN_COMBOS = (("method", "run/method"), ("device", "run/device"))
RUN_BOXES = (("tile", "run/tile"), ("ikc_steps", "run/ikc_steps"))


def save_run_settings(settings: QtCore.QSettings, rp: RunPanel) -> None:
    for name, key in RUN_COMBOS:
        settings.setValue(key, getattr(rp, name).currentData())
    settings.setValue("run/scale", int(rp.scale.currentData()))
    for name, key in RUN_BOXES:
        settings.setValue(key, getattr(rp, name).value())


def restore_run_settings(settings: QtCore.QSettings, rp: RunPanel) -> None:
    for name, key in RUN_COMBOS:
        combo, value = getattr(rp, name), settings.value(key)
        if value is not None and combo.findData(str(value)) >= 0:
            combo.setCurrentIndex(combo.findData(str(value)))
    scale = settings.value("run/scale")
    if scale is not None and rp.scale.findData(int(scale)) >= 0:
        rp.scale.setCurrentIndex(rp.scale.findData(int(scale)))
    for name, key in RUN_BOXES:
        value = settings.value(key)
        if value is not None:
            getattr(rp, name).setValue(int(value))


def save_window_state(settings: QtCore.QSettings, window: QtWidgets.QMainWindow) -> None:
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())


def restore_window_state(settings: QtCore.QSettings, window: QtWidgets.QMainWindow) -> None:
    geometry = settings.value("window/geometry")
    if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
        window.restoreGeometry(geometry)
    state = settings.value("window/state")
    if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
        window.restoreState(state)
