"""Local detail of an image: where its blur can be read (edges and texture), as weights on a cell grid.

IKC's corrector (:class:`engine.archs.ikc.Corrector` with ``detail_pooling``) averages its
per-location kernel corrections with these weights; the pipeline weighs the pieces of a large image
the same way (:func:`detail_weight_sum`). This module is the numpy side and holds the constants; the
torch side is :func:`engine.archs.ikc.detail_weights` (a test checks the two agree).

Detail of a pixel: ``|g(x+1, y) − g(x, y)| + |g(x, y+1) − g(x, y)|`` of the grey image ``g`` (the
mean of the channels; the last column / row takes 0 for the missing neighbour), in [0, 1] intensity
units. A cell's weight is the mean detail over its ``DETAIL_CELL_PX``² pixels (fewer at the right and
bottom edges) plus :data:`DETAIL_FLOOR`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DETAIL_CELL_PX", "DETAIL_FLOOR", "detail_weights_np", "detail_weight_sum"]

DETAIL_CELL_PX = 4
"""Side of a weight cell in image pixels: the corrector's feature grid (two stride-2 convolutions)."""

DETAIL_FLOOR = 2.0 / 255.0
"""Added to every cell's weight: a flat 8-bit region (about two levels of mean absolute difference)
counts about as much as a slightly detailed one, and an image with no detail at all falls back to
the plain mean."""


def detail_weights_np(rgb_chw: np.ndarray) -> np.ndarray:
    """(3, H, W) image → (⌈H/4⌉, ⌈W/4⌉) float64 cell weights (see the module docstring)."""
    grey = np.asarray(rgb_chw, np.float64).mean(axis=0)
    h, w = grey.shape
    detail = np.zeros((h, w))
    detail[:, :-1] += np.abs(np.diff(grey, axis=1))
    detail[:-1, :] += np.abs(np.diff(grey, axis=0))
    c = DETAIL_CELL_PX
    rows, cols = -(-h // c), -(-w // c)
    padded = np.zeros((rows * c, cols * c))
    count = np.zeros((rows * c, cols * c))
    padded[:h, :w] = detail
    count[:h, :w] = 1.0
    sums = padded.reshape(rows, c, cols, c).sum(axis=(1, 3))
    counts = count.reshape(rows, c, cols, c).sum(axis=(1, 3))
    return sums / counts + DETAIL_FLOOR


def detail_weight_sum(rgb_chw: np.ndarray) -> float:
    """The total weight of an image (or piece): how much it counts when pieces' corrections are pooled."""
    return float(detail_weights_np(rgb_chw).sum())
