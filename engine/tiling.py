"""Tiling as a pure function: run a per-tile operation over an image of any size.

The image is cut into *cores* that partition it; each core is processed with ``context`` extra LR
pixels on every side (clipped at the image border) and the result is written back into an output
canvas kept in host memory.

* ``blend="crop"``: only each tile's core is kept. Exact (tiled == untiled) when ``context`` is at least
  the network's receptive radius and tile origins respect the network's alignment (``align``: MANet
  down-samples by 2 and its input is padded to a multiple of 8, so it uses ``align=8``).
* ``blend="feather"``: tiles overlap and are blended with weights that are 1 inside the core and
  fall linearly to 0 across the inner half of the margin (the outer half, seen with the least
  context, is dropped), so any residual difference fades instead of forming a seam. Exact when the
  receptive radius is at most half the context.

On :class:`engine.errors.DeviceOutOfMemory` a tile is split into four and each quarter is retried
(down to ``min_tile``), so an image that does not fit is processed in smaller pieces instead of failing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from engine.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

TileFn = Callable[[Sequence[np.ndarray]], np.ndarray]
"""Maps input crops, each (C_i, h, w) float32 on the LR grid, to an output (C_out, s·h, s·w)."""


@dataclass(frozen=True)
class Tile:
    """A core rectangle ``[y0, y1) × [x0, x1)`` and the region ``[iy0, iy1) × [ix0, ix1)`` fed to the op."""

    y0: int
    y1: int
    x0: int
    x1: int
    iy0: int
    iy1: int
    ix0: int
    ix1: int


def _expand(y0: int, y1: int, x0: int, x1: int, h: int, w: int, context: int, align: int) -> Tile:
    iy0 = max(0, y0 - context)
    ix0 = max(0, x0 - context)
    iy0 -= iy0 % align  # input origins on the network's alignment grid
    ix0 -= ix0 % align
    return Tile(y0, y1, x0, x1, iy0, min(h, y1 + context), ix0, min(w, x1 + context))


def plan_tiles(h: int, w: int, tile: int, context: int, align: int = 1) -> list[Tile]:
    """Cores of ``tile``×``tile`` LR px (a multiple of ``align``) covering an ``h``×``w`` image, row-major."""
    if tile <= 0 or h <= 0 or w <= 0:
        raise ValueError(f"invalid tiling: image {h}x{w}, tile {tile}")
    tile = max(align, tile - tile % align)
    tiles = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            tiles.append(_expand(y0, min(h, y0 + tile), x0, min(w, x0 + tile), h, w, context, align))
    return tiles


def split_tile(t: Tile, h: int, w: int, context: int, align: int) -> list[Tile]:
    """Split a tile's core into (up to) four quarters, each with its own context."""
    hy = max(align, ((t.y1 - t.y0) // 2) // align * align)
    hx = max(align, ((t.x1 - t.x0) // 2) // align * align)
    ys = [(t.y0, min(t.y1, t.y0 + hy))] + ([(t.y0 + hy, t.y1)] if t.y0 + hy < t.y1 else [])
    xs = [(t.x0, min(t.x1, t.x0 + hx))] + ([(t.x0 + hx, t.x1)] if t.x0 + hx < t.x1 else [])
    return [_expand(a, b, c, d, h, w, context, align) for a, b in ys for c, d in xs]


def _ramp(n_before: int, core: int, n_after: int) -> np.ndarray:
    """1-D blend weights: 1 on the core, falling linearly to 0 across the half of each margin next
    to the core, and 0 on the outer half (the pixels nearest the tile's edge, which the network saw
    with the least context, never contribute)."""
    k0, k1 = n_before // 2, n_after // 2
    lead = np.concatenate([np.zeros(n_before - k0, np.float32), (np.arange(k0, dtype=np.float32) + 1.0) / (k0 + 1.0)])
    trail = np.concatenate([np.arange(k1, 0, -1, dtype=np.float32) / (k1 + 1.0), np.zeros(n_after - k1, np.float32)])
    return np.concatenate([lead, np.ones(core, np.float32), trail])


def tile_size_for_budget(budget_bytes: int, bytes_per_lr_pixel: float, context: int, align: int = 1) -> int:
    """Largest core side whose padded tile fits the memory budget (at least ``align``)."""
    side = int(math.sqrt(max(1.0, budget_bytes / max(bytes_per_lr_pixel, 1e-9)))) - 2 * context
    side = max(align, side - side % align)
    return side


def tiled_apply(
    fn: TileFn,
    inputs: Sequence[np.ndarray],
    *,
    scale: int,
    out_channels: int,
    tile: int,
    context: int,
    align: int = 1,
    blend: str = "crop",
    min_tile: int = 16,
    progress: Progress = NULL_PROGRESS,
    on_split: Callable[[Tile, int], None] | None = None,
    channels_last: bool = False,
) -> np.ndarray:
    """Apply ``fn`` tile by tile and assemble a (out_channels, scale·H, scale·W) float32 canvas.

    With ``channels_last=True`` the canvas is (scale·H, scale·W, out_channels) instead — the layout
    images are kept in — so a large output is never held twice just to transpose it.

    ``inputs`` are (C_i, H, W) arrays on the same LR grid, sliced identically for every tile.
    ``progress.check_cancelled()`` is called before every tile. ``on_split(tile, new_size)`` is told
    when an out-of-memory error made a tile split.
    """
    from engine.errors import DeviceOutOfMemory

    if blend not in ("crop", "feather"):
        raise ValueError(f"blend must be 'crop' or 'feather', not {blend!r}")
    h, w = inputs[0].shape[-2:]
    for arr in inputs:
        if arr.ndim != 3 or arr.shape[-2:] != (h, w):
            raise ValueError(f"tiling inputs must be (C, {h}, {w}); got {arr.shape}")
    shape = (h * scale, w * scale, out_channels) if channels_last else (out_channels, h * scale, w * scale)
    canvas = np.zeros(shape, np.float32)
    view = np.moveaxis(canvas, -1, 0) if channels_last else canvas  # always (C, H, W) indexing
    weights = np.zeros((h * scale, w * scale), np.float32) if blend == "feather" else None

    pending = plan_tiles(h, w, tile, context, align)
    total_area = float(h * w)
    done_area = 0.0
    done_tiles = 0
    while pending:
        t = pending.pop(0)
        progress.check_cancelled()
        crops = [arr[:, t.iy0 : t.iy1, t.ix0 : t.ix1] for arr in inputs]
        try:
            out = fn(crops)
        except DeviceOutOfMemory:
            core = max(t.y1 - t.y0, t.x1 - t.x0)
            if core // 2 < max(min_tile, align):
                raise
            parts = split_tile(t, h, w, context, align)
            if on_split is not None:
                on_split(t, core // 2)
            log.warning("out of memory on a %d px tile; retrying as %d smaller tiles", core, len(parts))
            progress.notify(f"out of memory on a {core} px tile; retrying as {len(parts)} tiles of ≤ {core // 2} px")
            pending[:0] = parts
            continue
        expected = (out_channels, (t.iy1 - t.iy0) * scale, (t.ix1 - t.ix0) * scale)
        if out.shape != expected:
            raise ValueError(f"tile function returned {out.shape}, expected {expected}")
        if blend == "crop":
            cy0, cx0 = (t.y0 - t.iy0) * scale, (t.x0 - t.ix0) * scale
            view[:, t.y0 * scale : t.y1 * scale, t.x0 * scale : t.x1 * scale] = out[
                :, cy0 : cy0 + (t.y1 - t.y0) * scale, cx0 : cx0 + (t.x1 - t.x0) * scale
            ]
        else:
            wy = _ramp((t.y0 - t.iy0) * scale, (t.y1 - t.y0) * scale, (t.iy1 - t.y1) * scale)
            wx = _ramp((t.x0 - t.ix0) * scale, (t.x1 - t.x0) * scale, (t.ix1 - t.x1) * scale)
            wmap = wy[:, None] * wx[None, :]
            sl = (slice(t.iy0 * scale, t.iy1 * scale), slice(t.ix0 * scale, t.ix1 * scale))
            view[(slice(None),) + sl] += out * wmap
            weights[sl] += wmap
        done_area += (t.y1 - t.y0) * (t.x1 - t.x0)
        done_tiles += 1
        progress.set_progress(done_area / total_area, f"tile {done_tiles} of {done_tiles + len(pending)}")
    if weights is not None:
        view /= np.maximum(weights, 1e-12)
    return canvas
