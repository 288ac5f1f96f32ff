"""The degradation lab: paint regions on a sharp image, give each its own kernel, synthesise the
spatially variant LR image, run MANet on it and map the estimated-vs-painted kernel error.

The experiment itself is plain data in :mod:`engine.pipeline.lab` (it runs on the engine worker);
:class:`LabPanel` is its interactive front end.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from engine.degradation.kernels import KernelParams, anisotropic_gaussian_kernel
from engine.pipeline.lab import DEFAULT_PARAMS, LabResult

from app.analysis import REGION_COLOURS, error_map_rgb
from app.panels import KernelView
from app.session import device_name
from app.viewer import RegionModel, View, to_u8


class LabPanel(QtWidgets.QWidget):
    """Paint, set kernels, synthesise, estimate, compare."""

    run_requested = QtCore.Signal()
    open_requested = QtCore.Signal()
    send_to_studio = QtCore.Signal(object)  # LR rgb_f32

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = 4
        self.hr_rgb_f32: np.ndarray | None = None
        self.hr_name = ""
        self.result: LabResult | None = None
        self.regions = RegionModel(self)
        self.params: dict[int, tuple[float, float, float]] = {
            k: DEFAULT_PARAMS[k - 1] for k in range(1, len(REGION_COLOURS) + 1)}

        # views: the sharp image (painted) large on the left; synthesised LR and the error map on the right.
        # All three use scene coordinates in HR px (the LR images are drawn scaled by s).
        self.views = [View("Sharp image: paint regions"), View("Synthesised LR"),
                      View("Kernel error |estimated − painted|")]
        self.vbs = [v.vb for v in self.views]
        self.titles = [v.label for v in self.views]
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.views[1].widget)
        right.addWidget(self.views[2].widget)
        self.glw = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.glw.addWidget(self.views[0].widget)
        self.glw.addWidget(right)
        self.glw.setStretchFactor(0, 3)
        self.glw.setStretchFactor(1, 2)
        right.setSizes([300, 300])
        for view in self.views:  # never squeezed to a sliver (the error map's title stays readable)
            view.widget.setMinimumSize(120, 90)
        right.setChildrenCollapsible(False)
        self.glw.setChildrenCollapsible(False)
        self.hr_item = pg.ImageItem()
        self.lr_item = pg.ImageItem()
        self.err_item = pg.ImageItem()
        self.vbs[0].addItem(self.hr_item)
        self.vbs[1].addItem(self.lr_item)
        self.vbs[2].addItem(self.err_item)
        self.overlay = self.regions.make_overlay()
        self.vbs[0].addItem(self.overlay, ignoreBounds=True)
        self.err_overlay = self.regions.make_overlay()
        self.err_overlay.setOpacity(0.35)
        self.vbs[2].addItem(self.err_overlay, ignoreBounds=True)

        # controls
        self.open_button = QtWidgets.QPushButton("Open sharp image…")
        self.tool = QtWidgets.QComboBox()
        self.tool.addItem("Brush", "brush")
        self.tool.addItem("Eraser", "eraser")
        self.tool.addItem("Pan / zoom", None)
        self.region = QtWidgets.QComboBox()
        for k, rgb in enumerate(REGION_COLOURS, start=1):
            pix = QtGui.QPixmap(14, 14)
            pix.fill(QtGui.QColor(*rgb))
            self.region.addItem(QtGui.QIcon(pix), f"Region {k}", k)
        self.radius = QtWidgets.QDoubleSpinBox()
        self.radius.setRange(0.5, 64)
        self.radius.setValue(6.0)
        self.radius.setSuffix(" LR px")
        self.sigma1 = self._slider(2, 50)  # tenths of px
        self.sigma2 = self._slider(2, 50)
        self.theta = self._slider(0, 179)
        self.sigma1_label, self.sigma2_label, self.theta_label = (QtWidgets.QLabel() for _ in range(3))
        self.preview = KernelView(112)
        self.run_button = QtWidgets.QPushButton("Synthesise + estimate")
        self.run_button.setObjectName("primary")
        self.to_studio = QtWidgets.QPushButton("Open LR in studio")
        self.to_studio.setEnabled(False)
        self.summary = QtWidgets.QLabel("Paint regions, choose their kernels, then synthesise.")
        self.summary.setWordWrap(True)
        self.summary.setProperty("role", "muted")

        form = QtWidgets.QFormLayout()
        form.addRow("Tool", self.tool)
        form.addRow("Region", self.region)
        form.addRow("Brush", self.radius)
        for label, slider, value in (("σ1", self.sigma1, self.sigma1_label), ("σ2", self.sigma2, self.sigma2_label),
                                     ("θ", self.theta, self.theta_label)):
            row = QtWidgets.QHBoxLayout()
            row.addWidget(slider, 1)
            value.setMinimumWidth(52)
            row.addWidget(value)
            form.addRow(label, row)
        side = QtWidgets.QVBoxLayout()
        side.addWidget(self.open_button)
        side.addLayout(form)
        prev_row = QtWidgets.QHBoxLayout()
        prev_row.addStretch(1)
        prev_row.addWidget(self.preview)
        prev_row.addStretch(1)
        side.addLayout(prev_row)
        side.addWidget(self.run_button)
        side.addWidget(self.to_studio)
        side.addWidget(self.summary)
        side.addStretch(1)
        side_widget = QtWidgets.QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(300)
        layout = QtWidgets.QHBoxLayout(self)
        layout.addWidget(self.glw, 1)
        layout.addWidget(side_widget)

        self.tool.currentIndexChanged.connect(self._on_tool)
        self.region.currentIndexChanged.connect(self._on_region)
        self.radius.valueChanged.connect(self.regions.set_brush_radius)
        for slider in (self.sigma1, self.sigma2, self.theta):
            slider.valueChanged.connect(self._on_params)
        self.run_button.clicked.connect(self.run_requested)
        self.open_button.clicked.connect(self.open_requested)
        self.to_studio.clicked.connect(self._on_to_studio)
        self.regions.tool = "brush"
        self.regions.set_brush_radius(6.0)
        self._on_region()

    @staticmethod
    def _slider(lo: int, hi: int) -> QtWidgets.QSlider:
        s = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        s.setRange(lo, hi)
        return s

    # image -----------------------------------------------------------------------------------------
    def set_image(self, hr_rgb_f32: np.ndarray, name: str, scale: int) -> None:
        """Use a sharp image (cropped to a multiple of ``scale``) and reset the painting."""
        s = int(scale)
        h, w = hr_rgb_f32.shape[0] // s, hr_rgb_f32.shape[1] // s
        if h < 8 or w < 8:
            raise ValueError(f"image too small for ×{s} (needs at least {8 * s}×{8 * s} px)")
        self.scale = s
        self.hr_rgb_f32 = np.ascontiguousarray(hr_rgb_f32[: h * s, : w * s])
        self.hr_name = name
        self.hr_item.setImage(to_u8(self.hr_rgb_f32), autoLevels=False, levels=(0, 255))
        self.regions.reset((h, w))
        self.regions.set_scale(s)
        self.lr_item.clear()
        self.err_item.clear()
        self.result = None
        self.to_studio.setEnabled(False)
        self.titles[0].setText(f"{name}: paint regions")
        self.fit()

    def fit(self) -> None:
        """Show the whole image in every view."""
        if self.hr_rgb_f32 is not None:
            h, w = self.hr_rgb_f32.shape[:2]
            for vb in self.vbs:
                vb.setRange(rect=QtCore.QRectF(0, 0, w, h), padding=0.02)

    def showEvent(self, event: QtGui.QShowEvent) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        QtCore.QTimer.singleShot(0, self.fit)

    def paint_default_regions(self) -> None:
        """Two painted regions (left third red, right third blue): a starting point and a test fixture."""
        h, w = self.regions.labels.shape
        labels = np.zeros((h, w), np.uint8)
        labels[:, : w // 3] = 1
        labels[:, 2 * w // 3 :] = 2
        self.regions.set_labels(labels)

    # controls --------------------------------------------------------------------------------------
    @QtCore.Slot()
    def _on_tool(self, *_a) -> None:
        self.regions.tool = self.tool.currentData()

    @QtCore.Slot()
    def _on_region(self, *_a) -> None:
        label = int(self.region.currentData())
        self.regions.label = label
        s1, s2, th = self.params[label]
        for slider, value in ((self.sigma1, s1), (self.sigma2, s2), (self.theta, th)):
            slider.blockSignals(True)
            slider.setValue(int(round(value * 10 if slider is not self.theta else value)))
            slider.blockSignals(False)
        self._on_params()

    @QtCore.Slot()
    def _on_params(self, *_a) -> None:
        label = int(self.region.currentData())
        s1, s2, th = self.sigma1.value() / 10.0, self.sigma2.value() / 10.0, float(self.theta.value())
        self.params[label] = (s1, s2, th)
        self.sigma1_label.setText(f"{s1:.1f} px")
        self.sigma2_label.setText(f"{s2:.1f} px")
        self.theta_label.setText(f"{th:.0f}°")
        self.preview.set_kernel(anisotropic_gaussian_kernel(KernelParams(s1, s2, math.radians(th)), self.scale))

    def set_region_params(self, label: int, sigma1: float, sigma2: float, theta_deg: float) -> None:
        self.params[label] = (float(sigma1), float(sigma2), float(theta_deg))
        if int(self.region.currentData()) == label:
            self._on_region()

    # result ----------------------------------------------------------------------------------------
    def show_result(self, result: LabResult) -> None:
        self.result = result
        s = self.scale
        self.lr_item.setImage(to_u8(result.lr_rgb_f32), autoLevels=False, levels=(0, 255))
        self.lr_item.setTransform(QtGui.QTransform.fromScale(s, s))
        self.err_item.setImage(error_map_rgb(result.error_map), autoLevels=False, levels=(0, 255))
        self.err_item.setTransform(QtGui.QTransform.fromScale(s, s))
        parts = [f"How far MANet's kernels are from the painted ones (on {device_name(result.provider)}):",
                 f"mean |estimated − painted| per kernel tap {result.overall['mean_l1']:.2e} (0 = exact; "
                 f"each kernel's 441 taps sum to 1); kernel PSNR {result.overall['psnr']:.1f} dB (higher = "
                 "closer).", "Mean per tap, by region:"]
        for label, err in sorted(result.per_region.items()):
            name = "unpainted" if label == 0 else f"region {label}"
            parts.append(f"  {name}: {err:.2e}")
        self.summary.setText("\n".join(parts))
        self.titles[2].setText(f"Kernel error (max {float(result.error_map.max()):.1e})")
        self.fit()
        self.to_studio.setEnabled(True)

    @QtCore.Slot()
    def _on_to_studio(self) -> None:
        if self.result is not None:
            self.send_to_studio.emit(self.result.lr_rgb_f32)

