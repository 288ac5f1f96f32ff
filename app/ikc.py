"""The IKC iteration panel: a slider over iterations 0…t, two linked views (the right one optionally an
amplified difference), each iteration's kernel and σ, a play button, and plots of how much the image
changes per step and of the kernel's σ per iteration (both axes from 0, with units)."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.pipeline.kernelmap import describe_kernel

from engine.visualize import kernel_heatmap_u8

from app.analysis import difference_rgb_u8
from app.panels import KernelView
from app.viewer import to_u8

PLAY_INTERVAL_MS = 600
EMPTY_TEXT = ("No IKC result for this image yet.\n\nChoose Method ▸ IKC (iterative correction) in the Run "
              "panel and press Run: this tab then steps through its iterations, shows how each one changes "
              "the image (amplified difference) and the kernel it estimates.")
ABOUT_IKC = ("IKC estimates one kernel for the whole image and keeps it on the isotropic-Gaussian curve it "
             "was trained on; MANet estimates one kernel per pixel, anisotropic. Their σ can differ on the "
             "same image: the Showing picker above the studio view switches between the two results.")


class _IkcSide(QtWidgets.QWidget):
    """One side: a view of an iteration (or of the input) and its kernel with σ1, σ2, θ."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.glw = pg.GraphicsLayoutWidget()
        self.glw.setBackground((24, 25, 28))
        self.title = self.glw.addLabel(title, color=(200, 200, 205), size="9pt")
        self.glw.nextRow()
        self.vb = self.glw.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.item = pg.ImageItem()
        self.vb.addItem(self.item)
        self.kernel = KernelView(96)
        self.glw.setMinimumSize(160, 120)
        self.caption = QtWidgets.QLabel("–")
        self.caption.setProperty("role", "muted")
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.kernel)
        row.addWidget(self.caption, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.glw, 1)
        layout.addLayout(row)

    def show_image(self, rgb_f32: np.ndarray, scale: float, title: str) -> None:
        self.item.setImage(to_u8(rgb_f32), autoLevels=False, levels=(0, 255))
        self.item.setTransform(QtGui.QTransform.fromScale(scale, scale))
        self.title.setText(title)

    def show_kernel(self, kernel: np.ndarray | None, caption: str) -> None:
        self.kernel.set_kernel(kernel)
        self.caption.setText(caption)


class IkcPanel(QtWidgets.QWidget):
    """Compare IKC iteration ``i`` with the input or with iteration ``j``."""

    iteration_changed = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.result = None
        self.lr_rgb_f32: np.ndarray | None = None
        self.scale = 4
        self.diff = None  # the last amplified difference shown (app.analysis.Difference)
        self.left = _IkcSide("iteration i")
        self.right = _IkcSide("input")
        self.right.vb.setXLink(self.left.vb)
        self.right.vb.setYLink(self.left.vb)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setTickPosition(QtWidgets.QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(1)
        self.slider.setPageStep(1)
        self.slider_label = QtWidgets.QLabel("i = 0")
        self.slider_label.setMinimumWidth(90)
        self.play = QtWidgets.QPushButton("▶ Play")
        self.play.setCheckable(True)
        self.compare = QtWidgets.QComboBox()
        self.compare.addItem("vs the input", "input")
        self.compare.addItem("vs iteration j", "iteration")
        self.other = QtWidgets.QSpinBox()
        self.other.setPrefix("j = ")
        self.other.setRange(0, 0)
        self.other.setEnabled(False)
        self.difference = QtWidgets.QCheckBox("Amplified difference")
        self.difference.setToolTip("Right view: iteration i minus the other image, amplified so it is visible "
                                   "(red brighter, blue darker; the title gives the scale)")
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.play)
        controls.addWidget(QtWidgets.QLabel("Iteration"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.slider_label)
        controls.addWidget(self.compare)
        controls.addWidget(self.other)
        controls.addWidget(self.difference)

        self.plot = _step_plot("IKC step i", "change (8-bit levels)")
        self.image_curve = _curve(self.plot, (79, 195, 247), "o", "mean |SRᵢ − SRᵢ₋₁|")
        self.code_curve = _curve(self.plot, (255, 167, 38), "s", "‖hᵢ − hᵢ₋₁‖ (scaled)")
        self.cursor = _step_cursor(self.plot)
        self.sigma_plot = _step_plot("IKC iteration i", "kernel σ (kernel px)")
        self.sigma1_curve = _curve(self.sigma_plot, (239, 83, 80), "o", "σ1")
        self.sigma2_curve = _curve(self.sigma_plot, (102, 187, 106), "t", "σ2")
        self.sigma_cursor = _step_cursor(self.sigma_plot)
        self.kernel_strip = QtWidgets.QHBoxLayout()
        self.kernel_strip.setSpacing(2)
        strip = QtWidgets.QWidget()
        strip.setLayout(self.kernel_strip)
        self.strip_scroll = QtWidgets.QScrollArea()
        self.strip_scroll.setWidget(strip)
        self.strip_scroll.setWidgetResizable(True)
        self.strip_scroll.setFixedHeight(112)
        self.strip_scroll.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.strip_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.kernel_buttons: list[QtWidgets.QToolButton] = []
        self.about = QtWidgets.QLabel(ABOUT_IKC)
        self.about.setWordWrap(True)
        self.about.setProperty("role", "muted")

        self.empty = QtWidgets.QLabel(EMPTY_TEXT)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setProperty("role", "muted")
        self.content = QtWidgets.QWidget()
        sides = QtWidgets.QHBoxLayout()
        sides.addWidget(self.left)
        sides.addWidget(self.right)
        plots = QtWidgets.QHBoxLayout()
        plots.addWidget(self.plot)
        plots.addWidget(self.sigma_plot)
        inner = QtWidgets.QVBoxLayout(self.content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addLayout(sides, 1)
        inner.addLayout(controls)
        inner.addWidget(self.strip_scroll)
        inner.addLayout(plots)
        inner.addWidget(self.about)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.content, 1)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(PLAY_INTERVAL_MS)
        self.timer.timeout.connect(self._on_tick)
        self.play.toggled.connect(self._on_play)
        self.slider.valueChanged.connect(self._on_slider)
        self.compare.currentIndexChanged.connect(self._refresh)
        self.other.valueChanged.connect(self._refresh)
        self.difference.toggled.connect(self._refresh)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        """With a result: the views, controls and plots; without: only the text saying what to do."""
        self.content.setVisible(on)
        self.empty.setVisible(not on)

    def _fill_kernel_strip(self, iterations) -> None:
        for button in self.kernel_buttons:
            self.kernel_strip.removeWidget(button)
            button.deleteLater()
        self.kernel_buttons = []
        if self.kernel_strip.count():  # the trailing stretch of the previous fill
            self.kernel_strip.takeAt(0)
        for i, it in enumerate(iterations):
            info = describe_kernel(it.kernel)
            heat = np.ascontiguousarray(kernel_heatmap_u8(it.kernel, size=48))
            qimg = QtGui.QImage(heat.data, heat.shape[1], heat.shape[0], heat.strides[0],
                                QtGui.QImage.Format.Format_RGB888).copy()
            button = QtWidgets.QToolButton()
            button.setIcon(QtGui.QIcon(QtGui.QPixmap.fromImage(qimg)))
            button.setIconSize(QtCore.QSize(48, 48))
            button.setText(f"{i}: σ {info.sigma1:.2f}")
            button.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolTip(_caption(it.kernel, f"kernel of iteration {i}"))
            button.clicked.connect(lambda _checked=False, i=i: self.set_iteration(i))
            self.kernel_strip.addWidget(button)
            self.kernel_buttons.append(button)
        if iterations:
            self.kernel_strip.addStretch(1)

    def set_result(self, lr_rgb_f32: np.ndarray | None, ikc, scale: int,
                   changes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Show an :class:`~engine.pipeline.ikc.IkcResult` (None clears the panel).

        ``changes`` is :meth:`IkcResult.changes` of the result when already computed (the run job
        does it on the worker); otherwise it is computed here.
        """
        self.play.setChecked(False)
        self.result = ikc
        self.lr_rgb_f32 = lr_rgb_f32
        self.scale = int(scale)
        if ikc is None or lr_rgb_f32 is None or not ikc.iterations:
            self._set_enabled(False)
            for side in (self.left, self.right):
                side.item.clear()
                side.show_kernel(None, "–")
            self.image_curve.setData([], [])
            self.code_curve.setData([], [])
            self.sigma1_curve.setData([], [])
            self.sigma2_curve.setData([], [])
            self._fill_kernel_strip([])
            return
        self._set_enabled(True)
        last = len(ikc.iterations) - 1
        self.slider.blockSignals(True)
        self.slider.setRange(0, last)
        self.slider.setValue(last)
        self.slider.blockSignals(False)
        self.other.setRange(0, last)
        image_change, code_change = changes if changes is not None else ikc.changes()
        xs = np.arange(len(image_change))
        scale_codes = float(image_change.max() / code_change.max()) if code_change.max() > 0 and \
            image_change.max() > 0 else 1.0
        self.image_curve.setData(xs[1:], image_change[1:])
        self.code_curve.setData(xs[1:], code_change[1:] * scale_codes)
        self.image_changes, self.code_changes = image_change, code_change
        self.plot.setXRange(0, max(1, last), padding=0.05)
        self.plot.setYRange(0, _top(image_change[1:]), padding=0)
        infos = [describe_kernel(it.kernel) for it in ikc.iterations]
        sigma1 = np.array([info.sigma1 for info in infos])
        sigma2 = np.array([info.sigma2 for info in infos])
        self.sigma1_curve.setData(xs, sigma1)
        self.sigma2_curve.setData(xs, sigma2)
        self.sigma_plot.setXRange(0, max(1, last), padding=0.05)
        self.sigma_plot.setYRange(0, _top(np.concatenate([sigma1, sigma2])), padding=0)
        for plot in (self.plot, self.sigma_plot):
            plot.getAxis("bottom").setTicks([[(k, str(k)) for k in range(0, last + 1, max(1, (last + 9) // 10))]])
        self._fill_kernel_strip(ikc.iterations)
        self._refresh()
        h, w = lr_rgb_f32.shape[:2]
        self.left.vb.setRange(rect=QtCore.QRectF(0, 0, w * scale, h * scale), padding=0.02)

    def current(self) -> int:
        return int(self.slider.value())

    def set_iteration(self, index: int) -> None:
        self.slider.setValue(int(index))

    @QtCore.Slot(int)
    def _on_slider(self, _value: int) -> None:
        self._refresh()
        self.iteration_changed.emit(self.current())

    @QtCore.Slot()
    def _refresh(self, *_args) -> None:
        if self.result is None or self.lr_rgb_f32 is None:
            return
        i = self.current()
        its = self.result.iterations
        self.slider_label.setText(f"i = {i} / {len(its) - 1}")
        self.cursor.setPos(i)
        self.sigma_cursor.setPos(i)
        for k, button in enumerate(self.kernel_buttons):
            button.setChecked(k == i)
        it = its[i]
        self.left.show_image(it.sr_rgb_f32, 1.0, f"iteration {i}")
        self.left.show_kernel(it.kernel, _caption(it.kernel, f"kernel of iteration {i}"))
        mode = self.compare.currentData()
        self.other.setEnabled(mode == "iteration")
        if mode == "iteration":
            j = int(self.other.value())
            other, other_scale, other_name = its[j].sr_rgb_f32, 1.0, f"iteration {j}"
            self.right.show_kernel(its[j].kernel, _caption(its[j].kernel, f"kernel of iteration {j}"))
        else:
            other, other_scale, other_name = self.lr_rgb_f32, float(self.scale), "input (LR, nearest)"
            self.right.show_kernel(None, "the input has no estimated kernel")
        if not self.difference.isChecked():
            self.right.show_image(other, other_scale, other_name)
            return
        if mode != "iteration":  # the input on the SR grid, as the plain view shows it
            s = int(self.scale)
            other = np.repeat(np.repeat(other, s, axis=0), s, axis=1)[:it.sr_rgb_f32.shape[0], :it.sr_rgb_f32.shape[1]]
        diff = difference_rgb_u8(it.sr_rgb_f32, other)
        self.right.item.setImage(diff.rgb_u8, autoLevels=False, levels=(0, 255))
        self.right.item.setTransform(QtGui.QTransform())
        self.right.title.setText(f"{i} − {other_name.replace('iteration ', '')}, ×{diff.gain:.0f} "
                                 f"(full colour ±{diff.full_scale_levels:.2g} levels)")
        self.right.title.setToolTip(f"iteration {i} − {other_name}: red brighter, blue darker; largest "
                                    f"difference {diff.max_levels:.2g} levels")
        self.diff = diff

    @QtCore.Slot(bool)
    def _on_play(self, playing: bool) -> None:
        self.play.setText("❚❚ Pause" if playing else "▶ Play")
        if playing:
            if self.current() >= self.slider.maximum():
                self.slider.setValue(0)
            self.timer.start()
        else:
            self.timer.stop()

    @QtCore.Slot()
    def _on_tick(self) -> None:
        if self.current() >= self.slider.maximum():
            self.play.setChecked(False)
            return
        self.slider.setValue(self.current() + 1)


def _step_plot(x_label: str, y_label: str) -> pg.PlotWidget:
    """A short plot over IKC steps: grid, legend, fixed view (no mouse zoom, no auto button)."""
    plot = pg.PlotWidget(background=(24, 25, 28))
    plot.setMaximumHeight(190)
    plot.setMinimumHeight(120)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    # values are often below one: plain tick values, not a "(x0.001)" suffix that the 190 px high axis cuts off
    plot.getAxis("left").enableAutoSIPrefix(False)
    plot.addLegend(offset=(-10, 10))
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    return plot


def _curve(plot: pg.PlotWidget, rgb: tuple[int, int, int], symbol: str, name: str) -> pg.PlotDataItem:
    return plot.plot([], [], pen=pg.mkPen(rgb, width=2), symbol=symbol, symbolSize=6, symbolBrush=rgb, name=name)


def _step_cursor(plot: pg.PlotWidget) -> pg.InfiniteLine:
    """The yellow vertical line at the iteration on show."""
    cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 235, 59), width=1))
    plot.addItem(cursor)
    return cursor


def _top(values: np.ndarray) -> float:
    """Upper end of a plot's y range that starts at 0: 15 % above the largest value (1 when all are 0)."""
    biggest = float(np.max(values)) if len(values) else 0.0
    return 1.15 * biggest if biggest > 0 else 1.0


def _caption(kernel: np.ndarray, title: str) -> str:
    info = describe_kernel(kernel)
    return f"{title}\nσ1 {info.sigma1:.2f} px · σ2 {info.sigma2:.2f} px · θ {math.degrees(info.theta):.0f}°"
