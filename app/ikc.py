"""The IKC iteration panel: a slider over iterations 0…t, two linked views, each iteration's kernel,
a play button, and a plot of how much the image and the code change per iteration."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.pipeline.kernelmap import describe_kernel

from app.analysis import ikc_changes
from app.panels import KernelView
from app.viewer import to_u8

PLAY_INTERVAL_MS = 600


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
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(self.play)
        controls.addWidget(QtWidgets.QLabel("Iteration"))
        controls.addWidget(self.slider, 1)
        controls.addWidget(self.slider_label)
        controls.addWidget(self.compare)
        controls.addWidget(self.other)

        self.plot = pg.PlotWidget(background=(24, 25, 28))
        self.plot.setMaximumHeight(190)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "iteration")
        self.plot.setLabel("left", "ΔSR (8-bit levels)")
        # changes are often below one level: plain tick values, not a "(x0.001)" suffix that the
        # 190 px high axis cuts off
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.image_curve = self.plot.plot([], [], pen=pg.mkPen((79, 195, 247), width=2), symbol="o",
                                          symbolSize=6, symbolBrush=(79, 195, 247), name="mean |SRᵢ − SRᵢ₋₁|")
        self.code_curve = self.plot.plot([], [], pen=pg.mkPen((255, 167, 38), width=2), symbol="s",
                                         symbolSize=6, symbolBrush=(255, 167, 38), name="‖hᵢ − hᵢ₋₁‖ (scaled)")
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 235, 59), width=1))
        self.plot.addItem(self.cursor)

        self.empty = QtWidgets.QLabel("Run IKC (Run panel ▸ Method ▸ IKC) to step through its iterations.")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setProperty("role", "muted")
        sides = QtWidgets.QHBoxLayout()
        sides.addWidget(self.left)
        sides.addWidget(self.right)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.empty)
        layout.addLayout(sides, 1)
        layout.addLayout(controls)
        layout.addWidget(self.plot)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(PLAY_INTERVAL_MS)
        self.timer.timeout.connect(self._on_tick)
        self.play.toggled.connect(self._on_play)
        self.slider.valueChanged.connect(self._on_slider)
        self.compare.currentIndexChanged.connect(self._refresh)
        self.other.valueChanged.connect(self._refresh)
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        for w in (self.slider, self.play, self.compare, self.left, self.right, self.plot):
            w.setEnabled(on)
        self.empty.setVisible(not on)

    def set_result(self, lr_rgb_f32: np.ndarray | None, ikc, scale: int,
                   changes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Show an :class:`~engine.pipeline.blind.IkcResult` (None clears the panel).

        ``changes`` is :func:`app.analysis.ikc_changes` of the result when already computed (the run job
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
            return
        self._set_enabled(True)
        last = len(ikc.iterations) - 1
        self.slider.blockSignals(True)
        self.slider.setRange(0, last)
        self.slider.setValue(last)
        self.slider.blockSignals(False)
        self.other.setRange(0, last)
        image_change, code_change = changes if changes is not None else ikc_changes(
            [it.sr_rgb_f32 for it in ikc.iterations], [it.code for it in ikc.iterations])
        xs = np.arange(len(image_change))
        scale_codes = float(image_change.max() / code_change.max()) if code_change.max() > 0 and \
            image_change.max() > 0 else 1.0
        self.image_curve.setData(xs[1:], image_change[1:])
        self.code_curve.setData(xs[1:], code_change[1:] * scale_codes)
        self.image_changes, self.code_changes = image_change, code_change
        self.plot.setXRange(0, max(1, last), padding=0.05)
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
        it = its[i]
        self.left.show_image(it.sr_rgb_f32, 1.0, f"iteration {i}")
        self.left.show_kernel(it.kernel, _caption(it.kernel, f"kernel of iteration {i}"))
        mode = self.compare.currentData()
        self.other.setEnabled(mode == "iteration")
        if mode == "iteration":
            j = int(self.other.value())
            self.right.show_image(its[j].sr_rgb_f32, 1.0, f"iteration {j}")
            self.right.show_kernel(its[j].kernel, _caption(its[j].kernel, f"kernel of iteration {j}"))
        else:
            self.right.show_image(self.lr_rgb_f32, float(self.scale), "input (LR, nearest)")
            self.right.show_kernel(None, "the input has no estimated kernel")

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


def _caption(kernel: np.ndarray, title: str) -> str:
    info = describe_kernel(kernel)
    return f"{title}\nσ1 {info.sigma1:.2f} px · σ2 {info.sigma2:.2f} px · θ {math.degrees(info.theta):.0f}°"
