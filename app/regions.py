"""The Regions dock at work: brush and eraser on the painted label map, its statistics, mask files.

:class:`RegionTools` connects the :class:`~app.panels.RegionsPanel` to the window's
:class:`~app.viewer.RegionModel` (the label map being painted) and to the session, which keeps the
labels with their image and computes what the panel shows. Mask files go through
:mod:`engine.masks` (read) and :mod:`app.saving` (write).
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from engine.masks import read_mask

from app.saving import SaveRefused, save_mask



class RegionTools(QtCore.QObject):
    """Tools, brush size, statistics and mask files of the window's painted regions."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:  # the app.window.MainWindow (which imports this module)
        super().__init__(window)
        self.window = window
        self.model = window.regions
        self.panel = window.regions_panel
        p = self.panel
        p.tool_changed.connect(self.set_tool)
        p.label_changed.connect(self.set_label)
        p.radius_changed.connect(self.model.set_brush_radius)
        p.clear_requested.connect(self.clear)
        p.save_requested.connect(window.dialogs.save_mask)
        p.load_requested.connect(window.dialogs.load_mask)
        p.upscale_region_requested.connect(window.upscale_region)
        self.model.changed.connect(self.refresh_stats)
        self.model.brush_changed.connect(self._on_brush_changed)

    @QtCore.Slot(object)
    def set_tool(self, tool: str | None) -> None:
        self.model.tool = tool
        if tool is not None:
            self.window.regions_dock.raise_()

    @QtCore.Slot(int)
    def set_label(self, label: int) -> None:
        self.model.label = label

    def bump_brush(self, factor: float) -> None:
        self.model.set_brush_radius(self.model.brush_radius * factor)

    @QtCore.Slot()
    def _on_brush_changed(self) -> None:
        self.panel.radius.blockSignals(True)
        self.panel.radius.setValue(self.model.brush_radius)
        self.panel.radius.blockSignals(False)
        self.window.statusBar().showMessage(f"Brush radius {self.model.brush_radius:.1f} LR px", 2000)

    @QtCore.Slot()
    def clear(self) -> None:
        self.model.reset(self.model.labels.shape)

    @QtCore.Slot()
    def refresh_stats(self) -> None:
        """Keep the labels with the image on show and show their statistics."""
        if self.window.current is not None:
            self.panel.show_stats(*self.window.session.region_summary(self.model.labels))

    def save_mask(self, path: Path) -> Path | None:
        """Write the painted regions as a colour PNG (readable by :meth:`load_mask`)."""
        try:
            return save_mask(self.model.labels, Path(path), self.window.input_paths())
        except SaveRefused as exc:
            self.window.notify(str(exc))
            return None

    def load_mask(self, path: Path) -> bool:
        """Read a mask PNG (region colours as saved, or grey label values 0..6); its size must match the image."""
        try:
            self.model.set_labels(read_mask(path))
        except (OSError, ValueError) as exc:
            self.window.notify(f"Could not load mask {Path(path).name}: {exc}")
            return False
        return True
