"""Pure geometry of the viewer (no Qt): scene coordinates → LR pixel, and small display helpers.

Scene convention: both views of the studio use **SR pixel units** as scene coordinates. The LR image
is drawn scaled by ``s`` (its pixel ``(row, col)`` covers scene ``[s·col, s·col + s) × [s·row, s·row + s)``),
the SR image at 1:1, so a crosshair at one scene point marks the same spot of the photo in both views.
This matches :meth:`engine.pipeline.kernelmap.KernelMap.lr_index` with ``space="sr"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageGeometry:
    """An LR image of ``lr_w``×``lr_h`` pixels shown at scale ``scale`` (scene = SR pixel units)."""

    lr_w: int
    lr_h: int
    scale: int

    @property
    def sr_w(self) -> int:
        return self.lr_w * self.scale

    @property
    def sr_h(self) -> int:
        return self.lr_h * self.scale


@dataclass(frozen=True)
class HoverHit:
    """Where the cursor is: the LR pixel ``(lr_row, lr_col)`` and the point in LR and SR pixels."""

    lr_row: int
    lr_col: int
    lr_x: float
    lr_y: float
    sr_x: float
    sr_y: float


def hover_hit(scene_x: float, scene_y: float, geometry: ImageGeometry) -> HoverHit | None:
    """The LR pixel under scene point ``(scene_x, scene_y)`` (SR px units), or None outside the image.

    LR pixel ``(r, c)`` covers SR pixels ``[s·r, s·r + s) × [s·c, s·c + s)``; the right and bottom edges
    belong to no pixel.
    """
    if not (math.isfinite(scene_x) and math.isfinite(scene_y)):
        return None
    s = geometry.scale
    if not (0.0 <= scene_x < geometry.sr_w and 0.0 <= scene_y < geometry.sr_h):
        return None
    col = min(int(math.floor(scene_x / s)), geometry.lr_w - 1)
    row = min(int(math.floor(scene_y / s)), geometry.lr_h - 1)
    return HoverHit(row, col, scene_x / s, scene_y / s, scene_x, scene_y)


def lr_pixel_centre_scene(row: int, col: int, scale: int) -> tuple[float, float]:
    """Scene (SR px) coordinates ``(x, y)`` of the centre of LR pixel ``(row, col)``."""
    return (col + 0.5) * scale, (row + 0.5) * scale


def lattice_points(lr_h: int, lr_w: int, step_lr: int | None = None) -> list[tuple[int, int]]:
    """LR pixels ``(row, col)`` where the kernel lattice draws a kernel: about 12 across the longer side."""
    if lr_h <= 0 or lr_w <= 0:
        return []
    step = step_lr if step_lr is not None else max(4, int(round(max(lr_h, lr_w) / 12)))
    return [(r, c) for r in range(step // 2, lr_h, step) for c in range(step // 2, lr_w, step)]


class RunEta:
    """Remaining time of a run from the measured pace of its work, not from the time spent loading.

    The clock starts at the first report that is not "loading models"; the ETA is the time the tiles
    since then took per unit of progress times the progress left (None until 1 % more is done).
    """

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None  # (time s, fraction) when the work began

    def update(self, now_s: float, fraction: float, message: str) -> float | None:
        if fraction >= 1.0:
            return 0.0
        if self._start is None:
            if not message.startswith("loading"):
                self._start = (now_s, fraction)
            return None
        t0, f0 = self._start
        if fraction - f0 < 0.01 or now_s <= t0:
            return None
        return (now_s - t0) * (1.0 - fraction) / (fraction - f0)


def format_duration(seconds: float | None) -> str:
    """``"–"``, ``"12 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fit_zoom_rect(geometry: ImageGeometry) -> tuple[float, float, float, float]:
    """The scene rectangle ``(x, y, w, h)`` that "fit" (F) shows."""
    return 0.0, 0.0, float(geometry.sr_w), float(geometry.sr_h)


def one_to_one_rect(
    centre_x: float, centre_y: float, view_px_w: int, view_px_h: int
) -> tuple[float, float, float, float]:
    """The scene rectangle that shows one SR pixel per screen pixel around a centre ("1")."""
    w, h = max(1, view_px_w), max(1, view_px_h)
    return centre_x - w / 2.0, centre_y - h / 2.0, float(w), float(h)
