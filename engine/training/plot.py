"""Training-curve PNG drawn with Pillow (matplotlib is not a dependency).

Two panels side by side: the training loss against the step (log10 axis) and the validation
number against the step, each with a frame, min/max tick labels and a title.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.atomic import write_atomic

_BG = (255, 255, 255)
_AXIS = (60, 60, 60)
_GRID = (225, 225, 225)
_LOSS = (20, 90, 200)  # RGB: blue
_VAL = (200, 30, 30)  # RGB: red


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.3g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (its bitmap font where Pillow lacks FreeType)."""
    try:
        return ImageFont.load_default(size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or built without FreeType
        return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, left_baseline: tuple[int, int], text: str, size: int) -> None:
    """Draw ``text`` with its baseline starting at ``left_baseline`` (x, y)."""
    font = _font(size)
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text(left_baseline, text, fill=_AXIS, font=font, anchor="ls")
    else:  # bitmap fonts have no anchors: place the top-left corner
        top = draw.textbbox((0, 0), text, font=font)[3]
        draw.text((left_baseline[0], left_baseline[1] - top), text, fill=_AXIS, font=font)


def _panel(
    draw: ImageDraw.ImageDraw,
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
    _text(draw, (px0, y0 + 20), title, 14)
    for k in range(1, 4):  # light grid
        gy = py0 + (py1 - py0) * k // 4
        draw.line([(px0, gy), (px1, gy)], fill=_GRID, width=1)
    draw.rectangle([(px0, py0), (px1, py1)], outline=_AXIS, width=1)
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if math.isfinite(float(y)) and (not log_y or y > 0)]
    if not pts:
        _text(draw, (px0 + 10, (py0 + py1) // 2), "no data", 14)
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
    poly = [(int(x), int(y)) for x, y in np.round(poly)]
    if len(poly) > 1:
        draw.line(poly, fill=colour, width=2, joint="curve")
    if markers or len(poly) == 1:
        for px, py in poly:
            draw.ellipse([(px - 3, py - 3), (px + 3, py + 3)], fill=colour)

    def ylabel(v: float) -> str:
        return _fmt(10**v) if log_y else _fmt(v)

    _text(draw, (x0 + 2, py0 + 10), ylabel(ymax), 11)
    _text(draw, (x0 + 2, py1), ylabel(ymin), 11)
    _text(draw, (px0, py1 + 15), _fmt(xmin), 11)
    label = _fmt(xmax)
    _text(draw, (px1 - 8 * len(label), py1 + 15), label, 11)
    _text(draw, ((px0 + px1) // 2 - 15, py1 + 32), "step", 12)


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
    """Write a 1000×420 RGB PNG: loss (log scale) and validation curves against the step."""
    img = Image.new("RGB", (1000, 420), _BG)
    draw = ImageDraw.Draw(img)
    if title:
        _text(draw, (10, 18), title, 15)
    _panel(draw, (0, 25), (500, 395), steps, losses, "training loss (log scale)", _LOSS, True, False)
    _panel(draw, (500, 25), (500, 395), val_steps, vals, f"Set5 {val_name}", _VAL, False, True)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    write_atomic(p, buffer.getvalue(), overwrite=True)
    return p
