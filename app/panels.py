"""Side panels of the studio: run settings, the hover kernel inspector and the painted-regions panel."""

from __future__ import annotations

import math

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.backends import DEVICE_LABELS
from engine.degradation.kernels import KernelParams
from engine.methods import DEFAULT_METHOD, METHOD_TABLE, UPSCALE, methods_for
from engine.modelcards import default_ikc_steps, scales_with_models
from engine.upscale import IKC_STEPS_MAX, UpscaleOptions
from engine.visualize import kernel_heatmap_u8

from app.analysis import REGION_COLOURS, RegionStats

METHOD_LABELS = {m: METHOD_TABLE[m].label for m in methods_for(UPSCALE)}
DEVICES = DEVICE_LABELS


class KernelView(pg.GraphicsLayoutWidget):
    """A 21×21 kernel as a heat map with true (nearest-neighbour) pixels; no mouse interaction."""

    def __init__(self, size_px: int = 168, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground((24, 25, 28))
        self.setFixedSize(size_px, size_px)
        self.ci.setContentsMargins(2, 2, 2, 2)
        self.vb = self.addViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.item = pg.ImageItem()
        self.vb.addItem(self.item)
        self.vb.setRange(xRange=(0, 21), yRange=(0, 21), padding=0.0)
        self.kernel: np.ndarray | None = None
        self.set_kernel(None)

    def set_kernel(self, kernel: np.ndarray | None) -> None:
        self.kernel = None if kernel is None else np.asarray(kernel, np.float32)
        if kernel is None:
            self.item.setImage(np.full((21, 21, 3), 40, np.uint8), autoLevels=False, levels=(0, 255))
        else:
            self.item.setImage(kernel_heatmap_u8(kernel), autoLevels=False, levels=(0, 255))


def _form_label(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setProperty("role", "muted")
    return label


class RunPanel(QtWidgets.QWidget):
    """Method, scale, device, tile size, IKC steps and the non-blind kernel; Run/Cancel, progress, ETA."""

    run_requested = QtCore.Signal()
    cancel_requested = QtCore.Signal()
    run_all_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None, *, models_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.models_dir = models_dir  # None: the installation's models folder
        self.method = QtWidgets.QComboBox()
        for key, text in METHOD_LABELS.items():
            self.method.addItem(text, key)
        self.method.setCurrentIndex(self.method.findData(DEFAULT_METHOD))
        self.scale = QtWidgets.QComboBox()  # filled per method with the scales that have models
        self.device = QtWidgets.QComboBox()
        for key, text in DEVICES.items():
            self.device.addItem(text, key)
        self.tile = QtWidgets.QSpinBox()
        self.tile.setRange(0, 2048)
        self.tile.setSingleStep(32)
        self.tile.setSpecialValueText("auto")
        self.tile.setSuffix(" px")
        self.ikc_steps = QtWidgets.QSpinBox()
        self.ikc_steps.setRange(0, IKC_STEPS_MAX)
        self.ikc_steps.setValue(default_ikc_steps())  # the evaluation's choice, from the model card
        self.sigma1 = self._double(0.2, 6.0, 2.0, " px")
        self.sigma2 = self._double(0.2, 6.0, 1.2, " px")
        self.theta = self._double(0.0, 180.0, 30.0, "°", step=5.0, decimals=0)

        form = QtWidgets.QFormLayout()
        form.setLabelAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        form.addRow(_form_label("Method"), self.method)
        form.addRow(_form_label("Scale"), self.scale)
        form.addRow(_form_label("Device"), self.device)
        form.addRow(_form_label("Tile size"), self.tile)
        self._ikc_row = (_form_label("IKC steps"), self.ikc_steps)
        form.addRow(*self._ikc_row)
        self.nonblind_box = QtWidgets.QWidget()
        nb = QtWidgets.QHBoxLayout(self.nonblind_box)
        nb.setContentsMargins(0, 0, 0, 0)
        for w in (self.sigma1, self.sigma2, self.theta):
            nb.addWidget(w)
        form.addRow(_form_label("σ1 σ2 θ"), self.nonblind_box)
        self._form = form

        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setObjectName("primary")
        self.run_button.setToolTip("Upscale the selected image (Ctrl+R)")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run after the current tile (Esc)")
        self.cancel_button.setEnabled(False)
        self.run_all_button = QtWidgets.QPushButton("Upscale all…")
        self.run_all_button.setToolTip("Run every image of the queue into a folder")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.eta = QtWidgets.QLabel("")
        self.eta.setProperty("role", "muted")

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addStretch(1)
        # Run, Cancel and the progress never scroll away: the window puts this footer below the
        # (scrollable) settings, so they stay visible however small the dock gets
        self.footer = QtWidgets.QWidget()
        footer = QtWidgets.QVBoxLayout(self.footer)
        footer.setContentsMargins(9, 0, 9, 6)
        footer.addLayout(buttons)
        footer.addWidget(self.run_all_button)
        footer.addWidget(self.progress)
        footer.addWidget(self.eta)
        self.footer.setMinimumHeight(self.footer.sizeHint().height())

        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.run_all_button.clicked.connect(self.run_all_requested)
        self.method.currentIndexChanged.connect(self._update_visibility)
        self._update_visibility()

    @staticmethod
    def _double(lo: float, hi: float, value: float, suffix: str, step: float = 0.1, decimals: int = 2
                ) -> QtWidgets.QDoubleSpinBox:
        box = QtWidgets.QDoubleSpinBox()
        box.setRange(lo, hi)
        box.setSingleStep(step)
        box.setDecimals(decimals)
        box.setValue(value)
        box.setSuffix(suffix)
        return box

    @QtCore.Slot()
    def _update_visibility(self) -> None:
        method = self.method.currentData()
        self._fill_scales(method)
        self._form.setRowVisible(self.ikc_steps, METHOD_TABLE[method].iterative)
        self._form.setRowVisible(self.nonblind_box, METHOD_TABLE[method].user_kernel)

    def _fill_scales(self, method: str) -> None:
        """List the scales ``method`` has models for, keeping the chosen one when it is among them."""
        scales = scales_with_models(method, self.models_dir) or (4,)
        wanted = self.scale.currentData()
        self.scale.blockSignals(True)
        self.scale.clear()
        for s in scales:
            self.scale.addItem(f"×{s}", s)
        index = self.scale.findData(wanted if wanted in scales else (4 if 4 in scales else scales[-1]))
        self.scale.setCurrentIndex(index)
        self.scale.blockSignals(False)
        self.scale.setToolTip(f"{METHOD_TABLE[method].short} has models at "
                              + ", ".join(f"×{s}" for s in scales) + " in this installation")

    def options(self) -> UpscaleOptions:
        """The :class:`~engine.upscale.UpscaleOptions` the controls describe."""
        tile = self.tile.value() or None
        return UpscaleOptions(
            method=self.method.currentData(), scale=int(self.scale.currentData()),
            tile=max(16, tile) if tile else None, ikc_steps=self.ikc_steps.value(),
            nonblind_sigmas=KernelParams(self.sigma1.value(), self.sigma2.value(), math.radians(self.theta.value())),
        )

    def device_key(self) -> str:
        return str(self.device.currentData())

    def set_running(self, running: bool, label: str = "") -> None:
        self.run_button.setEnabled(not running)
        self.run_all_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.progress.setFormat(f"{label} %p%" if label else "%p%")
            self.eta.setText("starting…")

    def show_progress(self, fraction: float, eta_text: str) -> None:
        self.progress.setValue(int(round(1000 * fraction)))
        self.eta.setText(eta_text)

    def finish(self, text: str) -> None:
        self.progress.setFormat(text)
        self.eta.setText("")


class KernelInspector(QtWidgets.QWidget):
    """The kernel under the cursor: heat map (21×21 true pixels), fitted σ1, σ2, θ, and where it is."""

    lattice_toggled = QtCore.Signal(bool)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = KernelView(176)
        self.title = QtWidgets.QLabel("Hover over the image")
        self.title.setProperty("role", "heading")
        self.sigma1 = QtWidgets.QLabel("–")
        self.sigma2 = QtWidgets.QLabel("–")
        self.theta = QtWidgets.QLabel("–")
        self.where = QtWidgets.QLabel("–")
        self.source = QtWidgets.QLabel("–")
        self.noise = QtWidgets.QLabel("–")
        self.noise.setToolTip("Estimated sensor noise of the input (standard deviation on the 8-bit scale),\n"
                              "here (16 LR px block) and for the whole image. Fine texture can read as noise.")
        self.file = QtWidgets.QLabel("–")
        self.file.setToolTip("The input file's format; for a JPEG, how strongly it was compressed, read from its\n"
                             "quantisation table: the IJG quality setting (standard tables) or the nearest one\n"
                             "(a camera's or editor's own tables). Low qualities leave 8×8 blocks that no method removes.")
        self.where.setWordWrap(True)
        self.noise.setWordWrap(True)
        for w in (self.sigma1, self.sigma2, self.theta, self.where, self.source, self.noise, self.file):
            w.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QtWidgets.QFormLayout()
        form.addRow(_form_label("σ1"), self.sigma1)
        form.addRow(_form_label("σ2"), self.sigma2)
        form.addRow(_form_label("θ"), self.theta)
        form.addRow(_form_label("at"), self.where)
        form.addRow(_form_label("from"), self.source)
        form.addRow(_form_label("noise"), self.noise)
        form.addRow(_form_label("file"), self.file)
        self.compare_view = KernelView(96)
        self.compare_caption = QtWidgets.QLabel("")
        self.compare_caption.setWordWrap(True)
        self.compare_caption.setProperty("role", "muted")
        self.compare_box = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.compare_box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.compare_view)
        row.addWidget(self.compare_caption, 1)
        self.compare_box.hide()
        self.lattice = QtWidgets.QCheckBox("Kernel lattice over the image (L)")
        self.lattice.toggled.connect(self.lattice_toggled)
        self.lattice_legend = QtWidgets.QLabel("")
        self.lattice_legend.setWordWrap(True)
        self.lattice_legend.setProperty("role", "muted")
        self.lattice_legend.hide()
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.view)
        top.addLayout(form, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(top)
        layout.addWidget(self.compare_box)
        layout.addWidget(self.lattice)
        layout.addWidget(self.lattice_legend)
        layout.addStretch(1)
        self.info = None

    def show_info(self, info, title: str, where: str, source: str) -> None:
        """Show a :class:`~engine.pipeline.kernelmap.KernelInfo` (or None to clear)."""
        self.info = info
        self.title.setText(title)
        if info is None:
            self.view.set_kernel(None)
            for w in (self.sigma1, self.sigma2, self.theta):
                w.setText("–")
        else:
            self.view.set_kernel(info.kernel)
            self.sigma1.setText(f"{info.sigma1:.2f} px")
            self.sigma2.setText(f"{info.sigma2:.2f} px")
            self.theta.setText(f"{math.degrees(info.theta):.0f}°")
        self.where.setText(where)
        self.source.setText(source)

    def show_noise(self, here_255: float | None, image_255: float | None) -> None:
        """The input's estimated noise σ (8-bit scale) at the cursor's block and for the whole image."""
        if here_255 is None or image_255 is None:
            self.noise.setText("–")
        else:
            self.noise.setText(f"σ ≈ {here_255:.1f}/255 here · {image_255:.1f}/255 image")

    def show_file(self, text: str | None) -> None:
        """The input file's format and JPEG quality (:func:`app.inspection.file_text`); None: no image."""
        self.file.setText(text or "–")

    def show_other(self, info, method_name: str) -> None:
        """The other blind method's kernel for the same spot, side by side (None hides it)."""
        self.compare_box.setVisible(info is not None)
        if info is None:
            return
        self.compare_view.set_kernel(info.kernel)
        gap = ""
        if self.info is not None:
            gap = f"\nΔσ1 {self.info.sigma1 - info.sigma1:+.2f} px, Δσ2 {self.info.sigma2 - info.sigma2:+.2f} px"
        self.compare_caption.setText(f"{method_name} here: σ1 {info.sigma1:.2f} px · σ2 {info.sigma2:.2f} px · "
                                     f"θ {math.degrees(info.theta):.0f}°{gap}")


class RegionsPanel(QtWidgets.QWidget):
    """Brush/eraser, region colour, brush size, mask save/load, per-region statistics and "Upscale region"."""

    tool_changed = QtCore.Signal(object)  # None, "brush", "eraser"
    label_changed = QtCore.Signal(int)
    radius_changed = QtCore.Signal(float)
    clear_requested = QtCore.Signal()
    save_requested = QtCore.Signal()
    load_requested = QtCore.Signal()
    upscale_region_requested = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pan = QtWidgets.QToolButton(text="Pan")
        self.brush = QtWidgets.QToolButton(text="Brush (B)")
        self.eraser = QtWidgets.QToolButton(text="Eraser (E)")
        group = QtWidgets.QButtonGroup(self)
        for i, b in enumerate((self.pan, self.brush, self.eraser)):
            b.setCheckable(True)
            group.addButton(b, i)
        self.pan.setChecked(True)
        group.idClicked.connect(self._on_tool)
        self._group = group
        tools = QtWidgets.QHBoxLayout()
        for b in (self.pan, self.brush, self.eraser):
            tools.addWidget(b)
        self.colour = QtWidgets.QComboBox()
        names = ("red", "blue", "green", "amber", "purple", "cyan")
        for k, (rgb, name) in enumerate(zip(REGION_COLOURS, names), start=1):
            pix = _colour_icon(rgb)
            self.colour.addItem(pix, f"Region {k} ({name})", k)
        self.colour.currentIndexChanged.connect(lambda _i: self.label_changed.emit(self.current_label()))
        self.radius = QtWidgets.QDoubleSpinBox()
        self.radius.setRange(0.5, 64.0)
        self.radius.setValue(3.0)
        self.radius.setSuffix(" LR px")
        self.radius.setToolTip("Brush radius; [ and ] change it")
        self.radius.valueChanged.connect(self.radius_changed)
        form = QtWidgets.QFormLayout()
        form.addRow(_form_label("Colour"), self.colour)
        form.addRow(_form_label("Radius"), self.radius)
        files = QtWidgets.QHBoxLayout()
        for text, sig in (("Save mask…", self.save_requested), ("Load mask…", self.load_requested),
                          ("Clear", self.clear_requested)):
            b = QtWidgets.QPushButton(text)
            b.clicked.connect(sig)
            files.addWidget(b)
        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["region", "px", "σ1", "σ2", "θ"])
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in (0, 1):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setMinimumHeight(70)
        self.table.setMaximumHeight(110)
        self.plot = pg.PlotWidget(background=(24, 25, 28))
        self.plot.setMinimumHeight(170)
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.plot.setLabel("left", "σ (px)")
        self.plot.getAxis("bottom").setTicks([[(0, "σ1"), (1, "σ2")]])
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.mean_kernels = QtWidgets.QHBoxLayout()
        self.mean_kernels.addStretch(1)
        self.upscale_region = QtWidgets.QPushButton("Upscale region (preview)")
        self.upscale_region.setToolTip("Run the chosen method on the selected region's bounding box only; the "
                                       "area is outlined in both views (before on the input, after on the result)")
        self.upscale_region.clicked.connect(lambda: self.upscale_region_requested.emit(self.selected_region()))
        self.hint = QtWidgets.QLabel("Paint on the input view; statistics need a MANet result.")
        self.hint.setWordWrap(True)
        self.hint.setProperty("role", "muted")

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addLayout(files)
        layout.addWidget(self.upscale_region)
        layout.addWidget(self.hint)
        layout.addWidget(self.table)
        layout.addLayout(self.mean_kernels)
        layout.addWidget(self.plot, 1)
        self.stats: list[RegionStats] = []

    @QtCore.Slot(int)
    def _on_tool(self, index: int) -> None:
        self.tool_changed.emit((None, "brush", "eraser")[index])

    def set_tool(self, tool: str | None) -> None:
        index = {None: 0, "brush": 1, "eraser": 2}[tool]
        self._group.button(index).setChecked(True)
        self.tool_changed.emit(tool)

    def current_label(self) -> int:
        return int(self.colour.currentData())

    def selected_region(self) -> int:
        row = self.table.currentRow()
        if 0 <= row < len(self.stats):
            return self.stats[row].label
        return self.stats[0].label if self.stats else self.current_label()

    def show_stats(self, stats: list[RegionStats], note: str = "", source: str = "") -> None:
        """Fill the table, the mean-kernel thumbnails and the σ1/σ2/θ spread plot; ``source`` names the
        kernel map the statistics come from (e.g. "MANet kernel map")."""
        self.stats = stats
        self.table.setRowCount(len(stats))
        for row, st in enumerate(stats):
            summ = st.summary()
            cells = [f"{st.label}", f"{st.n_pixels}",
                     "{:.2f}±{:.2f}".format(*summ["sigma1"]), "{:.2f}±{:.2f}".format(*summ["sigma2"]),
                     "{:.0f}°±{:.0f}".format(math.degrees(summ["theta"][0]), math.degrees(summ["theta"][1]))]
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 0:
                    item.setBackground(_colour_brush(REGION_COLOURS[(st.label - 1) % len(REGION_COLOURS)]))
                self.table.setItem(row, col, item)
        if stats and self.table.currentRow() < 0:
            self.table.selectRow(0)
        # mean kernels
        while self.mean_kernels.count() > 1:
            w = self.mean_kernels.takeAt(0).widget()
            if w is not None:
                w.hide()
                w.setParent(None)
                w.deleteLater()
        for st in stats[:4]:
            kv = KernelView(64)
            kv.set_kernel(st.mean_kernel)
            kv.setToolTip(f"mean kernel of region {st.label}")
            self.mean_kernels.insertWidget(self.mean_kernels.count() - 1, kv)
        # spread plot: per σ, one box (min..max line, mean ± std bar) per region; θ (degrees) is in the
        # table only: an angle on the σ axis would read as a length
        self.plot.clear()
        n = max(1, len(stats))
        width = 0.7 / n
        for i, st in enumerate(stats):
            colour = REGION_COLOURS[(st.label - 1) % len(REGION_COLOURS)]
            xs = np.arange(2) - 0.35 + width * (i + 0.5)
            values = (st.sigma1, st.sigma2)
            means = np.array([np.mean(v) for v in values])
            stds = np.array([np.std(v) for v in values])
            lows = np.array([np.min(v) for v in values])
            highs = np.array([np.max(v) for v in values])
            self.plot.addItem(pg.ErrorBarItem(x=xs, y=(lows + highs) / 2, height=highs - lows,
                                              beam=0.0, pen=pg.mkPen(colour + (120,), width=1)))
            self.plot.addItem(pg.ErrorBarItem(x=xs, y=means, height=2 * stds, beam=width * 0.5,
                                              pen=pg.mkPen(colour, width=2)))
            self.plot.addItem(pg.ScatterPlotItem(x=xs, y=means, brush=pg.mkBrush(colour), size=8,
                                                 pen=pg.mkPen((20, 20, 20))))
        self.plot.setXRange(-0.5, 1.5, padding=0)
        if stats:
            self.plot.setYRange(0, 1.15 * max(float(np.max(st.sigma1)) for st in stats), padding=0)
        self.hint.setText(note or (f"{source or 'Kernels'}: mean ± std (thick) and min–max (thin) in each region."
                                   if stats else "Paint on the input view; statistics need a MANet result."))


def _colour_icon(rgb: tuple[int, int, int]) -> QtGui.QIcon:
    pix = QtGui.QPixmap(14, 14)
    pix.fill(QtGui.QColor(*rgb))
    return QtGui.QIcon(pix)


def _colour_brush(rgb: tuple[int, int, int]) -> QtGui.QBrush:
    return QtGui.QBrush(QtGui.QColor(*rgb, 150))
