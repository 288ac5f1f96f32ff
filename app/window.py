"""The Kernelscope main window: a view of the :class:`app.session.StudioSession`.

The window builds the widgets (queue, viewer, run panel, kernel inspector, regions, IKC slider, lab),
forwards what the user does to the session, and renders what the session asks for through the
:class:`app.session.StudioView` methods (the "view" section below). The rest lives by job: menus and
file dialogs in :mod:`app.menus`, the queue list, docks and persisted settings in :mod:`app.frame`,
reading images in :mod:`app.opening`, the kernel inspector in :mod:`app.inspection`, the Regions dock
in :mod:`app.regions`, saving in :mod:`app.saving`, the worker's jobs in :mod:`app.jobs`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from engine import __version__
from engine.imageio import Image
from engine.paths import resources_dir
from engine.pipeline.lab import LabResult

from app import frame, saving
from app.bridge import EngineBridge
from app.geometry import HoverHit
from app.ikc import IkcPanel
from app.inspection import Inspection
from app.lab import LabPanel
from app.loader import ImageLoader
from app.menus import FileDialogs, RecentFiles, build_menus
from app.opening import Opening
from app.panels import METHOD_LABELS, KernelInspector, RegionsPanel, RunPanel
from app.regions import RegionTools
from app.results import ResultPicker
from app.session import METHOD_SHORT, QueueEntry, StudioSession
from app.viewer import CompareViewer, RegionModel

log = logging.getLogger(__name__)

APP_NAME = "Kernelscope"
START_HINT = ("<p style='font-size:15pt'>Open or drop images</p><p>Drag image files or folders onto this window, "
              "or use File ▸ Open images… (Ctrl+O) or paste (Ctrl+V).<br>Then press Run (Ctrl+R) to upscale and "
              "see the blur kernels that were found.</p>")


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
        self.session = StudioSession(self, self.bridge)
        self._closed = False

        # central: tabs (studio viewer | IKC iterations | degradation lab)
        self.regions = RegionModel(self)
        self.viewer = CompareViewer(self.regions)
        self.notice = frame.NoticeBar()
        self.result_picker = ResultPicker()
        self.start_hint = QtWidgets.QLabel(START_HINT)
        self.start_hint.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.start_hint.setWordWrap(True)
        self.start_hint.setProperty("role", "muted")
        studio = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(studio)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        for widget, stretch in ((self.notice, 0), (self.result_picker, 0), (self.start_hint, 1), (self.viewer, 1)):
            column.addWidget(widget, stretch)
        self.ikc_panel = IkcPanel()
        self.lab = LabPanel()
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(studio, "Studio")
        self.tabs.addTab(self.ikc_panel, "IKC iterations")
        self.tabs.addTab(self.lab, "Degradation lab")
        self.setCentralWidget(self.tabs)

        # docks
        self.queue = frame.QueueList()
        self.run_panel = RunPanel(models_dir=models_dir)
        self.inspector = KernelInspector()
        self.regions_panel = RegionsPanel()
        self.docks = frame.Docks(self, self.queue, self.run_panel, self.inspector, self.regions_panel)
        self.queue_dock, self.run_dock, self.inspector_dock, self.regions_dock = self.docks.all()

        # status bar
        self.provider_label = QtWidgets.QLabel("device: –")
        self.provider_label.setToolTip("The execution provider the last run actually used")
        self.image_label = QtWidgets.QLabel("no image")
        self.hover_label = QtWidgets.QLabel("")
        for w in (self.hover_label, self.image_label, self.provider_label):
            self.statusBar().addPermanentWidget(w)

        self.dialogs = FileDialogs(self)
        self.opening = Opening(self)
        self.inspection = Inspection(self)
        self.region_tools = RegionTools(self)
        build_menus(self)
        self.recent = RecentFiles(self.recent_menu, self.settings, self.open_paths, self)
        self._connect()
        frame.restore_run_settings(self.settings, self.run_panel)
        frame.restore_window_state(self.settings, self)
        self.refresh_actions()

    def _connect(self) -> None:
        b = self.bridge
        b.progressed.connect(self._on_progress)
        b.finished.connect(self._on_finished)
        b.failed.connect(self._on_failed)
        b.cancelled.connect(self._on_cancelled)
        b.notice.connect(self._on_notice)
        self.queue.currentRowChanged.connect(self._on_queue_row)
        self.run_panel.run_requested.connect(self.start_run)
        self.run_panel.cancel_requested.connect(self.cancel_run)
        self.run_panel.run_all_requested.connect(self.dialogs.run_all)
        self.result_picker.method_chosen.connect(self.show_method)
        self.lab.run_requested.connect(self.run_lab)
        self.lab.open_requested.connect(self.dialogs.open_lab_image)
        self.lab.send_to_studio.connect(self._on_lab_to_studio)

    # the session's state -----------------------------------------------------------------------------
    @property
    def entries(self) -> list[QueueEntry]:
        return self.session.entries

    @property
    def current(self) -> QueueEntry | None:
        return self.session.current

    def input_paths(self) -> list[Path]:
        """The files the queue was opened from (a save never replaces one)."""
        return [e.path for e in self.entries if e.path is not None]

    # opening (app.opening) ------------------------------------------------------------------------------
    def open_paths(self, paths: list[Path]) -> int:
        """Open files and folders into the queue on the loader thread; the request id (:meth:`Opening.open_paths`)."""
        return self.opening.open_paths(paths)

    def open_path(self, path: Path) -> int:
        """Open one file (see :meth:`open_paths`)."""
        return self.opening.open_paths([Path(path)])

    def lab_open_image(self, path: Path) -> int:
        """Read a sharp image into the degradation lab on the loader thread; returns the request id."""
        return self.opening.lab_open_image(path)

    def paste_from_clipboard(self) -> bool:
        """Open an image (or image files) from the clipboard."""
        return self.opening.paste_from_clipboard()

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:  # noqa: N802 (Qt API)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
        event.acceptProposedAction()

    # user actions, forwarded to the session ------------------------------------------------------------
    def add_image(self, image: Image, name: str, path: Path | None = None) -> QueueEntry:
        return self.session.add_image(image, name, path)

    def select_entry(self, entry: QueueEntry) -> None:
        self.session.select(entry)

    def remove_current(self) -> None:
        self.session.remove_current()

    def show_method(self, method: str) -> None:
        """Show the current image's result of ``method`` (kept from an earlier run)."""
        self.session.show_method(method)

    @QtCore.Slot(int)
    def _on_queue_row(self, row: int) -> None:
        self.session.select(self.entries[row] if 0 <= row < len(self.entries) else None)

    def preload_models(self) -> int:
        """Load the run panel's models on the worker now (onnxruntime holds the GIL for a moment while it
        builds a session: better at start-up than during the first run). Returns the job id."""
        return self.session.preload(self.run_panel.options(), self.run_panel.device_key())

    def start_run(self) -> int | None:
        """Upscale the current image with the run panel's settings; returns the job id."""
        if not self.session.can_run():
            return None
        try:
            options = self.run_panel.options()
        except ValueError as exc:
            self.notify(str(exc))
            return None
        job_id = self.session.start_run(options, self.run_panel.device_key())
        frame.save_run_settings(self.settings, self.run_panel)
        return job_id

    def run_all(self, folder: Path) -> list[int]:
        """Run every queued image into ``folder``; returns the job ids."""
        if self.is_running() or not self.entries:
            return []
        options = self.run_panel.options()
        self.settings.setValue("folders/batch", str(folder))
        return self.session.run_all(options, self.run_panel.device_key(), folder)

    def upscale_region(self, label: int) -> int | None:
        """Run the current method on the bounding box of region ``label`` and preview it in place."""
        if self.current is None:
            return None
        return self.session.upscale_region(label, self.run_panel.options(), self.run_panel.device_key())

    def run_lab(self) -> int | None:
        """Synthesise the painted degradation, estimate with MANet on the worker, show the error map."""
        return self.session.run_lab(self.lab.hr_rgb_f32, self.lab.regions.labels, self.lab.params, self.lab.scale,
                                    self.run_panel.device_key())

    def cancel_run(self) -> None:
        """Cancel the running job(s) (Esc); the window stays usable."""
        self.session.cancel()

    def is_running(self) -> bool:
        return self.session.is_running()

    @QtCore.Slot(object)
    def _on_lab_to_studio(self, lr_rgb_f32: np.ndarray) -> None:
        entry = self.add_image(Image(np.ascontiguousarray(lr_rgb_f32, np.float32)),
                               f"lab_{Path(self.lab.hr_name).stem}_lr.png")
        self.select_entry(entry)
        self.tabs.setCurrentIndex(0)

    # the engine worker's signals -------------------------------------------------------------------------
    @QtCore.Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        self.session.job_progress(job_id, fraction, message)

    @QtCore.Slot(int, str, object)
    def _on_finished(self, job_id: int, _kind: str, payload: Any) -> None:
        self.session.job_finished(job_id, payload)

    @QtCore.Slot(int, str, str)
    def _on_failed(self, job_id: int, _kind: str, reason: str) -> None:
        self.session.job_failed(job_id, reason)

    @QtCore.Slot(int, str)
    def _on_cancelled(self, job_id: int, _kind: str) -> None:
        self.session.job_cancelled(job_id)

    @QtCore.Slot(str)
    def _on_notice(self, message: str) -> None:
        self.notify(f"Out of memory — retrying with smaller tiles ({message})")

    # the view: what the session renders through (app.session.StudioView) ---------------------------------
    def show_entry(self, entry: QueueEntry | None) -> None:
        self.result_picker.set_entry(entry)
        row = self.entries.index(entry) if entry is not None else -1
        if self.queue.currentRow() != row:
            with QtCore.QSignalBlocker(self.queue):
                self.queue.setCurrentRow(row)
        if entry is None:
            self.viewer.set_images(None, None, 1)
            self.image_label.setText("no image")
            self.setWindowTitle(f"{APP_NAME} {__version__}")
            self.ikc_panel.set_result(None, None, 1)
            self.refresh_actions()
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
        self.inspection.reset()
        self.refresh_actions()

    def add_queue_item(self, entry: QueueEntry) -> None:
        self.queue.add_entry(entry)

    def remove_queue_item(self, row: int) -> None:
        with QtCore.QSignalBlocker(self.queue):
            self.queue.takeItem(row)

    def painted_labels(self) -> np.ndarray:
        return self.regions.labels

    def method_label(self, method: str) -> str:
        return METHOD_LABELS[method]

    def set_running(self, running: bool, title: str = "") -> None:
        self.run_panel.set_running(running, title)

    def show_progress(self, fraction: float, text: str) -> None:
        self.run_panel.show_progress(fraction, text)

    def finish_progress(self, text: str) -> None:
        self.run_panel.finish(text)

    def show_device(self, text: str) -> None:
        self.provider_label.setText(text)

    def notify(self, message: str) -> None:
        """A non-modal message (notice strip + status bar)."""
        log.info("%s", message)
        self.notice.add(message)
        self.statusBar().showMessage(message, 15_000)

    def show_status(self, message: str, timeout_ms: int) -> None:
        self.statusBar().showMessage(message, timeout_ms)

    def refresh_actions(self) -> None:
        s = self.session
        result = self.current.result if self.current is not None else None
        self.act_run.setEnabled(s.can_run())
        self.run_panel.run_button.setEnabled(self.current is not None and not s.is_running())
        self.act_cancel.setEnabled(s.can_cancel())
        self.act_save.setEnabled(result is not None)
        self.act_save_cmp.setEnabled(result is not None)
        self.act_save_kernels.setEnabled(result is not None and (result.kernel_map is not None
                                                                 or result.ikc is not None))
        self.act_run_all.setEnabled(s.can_run_all())
        self.run_panel.run_all_button.setEnabled(bool(self.entries) and not s.is_running())
        self.start_hint.setVisible(not self.entries)
        self.viewer.setVisible(bool(self.entries))

    def refresh_region_stats(self) -> None:
        self.region_tools.refresh_stats()

    def add_region_preview(self, entry: QueueEntry, sr_rgb_f32: np.ndarray, x_sr: int, y_sr: int, title: str,
                           scale: int) -> None:
        if self.viewer.geometry_ is None or self.viewer.geometry_.scale != scale:
            self.viewer.set_images(entry.image.rgb_f32, entry.sr_u8 if entry.result else None, scale)
        self.viewer.add_preview(sr_rgb_f32, x_sr, y_sr, title)

    def set_lab_running(self, running: bool) -> None:
        self.lab.run_button.setEnabled(not running)

    def show_lab_result(self, result: LabResult) -> None:
        self.lab.show_result(result)

    def inspect(self, hit: HoverHit, space: str) -> None:
        """Show in the inspector the kernel at ``hit`` — exactly ``kernel_at`` for MANet results."""
        self.inspection.inspect(hit, space)

    # regions and saving -------------------------------------------------------------------------------------
    def clear_regions(self) -> None:
        """Erase every painted region of the image on show."""
        self.region_tools.clear()

    def save_mask(self, path: Path) -> Path | None:
        """Write the painted regions as a colour PNG (region colours on black; readable by :meth:`load_mask`)."""
        return self.region_tools.save_mask(path)

    def load_mask(self, path: Path) -> bool:
        """Read a mask PNG: region colours (as saved) or grey label values 0..6; size must match the LR image."""
        return self.region_tools.load_mask(path)

    def _saved(self, save: Callable[[], Path]) -> Path | None:
        """Run ``save``; its :class:`app.saving.SaveRefused` becomes a notice, success a status message."""
        try:
            out = save()
        except saving.SaveRefused as exc:
            self.notify(str(exc))
            return None
        self.statusBar().showMessage(f"Saved {out}", 8000)
        return out

    def save_result(self, path: Path, *, quality: int = 95, bit_depth: int | None = None) -> Path | None:
        """Write the current SR image (format from the suffix; 16-bit TIFF/PNG keep 16 bit; alpha/ICC/EXIF kept)."""
        out = self._saved(lambda: saving.save_result(self.current, Path(path), self.input_paths(), quality=quality,
                                                     ikc_iteration=self.ikc_panel.current(), bit_depth=bit_depth))
        if out is not None:
            self.settings.setValue("folders/save", str(Path(path).parent))
        return out

    def save_kernel_map(self, path: Path) -> Path | None:
        return self._saved(lambda: saving.save_kernel_map(self.current, Path(path), self.input_paths()))

    def save_comparison(self, path: Path, *, quality: int = 95) -> Path | None:
        return self._saved(lambda: saving.save_comparison(self.current, Path(path), self.input_paths(),
                                                          quality=quality))

    # settings, layout, closing ---------------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        return self.recent.files()

    def save_settings(self) -> None:
        frame.save_run_settings(self.settings, self.run_panel)
        frame.save_window_state(self.settings, self)
        self.settings.sync()

    def reset_layout(self) -> None:
        """View > Reset layout: every panel back in its place, at widths that suit the window."""
        self.docks.reset()

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.docks.balance_timer.start()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt API)
        if not self._closed:
            self._closed = True
            self.save_settings()
            self.opening.stop()
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
