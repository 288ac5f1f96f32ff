"""The image viewer: LR and SR side by side (linked zoom and pan) or one view with a before/after divider.

Scene coordinates are SR pixels in every view (see :mod:`app.geometry`): the LR image is drawn scaled
by ``s``, so crosshairs, the kernel lattice and painted regions line up across views.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from app.analysis import labels_rgba, stamp_disk
from app.geometry import HoverHit, ImageGeometry, hover_hit, one_to_one_rect
from engine.imageio import to_u8 as float_to_u8

CROSSHAIR_PEN = pg.mkPen((255, 235, 59, 220), width=1, style=QtCore.Qt.PenStyle.DashLine)
DIVIDER_PEN = pg.mkPen((255, 255, 255, 230), width=2)


def to_u8(rgb: np.ndarray) -> np.ndarray:
    """RGB float32 [0, 1] → uint8 for display (uint8 input is returned as is)."""
    if rgb.dtype == np.uint8:
        return rgb
    return float_to_u8(rgb)


class LabelOverlay(pg.ImageItem):
    """Painted regions drawn over an image; paints on the LR grid while a brush is active.

    The item's own coordinates are LR pixels (the item is scaled by ``s`` in the scene). Label arrays are
    shared with the :class:`RegionModel`; strokes go through it so every view stays in sync.
    """

    def __init__(self, model: "RegionModel") -> None:
        super().__init__()
        self._model = model
        self.setZValue(20)

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph API)
        if self._model.tool is None or ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        if ev.isStart():
            self._model.begin_stroke()
            down = ev.buttonDownPos()  # the press: the drag starts only once the mouse has moved on
            self._model.paint_at(down.x(), down.y())
        pos = ev.pos()
        self._model.paint_at(pos.x(), pos.y())
        if ev.isFinish():
            self._model.end_stroke()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph API)
        if self._model.tool is None or ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        self._model.begin_stroke()
        self._model.paint_at(ev.pos().x(), ev.pos().y())
        self._model.end_stroke()


class RegionModel(QtCore.QObject):
    """The painted label map (h, w) uint8 on the LR grid, the brush, and the overlays that show it."""

    changed = QtCore.Signal()  # labels changed (emitted when a stroke ends)
    brush_changed = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.labels = np.zeros((1, 1), np.uint8)
        self.tool: str | None = None  # None (pan/zoom), "brush" or "eraser"
        self.label = 1
        self.brush_radius = 3.0  # LR px
        self._overlays: list[LabelOverlay] = []
        self._dirty = False
        self._last_lr: tuple[float, float] | None = None  # the stroke's previous point

    def make_overlay(self) -> LabelOverlay:
        item = LabelOverlay(self)
        self._overlays.append(item)
        self._refresh_item(item)
        return item

    def reset(self, lr_hw: tuple[int, int]) -> None:
        self.labels = np.zeros(lr_hw, np.uint8)
        self.refresh()
        self.changed.emit()

    def set_labels(self, labels: np.ndarray) -> None:
        if labels.shape != self.labels.shape:
            raise ValueError(f"mask is {labels.shape[1]}×{labels.shape[0]}, the image is "
                             f"{self.labels.shape[1]}×{self.labels.shape[0]} LR px")
        self.labels = np.ascontiguousarray(labels, np.uint8)
        self.refresh()
        self.changed.emit()

    def set_scale(self, scale: int) -> None:
        for item in self._overlays:
            item.setTransform(QtGui.QTransform.fromScale(scale, scale))

    def set_brush_radius(self, radius: float) -> None:
        self.brush_radius = float(min(64.0, max(0.5, radius)))
        self.brush_changed.emit()

    def begin_stroke(self) -> None:
        self._dirty = False
        self._last_lr = None

    def paint_at(self, x_lr: float, y_lr: float) -> None:
        """Paint at a mouse position, and along the straight line from the stroke's previous position:
        mouse events arrive far apart in a fast stroke, which would otherwise leave dots and gaps."""
        value = 0 if self.tool == "eraser" else int(self.label)
        x0, y0 = self._last_lr if self._last_lr is not None else (x_lr, y_lr)
        steps = max(1, int(np.ceil(np.hypot(x_lr - x0, y_lr - y0) / max(self.brush_radius / 2, 0.5))))
        painted = False
        for t in np.linspace(0.0, 1.0, steps + 1)[1 if self._last_lr is not None else 0:]:
            painted |= stamp_disk(self.labels, x0 + t * (x_lr - x0), y0 + t * (y_lr - y0), self.brush_radius, value)
        self._last_lr = (x_lr, y_lr)
        if painted:
            self._dirty = True
            self.refresh()

    def end_stroke(self) -> None:
        if self._dirty:
            self.changed.emit()
        self._dirty = False
        self._last_lr = None

    def stroke(self, points_lr: list[tuple[float, float]]) -> None:
        """Paint a stroke through ``points_lr`` (x, y in LR px) with the current tool (for scripts/tests)."""
        self.begin_stroke()
        for x, y in points_lr:
            self.paint_at(x, y)
        self.end_stroke()

    def refresh(self) -> None:
        for item in self._overlays:
            self._refresh_item(item)

    def _refresh_item(self, item: LabelOverlay) -> None:
        item.setImage(labels_rgba(self.labels), autoLevels=False, levels=(0, 255))


class View:
    """One pyqtgraph view: a title, a ViewBox with crosshair lines, inside its own GraphicsView (also used by the lab)."""

    def __init__(self, title: str) -> None:
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setBackground((24, 25, 28))
        self.widget.ci.setContentsMargins(0, 0, 0, 0)
        self.label = self.widget.addLabel(title, color=(200, 200, 205), size="9pt")
        self.widget.nextRow()
        self.vb: pg.ViewBox = self.widget.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=CROSSHAIR_PEN)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=CROSSHAIR_PEN)
        for line in (self.vline, self.hline):
            line.setZValue(50)
            line.hide()
            self.vb.addItem(line, ignoreBounds=True)

    def show_crosshair(self, x: float | None, y: float | None) -> None:
        if x is None or y is None:
            self.vline.hide()
            self.hline.hide()
            return
        self.vline.setPos(x)
        self.hline.setPos(y)
        self.vline.show()
        self.hline.show()


class CompareViewer(QtWidgets.QWidget):
    """LR | SR side by side with linked zoom/pan, or one view with a draggable divider (split mode)."""

    hovered = QtCore.Signal(object, str)  # HoverHit or None, "lr" / "sr"

    def __init__(self, regions: RegionModel, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.regions = regions
        self.geometry_: ImageGeometry | None = None
        self._lr_u8: np.ndarray | None = None
        self._sr_u8: np.ndarray | None = None
        self.split_mode = False

        self.lr_view = View("Input (LR)")
        self.sr_view = View("Result (SR)")
        self.split_view = View("Before | after — drag the divider")
        self.sr_view.vb.setXLink(self.lr_view.vb)
        self.sr_view.vb.setYLink(self.lr_view.vb)

        self.lr_item = pg.ImageItem()
        self.sr_item = pg.ImageItem()
        self.split_lr_item = pg.ImageItem()
        self.split_sr_item = pg.ImageItem()
        self.lr_view.vb.addItem(self.lr_item)
        self.sr_view.vb.addItem(self.sr_item)
        self.split_view.vb.addItem(self.split_lr_item)
        self._clip = QtWidgets.QGraphicsRectItem()
        self._clip.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self._clip.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self.split_view.vb.addItem(self._clip)
        self.split_sr_item.setParentItem(self._clip)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=DIVIDER_PEN,
                                       hoverPen=pg.mkPen((79, 195, 247), width=3))
        self.divider.setZValue(60)
        self.split_view.vb.addItem(self.divider, ignoreBounds=True)
        self.divider.sigPositionChanged.connect(self._on_divider_moved)

        # overlays: kernel lattice (both views), painted regions (LR side), region previews (SR side)
        self.lattice_items = [pg.ImageItem(), pg.ImageItem(), pg.ImageItem()]
        for item, view in zip(self.lattice_items, (self.lr_view, self.sr_view, self.split_view)):
            item.setZValue(30)
            item.hide()
            view.vb.addItem(item, ignoreBounds=True)
        self.label_items = [regions.make_overlay(), regions.make_overlay(), regions.make_overlay()]
        self.lr_view.vb.addItem(self.label_items[0], ignoreBounds=True)
        self.split_view.vb.addItem(self.label_items[1], ignoreBounds=True)
        self.sr_view.vb.addItem(self.label_items[2], ignoreBounds=True)
        self.preview_items: list[pg.ImageItem] = []

        self._stack = QtWidgets.QStackedWidget()
        pair = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        pair.addWidget(self.lr_view.widget)
        pair.addWidget(self.sr_view.widget)
        pair.setChildrenCollapsible(False)
        self._stack.addWidget(pair)
        self._stack.addWidget(self.split_view.widget)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._stack)

        for view, name in ((self.lr_view, "lr"), (self.sr_view, "sr"), (self.split_view, "split")):
            view.widget.scene().sigMouseMoved.connect(getattr(self, f"_on_move_{name}"))

    # content -----------------------------------------------------------------------------------------
    def set_images(self, lr_rgb_f32: np.ndarray | None, sr_rgb_f32: np.ndarray | None, scale: int) -> None:
        """Show an LR image and (optionally) its SR result; ``scale`` places LR in SR coordinates.

        Either may be float32 in [0, 1] or already uint8 (large results are converted on the worker).
        """
        old = self.geometry_
        if lr_rgb_f32 is None:
            self.geometry_ = None
            for item in (self.lr_item, self.sr_item, self.split_lr_item, self.split_sr_item):
                item.clear()
            self._lr_u8 = self._sr_u8 = None
            self.clear_previews()
            return
        h, w = lr_rgb_f32.shape[:2]
        self.geometry_ = ImageGeometry(w, h, int(scale))
        self._lr_u8 = to_u8(lr_rgb_f32)
        self._sr_u8 = None if sr_rgb_f32 is None else to_u8(sr_rgb_f32)
        lr_t = QtGui.QTransform.fromScale(scale, scale)
        for item in (self.lr_item, self.split_lr_item):
            item.setImage(self._lr_u8, autoLevels=False, levels=(0, 255))
            item.setTransform(lr_t)
        for item in (self.sr_item, self.split_sr_item):
            if self._sr_u8 is None:
                item.clear()
            else:
                item.setImage(self._sr_u8, autoLevels=False, levels=(0, 255))
        self.regions.set_scale(scale)
        self.clear_previews()
        self.sr_view.label.setText("Result (SR)" if self._sr_u8 is not None else "Result (SR) — press Run")
        if old is None or (old.lr_w, old.lr_h, old.scale) != (w, h, scale):
            self.divider.setBounds((0, self.geometry_.sr_w))
            self.divider.setPos(self.geometry_.sr_w / 2)
            self.fit()
        self._update_clip()

    def set_sr(self, sr_rgb_f32: np.ndarray | None) -> None:
        self._sr_u8 = None if sr_rgb_f32 is None else to_u8(sr_rgb_f32)
        for item in (self.sr_item, self.split_sr_item):
            if self._sr_u8 is None:
                item.clear()
            else:
                item.setImage(self._sr_u8, autoLevels=False, levels=(0, 255))

    def set_lattice(self, rgba: np.ndarray | None, px_per_lr: int = 1) -> None:
        """Show (or hide, with None) the kernel lattice overlay, an RGBA image at ``px_per_lr`` px per LR px."""
        for item in self.lattice_items:
            if rgba is None or self.geometry_ is None:
                item.hide()
                continue
            item.setImage(rgba, autoLevels=False, levels=(0, 255))
            f = self.geometry_.scale / px_per_lr
            item.setTransform(QtGui.QTransform.fromScale(f, f))
            item.show()

    def add_preview(self, sr_rgb_f32: np.ndarray, x0_sr: int, y0_sr: int, name: str = "preview") -> None:
        """Place an SR crop (a region preview) at SR pixel ``(x0_sr, y0_sr)`` over the result views, and
        outline the area in every view: "before" on the input, "after" on the result."""
        for vb, parent in ((self.sr_view.vb, None), (self.split_view.vb, self._clip)):
            item = pg.ImageItem(to_u8(sr_rgb_f32), autoLevels=False, levels=(0, 255))
            item.setPos(x0_sr, y0_sr)
            item.setZValue(10)
            if parent is not None:
                item.setParentItem(parent)
            else:
                vb.addItem(item, ignoreBounds=True)
            self.preview_items.append(item)
        h, w = sr_rgb_f32.shape[:2]
        for view, text in ((self.lr_view, f"{name}: before"), (self.sr_view, f"{name}: after"),
                           (self.split_view, name)):
            outline = QtWidgets.QGraphicsRectItem(QtCore.QRectF(x0_sr, y0_sr, w, h))
            pen = QtGui.QPen(QtGui.QColor(79, 195, 247), 2)
            pen.setCosmetic(True)
            pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            outline.setPen(pen)
            outline.setZValue(40)
            view.vb.addItem(outline, ignoreBounds=True)
            label = pg.TextItem(text, color=(79, 195, 247), anchor=(0, 1), fill=pg.mkBrush(20, 20, 24, 180))
            label.setPos(x0_sr, y0_sr)
            label.setZValue(41)
            view.vb.addItem(label, ignoreBounds=True)
            self.preview_items += [outline, label]

    def clear_previews(self) -> None:
        for item in self.preview_items:
            scene = item.scene()
            if scene is not None:
                scene.removeItem(item)
        self.preview_items.clear()

    # modes and zoom ----------------------------------------------------------------------------------
    def set_split_mode(self, on: bool) -> None:
        """True: one view with a before/after divider; False: side by side."""
        rect = self.lr_view.vb.viewRect() if not self.split_mode else self.split_view.vb.viewRect()
        self.split_mode = bool(on)
        self._stack.setCurrentIndex(1 if self.split_mode else 0)
        target = self.split_view.vb if self.split_mode else self.lr_view.vb
        if self.geometry_ is not None:
            target.setRange(rect=rect, padding=0.0)

    def active_viewboxes(self) -> list[pg.ViewBox]:
        return [self.split_view.vb] if self.split_mode else [self.lr_view.vb, self.sr_view.vb]

    def fit(self) -> None:
        """Show the whole image (F)."""
        if self.geometry_ is None:
            return
        rect = QtCore.QRectF(0, 0, self.geometry_.sr_w, self.geometry_.sr_h)
        for vb in (self.lr_view.vb, self.split_view.vb):
            vb.setRange(rect=rect, padding=0.02)

    def one_to_one(self) -> None:
        """One SR pixel per screen pixel (1), centred where the view is centred now."""
        if self.geometry_ is None:
            return
        vb = self.active_viewboxes()[0]
        centre = vb.viewRect().center()
        size = vb.size()
        x, y, w, h = one_to_one_rect(centre.x(), centre.y(), int(size.width()), int(size.height()))
        vb.setRange(rect=QtCore.QRectF(x, y, w, h), padding=0.0)

    def view_rect(self) -> QtCore.QRectF:
        return self.active_viewboxes()[0].viewRect()

    # hover ---------------------------------------------------------------------------------------------
    def _hover(self, view: View, scene_pos: QtCore.QPointF, space: str) -> None:
        if self.geometry_ is None:
            return
        p = view.vb.mapSceneToView(scene_pos)
        hit = hover_hit(p.x(), p.y(), self.geometry_)
        if space == "split" and hit is not None:
            space = "lr" if p.x() < self.divider.value() else "sr"
        self.show_crosshair(hit)
        self.hovered.emit(hit, space if space != "split" else "lr")

    def show_crosshair(self, hit: HoverHit | None) -> None:
        for view in (self.lr_view, self.sr_view, self.split_view):
            view.show_crosshair(None if hit is None else hit.sr_x, None if hit is None else hit.sr_y)

    @QtCore.Slot(object)
    def _on_move_lr(self, pos: QtCore.QPointF) -> None:
        self._hover(self.lr_view, pos, "lr")

    @QtCore.Slot(object)
    def _on_move_sr(self, pos: QtCore.QPointF) -> None:
        self._hover(self.sr_view, pos, "sr")

    @QtCore.Slot(object)
    def _on_move_split(self, pos: QtCore.QPointF) -> None:
        self._hover(self.split_view, pos, "split")

    # divider -------------------------------------------------------------------------------------------
    @QtCore.Slot(object)
    def _on_divider_moved(self, _line=None) -> None:
        self._update_clip()

    def _update_clip(self) -> None:
        if self.geometry_ is None:
            return
        x = float(np.clip(self.divider.value(), 0, self.geometry_.sr_w))
        self._clip.setRect(QtCore.QRectF(x, 0, self.geometry_.sr_w - x, self.geometry_.sr_h))

    def set_divider(self, x_sr: float) -> None:
        self.divider.setPos(x_sr)
