"""The Kernelscope main window: queue, viewer, run panel, kernel inspector, regions, IKC slider, lab."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engine import __version__
from engine.imageio import (
    READ_SUFFIXES,
    Image,
    ImageIOError,
    ImageWriteError,
    OutputExistsError,
    decode_image_bytes,
    read_image,
    write_image,
)
from engine.outputs import OutputPlan, OutputRefused, check_file_name
from engine.paths import resources_dir
from engine.upscale import UpscaleOptions, upscale

from app.analysis import (REGION_COLOURS, comparison_picture, label_bbox, lattice_overlay,
                          region_stats)
from app.bridge import EngineBridge
from app.geometry import HoverHit, RunEta, format_duration
from app.ikc import IkcPanel
from app.layout import MIN_WIDTH_PX, PREFERRED_WIDTH_PX, balanced_widths
from app.lab import LabPanel, synthesise_and_estimate
from app.loader import ImageLoader
from app.panels import METHOD_LABELS, KernelInspector, RegionsPanel, RunPanel
from app.results import ResultPicker
from app.session import METHOD_SHORT, QueueEntry, RunOutput, device_name
from app.viewer import CompareViewer, RegionModel, to_u8
from engine.noise import estimate_noise

log = logging.getLogger(__name__)

APP_NAME = "Kernelscope"
MAX_RECENT = 10
THUMB_PX = 96
REGION_MARGIN_LR = 12  # context around an "Upscale region" crop, LR px


def upscale_job(bridge: EngineBridge, image: Image, options: UpscaleOptions, device: str, *,
                with_lattice: bool = True, progress) -> RunOutput:
    """Worker-side job: load (cached) models, upscale, and prepare the display (8-bit SR, kernel lattice,
    IKC change curves) so the GUI thread only hands arrays to the views."""
    progress.set_progress(0.0, "loading models")
    models = bridge.models_for(options.method, options.scale, device)
    progress.set_progress(0.0, "models loaded")  # the ETA clock starts here (RunEta)
    result = upscale(image, options, models, progress=progress)
    lattice = lattice_overlay(result.kernel_map) if with_lattice and result.kernel_map is not None else None
    changes = None
    if result.ikc is not None:
        changes = result.ikc.changes()  # measured in the loop: renders no iteration
    noise = estimate_noise(image.rgb_f32)  # the input's noise level, shown beside the kernel on hover
    return RunOutput(result, to_u8(result.image.rgb_f32), lattice, changes, noise)


def batch_job(bridge: EngineBridge, path: Path | None, image: Image | None, name: str, options: UpscaleOptions,
              device: str, folder: Path, *, progress) -> Path:
    """Worker-side job for "Upscale all": read (if needed), upscale, write ``<stem>_x<s>_<method>.png``."""
    if image is None:
        image = read_image(path)
    models = bridge.models_for(options.method, options.scale, device)
    result = upscale(image, options, models, progress=progress)
    stem = f"{Path(name).stem}_x{options.scale}_{options.method}"
    problem = check_file_name(stem + "_9999.png", "output name")
    if problem:
        raise ImageWriteError(folder / f"{stem}.png", problem)
    # the first free name, claimed by the writer itself (no-replace publish): never an existing file,
    # so neither an input nor a result written meanwhile (another job, another program) is replaced
    for n in range(10_000):
        target = folder / (f"{stem}.png" if n == 0 else f"{stem}_{n}.png")
        try:
            return write_image(target, result.image, overwrite=False)
        except OutputExistsError:
            continue
    raise ImageWriteError(folder / f"{stem}.png", "no free name (tried 10000)")


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


class MainWindow(QtWidgets.QMainWindow):
    """The studio. ``settings`` defaults to the user's QSettings; tests pass their own."""

    def __init__(self, settings: QtCore.QSettings | None = None, *, models_dir: Path | None = None) -> None:
        super().__init__()
        self.settings = settings if settings is not None else QtCore.QSettings()
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.setDockOptions(QtWidgets.QMainWindow.DockOption.AnimatedDocks
                            | QtWidgets.QMainWindow.DockOption.AllowTabbedDocks)
        self.bridge = EngineBridge(self, models_dir=models_dir)
        self.loader = ImageLoader(self)
        self._last_opened: dict[int, QueueEntry] = {}
        self.entries: list[QueueEntry] = []
        self.current: QueueEntry | None = None
        self._run_job: int | None = None
        self._run_entry_id: int | None = None
        self._batch: dict[int, str] = {}
        self._batch_total = 0
        self._batch_done = 0
        self._batch_failures: list[str] = []
        self._region_jobs: dict[int, tuple[int, tuple[int, int, int, int], tuple[int, int, int, int]]] = {}
        self._lab_job: int | None = None
        self._region_names: dict[int, int] = {}  # region job id → the region's label
        self._hover_cache: tuple[Any, Any] = (None, None)
        self._etas: dict[int, RunEta] = {}  # job id → its ETA from measured tile times
        self._closed = False

        # central: tabs (studio viewer | IKC iterations | degradation lab)
        self.regions = RegionModel(self)
        self.viewer = CompareViewer(self.regions)
        self.notice = NoticeBar()
        self.result_picker = ResultPicker()
        studio = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(studio)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.setSpacing(0)
        sl.addWidget(self.notice)
        sl.addWidget(self.result_picker)
        self.start_hint = QtWidgets.QLabel(
            "<p style='font-size:15pt'>Open or drop images</p><p>Drag image files or folders onto this window, "
            "or use File ▸ Open images… (Ctrl+O) or paste (Ctrl+V).<br>Then press Run (Ctrl+R) to upscale and "
            "see the blur kernels that were found.</p>")
        self.start_hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.start_hint.setWordWrap(True)
        self.start_hint.setProperty("role", "muted")
        sl.addWidget(self.start_hint, 1)
        sl.addWidget(self.viewer, 1)
        self.ikc_panel = IkcPanel()
        self.lab = LabPanel()
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(studio, "Studio")
        self.tabs.addTab(self.ikc_panel, "IKC iterations")
        self.tabs.addTab(self.lab, "Degradation lab")
        self.setCentralWidget(self.tabs)

        # docks
        self.queue = QtWidgets.QListWidget()
        self.queue.setViewMode(QtWidgets.QListView.ViewMode.ListMode)
        self.queue.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.queue.setSpacing(2)
        self.queue.setUniformItemSizes(True)
        self.queue.setWordWrap(False)
        self.queue.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        self.queue.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.run_panel = RunPanel()
        self.inspector = KernelInspector()
        self.regions_panel = RegionsPanel()
        self.queue_dock = self._dock("Queue", self.queue, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.run_dock = self._dock("Run", self.run_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea,
                                   footer=self.run_panel.footer)
        self.inspector_dock = self._dock("Kernel inspector", self.inspector,
                                         QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.regions_dock = self._dock("Regions", self.regions_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.inspector_dock, self.regions_dock)
        self.inspector_dock.raise_()
        self.queue_dock.setMinimumWidth(MIN_WIDTH_PX["queue"])
        for dock in (self.run_dock, self.inspector_dock, self.regions_dock):
            dock.setMinimumWidth(MIN_WIDTH_PX["right"])
        self.resizeDocks([self.queue_dock, self.run_dock], [PREFERRED_WIDTH_PX["queue"], PREFERRED_WIDTH_PX["right"]],
                         QtCore.Qt.Orientation.Horizontal)
        self.resizeDocks([self.run_dock, self.inspector_dock], [305, 545], QtCore.Qt.Orientation.Vertical)
        self._default_state = self.saveState()  # View > Reset layout
        self._balance_timer = QtCore.QTimer(self)
        self._balance_timer.setSingleShot(True)
        self._balance_timer.setInterval(150)
        self._balance_timer.timeout.connect(self.balance_docks)

        # status bar
        self.provider_label = QtWidgets.QLabel("device: –")
        self.provider_label.setToolTip("The execution provider the last run actually used")
        self.image_label = QtWidgets.QLabel("no image")
        self.hover_label = QtWidgets.QLabel("")
        for w in (self.hover_label, self.image_label, self.provider_label):
            self.statusBar().addPermanentWidget(w)

        self._build_menus()
        self._connect()
        self._restore_settings()
        self._update_actions()

    # construction helpers -------------------------------------------------------------------------
    def _dock(self, title: str, widget: QtWidgets.QWidget, area, footer: QtWidgets.QWidget | None = None
              ) -> QtWidgets.QDockWidget:
        """A dock whose ``widget`` scrolls when the dock is small; ``footer`` stays below it, never scrolled."""
        dock = QtWidgets.QDockWidget(title, self)
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
        self.addDockWidget(area, dock)
        return dock

    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut=None, checkable: bool = False
                ) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
            action.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        self.addAction(action)
        return action

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = self._action(f, "&Open images…", self._on_open, QtGui.QKeySequence.StandardKey.Open)
        self._action(f, "Open &folder…", self._on_open_folder)
        self.act_paste = self._action(f, "&Paste image", self.paste_from_clipboard, QtGui.QKeySequence.StandardKey.Paste)
        self.recent_menu = f.addMenu("Open &recent")
        f.addSeparator()
        self.act_save = self._action(f, "&Save result…", self._on_save_result, QtGui.QKeySequence.StandardKey.Save)
        self.act_save_kernels = self._action(f, "Save &kernels (.npz)…", self._on_save_kernels)
        self.act_save_cmp = self._action(f, "Save side-by-side &comparison…", self._on_save_comparison)
        self.act_run_all = self._action(f, "Upscale &all into folder…", self._on_run_all)
        f.addSeparator()
        self._action(f, "Remove from queue", self.remove_current, "Del")
        self._action(f, "&Quit", self.close, QtGui.QKeySequence.StandardKey.Quit)

        v = mb.addMenu("&View")
        self.act_split = self._action(v, "Before/after &divider (Space)", self.viewer.set_split_mode, "Space",
                                      checkable=True)
        self._action(v, "&Fit", self.viewer.fit, "F")
        self._action(v, "&1:1 pixels", self.viewer.one_to_one, "1")
        self.act_lattice = self._action(v, "Kernel &lattice", self.inspector.lattice.setChecked, "L",
                                        checkable=True)
        v.addSeparator()
        for dock in (self.queue_dock, self.run_dock, self.inspector_dock, self.regions_dock):
            v.addAction(dock.toggleViewAction())
        self._action(v, "&Reset layout", self.reset_layout)

        r = mb.addMenu("&Run")
        self.act_run = self._action(r, "&Run", self.start_run, "Ctrl+R")
        self.act_cancel = self._action(r, "&Cancel", self.cancel_run, "Esc")

        g = mb.addMenu("Re&gions")
        self._action(g, "&Brush", lambda: self.regions_panel.set_tool("brush"), "B")
        self._action(g, "&Eraser", lambda: self.regions_panel.set_tool("eraser"), "E")
        self._action(g, "&Pan / zoom", lambda: self.regions_panel.set_tool(None), "P")
        self._action(g, "Smaller brush", lambda: self._bump_brush(1 / 1.25), "[")
        self._action(g, "Larger brush", lambda: self._bump_brush(1.25), "]")

    def _connect(self) -> None:
        self.loader.opened.connect(self._on_image_read)
        self.loader.finished.connect(self._on_read_finished)
        b = self.bridge
        b.progressed.connect(self._on_progress)
        b.finished.connect(self._on_finished)
        b.failed.connect(self._on_failed)
        b.cancelled.connect(self._on_cancelled)
        b.notice.connect(self._on_notice)
        self.queue.currentRowChanged.connect(self._on_queue_row)
        self.run_panel.run_requested.connect(self.start_run)
        self.run_panel.cancel_requested.connect(self.cancel_run)
        self.run_panel.run_all_requested.connect(self._on_run_all)
        self.viewer.hovered.connect(self._on_hover)
        self.result_picker.method_chosen.connect(self.show_method)
        self.inspector.lattice_toggled.connect(self._on_lattice)
        self.regions_panel.tool_changed.connect(self._on_tool)
        self.regions_panel.label_changed.connect(self._on_label)
        self.regions_panel.radius_changed.connect(self.regions.set_brush_radius)
        self.regions_panel.clear_requested.connect(self._on_clear_regions)
        self.regions_panel.save_requested.connect(self._on_save_mask)
        self.regions_panel.load_requested.connect(self._on_load_mask)
        self.regions_panel.upscale_region_requested.connect(self.upscale_region)
        self.regions.changed.connect(self._on_regions_changed)
        self.regions.brush_changed.connect(self._on_brush_changed)
        self.ikc_panel.iteration_changed.connect(self._on_ikc_iteration)
        self.lab.run_requested.connect(self.run_lab)
        self.lab.open_requested.connect(self._on_lab_open)
        self.lab.send_to_studio.connect(self._on_lab_to_studio)

    # opening ----------------------------------------------------------------------------------------
    def open_paths(self, paths: list[Path]) -> int:
        """Open files and folders into the queue, read on the loader thread (the window stays responsive).

        Images join the queue as they are decoded; unreadable files are reported together (non-modal)
        and skipped; the last image opened is selected when the request finishes. Returns the request id
        (:attr:`loader` signals ``opened`` and ``finished`` carry it).
        """
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and not paths[0].is_dir():
            self.statusBar().showMessage(f"Reading {paths[0].name}…", 10_000)
        else:
            self.statusBar().showMessage(f"Reading {len(paths)} item(s)…", 10_000)
        return self.loader.read(paths, "queue")

    def open_path(self, path: Path) -> int:
        """Open one file (see :meth:`open_paths`)."""
        return self.open_paths([Path(path)])

    @QtCore.Slot(int, str, object, object)
    def _on_image_read(self, request_id: int, purpose: str, path: Path, image: Image) -> None:
        if self._closed:
            return
        if purpose == "lab":
            try:
                self.lab.set_image(image.rgb_f32, path.name, self.run_panel.options().scale)
            except ValueError as exc:
                self.notify(f"Lab: {exc}")
            return
        self._last_opened[request_id] = self.add_image(image, path.name, path)
        self._remember_recent(path)
        self.settings.setValue("folders/open", str(path.parent))

    @QtCore.Slot(int, str, object)
    def _on_read_finished(self, request_id: int, purpose: str, problems: list[str]) -> None:
        if self._closed:
            return
        last = self._last_opened.pop(request_id, None)
        if problems:
            if purpose == "lab":
                self.notify("Lab: could not open " + "; ".join(problems))
            else:
                head = "Could not open " + ("1 file" if len(problems) == 1 else f"{len(problems)} files")
                self.notify(f"{head} — " + "; ".join(problems))
        elif last is not None:
            self.statusBar().clearMessage()
            self.notice.dismiss()  # an old "could not open" no longer applies
        if last is not None:
            self.select_entry(last)

    def add_image(self, image: Image, name: str, path: Path | None = None) -> QueueEntry:
        entry = QueueEntry(name=name, image=image, path=path)
        self.entries.append(entry)
        item = QtWidgets.QListWidgetItem(self._thumbnail(image), f"{name}\n{image.width}×{image.height}")
        item.setToolTip(str(path) if path else name)
        item.setData(QtCore.Qt.ItemDataRole.UserRole, entry.entry_id)
        self.queue.addItem(item)
        return entry

    @staticmethod
    def _thumbnail(image: Image) -> QtGui.QIcon:
        rgb = image.rgb_f32
        h, w = rgb.shape[:2]
        step = max(1, int(math.ceil(max(h, w) / THUMB_PX)))
        small = np.ascontiguousarray(np.clip(np.rint(rgb[::step, ::step] * 255), 0, 255).astype(np.uint8))
        qimg = QtGui.QImage(small.data, small.shape[1], small.shape[0], small.strides[0],
                            QtGui.QImage.Format.Format_RGB888).copy()
        return QtGui.QIcon(QtGui.QPixmap.fromImage(qimg))

    def paste_from_clipboard(self) -> bool:
        """Open an image (or image files) from the clipboard."""
        mime = QtWidgets.QApplication.clipboard().mimeData()
        if mime is None:
            return False
        if mime.hasUrls() and any(u.isLocalFile() for u in mime.urls()):
            self.open_paths([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
            return True
        if mime.hasImage():
            qimg = QtGui.QImage(mime.imageData())
            buf = QtCore.QBuffer()
            buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
            qimg.save(buf, "PNG")
            data = bytes(buf.data())
            try:
                image = decode_image_bytes(data, "clipboard image")
            except ImageIOError as exc:
                self.notify(f"Could not paste: {exc.reason}")
                return False
            self.select_entry(self.add_image(image, f"pasted {len(self.entries) + 1}.png"))
            return True
        self.notify("The clipboard holds no image.")
        return False

    def remove_current(self) -> None:
        if self.current is None or self._run_job is not None:
            return
        row = self.entries.index(self.current)
        self.entries.pop(row)
        self.queue.takeItem(row)
        self.current = None
        if self.entries:
            self.select_entry(self.entries[min(row, len(self.entries) - 1)])
        else:
            self._show_entry(None)

    def select_entry(self, entry: QueueEntry) -> None:
        row = self.entries.index(entry)
        if self.queue.currentRow() != row:
            self.queue.setCurrentRow(row)
        else:
            self._show_entry(entry)

    @QtCore.Slot(int)
    def _on_queue_row(self, row: int) -> None:
        self._show_entry(self.entries[row] if 0 <= row < len(self.entries) else None)

    def show_method(self, method: str) -> None:
        """Show the current image's result of ``method`` (kept from an earlier run)."""
        if self.current is not None and method in self.current.results and method != self.current.shown:
            self.current.show(method)
            self._show_entry(self.current)

    def _show_entry(self, entry: QueueEntry | None) -> None:
        if self.current is not None:
            self.current.keep_labels(self.regions.labels)
        self.current = entry
        self._hover_cache = (None, None)
        self.result_picker.set_entry(entry)
        if entry is None:
            self.viewer.set_images(None, None, 1)
            self.image_label.setText("no image")
            self.setWindowTitle(f"{APP_NAME} {__version__}")
            self.ikc_panel.set_result(None, None, 1)
            self._update_actions()
            return
        img = entry.image
        result = entry.result
        scale = result.scale if result is not None else self.run_panel.options().scale
        self.viewer.set_images(img.rgb_f32, None if result is None else entry.sr_u8, scale)
        if result is not None:
            self.viewer.sr_view.label.setText(f"Result (SR) — {METHOD_SHORT[result.method]}")
        labels = entry.labels_or_empty()
        if self.regions.labels.shape != labels.shape:
            self.regions.reset(labels.shape)
        self.regions.set_labels(labels.copy())
        self.image_label.setText(f"{entry.name} — {img.width}×{img.height} px, {img.bit_depth}-bit"
                                 + (", alpha" if img.has_alpha else ""))
        self.setWindowTitle(f"{entry.name} — {APP_NAME}")
        ikc = entry.results.get("ikc")
        self.ikc_panel.set_result(img.rgb_f32, None if ikc is None else ikc.result.ikc,
                                  scale if ikc is None else ikc.result.scale, entry.ikc_changes)
        self._on_lattice(self.inspector.lattice.isChecked())
        self.inspector.show_info(None, self._inspector_title(), "move the mouse over either view",
                                 self._inspector_source())
        self.inspector.show_noise(None, None)
        self.inspector.show_other(None, "")
        self._update_actions()

    def _remember_recent(self, path: Path) -> None:
        recent = [str(path.resolve())] + [p for p in self.recent_files() if p != str(path.resolve())]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_files():
            action = self.recent_menu.addAction(Path(p).name)
            action.setToolTip(p)
            action.setData(p)
            action.triggered.connect(self._on_recent)
        self.recent_menu.setEnabled(bool(self.recent_files()))

    @QtCore.Slot()
    def _on_recent(self) -> None:
        action = self.sender()
        if isinstance(action, QtGui.QAction):
            self.open_paths([Path(action.data())])

    @QtCore.Slot()
    def _on_open(self) -> None:
        suffixes = " ".join(f"*{s}" for s in sorted(READ_SUFFIXES))
        names, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Open images", str(self.settings.value("folders/open", "")), f"Images ({suffixes})")
        if names:
            self.open_paths([Path(n) for n in names])

    @QtCore.Slot()
    def _on_open_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Open folder",
                                                            str(self.settings.value("folders/open", "")))
        if folder:
            self.open_paths([Path(folder)])

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt API)
        mime = event.mimeData()
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
        event.acceptProposedAction()

    def notify(self, message: str) -> None:
        """A non-modal message (notice strip + status bar)."""
        log.info("%s", message)
        self.notice.add(message)
        self.statusBar().showMessage(message, 15_000)

    @QtCore.Slot(str)
    def _on_notice(self, message: str) -> None:
        self.notify(f"Out of memory — retrying with smaller tiles ({message})")

    # running ------------------------------------------------------------------------------------------
    def preload_models(self) -> int:
        """Load the run panel's models on the worker now (onnxruntime holds the GIL for a moment while it
        builds a session: better at start-up than during the first run). Returns the job id."""
        options = self.run_panel.options()
        device = self.run_panel.device_key()

        def load(*, progress):
            return self.bridge.models_for(options.method, options.scale, device) is not None

        return self.bridge.submit("preload", load).job_id

    def start_run(self) -> int | None:
        """Upscale the current image with the run panel's settings; returns the job id."""
        if self.current is None or self._run_job is not None or self._batch:
            return None
        try:
            options = self.run_panel.options()
        except ValueError as exc:
            self.notify(str(exc))
            return None
        job = self.bridge.submit("upscale", upscale_job, self.bridge, self.current.image, options,
                                 self.run_panel.device_key(), tag=self.current.entry_id)
        self._run_job = job.job_id
        self._run_entry_id = self.current.entry_id
        self.run_panel.set_running(True, METHOD_LABELS[options.method].split(" (")[0])
        self._save_run_settings()
        self._update_actions()
        return job.job_id

    def cancel_run(self) -> None:
        """Cancel the running job(s) (Esc); the window stays usable."""
        if self._run_job is not None or self._batch or self._region_jobs or self._lab_job is not None:
            self.bridge.cancel()

    def is_running(self) -> bool:
        return self._run_job is not None or bool(self._batch) or self._lab_job is not None

    @QtCore.Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        eta = self._etas.setdefault(job_id, RunEta()).update(time.monotonic(), fraction, message)
        text = f"{message or 'working'} · ETA {format_duration(eta)}" if fraction < 1 else "finishing"
        if job_id in self._batch:
            text = f"{self._batch_done + 1}/{self._batch_total} {self._batch[job_id]} · " + text
        if job_id == self._run_job or job_id in self._batch or job_id == self._lab_job:
            self.run_panel.show_progress(fraction, text)

    @QtCore.Slot(int, str, object)
    def _on_finished(self, job_id: int, kind: str, payload: Any) -> None:
        self._etas.pop(job_id, None)
        if kind == "upscale" and job_id == self._run_job:
            self._run_job = None
            result = payload.result
            entry = self._entry_by_id(self._run_entry_id)
            self.run_panel.set_running(False)
            self.run_panel.finish(f"done in {result.seconds:.1f} s")
            self.provider_label.setText(result.execution)
            if entry is not None:
                entry.add_result(payload)
                if entry is self.current:
                    self._show_entry(entry)
            self.statusBar().showMessage(f"{METHOD_LABELS[result.method]} ×{result.scale} in {result.seconds:.2f} s "
                                         f"on {device_name(result.provider)}", 10_000)
            self._on_regions_changed()
        elif kind == "batch":
            self._batch_finished(job_id, f"wrote {Path(payload).name}")
        elif kind == "region":
            self._region_finished(job_id, payload)
        elif kind == "lab" and job_id == self._lab_job:
            self._lab_job = None
            self.run_panel.set_running(False)
            self.run_panel.finish("lab: done")
            self.lab.run_button.setEnabled(True)
            self.lab.show_result(payload)
            self.provider_label.setText(f"device: {device_name(payload.provider)}")
        self._update_actions()

    @QtCore.Slot(int, str, str)
    def _on_failed(self, job_id: int, kind: str, reason: str) -> None:
        self._etas.pop(job_id, None)
        if kind == "batch":
            self._batch_finished(job_id, f"failed: {reason}", failed=True)
            return
        if kind == "preload":  # reported when the user runs
            log.info("preloading models failed: %s", reason)
            return
        self._end_job(job_id, kind, "failed")
        where = self.current.name if self.current is not None and kind == "upscale" else kind
        self.notify(f"{where}: {reason}")

    @QtCore.Slot(int, str)
    def _on_cancelled(self, job_id: int, kind: str) -> None:
        self._etas.pop(job_id, None)
        if kind == "batch":
            self._batch_finished(job_id, "cancelled", failed=True)
            return
        self._end_job(job_id, kind, "cancelled")
        self.statusBar().showMessage("Cancelled", 5000)

    def _end_job(self, job_id: int, kind: str, text: str) -> None:
        if job_id == self._run_job:
            self._run_job = None
        if job_id == self._lab_job:
            self._lab_job = None
            self.lab.run_button.setEnabled(True)
        self._region_jobs.pop(job_id, None)
        self._region_names.pop(job_id, None)
        if not self.is_running():
            self.run_panel.set_running(False)
            self.run_panel.finish(text)
        self._update_actions()

    def _entry_by_id(self, entry_id: int | None) -> QueueEntry | None:
        for e in self.entries:
            if e.entry_id == entry_id:
                return e
        return None

    # upscale all ----------------------------------------------------------------------------------------
    @QtCore.Slot()
    def _on_run_all(self) -> None:
        if not self.entries:
            self.notify("The queue is empty: open or drop images first.")
            return
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Upscale all into folder",
                                                            str(self.settings.value("folders/batch", "")))
        if folder:
            self.run_all(Path(folder))

    def run_all(self, folder: Path) -> list[int]:
        """Run every queued image into ``folder``; returns the job ids."""
        if self.is_running() or not self.entries:
            return []
        options = self.run_panel.options()
        self.settings.setValue("folders/batch", str(folder))
        self._batch_total = len(self.entries)
        self._batch_done = 0
        self._batch_failures = []
        for entry in self.entries:
            job = self.bridge.submit("batch", batch_job, self.bridge, None, entry.image, entry.name, options,
                                     self.run_panel.device_key(), folder)
            self._batch[job.job_id] = entry.name
        self.run_panel.set_running(True, f"Upscale all ({self._batch_total})")
        self._update_actions()
        return list(self._batch)

    def _batch_finished(self, job_id: int, text: str, failed: bool = False) -> None:
        name = self._batch.pop(job_id, "?")
        self._batch_done += 1
        if failed:
            self._batch_failures.append(f"{name}: {text}")
        if not self._batch:
            self.run_panel.set_running(False)
            ok = self._batch_done - len(self._batch_failures)
            self.run_panel.finish(f"upscaled {ok}/{self._batch_total}")
            if self._batch_failures:
                self.notify("Upscale all — " + "; ".join(self._batch_failures))
            else:
                self.statusBar().showMessage(f"Upscaled {ok} images", 10_000)
        self._update_actions()

    # hover inspector --------------------------------------------------------------------------------------
    def _inspector_title(self) -> str:
        result = self.current.result if self.current is not None else None
        if result is None:
            return "Run MANet to see kernels"
        return {"manet": "Kernel under the cursor (MANet)", "ikc": "IKC kernel (whole image)",
                "nonblind": "Your kernel (non-blind)", "bicubic": "Bicubic: no kernel"}[result.method]

    def _inspector_source(self) -> str:
        result = self.current.result if self.current is not None else None
        if result is None:
            return "–"
        if result.method == "ikc":
            return f"iteration {self.ikc_panel.current()}"
        return result.method

    @QtCore.Slot(object, str)
    def _on_hover(self, hit: HoverHit | None, space: str) -> None:
        if hit is None or self.current is None:
            self.hover_label.setText("")
            return
        self.hover_label.setText(f"LR ({hit.lr_col}, {hit.lr_row})  SR ({hit.sr_x:.0f}, {hit.sr_y:.0f})")
        self.inspect(hit, space)

    def inspect(self, hit: HoverHit, space: str) -> None:
        """Show in the inspector the kernel at ``hit`` — exactly ``kernel_at`` for MANet results."""
        result = self.current.result if self.current is not None else None
        where = f"LR ({hit.lr_col}, {hit.lr_row}), {space.upper()} view"
        info = None
        if result is not None and result.kernel_map is not None:
            key = (id(result), hit.lr_row, hit.lr_col)
            if self._hover_cache[0] == key:
                info = self._hover_cache[1]
            else:
                if space == "sr":
                    info = result.kernel_map.kernel_at(hit.sr_x, hit.sr_y, space="sr")
                else:
                    info = result.kernel_map.kernel_at(hit.lr_x, hit.lr_y, space="lr")
                self._hover_cache = (key, info)
        elif result is not None and result.ikc is not None:
            from engine.pipeline.kernelmap import describe_kernel

            it = result.ikc.iterations[min(self.ikc_panel.current(), len(result.ikc.iterations) - 1)]
            info = describe_kernel(it.kernel, (hit.lr_row, hit.lr_col))
        elif result is not None and result.nonblind_sigmas is not None:
            from engine.degradation.kernels import anisotropic_gaussian_kernel
            from engine.pipeline.kernelmap import describe_kernel

            # the kernel the run used, not the panel's current one
            info = describe_kernel(anisotropic_gaussian_kernel(result.nonblind_sigmas, result.scale),
                                   (hit.lr_row, hit.lr_col))
        self.inspector.show_info(info, self._inspector_title(), where, self._inspector_source())
        shown = self.current.output if self.current else None
        noise = shown.noise if shown is not None else None
        self.inspector.show_noise(None if noise is None else noise.at(hit.lr_x, hit.lr_y),
                                  None if noise is None else noise.sigma_255)
        other = self.current.other_kernel(hit.lr_row, hit.lr_col, self.ikc_panel.current()) if self.current else None
        self.inspector.show_other(other[0] if other else None, METHOD_SHORT[other[1]] if other else "")

    @QtCore.Slot(bool)
    def _on_lattice(self, on: bool) -> None:
        if self.act_lattice.isChecked() != on:
            self.act_lattice.setChecked(on)
        source = self.current.kernel_source() if self.current is not None else None
        lattice = None if source is None else source.lattice
        if on and lattice is not None:
            self.viewer.set_lattice(lattice.rgba_u8, lattice.px_per_lr)
            self.inspector.lattice_legend.setText(f"{METHOD_SHORT[source.method]} kernels. {lattice.legend()}")
        else:
            self.viewer.set_lattice(None)
        self.inspector.lattice_legend.setVisible(on and lattice is not None)
        if on and lattice is None and self.current is not None:
            self.statusBar().showMessage("The kernel lattice needs a MANet result", 5000)

    @QtCore.Slot(int)
    def _on_ikc_iteration(self, index: int) -> None:
        result = self.current.result if self.current is not None else None
        if result is None or result.ikc is None:
            return
        its = result.ikc.iterations
        self.viewer.set_sr(its[min(index, len(its) - 1)].sr_rgb_f32)
        from engine.pipeline.kernelmap import describe_kernel

        self.inspector.show_info(describe_kernel(its[min(index, len(its) - 1)].kernel), self._inspector_title(),
                                 "whole image", self._inspector_source())

    # regions ----------------------------------------------------------------------------------------------
    @QtCore.Slot(object)
    def _on_tool(self, tool: str | None) -> None:
        self.regions.tool = tool
        if tool is not None:
            self.regions_dock.raise_()

    @QtCore.Slot(int)
    def _on_label(self, label: int) -> None:
        self.regions.label = label

    def _bump_brush(self, factor: float) -> None:
        self.regions.set_brush_radius(self.regions.brush_radius * factor)

    @QtCore.Slot()
    def _on_brush_changed(self) -> None:
        self.regions_panel.radius.blockSignals(True)
        self.regions_panel.radius.setValue(self.regions.brush_radius)
        self.regions_panel.radius.blockSignals(False)
        self.statusBar().showMessage(f"Brush radius {self.regions.brush_radius:.1f} LR px", 2000)

    @QtCore.Slot()
    def _on_clear_regions(self) -> None:
        self.regions.reset(self.regions.labels.shape)

    @QtCore.Slot()
    def _on_regions_changed(self) -> None:
        if self.current is None:
            return
        self.current.keep_labels(self.regions.labels)
        source = self.current.kernel_source()
        kmap = None if source is None else source.result.kernel_map
        if kmap is None or self.regions.labels.shape != kmap.lr_hw:
            self.regions_panel.show_stats([], "" if self.current.result is None else
                                          "Region statistics need a MANet result (they use its kernel map).")
            return
        self.regions_panel.show_stats(region_stats(self.regions.labels, kmap),
                                      source=f"{METHOD_SHORT[source.method]} kernel map")

    def save_mask(self, path: Path) -> Path | None:
        """Write the painted regions as a colour PNG (region colours on black; readable by :meth:`load_mask`)."""
        lut = np.zeros((256, 3), np.uint8)
        for k, rgb in enumerate(REGION_COLOURS, start=1):
            lut[k] = rgb
        if not self._may_save_to(path):
            return None
        mask = Image(lut[self.regions.labels].astype(np.float32) / 255.0, bit_depth=8)
        try:  # the file dialog asked before replacing an existing file
            return write_image(Path(path).with_suffix(".png") if not Path(path).suffix else path, mask,
                               overwrite=True)
        except ImageIOError as exc:
            self.notify(str(exc))
            return None

    def load_mask(self, path: Path) -> bool:
        """Read a mask PNG: region colours (as saved) or grey label values 0..6; size must match the LR image."""
        from PIL import Image as PILImage

        try:
            with PILImage.open(path) as im:
                arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "P", "I;16", "I") else im.convert("L"))
        except (OSError, ValueError) as exc:
            self.notify(f"Could not load mask {Path(path).name}: {exc}")
            return False
        if arr.ndim == 2:
            labels = np.where(arr <= len(REGION_COLOURS), arr, 0).astype(np.uint8)
        else:
            palette = np.array([(0, 0, 0)] + list(REGION_COLOURS), np.int32)
            d = ((arr[:, :, None, :].astype(np.int32) - palette[None, None]) ** 2).sum(-1)
            labels = d.argmin(-1).astype(np.uint8)
        try:
            self.regions.set_labels(labels)
        except ValueError as exc:
            self.notify(f"Could not load mask {Path(path).name}: {exc}")
            return False
        return True

    @QtCore.Slot()
    def _on_save_mask(self) -> None:
        name, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save mask", self._suggest("mask.png"), "PNG (*.png)")
        if name:
            self.save_mask(Path(name))

    @QtCore.Slot()
    def _on_load_mask(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Load mask", str(self.settings.value("folders/save", "")),
                                                        "PNG (*.png)")
        if name:
            self.load_mask(Path(name))

    def upscale_region(self, label: int) -> int | None:
        """Run the current method on the bounding box of region ``label`` and preview it in place."""
        if self.current is None:
            return None
        tight = label_bbox(self.regions.labels, label)
        if tight is None:
            self.notify(f"Region {label} is empty: paint it first.")
            return None
        wide = label_bbox(self.regions.labels, label, REGION_MARGIN_LR)
        y0, y1, x0, x1 = wide
        img = self.current.image
        crop = img.with_pixels(np.ascontiguousarray(img.rgb_f32[y0:y1, x0:x1]),
                               None if img.alpha_f32 is None else np.ascontiguousarray(img.alpha_f32[y0:y1, x0:x1]))
        options = self.run_panel.options()
        job = self.bridge.submit("region", upscale_job, self.bridge, crop, options, self.run_panel.device_key(),
                                 with_lattice=False)
        self._region_jobs[job.job_id] = (self.current.entry_id, tight, wide)
        self._region_names[job.job_id] = label
        self.statusBar().showMessage(f"Upscaling region {label}…", 5000)
        return job.job_id

    def _region_finished(self, job_id: int, payload: Any) -> None:
        meta = self._region_jobs.pop(job_id, None)
        if meta is None:
            return
        entry_id, (ty0, ty1, tx0, tx1), (wy0, _wy1, wx0, _wx1) = meta
        result = payload.result
        if self.current is None or self.current.entry_id != entry_id:
            return
        s = result.scale
        if self.viewer.geometry_ is None or self.viewer.geometry_.scale != s:
            self.viewer.set_images(self.current.image.rgb_f32, self.current.sr_u8 if self.current.result else None, s)
        sr = result.image.rgb_f32[(ty0 - wy0) * s:(ty1 - wy0) * s, (tx0 - wx0) * s:(tx1 - wx0) * s]
        self.viewer.add_preview(sr, tx0 * s, ty0 * s, f"region {self._region_names.pop(job_id, '')}".strip())
        self.statusBar().showMessage(f"Region preview ({tx1 - tx0}×{ty1 - ty0} LR px) in {result.seconds:.2f} s "
                                     f"on {device_name(result.provider)}", 10_000)

    # degradation lab ---------------------------------------------------------------------------------------
    def lab_open_image(self, path: Path) -> int:
        """Read a sharp image into the degradation lab on the loader thread; returns the request id."""
        return self.loader.read([Path(path)], "lab")

    @QtCore.Slot()
    def _on_lab_open(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open a sharp image", str(
            self.settings.value("folders/open", "")), "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp)")
        if name:
            self.lab_open_image(Path(name))

    def run_lab(self) -> int | None:
        """Synthesise the painted degradation, estimate with MANet on the worker, show the error map."""
        if self.lab.hr_rgb_f32 is None or self._lab_job is not None or self._run_job is not None:
            return None
        if not self.lab.regions.labels.any():
            self.notify("Lab: paint at least one region first.")
            return None
        device = self.run_panel.device_key()

        def job(hr, labels, params, scale, *, progress):
            models = self.bridge.models_for("estimate", scale, device)
            return synthesise_and_estimate(hr, labels, params, scale, models, progress=progress)

        handle = self.bridge.submit("lab", job, self.lab.hr_rgb_f32, self.lab.regions.labels.copy(),
                                    dict(self.lab.params), self.lab.scale)
        self._lab_job = handle.job_id
        self.lab.run_button.setEnabled(False)
        self.run_panel.set_running(True, "Lab")
        return handle.job_id

    @QtCore.Slot(object)
    def _on_lab_to_studio(self, lr_rgb_f32: np.ndarray) -> None:
        entry = self.add_image(Image(np.ascontiguousarray(lr_rgb_f32, np.float32)),
                               f"lab_{Path(self.lab.hr_name).stem}_lr.png")
        self.select_entry(entry)
        self.tabs.setCurrentIndex(0)

    # saving ---------------------------------------------------------------------------------------------------
    def _suggest(self, name: str) -> str:
        return str(Path(str(self.settings.value("folders/save", ""))) / name)

    def _default_stem(self) -> str:
        if self.current is None or self.current.result is None:
            return "result"
        r = self.current.result
        return f"{Path(self.current.name).stem}_x{r.scale}_{r.method}"

    def save_result(self, path: Path, *, quality: int = 95, bit_depth: int | None = None) -> Path | None:
        """Write the current SR image (format from the suffix; 16-bit TIFF/PNG keep 16 bit; alpha/ICC/EXIF kept)."""
        if self.current is None or self.current.result is None:
            self.notify("Nothing to save yet: run an upscale first.")
            return None
        image = self.current.result.image
        if self.current.result.ikc is not None:  # save the iteration on show
            its = self.current.result.ikc.iterations
            image = image.with_pixels(its[min(self.ikc_panel.current(), len(its) - 1)].sr_rgb_f32, image.alpha_f32)
        if bit_depth is None and Path(path).suffix.lower() in (".tif", ".tiff"):
            bit_depth = 16
        if not self._may_save_to(path):
            return None
        try:
            out = write_image(path, image, bit_depth=bit_depth, quality=quality, overwrite=True)
        except ImageIOError as exc:
            self.notify(str(exc))
            return None
        self.settings.setValue("folders/save", str(Path(path).parent))
        self.statusBar().showMessage(f"Saved {out}", 8000)
        return out

    def save_kernel_map(self, path: Path) -> Path | None:
        result = self.current.result if self.current is not None else None
        if result is None or (result.kernel_map is None and result.ikc is None):
            self.notify("No kernels to save: run MANet or IKC first.")
            return None
        if not self._may_save_to(path):
            return None
        try:  # the file dialog asked before replacing an existing file
            saver = result.kernel_map if result.kernel_map is not None else result.ikc
            out = saver.save_npz(path, overwrite=True)
        except (OSError, ImageIOError) as exc:
            self.notify(f"Could not save {Path(path).name}: {exc}")
            return None
        self.statusBar().showMessage(f"Saved {out}", 8000)
        return out

    def save_comparison(self, path: Path, *, quality: int = 95) -> Path | None:
        if self.current is None or self.current.result is None:
            self.notify("Nothing to compare yet: run an upscale first.")
            return None
        pic = comparison_picture(self.current.image.rgb_f32, self.current.result.image.rgb_f32)
        if not self._may_save_to(path):
            return None
        try:
            out = write_image(path, Image(pic, icc_profile=self.current.image.icc_profile), quality=quality,
                              overwrite=True)
        except ImageIOError as exc:
            self.notify(str(exc))
            return None
        self.statusBar().showMessage(f"Saved {out}", 8000)
        return out

    def _may_save_to(self, path: Path) -> bool:
        """False (and a notice) when ``path`` is one of the opened images: a save never replaces an input."""
        plan = OutputPlan([e.path for e in self.entries if e.path is not None], overwrite=True)
        try:
            plan.check(path, "file")
        except OutputRefused as exc:
            self.notify(f"Not saved, refusing: {exc}")
            return False
        return True

    def _ask_save(self, title: str, name: str, filters: str) -> Path | None:
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(self, title, self._suggest(name), filters)
        return Path(chosen) if chosen else None

    def _ask_quality(self, path: Path) -> int | None:
        if path.suffix.lower() not in (".jpg", ".jpeg", ".webp"):
            return 95
        value, ok = QtWidgets.QInputDialog.getInt(self, "Quality", f"{path.suffix[1:].upper()} quality (100 = best)",
                                                  int(self.settings.value("save/quality", 95)), 1, 100)
        if ok:
            self.settings.setValue("save/quality", value)
        return value if ok else None

    @QtCore.Slot()
    def _on_save_result(self) -> None:
        path = self._ask_save("Save result", self._default_stem() + ".png",
                              "PNG (*.png);;16-bit TIFF (*.tif *.tiff);;JPEG (*.jpg *.jpeg);;WebP (*.webp)")
        if path is not None:
            quality = self._ask_quality(path)
            if quality is not None:
                self.save_result(path, quality=quality)

    @QtCore.Slot()
    def _on_save_kernels(self) -> None:
        path = self._ask_save("Save kernels", self._default_stem() + "_kernels.npz", "NumPy archive (*.npz)")
        if path is not None:
            self.save_kernel_map(path)

    @QtCore.Slot()
    def _on_save_comparison(self) -> None:
        path = self._ask_save("Save comparison", self._default_stem() + "_compare.png", "PNG (*.png);;JPEG (*.jpg)")
        if path is not None:
            self.save_comparison(path)

    # settings ---------------------------------------------------------------------------------------------
    def _save_run_settings(self) -> None:
        rp = self.run_panel
        s = self.settings
        s.setValue("run/method", rp.method.currentData())
        s.setValue("run/scale", int(rp.scale.currentData()))
        s.setValue("run/device", rp.device.currentData())
        s.setValue("run/tile", rp.tile.value())
        s.setValue("run/ikc_steps", rp.ikc_steps.value())

    def _restore_settings(self) -> None:
        s = self.settings
        rp = self.run_panel
        for combo, key in ((rp.method, "run/method"), (rp.device, "run/device")):
            value = s.value(key)
            if value is not None and combo.findData(str(value)) >= 0:
                combo.setCurrentIndex(combo.findData(str(value)))
        scale = s.value("run/scale")
        if scale is not None and rp.scale.findData(int(scale)) >= 0:
            rp.scale.setCurrentIndex(rp.scale.findData(int(scale)))
        for box, key in ((rp.tile, "run/tile"), (rp.ikc_steps, "run/ikc_steps")):
            value = s.value(key)
            if value is not None:
                box.setValue(int(value))
        geometry = s.value("window/geometry")
        if isinstance(geometry, QtCore.QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if isinstance(state, QtCore.QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self._rebuild_recent_menu()

    def save_settings(self) -> None:
        self._save_run_settings()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()

    # layout -----------------------------------------------------------------------------------------------
    def reset_layout(self) -> None:
        """View > Reset layout: every panel back in its place, at widths that suit the window."""
        self.restoreState(self._default_state)
        for dock in (self.queue_dock, self.run_dock, self.inspector_dock, self.regions_dock):
            dock.setFloating(False)
            dock.show()
        self.inspector_dock.raise_()
        self.resizeDocks([self.queue_dock, self.run_dock], [PREFERRED_WIDTH_PX["queue"], PREFERRED_WIDTH_PX["right"]],
                         QtCore.Qt.Orientation.Horizontal)
        self.balance_docks()

    def balance_docks(self) -> None:
        """Give side panels back the width they lost at a small window size (see :mod:`app.layout`)."""
        docks = {"queue": self.queue_dock, "right": self.run_dock}
        current = {name: d.width() for name, d in docks.items()
                   if d.isVisible() and not d.isFloating()}
        wanted = balanced_widths(self.width(), current)
        changed = [name for name in wanted if abs(wanted[name] - current[name]) > 2]
        if changed:
            self.resizeDocks([docks[n] for n in changed], [wanted[n] for n in changed],
                             QtCore.Qt.Orientation.Horizontal)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._balance_timer.start()

    # misc ------------------------------------------------------------------------------------------------
    def _update_actions(self) -> None:
        has_result = self.current is not None and self.current.result is not None
        running = self._run_job is not None or bool(self._batch)
        self.act_run.setEnabled(self.current is not None and not running)
        self.run_panel.run_button.setEnabled(self.current is not None and not self.is_running())
        self.act_cancel.setEnabled(self.is_running() or bool(self._region_jobs))
        self.act_save.setEnabled(has_result)
        self.act_save_cmp.setEnabled(has_result)
        self.act_save_kernels.setEnabled(has_result and (self.current.result.kernel_map is not None
                                                      or self.current.result.ikc is not None))
        self.act_run_all.setEnabled(bool(self.entries) and not running)
        self.run_panel.run_all_button.setEnabled(bool(self.entries) and not self.is_running())
        self.start_hint.setVisible(not self.entries)
        self.viewer.setVisible(bool(self.entries))

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self._closed:
            self._closed = True
            self.save_settings()
            self.ikc_panel.timer.stop()
            self.loader.shutdown()
            self.bridge.cancel()
            self.bridge.shutdown()
            self._dispose_plot_menus()
        super().closeEvent(event)

    def _dispose_plot_menus(self) -> None:
        """pyqtgraph gives every ViewBox and PlotItem a parentless context menu; delete them with the window."""
        import pyqtgraph as pg

        for view in self.findChildren(pg.GraphicsView):
            for item in view.scene().items():
                for menu in (getattr(item, "menu", None), getattr(item, "ctrlMenu", None)):
                    if isinstance(menu, QtWidgets.QMenu) and menu.parent() is None:
                        menu.deleteLater()


def sample_image_path() -> Path:
    """The bundled blurred LR sample (``make run`` opens it)."""
    return resources_dir() / "sample_lr.png"
