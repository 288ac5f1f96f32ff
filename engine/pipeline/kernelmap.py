"""Per-pixel kernel maps on the LR grid, kept compactly, with exact kernels on demand.

A :class:`KernelMap` stores MANet's estimate for every LR pixel as its PCA code (``codes``: h×w×d
float32, d = 15); the full kernels (``kernels_f16``: h×w×441 float16) are built only when something
asks for all of them, and only when the image is small enough. :meth:`KernelMap.kernel_at` answers
for a point in LR or SR coordinates by rerunning MANet on the 32×32 LR neighbourhood around the point
(MANet's receptive field is 22 LR px, so the result is the network's own float32 kernel, not a PCA
reconstruction).

Coordinates: LR pixel ``(y, x)`` covers SR pixels ``[s·y, s·y + s) × [s·x, s·x + s)`` (LR pixel i is
centred on HR position ``s·i + (s−1)/2``; see :mod:`engine.degradation.degrade`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.degradation.kernels import KERNEL_SIZE, fit_gaussian
from engine.pca import KernelPCA

KernelFn = Callable[[int, int], np.ndarray]
"""``recompute(y_lr, x_lr) -> (21, 21)`` exact kernel at one LR pixel."""


@dataclass(frozen=True)
class KernelInfo:
    """One kernel and its fitted Gaussian: std devs ``sigma1 ≥ sigma2`` in HR px, ``theta`` in rad."""

    kernel: np.ndarray  # (21, 21) float32, sums to 1
    sigma1: float
    sigma2: float
    theta: float
    lr_yx: tuple[int, int]
    exact: bool  # False when reconstructed from the PCA code


def describe_kernel(kernel: np.ndarray, lr_yx: tuple[int, int] = (0, 0), exact: bool = True) -> KernelInfo:
    """Fit σ1, σ2, θ to a 21×21 kernel (moments about its own centroid)."""
    k = np.clip(np.asarray(kernel, np.float32).reshape(KERNEL_SIZE, KERNEL_SIZE), 0.0, None)
    total = float(k.sum())
    if total > 0:
        k = k / total
    var1, var2, theta = fit_gaussian(k, scale=None)
    return KernelInfo(
        kernel=k,
        sigma1=math.sqrt(max(float(var1), 0.0)),
        sigma2=math.sqrt(max(float(var2), 0.0)),
        theta=float(theta),
        lr_yx=lr_yx,
        exact=exact,
    )


class KernelMap:
    """MANet's kernels for every LR pixel of one image (see the module docstring).

    ``kernels_f16`` is either given (an (h, w, 441) float16 array) or built on first access by
    ``full_kernels()`` (None when the kernels are too large to keep): the pipeline keeps only the
    codes on its hot path and builds kernels when something shows them.
    """

    def __init__(
        self,
        scale: int,
        codes: np.ndarray,
        pca: KernelPCA,
        kernels_f16: np.ndarray | None = None,
        recompute: KernelFn | None = None,
        full_kernels: Callable[[], np.ndarray | None] | None = None,
        recompute_many: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.scale = scale
        self.codes = codes  # (h, w, d) float32 PCA codes
        self.pca = pca
        self.recompute = recompute
        self._kernels_f16 = kernels_f16
        self._full_kernels = full_kernels
        self._recompute_many = recompute_many

    def __repr__(self) -> str:
        return f"KernelMap(scale={self.scale}, lr_hw={self.lr_hw}, kernels_stored={self.kernels_stored})"

    @property
    def kernels_stored(self) -> bool:
        """True when the full kernels are held in memory (given, or already built)."""
        return self._kernels_f16 is not None

    @property
    def kernels_f16(self) -> np.ndarray | None:
        """(h, w, 441) float16 exact kernels, built on first access when small enough; else None."""
        if self._kernels_f16 is None and self._full_kernels is not None:
            self._kernels_f16 = self._full_kernels()
            self._full_kernels = None
        return self._kernels_f16

    @property
    def lr_hw(self) -> tuple[int, int]:
        return int(self.codes.shape[0]), int(self.codes.shape[1])

    def lr_index(self, x: float, y: float, space: str = "lr") -> tuple[int, int]:
        """The LR pixel ``(row, col)`` under point ``(x, y)`` given in ``space`` ("lr" or "sr") pixels."""
        if space not in ("lr", "sr"):
            raise ValueError(f"space must be 'lr' or 'sr', not {space!r}")
        div = self.scale if space == "sr" else 1
        h, w = self.lr_hw
        row = int(math.floor(y / div))
        col = int(math.floor(x / div))
        if not (0 <= row < h and 0 <= col < w):
            raise IndexError(f"point ({x}, {y}) in {space.upper()} pixels is outside the {w}×{h} LR image")
        return row, col

    def kernel_at(self, x: float, y: float, space: str = "lr") -> KernelInfo:
        """The kernel at ``(x, y)`` (column, row) in LR or SR pixel coordinates, with σ1, σ2, θ."""
        row, col = self.lr_index(x, y, space)
        if self.recompute is not None:  # the network's own float32 kernel (float16 storage is not exact)
            kernel = self.recompute(row, col)
            exact = True
        elif self._kernels_f16 is not None:
            kernel = self._kernels_f16[row, col].astype(np.float32)
            exact = True
        else:
            kernel = self.pca.reconstruct(self.codes[row, col])
            exact = False
        return describe_kernel(kernel, (row, col), exact)

    def kernels_at(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(kernels, exact)``: the (n, 21, 21) float32 kernels at LR pixels ``(rows[i], cols[i])``.

        Exact (the network's own, one batched network pass) when the map can recompute them, else
        the stored float16 kernels, else PCA reconstructions (``exact`` False). Kernels are as the
        network gives them (not clipped or renormalised). Meant for many points (a lattice, a
        region); call it off the GUI thread.
        """
        rows = np.asarray(rows, np.int64).reshape(-1)
        cols = np.asarray(cols, np.int64).reshape(-1)
        h, w = self.lr_hw
        if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= h or cols.max() >= w):
            raise IndexError(f"kernels_at: a point lies outside the {w}×{h} LR image")
        if self._recompute_many is not None:
            flat, exact = self._recompute_many(rows, cols), True
        elif self._kernels_f16 is not None:
            flat, exact = self._kernels_f16[rows, cols].astype(np.float32), True
        else:
            return self.pca.reconstruct(self.codes[rows, cols]), False
        return flat.reshape(-1, KERNEL_SIZE, KERNEL_SIZE), exact

    def reconstruct_all(self) -> np.ndarray:
        """(h, w, 21, 21) float32 kernels: stored ones, else PCA reconstructions (memory: h·w·1.7 kB)."""
        if self.kernels_f16 is not None:
            return self.kernels_f16.astype(np.float32).reshape(*self.lr_hw, KERNEL_SIZE, KERNEL_SIZE)
        return self.pca.reconstruct(self.codes)

    def save_npz(self, path: str | Path, *, include_kernels: bool = False, overwrite: bool = False,
                 extra: dict[str, np.ndarray] | None = None) -> Path:
        """Write a compressed ``.npz``: codes, the PCA basis and the scale.

        The codes reconstruct every kernel (``codes @ pca_components + pca_mean``) to about 1 % (the
        basis keeps > 99.9 % of the variance); ``include_kernels=True`` adds the exact float16
        kernels when they are kept (h·w·882 bytes before compression). ``extra`` arrays are stored
        beside them under their own names (e.g. the noise estimate of ``kernelscope-cli estimate``).
        """
        import io

        from engine.imageio import write_bytes_atomically

        buf = io.BytesIO()
        arrays = {
            "codes": self.codes.astype(np.float32),
            "pca_mean": self.pca.mean,
            "pca_components": self.pca.components,
            "scale": np.int32(self.scale),
            "layout": np.array("codes: (h, w, d) PCA codes on the LR grid; kernel = codes @ pca_components + pca_mean, reshaped 21x21"),
        }
        if include_kernels and self.kernels_f16 is not None:
            arrays["kernels_f16"] = self.kernels_f16
        clash = sorted(set(extra or {}) & (set(arrays) | {"kernels_f16"}))
        if clash:
            raise ValueError(f"extra arrays would replace the kernel map's own: {', '.join(clash)}")
        arrays.update(extra or {})
        np.savez_compressed(buf, **arrays)
        target = Path(path)
        write_bytes_atomically(target, buf.getvalue(), overwrite=overwrite)
        return target
