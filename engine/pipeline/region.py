"""Run a pipeline on part of an image only: a rectangle or a painted mask (fast previews).

The region's bounding box is grown by ``context`` LR pixels (clipped at the image border), the
pipeline runs on that crop, and the result is cut back to the box, so the preview matches what the
full run gives there (as long as ``context`` covers the networks' receptive fields). With a mask,
SR pixels outside the painted area are filled with bicubic upsampling, so the preview shows exactly
what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from engine.pipeline.blind import run_bicubic

DEFAULT_CONTEXT = 32  # LR px: ≥ MANet's 12 plus the SR networks' overlap


@dataclass(frozen=True)
class Box:
    """A rectangle ``[y0, y1) × [x0, x1)`` in LR pixels."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    def clip(self, h: int, w: int) -> "Box":
        return Box(max(0, self.y0), min(h, self.y1), max(0, self.x0), min(w, self.x1))

    def grow(self, margin: int, h: int, w: int) -> "Box":
        return Box(self.y0 - margin, self.y1 + margin, self.x0 - margin, self.x1 + margin).clip(h, w)


def mask_box(mask: np.ndarray) -> Box:
    """Bounding box of the non-zero pixels of an (h, w) mask (empty box when nothing is painted)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return Box(0, 0, 0, 0)
    return Box(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


@dataclass
class RegionResult:
    """SR pixels of ``box`` (LR coordinates; the SR array covers ``scale``× that box)."""

    box: Box
    scale: int
    sr_rgb_f32: np.ndarray


def run_on_region(
    sr_fn: Callable[[np.ndarray], np.ndarray],
    lr_rgb_f32: np.ndarray,
    scale: int,
    *,
    box: Box | None = None,
    mask: np.ndarray | None = None,
    context: int = DEFAULT_CONTEXT,
) -> RegionResult:
    """``sr_fn(lr_crop) -> sr_crop`` on the region given by ``box`` or ``mask`` (LR grid) plus context."""
    h, w = lr_rgb_f32.shape[:2]
    if (box is None) == (mask is None):
        raise ValueError("give exactly one of box= or mask=")
    if mask is not None:
        if mask.shape != (h, w):
            raise ValueError(f"mask shape {mask.shape} does not match the LR image {(h, w)}")
        box = mask_box(mask)
    box = box.clip(h, w)
    if box.empty:
        raise ValueError("the region is empty: paint or select something first")
    outer = box.grow(context, h, w)
    crop = np.ascontiguousarray(lr_rgb_f32[outer.y0 : outer.y1, outer.x0 : outer.x1])
    sr = sr_fn(crop)
    oy, ox = (box.y0 - outer.y0) * scale, (box.x0 - outer.x0) * scale
    sr_box = sr[oy : oy + (box.y1 - box.y0) * scale, ox : ox + (box.x1 - box.x0) * scale]
    if mask is not None:
        inside = np.repeat(np.repeat(mask[box.y0 : box.y1, box.x0 : box.x1] > 0, scale, 0), scale, 1)
        lr_box = lr_rgb_f32[box.y0 : box.y1, box.x0 : box.x1]
        fill = run_bicubic(lr_box, scale)
        sr_box = np.where(inside[..., None], sr_box, fill)
    return RegionResult(box, scale, np.ascontiguousarray(sr_box, dtype=np.float32))
