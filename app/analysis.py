"""Numbers and pictures behind the studio's panels, as pure numpy functions (no Qt).

* :func:`region_stats`: per painted region, the mean kernel and the spread of σ1, σ2, θ.
* :func:`ikc_changes`: how much the SR image and the code change from one IKC iteration to the next.
* :func:`difference_rgb_u8`: an amplified signed difference of two images, with the gain it used.
* :func:`lattice_overlay`: kernels on a lattice over the image, see-through, on one common scale.
* :func:`labels_rgba`: painted label map coloured for display.
* :func:`comparison_picture`: input (nearest-enlarged) and result side by side for saving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.degradation.kernels import KERNEL_SIZE, fit_gaussian, normalise_kernels
from engine.imageio.convert import to_u8
from engine.masks import REGION_COLOURS
from engine.pipeline.kernelmap import KernelMap, describe_kernel
from engine.visualize import colormap_inferno_u8

from app.geometry import lattice_points

MAX_STAT_PIXELS = 4096  # region statistics use at most this many LR pixels (evenly subsampled)


@dataclass(frozen=True)
class RegionStats:
    """Statistics of the kernels inside one painted region.

    ``sigma1``/``sigma2`` are std devs in HR px, ``theta`` in rad (arrays over the pixels used);
    ``mean_kernel`` is the 21×21 mean of the region's kernels (sums to 1).
    """

    label: int
    n_pixels: int
    mean_kernel: np.ndarray
    sigma1: np.ndarray
    sigma2: np.ndarray
    theta: np.ndarray

    def summary(self) -> dict[str, tuple[float, float]]:
        """``{"sigma1": (mean, std), "sigma2": ..., "theta": ...}``."""
        return {n: (float(np.mean(v)), float(np.std(v))) for n, v in
                (("sigma1", self.sigma1), ("sigma2", self.sigma2), ("theta", self.theta))}


def _subsample(rows: np.ndarray, cols: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    if rows.size <= limit:
        return rows, cols
    pick = np.linspace(0, rows.size - 1, limit).round().astype(np.int64)
    return rows[pick], cols[pick]


def region_kernels(kernel_map: KernelMap, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The (n, 21, 21) kernels at LR pixels ``(rows[i], cols[i])``: the network's own (one batched
    pass, :meth:`KernelMap.kernels_at`), else PCA reconstructions."""
    kernels, _ = kernel_map.kernels_at(rows, cols)
    return kernels


def region_stats(labels_lr: np.ndarray, kernel_map: KernelMap) -> list[RegionStats]:
    """One :class:`RegionStats` per non-empty label ``1..`` of ``labels_lr`` (h, w) on the LR grid."""
    labels = np.asarray(labels_lr)
    if labels.shape != kernel_map.lr_hw:
        raise ValueError(f"label map {labels.shape} does not match the kernel map {kernel_map.lr_hw}")
    out: list[RegionStats] = []
    for label in sorted(int(v) for v in np.unique(labels) if v > 0):
        rows, cols = np.nonzero(labels == label)
        n = int(rows.size)
        rows, cols = _subsample(rows, cols, MAX_STAT_PIXELS)
        kernels = normalise_kernels(region_kernels(kernel_map, rows, cols), clip_negative=True)
        var1, var2, theta = fit_gaussian(kernels, scale=None)
        mean = kernels.mean(axis=0)
        out.append(RegionStats(
            label=label, n_pixels=n, mean_kernel=normalise_kernels(mean),
            sigma1=np.sqrt(np.maximum(var1, 0.0)), sigma2=np.sqrt(np.maximum(var2, 0.0)), theta=theta,
        ))
    return out


def label_bbox(labels_lr: np.ndarray, label: int, margin: int = 0) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` bounding box of ``label`` grown by ``margin`` LR px (clipped), or None."""
    rows, cols = np.nonzero(np.asarray(labels_lr) == label)
    if rows.size == 0:
        return None
    h, w = labels_lr.shape
    return (max(0, int(rows.min()) - margin), min(h, int(rows.max()) + 1 + margin),
            max(0, int(cols.min()) - margin), min(w, int(cols.max()) + 1 + margin))


def ikc_changes(sr_images: list[np.ndarray], codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per iteration ``i ≥ 1``: mean |SR_i − SR_{i−1}| (×255, 8-bit levels) and ‖h_i − h_{i−1}‖₂.

    Both arrays have one entry per iteration; entry 0 is 0 (nothing before it).
    """
    n = len(sr_images)
    image_change = np.zeros(n, np.float64)
    code_change = np.zeros(n, np.float64)
    for i in range(1, n):
        image_change[i] = 255.0 * float(np.mean(np.abs(sr_images[i] - sr_images[i - 1])))
        code_change[i] = float(np.linalg.norm(np.asarray(codes[i]) - np.asarray(codes[i - 1])))
    return image_change, code_change


@dataclass(frozen=True)
class Difference:
    """An amplified signed difference picture: ``rgb_u8`` shows |a − b| (mean over channels) ×``gain``,
    red where ``a`` is brighter, blue where darker, black where equal; full colour is ±``full_scale_levels``
    (8-bit levels). ``max_levels`` is the largest |a − b| found."""

    rgb_u8: np.ndarray
    gain: float
    full_scale_levels: float
    max_levels: float


def difference_rgb_u8(a_rgb_f32: np.ndarray, b_rgb_f32: np.ndarray, *, percentile: float = 99.5,
                      max_gain: float = 1000.0) -> Difference:
    """Amplify ``a − b`` so that its ``percentile`` of |difference| reaches full colour (gain at most
    ``max_gain``); IKC iterations often differ by a few hundredths of a level, invisible unamplified."""
    if a_rgb_f32.shape != b_rgb_f32.shape:
        raise ValueError(f"cannot subtract a {b_rgb_f32.shape[1]}×{b_rgb_f32.shape[0]} image from a "
                         f"{a_rgb_f32.shape[1]}×{a_rgb_f32.shape[0]} one")
    d_levels = 255.0 * (np.asarray(a_rgb_f32, np.float32) - np.asarray(b_rgb_f32, np.float32)).mean(axis=-1)
    magnitude = np.abs(d_levels)
    biggest = float(magnitude.max()) if magnitude.size else 0.0
    full = float(np.percentile(magnitude, percentile)) if biggest > 0 else 0.0
    full = max(full, 255.0 / max_gain)  # gain at most max_gain (and never a division by ~0)
    gain = 255.0 / full
    t = np.clip(d_levels / full, -1.0, 1.0)
    rgb = np.zeros(d_levels.shape + (3,), np.float32)
    rgb[..., 0] = np.clip(t, 0, 1) * 255.0  # brighter: red
    rgb[..., 1] = np.abs(t) * 60.0
    rgb[..., 2] = np.clip(-t, 0, 1) * 255.0  # darker: blue
    return Difference(np.rint(rgb).astype(np.uint8), gain, full, biggest)


@dataclass(frozen=True)
class Lattice:
    """The kernel lattice overlay: ``rgba_u8`` is ``(h·p, w·p, 4)``, ``p = px_per_lr`` canvas px per LR px
    (show it scaled by ``scale / p`` in SR px). ``magnification``: how much larger than life the kernels
    are drawn; ``sigma1_range_px``: the smallest and largest σ1 on the lattice (kernel px)."""

    rgba_u8: np.ndarray
    px_per_lr: int
    magnification: float
    sigma1_range_px: tuple[float, float]
    step_lr: int

    def legend(self) -> str:
        lo, hi = self.sigma1_range_px
        return (f"Lattice: every {self.step_lr} LR px the kernel found there, drawn ×{self.magnification:.1f} "
                f"(one scale for all, so sizes compare); ring = 2σ contour, colour = weight, clear = none. "
                f"σ1 here: {lo:.2f}–{hi:.2f} px.")


def lattice_overlay(kernel_map: KernelMap, *, step_lr: int | None = None, px_per_lr: int | None = None,
                    ) -> Lattice:
    """Kernels drawn on a lattice over the LR grid, see-through, on one common scale.

    At each lattice point the kernel is drawn as a heat map whose opacity follows its weight (zero
    weight is fully transparent, so the image stays visible) with its 2σ ellipse as a light ring. All
    kernels share one magnification, chosen so the widest 2σ ellipse nearly fills its cell: a small
    kernel looks small next to a wide one instead of every one being stretched to its own box.
    """
    h, w = kernel_map.lr_hw
    points = lattice_points(h, w, step_lr)
    step = step_lr if step_lr is not None else max(4, int(round(max(h, w) / 12)))
    p = px_per_lr if px_per_lr is not None else max(1, min(16, int(round(1200 / max(h, w)))))
    canvas = np.zeros((h * p, w * p, 4), np.uint8)
    if not points:
        return Lattice(canvas, p, 1.0, (0.0, 0.0), step)
    rows = np.array([r for r, _ in points], np.int64)
    cols = np.array([c for _, c in points], np.int64)
    kernels, exact = kernel_map.kernels_at(rows, cols)  # one batched network pass (not one per point)
    infos = [describe_kernel(k, (int(r), int(c)), exact) for k, r, c in zip(kernels, rows, cols)]
    kmax = max(float(info.kernel.max()) for info in infos) or 1.0
    widest = max(max(info.sigma1, info.sigma2) for info in infos)
    cell = max(9, int(step * p * 0.9))
    zoom = 0.5 * cell / max(2.0 * widest, 0.5)  # canvas px per kernel px
    zoom = min(zoom, cell / 7.0)
    half = cell // 2
    dy, dx = np.mgrid[-half : cell - half, -half : cell - half].astype(np.float32) / zoom  # kernel px
    centre = (KERNEL_SIZE - 1) / 2
    iy = np.rint(dy + centre).astype(np.int64)
    ix = np.rint(dx + centre).astype(np.int64)
    inside = (iy >= 0) & (iy <= 2 * centre) & (ix >= 0) & (ix <= 2 * centre)
    iy, ix = np.clip(iy, 0, int(2 * centre)), np.clip(ix, 0, int(2 * centre))
    for (row, col), info in zip(points, infos):
        weight = np.where(inside, info.kernel[iy, ix] / kmax, 0.0)
        heat = colormap_inferno_u8(to_u8(weight))
        alpha = np.clip(weight * 1.6, 0, 1) * 200.0
        c, s_ = math.cos(info.theta), math.sin(info.theta)
        u = dx * c + dy * s_
        v = dy * c - dx * s_
        r = np.sqrt((u / max(2 * info.sigma1, 1e-3)) ** 2 + (v / max(2 * info.sigma2, 1e-3)) ** 2)
        ring = np.abs(r - 1.0) * 2 * min(info.sigma1, info.sigma2) * zoom < 0.9
        patch = np.zeros((cell, cell, 4), np.float32)
        patch[..., :3] = heat
        patch[..., 3] = alpha
        patch[ring] = (235, 245, 255, 230)
        cy, cx = row * p + p // 2, col * p + p // 2
        y0, x0 = cy - half, cx - half
        y0c, x0c = max(0, y0), max(0, x0)
        y1c, x1c = min(canvas.shape[0], y0 + cell), min(canvas.shape[1], x0 + cell)
        if y1c > y0c and x1c > x0c:
            canvas[y0c:y1c, x0c:x1c] = np.rint(patch[y0c - y0 : y1c - y0, x0c - x0 : x1c - x0]).astype(np.uint8)
    magnification = zoom * kernel_map.scale / p  # canvas px per kernel px → screen size vs life size
    sigma1 = [info.sigma1 for info in infos]
    return Lattice(canvas, p, magnification, (min(sigma1), max(sigma1)), step)


def labels_rgba(labels: np.ndarray, alpha: int = 110) -> np.ndarray:
    """(h, w, 4) uint8: label ``k ≥ 1`` in ``REGION_COLOURS[k − 1]`` at ``alpha``, label 0 transparent."""
    lab = np.asarray(labels)
    lut = np.zeros((256, 4), np.uint8)
    for k, colour in enumerate(REGION_COLOURS, start=1):
        lut[k, :3] = colour
        lut[k, 3] = alpha
    return lut[np.clip(lab, 0, 255).astype(np.uint8)]


def error_map_rgb(error: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """An (h, w) error map as RGB uint8 (inferno-like), scaled to ``vmax`` (default: its 99th percentile)."""
    e = np.asarray(error, np.float32)
    top = float(vmax) if vmax else float(np.percentile(e, 99)) if e.size else 1.0
    grey = to_u8(e, full_scale=max(top, 1e-12))
    return colormap_inferno_u8(grey)


def comparison_picture(lr_rgb_f32: np.ndarray, sr_rgb_f32: np.ndarray, gap_px: int = 8) -> np.ndarray:
    """Input (nearest-enlarged to the SR size) and result side by side, float32 RGB in [0, 1]."""
    sh, sw = sr_rgb_f32.shape[:2]
    lh, lw = lr_rgb_f32.shape[:2]
    ys = np.minimum((np.arange(sh) * lh) // sh, lh - 1)
    xs = np.minimum((np.arange(sw) * lw) // sw, lw - 1)
    left = lr_rgb_f32[ys][:, xs]
    gap = np.ones((sh, gap_px, 3), np.float32)
    return np.ascontiguousarray(np.concatenate([left, gap, sr_rgb_f32], axis=1), dtype=np.float32)


def stamp_disk(labels: np.ndarray, cx: float, cy: float, radius: float, value: int) -> bool:
    """Set every pixel of ``labels`` whose centre lies within ``radius`` of ``(cx, cy)`` (col, row
    coordinates, pixel centres at ``+0.5``) to ``value``; True when anything changed."""
    h, w = labels.shape
    r = max(0.5, float(radius))
    y0, y1 = max(0, int(math.floor(cy - r))), min(h, int(math.ceil(cy + r)) + 1)
    x0, x1 = max(0, int(math.floor(cx - r))), min(w, int(math.ceil(cx + r)) + 1)
    if y1 <= y0 or x1 <= x0:
        return False
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= r * r
    block = labels[y0:y1, x0:x1]
    changed = bool(np.any(block[inside] != value))
    block[inside] = value
    return changed
