"""Noise level of an image: a robust estimate of additive white noise, for the whole image and per block.

The estimator (written here, after Immerkær 1996 and Donoho–Johnstone 1994): each colour channel is
filtered with the 3×3 mask ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` (the difference of two
Laplacians). It removes constant, linear and most smooth structure; on white Gaussian noise of std
σ its response is Gaussian with std ``6 σ`` (the mask's L2 norm), so ``σ̂ = median(|response|) /
(6 · 0.6745)``, the median absolute deviation of a zero-mean Gaussian. The median ignores the
minority of pixels on edges and texture, which a mean (Immerkær's original) would count.

Units: ``sigma_255`` is the std of the noise per colour channel on the 8-bit scale (σ/255 of an
``rgb_f32`` image), the unit of ``engine.degradation.add_gaussian_noise``. What it measures is the
fine-scale noise the LR pixels carry: JPEG compression removes much of it (and adds block edges the
mask partly sees), strong texture raises it. Grey images (three equal channels) give the same value
as their single channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAD_TO_SIGMA", "MASK_NORM", "DEFAULT_BLOCK_PX", "NoiseEstimate", "highpass_response", "estimate_noise",
           "noise_map_255"]

MAD_TO_SIGMA = 1.0 / 0.6744897501960817
"""σ of a zero-mean Gaussian per unit of its median absolute value (1 / Φ⁻¹(0.75))."""

MASK_NORM = 6.0
"""L2 norm of the 3×3 mask: sqrt(sum of its squared taps 1, 4, 16, …) = sqrt(36)."""

DEFAULT_BLOCK_PX = 16
"""Side of the square blocks of the noise map, in image pixels."""


def highpass_response(channel_f32: np.ndarray) -> np.ndarray:
    """The 3×3 mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` applied to an H×W array (valid part, (H-2)×(W-2)),
    divided by the mask norm 6, so white noise of std σ gives a response of std σ."""
    x = np.asarray(channel_f32, dtype=np.float32)
    if x.ndim != 2 or min(x.shape) < 3:
        raise ValueError(f"expected an H×W channel of at least 3×3 pixels, got shape {x.shape}")
    # separable: [1, -2, 1] along the rows, then along the columns
    rows = x[:, :-2] - 2.0 * x[:, 1:-1] + x[:, 2:]
    return (rows[:-2] - 2.0 * rows[1:-1] + rows[2:]) / np.float32(MASK_NORM)


@dataclass(frozen=True)
class NoiseEstimate:
    """The noise level of one image.

    ``sigma_255``: whole-image estimate (per-channel std on the 8-bit scale). ``map_255``: the same
    estimate per ``block_px``×``block_px`` block (rows × columns of blocks; partial blocks at the right
    and bottom edges are included). :meth:`at` reads the block under a pixel.
    """

    sigma_255: float
    map_255: np.ndarray
    block_px: int

    def smooth_map_255(self, height: int, width: int) -> np.ndarray:
        """A per-pixel map (``height``×``width`` float32) of the block estimates: each sits at its block's
        centre and is interpolated bilinearly between centres (held constant beyond the outer ones), so
        the map has no steps at block edges. ``height``/``width``: the estimated image's size."""
        rows, cols = self.map_255.shape
        if -(-height // self.block_px) != rows or -(-width // self.block_px) != cols:
            raise ValueError(f"a {width}×{height} image does not have {cols}×{rows} blocks of {self.block_px} px")
        along_y = _interpolation_matrix(height, rows, self.block_px)  # (height, rows)
        along_x = _interpolation_matrix(width, cols, self.block_px)  # (width, cols)
        return (along_y @ self.map_255.astype(np.float64) @ along_x.T).astype(np.float32)

    def at(self, x: float, y: float) -> float:
        """The block estimate at image pixel (x, y) (clamped to the image)."""
        rows, cols = self.map_255.shape
        r = min(max(int(y) // self.block_px, 0), rows - 1)
        c = min(max(int(x) // self.block_px, 0), cols - 1)
        return float(self.map_255[r, c])


def _abs_response(rgb_f32: np.ndarray) -> np.ndarray:
    """|high-pass| of every channel, stacked (C, H-2, W-2) (one channel for grey stored as RGB)."""
    img = np.asarray(rgb_f32, dtype=np.float32)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[0] < 3 or img.shape[1] < 3:
        raise ValueError(f"expected an H×W×C image of at least 3×3 pixels, got shape {img.shape}")
    channels = img.shape[2]
    if channels > 1 and all(np.array_equal(img[:, :, 0], img[:, :, c]) for c in range(1, channels)):
        channels = 1  # grey stored as RGB: one channel, not three copies of it
    return np.stack([np.abs(highpass_response(img[:, :, c])) for c in range(channels)])


def estimate_noise(rgb_f32: np.ndarray, *, block_px: int = DEFAULT_BLOCK_PX) -> NoiseEstimate:
    """Estimate the additive white noise of an image (``rgb_f32``: H×W×3, or H×W, float in [0, 1]).

    Returns the whole-image :class:`NoiseEstimate` (median over every pixel and channel) and a map of
    per-block medians (the one-pixel border the 3×3 mask cannot reach takes its neighbours' responses).
    Clean 8-bit images give about 0–0.5 (rounding alone has std 0.29); textured images read higher
    than their true noise, since fine texture passes the mask too.
    """
    if block_px < 3:
        raise ValueError(f"block_px must be ≥ 3, got {block_px}")
    resp = _abs_response(rgb_f32) * np.float32(255.0 * MAD_TO_SIGMA)
    sigma = float(np.median(resp))
    h, w = resp.shape[1] + 2, resp.shape[2] + 2
    rows, cols = -(-h // block_px), -(-w // block_px)
    # back on the image grid (border replicated), then padded to whole blocks the same way
    grid = np.pad(resp, ((0, 0), (1, rows * block_px - h + 1), (1, cols * block_px - w + 1)), mode="edge")
    blocks = grid.reshape(resp.shape[0], rows, block_px, cols, block_px).transpose(1, 3, 0, 2, 4)
    block_map = np.median(blocks.reshape(rows, cols, -1), axis=2).astype(np.float32)
    return NoiseEstimate(sigma_255=sigma, map_255=block_map, block_px=int(block_px))


def noise_map_255(rgb_f32: np.ndarray, *, block_px: int = DEFAULT_BLOCK_PX) -> np.ndarray:
    """A smooth per-pixel noise level (H×W float32, σ on the 8-bit scale) for conditioning RRDB-SFT:
    :meth:`NoiseEstimate.smooth_map_255` of :func:`estimate_noise`. RRDB-SFT was trained with the
    median of each 20×20 LR training patch, the same estimate at about this block size."""
    h, w = np.asarray(rgb_f32).shape[:2]
    return estimate_noise(rgb_f32, block_px=block_px).smooth_map_255(h, w)


def _interpolation_matrix(n_px: int, n_blocks: int, block_px: int) -> np.ndarray:
    """(n_px, n_blocks) weights of linear interpolation from block centres to pixels (constant beyond
    the outer centres): column ``b`` is the interpolant of the ``b``-th unit vector."""
    centres = (np.arange(n_blocks) + 0.5) * block_px - 0.5
    pixels = np.arange(n_px, dtype=np.float64)
    return np.stack([np.interp(pixels, centres, unit) for unit in np.eye(n_blocks)], axis=1)
