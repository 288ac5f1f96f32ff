"""Pictures of kernels: heat-map colouring and the MANet-paper overview (kernels on a lattice).

Pure numpy, no display: the GUI and ``kernelscope-cli estimate`` both use these.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from engine.imageio.convert import to_u8
from engine.pipeline.kernelmap import KernelMap

INFERNO_ANCHORS_RGB: tuple[tuple[int, int, int], ...] = (
    (0, 0, 4),  # black
    (31, 12, 72),  # deep indigo
    (85, 15, 109),  # purple
    (136, 34, 106),  # magenta
    (186, 54, 85),  # crimson
    (227, 89, 51),  # red-orange
    (249, 140, 10),  # orange
    (249, 201, 50),  # amber
    (252, 255, 164),  # pale yellow
)
"""RGB colours at 0, 1/8, ..., 1 of the heat-map scale: black → purple → red → orange → pale yellow,
the look of matplotlib's *inferno* (perceptually ordered: luminance rises all the way)."""


@cache
def _inferno_lut() -> np.ndarray:
    anchors = np.asarray(INFERNO_ANCHORS_RGB, np.float64)
    at = np.linspace(0.0, 255.0, len(anchors))
    levels = np.arange(256, dtype=np.float64)
    lut = np.stack([np.interp(levels, at, anchors[:, c]) for c in range(3)], axis=1)
    lut = np.rint(lut).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def colormap_inferno_u8(grey_u8: np.ndarray) -> np.ndarray:
    """Colour uint8 levels (any shape, 0 = low, 255 = high) with the inferno-like heat map.

    Returns RGB uint8 of shape ``grey_u8.shape + (3,)``: piecewise-linear between
    :data:`INFERNO_ANCHORS_RGB`.
    """
    return _inferno_lut()[np.asarray(grey_u8, dtype=np.uint8)]


def _nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index ``floor(i * src / dst)`` of each of ``dst`` nearest-neighbour output pixels."""
    return (np.arange(dst, dtype=np.int64) * src) // dst


def kernel_heatmap_u8(kernel: np.ndarray, size: int | None = None) -> np.ndarray:
    """A 21×21 kernel as an RGB uint8 heat map scaled to its own maximum (nearest-neighbour enlarged
    to ``size``×``size`` when given)."""
    k = np.clip(np.asarray(kernel, np.float32), 0.0, None)
    peak = float(k.max())
    grey = np.zeros(k.shape, np.uint8) if peak <= 0 else to_u8(k, full_scale=peak)
    rgb = colormap_inferno_u8(grey)
    if size is not None and size != k.shape[0]:
        rgb = rgb[_nearest_indices(k.shape[0], size)][:, _nearest_indices(k.shape[1], size)]
    return rgb


def kernel_lattice_overview(
    lr_rgb_f32: np.ndarray,
    kernel_map: KernelMap,
    *,
    step_lr: int | None = None,
    target_px: int = 1200,
) -> np.ndarray:
    """The LR image enlarged (nearest) with the local kernel drawn at every lattice point.

    ``step_lr`` is the lattice spacing in LR pixels (automatic: about 12 kernels across the longer
    side). Each kernel is drawn as a heat map filling 60 % of its lattice cell. Returns RGB uint8.
    """
    h, w = lr_rgb_f32.shape[:2]
    if step_lr is None:
        step_lr = max(4, int(round(max(h, w) / 12)))
    zoom = max(1, int(round(target_px / max(h, w))))
    base = to_u8(lr_rgb_f32)
    canvas = np.repeat(np.repeat(base, zoom, axis=0), zoom, axis=1)  # nearest, integer zoom
    canvas = (canvas.astype(np.float32) * 0.8).astype(np.uint8)  # dim the photo a little
    cell = max(8, int(step_lr * zoom * 0.6))
    points = [(row, col) for row in range(step_lr // 2, h, step_lr) for col in range(step_lr // 2, w, step_lr)]
    kernels, _ = kernel_map.kernels_at(np.array([p[0] for p in points], np.int64),
                                       np.array([p[1] for p in points], np.int64))  # one batched network pass
    for (row, col), kernel in zip(points, kernels):
        tile = kernel_heatmap_u8(kernel, cell)
        cy, cx = (row * zoom + zoom // 2), (col * zoom + zoom // 2)
        y0, x0 = cy - cell // 2, cx - cell // 2
        y1, x1 = y0 + cell, x0 + cell
        sy0, sx0 = max(0, -y0), max(0, -x0)
        y0c, x0c = max(0, y0), max(0, x0)
        y1c, x1c = min(canvas.shape[0], y1), min(canvas.shape[1], x1)
        if y1c > y0c and x1c > x0c:
            canvas[y0c:y1c, x0c:x1c] = tile[sy0 : sy0 + (y1c - y0c), sx0 : sx0 + (x1c - x0c)]
    return canvas
