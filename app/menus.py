"""The studio's menus, their shortcuts, the recent-files menu and the file dialogs behind its actions.

:func:`build_menus` is the window's menu bar written out by hand (Qt Designer's ``setupUi``): it sets the
actions the window enables and disables (``act_run``, ``act_save``, ...). :class:`FileDialogs` asks
the user (starting in the folders used last) and calls the window's public methods with the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from engine.imageio import READ_SUFFIXES

from app.saving import suggested_names


MAX_RECENT = 10
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
"""Saving to these asks for a quality."""
Key = QtGui.QKeySequence.StandardKey


def add_action(window: QtWidgets.QMainWindow, menu: QtWidgets.QMenu, text: str, slot: Callable, shortcut=None,
               checkable: bool = False) -> QtGui.QAction:
    """An action in ``menu`` whose shortcut works anywhere in ``window``."""
    action = QtGui.QAction(text, window)
    if shortcut is not None:
        action.setShortcut(QtGui.QKeySequence(shortcut))
        action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
    action.setCheckable(checkable)
    (action.toggled if checkable else action.triggered).connect(slot)
    menu.addAction(action)
    window.addAction(action)
    return action


def build_menus(w: QtWidgets.QMainWindow) -> None:
    """File, View, Run and Regions menus of ``w``; sets ``w.act_*`` and ``w.recent_menu``."""
    dialogs = w.dialogs
    f = w.menuBar().addMenu("&File")
    w.act_open = add_action(w, f, "&Open images…", dialogs.open_images, Key.Open)
    add_action(w, f, "Open &folder…", dialogs.open_folder)
    w.act_paste = add_action(w, f, "&Paste image", w.paste_from_clipboard, Key.Paste)
    w.recent_menu = f.addMenu("Open &recent")
    f.addSeparator()
    w.act_save = add_action(w, f, "&Save result…", dialogs.save_result, Key.Save)
    w.act_save_kernels = add_action(w, f, "Save &kernels (.npz)…", dialogs.save_kernels)
    w.act_save_cmp = add_action(w, f, "Save side-by-side &comparison…", dialogs.save_comparison)
    w.act_run_all = add_action(w, f, "Upscale &all into folder…", dialogs.run_all)
    f.addSeparator()
    add_action(w, f, "Remove from queue", w.remove_current, "Del")
    add_action(w, f, "&Quit", w.close, Key.Quit)

    v = w.menuBar().addMenu("&View")
    w.act_split = add_action(w, v, "Before/after &divider (Space)", w.viewer.set_split_mode, "Space", checkable=True)
    add_action(w, v, "&Fit", w.viewer.fit, "F")
    add_action(w, v, "&1:1 pixels", w.viewer.one_to_one, "1")
    w.act_lattice = add_action(w, v, "Kernel &lattice", w.inspector.lattice.setChecked, "L", checkable=True)
    v.addSeparator()
    for dock in w.docks.all():
        v.addAction(dock.toggleViewAction())
    add_action(w, v, "&Reset layout", w.reset_layout)

    r = w.menuBar().addMenu("&Run")
    w.act_run = add_action(w, r, "&Run", w.start_run, "Ctrl+R")
    w.act_cancel = add_action(w, r, "&Cancel", w.cancel_run, "Esc")

    g = w.menuBar().addMenu("Re&gions")
    tools = w.region_tools
    add_action(w, g, "&Brush", lambda: w.regions_panel.set_tool("brush"), "B")
    add_action(w, g, "&Eraser", lambda: w.regions_panel.set_tool("eraser"), "E")
    add_action(w, g, "&Pan / zoom", lambda: w.regions_panel.set_tool(None), "P")
    add_action(w, g, "Smaller brush", lambda: tools.bump_brush(1 / 1.25), "[")
    add_action(w, g, "Larger brush", lambda: tools.bump_brush(1.25), "]")


class RecentFiles(QtCore.QObject):
    """File ▸ Open recent: the last :data:`MAX_RECENT` files opened, kept in ``settings``."""

    def __init__(self, menu: QtWidgets.QMenu, settings: QtCore.QSettings, open_paths: Callable[[list[Path]], object],
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.menu = menu
        self.settings = settings
        self.open_paths = open_paths
        self.rebuild()

    def files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def remember(self, path: Path) -> None:
        recent = [str(path.resolve())] + [p for p in self.files() if p != str(path.resolve())]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.rebuild()

    def rebuild(self) -> None:
        self.menu.clear()
        for p in self.files():
            action = self.menu.addAction(Path(p).name)
            action.setToolTip(p)
            action.setData(p)
            action.triggered.connect(self._on_recent)
        self.menu.setEnabled(bool(self.files()))

    @QtCore.Slot()
    def _on_recent(self) -> None:
        action = self.sender()
        if isinstance(action, QtGui.QAction):
            self.open_paths([Path(action.data())])


class FileDialogs(QtCore.QObject):
    """The actions that ask the user for a file or folder first, then call the window with the answer."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:  # the app.window.MainWindow (which imports this module)
        super().__init__(window)
        self.window = window
        self.settings = window.settings

    def _folder(self, key: str) -> str:
        return str(self.settings.value(f"folders/{key}", ""))

    def _save_path(self, title: str, name: str, filters: str) -> Path | None:
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self.window, title, str(Path(self._folder("save")) / name),
                                                          filters)
        return Path(chosen) if chosen else None

    def _quality(self, path: Path) -> int | None:
        if path.suffix.lower() not in LOSSY_SUFFIXES:
            return 95
        value, ok = QtWidgets.QInputDialog.getInt(self.window, "Quality", f"{path.suffix[1:].upper()} quality "
                                                  "(100 = best)", int(self.settings.value("save/quality", 95)), 1, 100)
        if ok:
            self.settings.setValue("save/quality", value)
        return value if ok else None

    @QtCore.Slot()
    def open_images(self) -> None:
        suffixes = " ".join(f"*{s}" for s in sorted(READ_SUFFIXES))
        names, _ = QtWidgets.QFileDialog.getOpenFileNames(self.window, "Open images", self._folder("open"),
                                                          f"Images ({suffixes})")
        if names:
            self.window.open_paths([Path(n) for n in names])

    @QtCore.Slot()
    def open_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self.window, "Open folder", self._folder("open"))
        if folder:
            self.window.open_paths([Path(folder)])

    @QtCore.Slot()
    def open_lab_image(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Open a sharp image", self._folder("open"),
                                                        "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp)")
        if name:
            self.window.lab_open_image(Path(name))

    @QtCore.Slot()
    def run_all(self) -> None:
        if not self.window.entries:
            self.window.notify("The queue is empty: open or drop images first.")
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(self.window, "Upscale all into folder",
                                                            self._folder("batch"))
        if folder:
            self.window.run_all(Path(folder))

    def _save_with(self, save: Callable[[Path], object], title: str, name: str, filters: str) -> None:
        path = self._save_path(title, name, filters)
        if path is not None:
            save(path)

    @QtCore.Slot()
    def save_result(self) -> None:
        path = self._save_path("Save result", suggested_names(self.window.current)["result"],
                               "PNG (*.png);;16-bit TIFF (*.tif *.tiff);;JPEG (*.jpg *.jpeg);;WebP (*.webp)")
        if path is not None:
            quality = self._quality(path)
            if quality is not None:
                self.window.save_result(path, quality=quality)

    @QtCore.Slot()
    def save_kernels(self) -> None:
        self._save_with(self.window.save_kernel_map, "Save kernels", suggested_names(self.window.current)["kernels"],
                        "NumPy archive (*.npz)")

    @QtCore.Slot()
    def save_comparison(self) -> None:
        self._save_with(self.window.save_comparison, "Save comparison",
                        suggested_names(self.window.current)["comparison"], "PNG (*.png);;JPEG (*.jpg)")

    @QtCore.Slot()
    def save_mask(self) -> None:
        self._save_with(self.window.save_mask, "Save mask", "mask.png", "PNG (*.png)")

    @QtCore.Slot()
    def load_mask(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self.window, "Load mask", self._folder("save"), "PNG (*.png)")
        if name:
            self.window.load_mask(Path(name))
