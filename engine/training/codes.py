"""Kernel PCA codes in torch: the shipped PCA basis as an affine map ``code = W · k + b``.

The PCA bases are data shipped in ``models/`` (``pca_manet_x{s}.npz``, 15-d; ``pca_ikc_x{s}.npz``,
10-d) and read by :class:`engine.pca.KernelPCA`. Training needs the projection on batches of
kernels (and, for blind fine-tuning, on every LR pixel of MANet's output) on the training device,
so :func:`codec_from_projector` turns any *affine* projector into a ``(W, b)`` pair by probing it
with the zero kernel and the 441 unit kernels. This keeps training bit-compatible with whatever
normalisation ``KernelPCA.project`` applies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.degradation.kernels import N_TAPS as KERNEL_TAPS
from engine.pca import KernelPCA


class KernelCodec:
    """Affine kernel → code map on a device.

    Args:
        weight: (L, 441) float32.
        bias: (L,) float32 (``code = weight @ kernel + bias``).
    """

    def __init__(self, weight: np.ndarray | torch.Tensor, bias: np.ndarray | torch.Tensor) -> None:
        self.weight = torch.as_tensor(np.asarray(weight, dtype=np.float32))
        self.bias = torch.as_tensor(np.asarray(bias, dtype=np.float32))
        if self.weight.ndim != 2 or self.weight.shape[1] != KERNEL_TAPS:
            raise ValueError(f"weight must be (L, {KERNEL_TAPS}), got {tuple(self.weight.shape)}")
        if self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bias must be ({self.weight.shape[0]},), got {tuple(self.bias.shape)}")

    @property
    def code_len(self) -> int:
        return int(self.weight.shape[0])

    def to(self, device: torch.device | str) -> "KernelCodec":
        self.weight = self.weight.to(device)
        self.bias = self.bias.to(device)
        return self

    def project(self, kernels: torch.Tensor) -> torch.Tensor:
        """(N, 441) flattened kernels → (N, L) codes."""
        return kernels.float() @ self.weight.T + self.bias

    def project_map(self, kernel_map: torch.Tensor) -> torch.Tensor:
        """(N, 441, h, w) per-pixel kernels (MANet output) → (N, L, h, w) code map."""
        codes = torch.einsum("nkhw,lk->nlhw", kernel_map.float(), self.weight)
        return codes + self.bias.view(1, -1, 1, 1)

    @staticmethod
    def spread(codes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(N, L) codes → (N, L, height, width) map (the same code at every LR pixel)."""
        return codes[:, :, None, None].expand(-1, -1, height, width).contiguous()


def codec_from_projector(project: Callable[[np.ndarray], np.ndarray]) -> KernelCodec:
    """Recover ``(W, b)`` of an affine ``project((N, 441) kernels) -> (N, L)`` by probing it.

    ``b = project(0)`` and column ``i`` of ``W`` is ``project(e_i) - b``. Checked on a random
    kernel batch (raises ``ValueError`` if the projector is not affine).
    """
    probes = np.concatenate([np.zeros((1, KERNEL_TAPS)), np.eye(KERNEL_TAPS)]).astype(np.float64)
    out = np.asarray(project(probes), dtype=np.float64)
    bias = out[0]
    weight = (out[1:] - bias).T  # (L, 441)
    check = np.random.default_rng(0).random((4, KERNEL_TAPS))
    check /= check.sum(axis=1, keepdims=True)
    expect = np.asarray(project(check), dtype=np.float64)
    if not np.allclose(check @ weight.T + bias, expect, atol=1e-4, rtol=1e-4):
        raise ValueError("the kernel projector is not affine; cannot turn it into a torch codec")
    return KernelCodec(weight.astype(np.float32), bias.astype(np.float32))


def pca_file_name(convention: str, scale: int) -> str:
    """File name of the shipped basis: ``pca_manet_x{s}.npz`` or ``pca_ikc_x{s}.npz``."""
    if convention not in ("manet", "ikc"):
        raise ValueError(f"convention must be 'manet' or 'ikc', got {convention!r}")
    return f"pca_{convention}_x{int(scale)}.npz"


def load_codec(path: str | Path) -> KernelCodec:
    """Load a shipped PCA basis with :class:`engine.pca.KernelPCA` and return its torch codec."""
    pca = KernelPCA.load(Path(path))

    def project(flat: np.ndarray) -> np.ndarray:
        return np.asarray(pca.project(flat.astype(np.float32)))

    return codec_from_projector(project)
