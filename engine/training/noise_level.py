"""The noise level RRDB-SFT is conditioned on, computed on training batches in torch.

The same estimator as :func:`engine.noise.estimate_noise` (the 3×3 difference-of-Laplacians mask,
median absolute response, σ on the 8-bit scale), over each whole LR patch: at inference the map of
:func:`engine.noise.noise_map_255` gives per-block medians of about the patch size.
"""

from __future__ import annotations

import torch

from engine.noise import MAD_TO_SIGMA, MASK_NORM


def patch_sigma_255(lr: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) images in [0, 1] → (B,) estimated noise std of each, on the 8-bit scale."""
    x = lr.float()
    rows = x[..., :, :-2] - 2.0 * x[..., :, 1:-1] + x[..., :, 2:]
    resp = (rows[..., :-2, :] - 2.0 * rows[..., 1:-1, :] + rows[..., 2:, :]).abs() / MASK_NORM
    return torch.quantile(resp.reshape(resp.shape[0], -1), 0.5, dim=1) * (255.0 * MAD_TO_SIGMA)


def noise_condition(lr: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) LR batch → (B, 1, h, w) map holding each patch's :func:`patch_sigma_255`."""
    sigma = patch_sigma_255(lr)
    return sigma[:, None, None, None].expand(lr.shape[0], 1, lr.shape[-2], lr.shape[-1]).to(lr.dtype)
