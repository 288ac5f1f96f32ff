"""Training-curve PNG drawn with OpenCV (matplotlib is not a dependency).

Two panels side by side: the training loss against the step (log10 axis) and the validation
number against the step, each with a frame, min/max tick labels and a title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

_BG = (255, 255, 255)
_AXIS = (60, 60, 60)
_GRID = (225, 225, 225)
_LOSS = (200, 90, 20)  # BGR: blue-ish
_VAL = (30, 30, 200)  # BGR: red-ish
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


def _panel(
    img: np.ndarray,
    origin: tuple[int, int],
    size: tuple[int, int],
    xs: Sequence[float],
    ys: Sequence[float],
    title: str,
    colour: tuple[int, int, int],
    log_y: bool,
    markers: bool,
) -> None:
    x0, y0 = origin
    w, h = size
    left, right, top, bottom = 70, 15, 30, 40
    px0, px1, py0, py1 = x0 + left, x0 + w - right, y0 + top, y0 + h - bottom
    cv2.putText(img, title, (px0, y0 + 20), _FONT, 0.5, _AXIS, 1, cv2.LINE_AA)
    for k in range(1, 4):  # light grid
        gy = py0 + (py1 - py0) * k // 4
        cv2.line(img, (px0, gy), (px1, gy), _GRID, 1)
    cv2.rectangle(img, (px0, py0), (px1, py1), _AXIS, 1)
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y)) and (not log_y or y > 0)]
    if not pts:
        cv2.putText(img, "no data", (px0 + 10, (py0 + py1) // 2), _FONT, 0.5, _AXIS, 1, cv2.LINE_AA)
        return
    xv = np.array([p[0] for p in pts])
    yv = np.array([p[1] for p in pts])
    yt = np.log10(yv) if log_y else yv
    xmin, xmax = float(xv.min()), float(xv.max())
    ymin, ymax = float(yt.min()), float(yt.max())
    if xmax == xmin:
        xmax = xmin + 1.0
    if ymax == ymin:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad
    sx = (px1 - px0) / (xmax - xmin)
    sy = (py1 - py0) / (ymax - ymin)
    poly = np.stack([px0 + (xv - xmin) * sx, py1 - (yt - ymin) * sy], axis=1)
    poly = np.round(poly).astype(np.int32)
    if len(poly) > 1:
        cv2.polylines(img, [poly.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_8)
    if markers or len(poly) == 1:
        for p in poly:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, colour, -1, cv2.LINE_8)

    def ylabel(v: float) -> str:
        return _fmt(10**v) if log_y else _fmt(v)

    cv2.putText(img, ylabel(ymax), (x0 + 2, py0 + 10), _FONT, 0.4, _AXIS, 1, cv2.LINE_AA)
    cv2.putText(img, ylabel(ymin), (x0 + 2, py1), _FONT, 0.4, _AXIS, 1, cv2.LINE_AA)
    cv2.putText(img, _fmt(xmin), (px0, py1 + 15), _FONT, 0.4, _AXIS, 1, cv2.LINE_AA)
    label = _fmt(xmax)
    cv2.putText(img, label, (px1 - 8 * len(label), py1 + 15), _FONT, 0.4, _AXIS, 1, cv2.LINE_AA)
    cv2.putText(img, "step", ((px0 + px1) // 2 - 15, py1 + 32), _FONT, 0.45, _AXIS, 1, cv2.LINE_AA)


def plot_curves(
    path: str | Path,
    steps: Sequence[float],
    losses: Sequence[float],
    val_steps: Sequence[float],
    vals: Sequence[float],
    *,
    title: str = "",
    val_name: str = "validation",
) -> Path:
    """Write a 1000×420 PNG: loss (log scale) and validation curves against the step."""
    img = np.full((420, 1000, 3), _BG, dtype=np.uint8)
    if title:
        cv2.putText(img, title, (10, 18), _FONT, 0.55, _AXIS, 1, cv2.LINE_AA)
    _panel(img, (0, 25), (500, 395), steps, losses, "training loss (log scale)", _LOSS, True, False)
    _panel(img, (500, 25), (500, 395), val_steps, vals, f"Set5 {val_name}", _VAL, False, True)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    p.write_bytes(buf.tobytes())
    return p
