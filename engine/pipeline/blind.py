"""Blind SR pipelines: MANet + RRDB-SFT, and the bicubic / non-blind baselines (IKC: :mod:`engine.pipeline.ikc`).

All functions take ``lr_rgb_f32`` (h×w×3 float32 RGB in [0, 1]) and return plain data. Large images
are processed in tiles (:mod:`engine.tiling`) with the output kept in host memory; every tile is a
cancellation point of the :class:`~engine.progress.Progress` passed in.

Tile sizes (``tile=None`` → automatic: the whole image when one run of it fits the memory budget,
else the largest tile that does; see :data:`BYTES_PER_LR_PX`) are in LR pixels. MANet is tiled exactly (context ≥ 12 LR px,
origins on multiples of 8); RRDB-SFT and SFTMD use the overlap their cards give, cropping each tile
to its core. IKC lives in
:mod:`engine.pipeline.ikc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.degradation.kernels import KERNEL_SIZE, N_TAPS, KernelParams, anisotropic_gaussian_kernel
from engine.degradation.resize import bicubic_upsample
from engine.errors import ModelError
from engine.noise import NoiseEstimate, estimate_noise
from engine.noise import noise_map_255 as estimate_noise_map_255
from engine.pipeline.kernelmap import KernelMap
from engine.pipeline.models import ModelSet
from engine.progress import NULL_PROGRESS, Progress
from engine.tiling import tile_size_for_budget, tiled_apply

NEIGHBOURHOOD = 32  # LR px fed to MANet to recompute one kernel exactly
# Peak memory of one network run per LR pixel of its input (bytes), by preset. "small": measured on
# the shipped graphs (growth of peak RSS over one onnxruntime CPU run on 128² and 256² inputs: MANet
# 5.1 kB, RRDB-SFT 3.8 kB, SFTMD 8.4 kB, linear in the area) plus 20 %; other presets: generous
# estimates. The automatic tile is the whole image when it fits the budget (no overlap computed
# twice), else the largest tile whose padded area fits; out-of-memory still halves it (engine.tiling).
BYTES_PER_LR_PX = {
    "small": {"manet": 6_200, "rrdb_sft": 4_600, "sftmd": 10_100},
    "paper": {"manet": 12_000, "rrdb_sft": 12_000, "sftmd": 24_000},
}
CPU_MEMORY_BYTES = 1792 << 20  # host memory for one pipeline: SR canvas + code map + one tile's activations
MIN_CPU_TILE_BYTES = 256 << 20  # tile activations get at least this even when the canvas is large
GPU_BUDGET_BYTES = 2 << 30
MAX_AUTO_TILE = 1024
MIN_AUTO_TILE = 128
KEEP_KERNELS_MAX_BYTES = 192 * 1024 * 1024  # build the full float16 kernels on request only up to this


def _chw(rgb_f32: np.ndarray) -> np.ndarray:
    if rgb_f32.ndim != 3 or rgb_f32.shape[2] != 3:
        raise ValueError(f"expected an h×w×3 RGB image, got shape {rgb_f32.shape}")
    return np.ascontiguousarray(np.asarray(rgb_f32, np.float32).transpose(2, 0, 1))


def _clip01(hwc: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] in place (large SR canvases are not copied)."""
    return np.clip(hwc, 0.0, 1.0, out=hwc)


def _pad_edge(chw: np.ndarray, multiple: int) -> np.ndarray:
    h, w = chw.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        chw = np.pad(chw, ((0, 0), (0, ph), (0, pw)), mode="edge")
    return chw


def _bytes_per_lr_px(models: ModelSet, network: str) -> int:
    card = models.cards.get(network)
    table = BYTES_PER_LR_PX.get(card.preset if card is not None else "paper", BYTES_PER_LR_PX["paper"])
    return table.get(network, BYTES_PER_LR_PX["paper"][network])


def _tile_for(network: str, models: ModelSet, tile: int | None, context: int = 0, align: int = 1,
              hw: tuple[int, int] | None = None) -> int:
    """``tile`` if given; else the whole ``hw`` image when one run of it fits the memory budget, else
    the largest tile (LR px) that does.

    On the CPU the budget is :data:`CPU_MEMORY_BYTES` less the host arrays the pipeline holds for
    the whole image (the SR canvas and a code map), and at least :data:`MIN_CPU_TILE_BYTES`.
    """
    if tile is not None:
        return int(tile)
    runner = models.runners.get(network)
    per_px = _bytes_per_lr_px(models, network)
    if runner is not None and runner.on_gpu:
        budget = GPU_BUDGET_BYTES
    else:
        host = 0 if hw is None else hw[0] * hw[1] * (models.scale**2 * 3 * 4 + 16 * 4)
        budget = max(MIN_CPU_TILE_BYTES, CPU_MEMORY_BYTES - host)
    if hw is not None:
        h, w = hw
        padded = (h + (-h) % align) * (w + (-w) % align)
        if padded * per_px <= budget:
            return -(-max(h, w) // align) * align  # one tile: nothing computed twice
    side = tile_size_for_budget(budget, per_px, context, align)
    # Never let the core shrink below twice the overlap (or 128 px): with the SR networks' wide
    # overlaps (44–71 LR px) a budget-only core of ~60 px made small images run as 4+ mostly-overlap
    # tiles, 2.5× slower. Out-of-memory still halves a tile that does not fit.
    floor = max(MIN_AUTO_TILE, 2 * context)
    side = max(side, floor - floor % max(align, 1))
    return min(side, MAX_AUTO_TILE)


def _manet_geometry(models: ModelSet) -> tuple[int, int]:
    """MANet's exact-tiling geometry from its model card: (context in LR px, input multiple in LR px)."""
    tiling = models.cards["manet"].tiling
    try:
        return int(tiling["context_lr_px"]), int(tiling["multiple_of"])
    except KeyError as exc:
        raise ModelError(f"the MANet card {models.cards['manet'].id} records no tiling {exc}") from None


def _context_for(models: ModelSet, network: str, default: int) -> int:
    card = models.cards.get(network)
    if card is not None:
        for key in ("overlap_lr_px", "context_lr_px"):
            if key in card.tiling:
                return int(card.tiling[key])
    return default


# ---------------------------------------------------------------------------------------------
# MANet: kernel estimation
# ---------------------------------------------------------------------------------------------
def manet_kernels(models: ModelSet, lr_chw: np.ndarray) -> np.ndarray:
    """Run MANet on a (3, h, w) crop of any size: (441, h, w) kernels (edge-padded to multiples of 8)."""
    context_px, multiple = _manet_geometry(models)
    h, w = lr_chw.shape[-2:]
    padded = _pad_edge(lr_chw, multiple)
    out = models.runner("manet").run({"lr_rgb": padded[None]})["kernels"][0]
    return out[:, :h, :w]


def _recompute_fn(models: ModelSet, lr_chw: np.ndarray, cache_windows: int = 32):
    """An exact single-kernel evaluator: MANet on the aligned 32×32 neighbourhood of a pixel.

    Windows start on multiples of 8, so each 8×8 block of pixels shares one window: evaluated
    windows are cached (LRU, float32 kernels, 1.8 MB each), and a hover that moves within a block (or back to a
    recent one) is answered without running the network again.
    """
    context_px, multiple = _manet_geometry(models)
    from collections import OrderedDict

    h, w = lr_chw.shape[-2:]
    cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def window_origin(row: int, col: int) -> tuple[int, int]:
        return (
            max(0, (row - context_px) // multiple * multiple),
            max(0, (col - context_px) // multiple * multiple),
        )

    def recompute(row: int, col: int) -> np.ndarray:
        key = window_origin(row, col)
        block = cache.get(key)
        if block is None:
            y0, x0 = key
            crop = lr_chw[:, y0 : min(h, y0 + NEIGHBOURHOOD), x0 : min(w, x0 + NEIGHBOURHOOD)]
            block = manet_kernels(models, crop)  # (441, ≤32, ≤32) float32, 1.8 MB (float16 conversion cost 20 ms)
            cache[key] = block
            if len(cache) > cache_windows:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        kernel = np.array(block[:, row - key[0], col - key[1]], dtype=np.float32)
        return kernel.reshape(KERNEL_SIZE, KERNEL_SIZE)

    return recompute


def _manet_kernels_tiled(models: ModelSet, lr_chw: np.ndarray, per_tile, out_channels: int, tile: int | None,
                         progress: Progress) -> np.ndarray:
    """``per_tile(kernels)`` over MANet's exact tiling: a (out_channels, h, w) canvas.

    ``per_tile`` gets the network's contiguous (441, H, W) output for a tile padded to multiples of
    8 and may return any (out_channels, H, W) array; the padding is cropped afterwards.
    """
    context_px, multiple = _manet_geometry(models)
    runner = models.runner("manet")

    def run_tile(crops: list[np.ndarray]) -> np.ndarray:
        th, tw = crops[0].shape[-2:]
        # keep_memory: RRDB-SFT runs next and reuses MANet's working memory (one shared CPU arena)
        kernels = runner.run({"lr_rgb": _pad_edge(crops[0], multiple)[None]}, keep_memory=True)["kernels"][0]
        return per_tile(kernels)[:, :th, :tw]

    return tiled_apply(
        run_tile, [lr_chw], scale=1, out_channels=out_channels,
        tile=_tile_for("manet", models, tile, context_px, multiple, hw=lr_chw.shape[-2:]),
        context=context_px, align=multiple, progress=progress,
    )


def _kernels_at_fn(models: ModelSet, lr_chw: np.ndarray, tile: int | None):
    """An exact many-kernel evaluator ``(rows, cols) -> (n, 441)`` float32, one network pass.

    Runs MANet either on the aligned 32×32 neighbourhood of every distinct 8×8 block the points fall
    in, or once over the image (tile by tile, keeping only the requested pixels), whichever feeds the
    network fewer pixels; both give the kernels of the full run (MANet's tiling is exact).
    """
    context_px, multiple = _manet_geometry(models)
    from engine.tiling import plan_tiles

    h, w = lr_chw.shape[-2:]
    runner = models.runner("manet")

    def network(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        crop = _pad_edge(lr_chw[:, y0:y1, x0:x1], multiple)
        return runner.run({"lr_rgb": crop[None]})["kernels"][0]

    def kernels_at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64).reshape(-1)
        cols = np.asarray(cols, np.int64).reshape(-1)
        out = np.empty((rows.size, N_TAPS), np.float32)
        wy = np.maximum(0, (rows - context_px) // multiple * multiple)
        wx = np.maximum(0, (cols - context_px) // multiple * multiple)
        windows = np.unique(np.stack([wy, wx], axis=1), axis=0) if rows.size else np.zeros((0, 2), np.int64)
        if len(windows) * NEIGHBOURHOOD**2 <= h * w:
            for y0, x0 in windows:
                sel = np.flatnonzero((wy == y0) & (wx == x0))
                k = network(y0, min(h, y0 + NEIGHBOURHOOD), x0, min(w, x0 + NEIGHBOURHOOD))
                out[sel] = k[:, rows[sel] - y0, cols[sel] - x0].T
            return out
        side = _tile_for("manet", models, tile, context_px, multiple, hw=(h, w))
        for t in plan_tiles(h, w, side, context_px, multiple):
            sel = np.flatnonzero((rows >= t.y0) & (rows < t.y1) & (cols >= t.x0) & (cols < t.x1))
            if sel.size:
                k = network(t.iy0, t.iy1, t.ix0, t.ix1)
                out[sel] = k[:, rows[sel] - t.iy0, cols[sel] - t.ix0].T
        return out

    return kernels_at


def estimate_kernel_map(
    lr_rgb_f32: np.ndarray,
    models: ModelSet,
    *,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    keep_kernels_max_bytes: int = KEEP_KERNELS_MAX_BYTES,
) -> KernelMap:
    """MANet's kernel for every LR pixel, as a :class:`KernelMap` of PCA codes.

    Each tile's (441, th, tw) kernels are projected to codes as they come out of the network; no
    full kernel map is stored or converted. :meth:`KernelMap.kernel_at` reruns MANet on the point's
    neighbourhood (exact); ``KernelMap.kernels_f16`` runs MANet over the image again on first access,
    when the float16 kernels fit in ``keep_kernels_max_bytes`` (else it is None).
    """
    lr_chw = _chw(lr_rgb_f32)
    h, w = lr_chw.shape[-2:]
    pca = models.pca("rrdb_sft") if "rrdb_sft" in models.pcas else models.pca("manet")
    components = pca.components  # (d, 441)
    offset = (components @ pca.mean)[:, None]  # (d, 1): projecting (k - mean) without copying k

    def to_codes(kernels: np.ndarray) -> np.ndarray:
        th, tw = kernels.shape[-2:]
        codes = components @ kernels.reshape(N_TAPS, th * tw) - offset  # (d, th·tw), no (n, 441) copy
        return codes.reshape(-1, th, tw)

    out = _manet_kernels_tiled(models, lr_chw, to_codes, pca.n_components, tile, progress)
    codes = np.moveaxis(out, 0, -1)  # (h, w, d) view of the (d, h, w) canvas RRDB-SFT reads without a copy

    def full_kernels() -> np.ndarray | None:
        if h * w * N_TAPS * 2 > keep_kernels_max_bytes:
            return None
        kernels = _manet_kernels_tiled(models, lr_chw, lambda k: k, N_TAPS, tile, NULL_PROGRESS)
        return np.ascontiguousarray(np.moveaxis(kernels.astype(np.float16), 0, -1))  # (h, w, 441)

    return KernelMap(models.scale, codes, pca, recompute=_recompute_fn(models, lr_chw), full_kernels=full_kernels,
                     recompute_many=_kernels_at_fn(models, lr_chw, tile))


# ---------------------------------------------------------------------------------------------
# RRDB-SFT: SR conditioned on a per-pixel code map
# ---------------------------------------------------------------------------------------------
def sr_from_codes(
    lr_rgb_f32: np.ndarray,
    codes_hwd: np.ndarray,
    models: ModelSet,
    *,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    noise_map_255: np.ndarray | None = None,
) -> np.ndarray:
    """RRDB-SFT on an LR image, its (h, w, 15) code map and its noise level: SR rgb_f32 (s·h, s·w, 3).

    ``noise_map_255``: the (h, w) noise std on the 8-bit scale; by default estimated from the LR
    image itself (:func:`engine.noise.noise_map_255`), as the network was trained.
    """
    lr_chw = _chw(lr_rgb_f32)
    code_chw = np.ascontiguousarray(np.moveaxis(np.asarray(codes_hwd, np.float32), -1, 0))
    if noise_map_255 is None:
        noise_map_255 = estimate_noise_map_255(np.asarray(lr_rgb_f32, np.float32))
    noise_chw = np.asarray(noise_map_255, np.float32)[None]
    runner = models.runner("rrdb_sft")

    def per_tile(crops: list[np.ndarray]) -> np.ndarray:
        feed = {"lr_rgb": crops[0][None], "kernel_code": crops[1][None], "noise_sigma_255": crops[2][None]}
        return runner.run(feed)["sr_rgb"][0]

    context = _context_for(models, "rrdb_sft", 16)
    out = tiled_apply(
        per_tile, [lr_chw, code_chw, noise_chw], scale=models.scale, out_channels=3,
        tile=_tile_for("rrdb_sft", models, tile, context, hw=lr_chw.shape[-2:]), context=context,
        progress=progress, channels_last=True,
    )
    return _clip01(out)


@dataclass
class ManetResult:
    """MANet + RRDB-SFT output: the SR image, the kernel map, the provider used, and the input's noise
    level that conditioned RRDB-SFT (:func:`engine.noise.estimate_noise` of the LR image)."""

    sr_rgb_f32: np.ndarray
    kernel_map: KernelMap
    provider: str
    noise: NoiseEstimate


def run_manet(
    lr_rgb_f32: np.ndarray,
    models: ModelSet,
    *,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> ManetResult:
    """Blind SR with spatially variant kernels: MANet → PCA codes → RRDB-SFT."""
    kmap = estimate_kernel_map(lr_rgb_f32, models, tile=tile,
                               progress=progress.sub_progress(0.0, 0.3, "estimating kernels"))
    noise = estimate_noise(lr_rgb_f32)  # measured once: it conditions RRDB-SFT and is returned for display
    h, w = lr_rgb_f32.shape[:2]
    sr = sr_from_codes(lr_rgb_f32, kmap.codes, models, tile=tile, noise_map_255=noise.smooth_map_255(h, w),
                       progress=progress.sub_progress(0.3, 0.7, "super-resolving"))
    progress.set_progress(1.0)
    return ManetResult(sr, kmap, models.provider, noise)


def run_nonblind(
    lr_rgb_f32: np.ndarray,
    models: ModelSet,
    kernel_params: KernelParams,
    *,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
) -> np.ndarray:
    """RRDB-SFT with one user-given kernel (σ in HR px, θ in rad, MANet convention) for the whole image;
    returns the SR ``rgb_f32``."""
    kernel = anisotropic_gaussian_kernel(kernel_params, models.scale)
    pca = models.pca("rrdb_sft")
    code = pca.project(kernel).astype(np.float32)
    h, w = lr_rgb_f32.shape[:2]
    codes = np.broadcast_to(code, (h, w, code.shape[-1]))
    return sr_from_codes(lr_rgb_f32, codes, models, tile=tile, progress=progress.sub_progress(0.0, 1.0, "super-resolving"))


def run_bicubic(lr_rgb_f32: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-compatible bicubic upsampling (the baseline), clipped to [0, 1]; computed in strips."""
    return bicubic_upsample(np.asarray(lr_rgb_f32, np.float32), scale)


# ---------------------------------------------------------------------------------------------
# IKC: predictor → SFTMD → (corrector → SFTMD) × t
# ---------------------------------------------------------------------------------------------
