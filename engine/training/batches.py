"""Batch makers: random HR crops from the in-memory pool, degraded on the fly (numpy, CPU).

Two degradation protocols (see :mod:`engine.degradation`):

- **MANet** (:class:`ManetBatchMaker`): one anisotropic Gaussian per patch (variances and angle from
  ``sample_anisotropic_params``), blur + direct subsampling, optional noise / JPEG, 8-bit rounding.
- **IKC** (:class:`IkcBatchMaker`): one isotropic Gaussian per patch (σ from
  ``sample_isotropic_sigma``), centred blur + MATLAB bicubic ``1/s``, 8-bit rounding.

- **Mixed** (:class:`MixedBatchMaker`, the blind RRDB-SFT stage with ``ikc_convention_share``): MANet
  batches in which that share of the patches is made the IKC way.

A batch is a dict of float32 numpy arrays (NCHW for images):

- ``lr``: (B, 3, P/s, P/s) RGB in [0, 1] on 8-bit levels;
- ``hr``: (B, 3, P, P) RGB in [0, 1] (only when ``with_hr``);
- ``kernel``: (B, 441) the true kernel of each patch, flattened row-major (sums to 1);
- ``code_noise``: (B, L) standard-normal draws (only when ``code_len`` is set; the corrector
  stage perturbs codes with them, so every random number of a step comes from the batch rng);
- ``use_predictor``: (B,) uniform draws in [0, 1) (with ``code_len``; corrector stage);
- ``unroll_u``: (B,) uniform draws in [0, 1) (with ``code_len``; the corrector's unroll depth).

Every random draw comes from the ``numpy.random.Generator`` passed to ``make``; a stream of
batches is therefore reproducible from the generator's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine import degradation as deg
from engine.data import TrainPool
from engine.training.augment import Augment
from engine.training.config import TrainConfig


class BatchMaker(Protocol):
    """Something that turns a generator into one training batch (a dict of numpy arrays)."""

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]: ...


def _hwc_to_chw(batch_hwc: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(batch_hwc).transpose(0, 3, 1, 2), dtype=np.float32)


@dataclass
class _MakerBase:
    """A batch of ``batch_size`` random HR crops of ``patch_size`` px, each with its own kernel."""

    pool: TrainPool
    batch_size: int
    patch_size: int
    scale: int
    with_hr: bool = True
    augment: Augment = field(default_factory=Augment)
    code_len: int | None = None

    def _draw_kernel(self, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        """(kernel 21×21 summing to 1, the σ in HR px for :func:`deg.degrade_ikc` or ``None``)."""
        raise NotImplementedError

    def _degrade(self, hr: np.ndarray, kernel: np.ndarray, sigma: float | None, rng: np.random.Generator,
                 photo: deg.PhotoCorruption) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One batch (see the module docstring); the draws per patch: crop, kernel, corruptions, degradation."""
        hrs, lrs, kernels = [], [], []
        for _ in range(self.batch_size):
            hr = self.pool.random_crop(rng, self.patch_size)
            kernel, sigma = self._draw_kernel(rng)
            photo = deg.PhotoCorruption(*self.augment.draw(rng))
            lrs.append(self._degrade(hr, kernel, sigma, rng, photo))
            hrs.append(hr)
            kernels.append(kernel.reshape(-1))
        out = {"lr": _hwc_to_chw(lrs), "kernel": np.stack(kernels).astype(np.float32)}
        if self.with_hr:
            out["hr"] = _hwc_to_chw(hrs)
        if self.code_len:
            out["code_noise"] = rng.standard_normal((self.batch_size, self.code_len)).astype(np.float32)
            out["use_predictor"] = rng.random(self.batch_size).astype(np.float32)
            out["unroll_u"] = rng.random(self.batch_size).astype(np.float32)
        return out


@dataclass
class ManetBatchMaker(_MakerBase):
    """MANet-convention batches (anisotropic kernel per patch, blur + direct subsampling)."""

    def _draw_kernel(self, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        var1, var2, theta = deg.sample_anisotropic_params(rng, self.scale)
        return deg.anisotropic_gaussian_kernels(var1, var2, theta, self.scale), None

    def _degrade(self, hr: np.ndarray, kernel: np.ndarray, sigma: float | None, rng: np.random.Generator,
                 photo: deg.PhotoCorruption) -> np.ndarray:
        return deg.degrade_manet(hr, kernel, self.scale, rng, photo)


@dataclass
class IkcBatchMaker(_MakerBase):
    """IKC-convention batches (isotropic σ per patch, centred blur + MATLAB bicubic)."""

    def _draw_kernel(self, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        sigma = float(deg.sample_isotropic_sigma(rng, self.scale))
        return deg.isotropic_gaussian_kernel(sigma), sigma

    def _degrade(self, hr: np.ndarray, kernel: np.ndarray, sigma: float | None, rng: np.random.Generator,
                 photo: deg.PhotoCorruption) -> np.ndarray:
        assert sigma is not None
        return deg.degrade_ikc(hr, sigma, self.scale, rng, photo)


@dataclass
class MixedBatchMaker(ManetBatchMaker):
    """MANet-convention batches in which each patch is, with probability ``ikc_share``, made the IKC
    way instead (isotropic σ, centred blur + MATLAB bicubic ↓: an anti-aliased downsampling, as a
    camera's). Those patches' ``kernel`` is the IKC-centred isotropic one, so only a stage that does not
    read the true kernel (the blind RRDB-SFT stage, conditioned on MANet's estimate) may use it."""

    ikc_share: float = 0.0

    def _draw_kernel(self, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        if rng.random() < self.ikc_share:
            return IkcBatchMaker._draw_kernel(self, rng)  # type: ignore[arg-type]
        return super()._draw_kernel(rng)

    def _degrade(self, hr: np.ndarray, kernel: np.ndarray, sigma: float | None, rng: np.random.Generator,
                 photo: deg.PhotoCorruption) -> np.ndarray:
        if sigma is not None:  # drawn the IKC way
            return IkcBatchMaker._degrade(self, hr, kernel, sigma, rng, photo)  # type: ignore[arg-type]
        return super()._degrade(hr, kernel, sigma, rng, photo)


def make_batch_maker(cfg: TrainConfig, protocol: str, pool: TrainPool, batch_size: int, *, with_hr: bool,
                     code_len: int | None) -> _MakerBase:
    """The batch maker of a run: ``protocol`` ``"manet"`` or ``"ikc"``, ``batch_size`` patches of
    ``cfg.patch_size`` HR px with ``cfg``'s corruptions; ``code_len`` adds the corrector's draws."""
    common = dict(with_hr=with_hr, augment=cfg.augment(), code_len=code_len)
    if protocol == "manet" and cfg.ikc_convention_share > 0:
        return MixedBatchMaker(pool, batch_size, cfg.patch_size, cfg.scale, ikc_share=cfg.ikc_convention_share,
                               **common)
    maker = ManetBatchMaker if protocol == "manet" else IkcBatchMaker
    return maker(pool, batch_size, cfg.patch_size, cfg.scale, **common)


def batch_stream(maker: BatchMaker, rng: np.random.Generator) -> Iterator[dict[str, np.ndarray]]:
    """Endless batches from ``maker`` drawing on ``rng`` (in-process; its state can be checkpointed)."""
    while True:
        yield maker(rng)


try:  # torch is a training dependency; the batch makers above work without it
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # pragma: no cover
    IterableDataset = object  # type: ignore[assignment,misc]
    get_worker_info = None  # type: ignore[assignment]


class BatchDataset(IterableDataset):  # type: ignore[misc]
    """Endless ``IterableDataset`` of whole batches for a ``DataLoader(batch_size=None)``.

    Each worker process (forked, so the decoded pool is shared copy-on-write) draws from its own
    generator ``np.random.default_rng([seed, rank, worker_id, start_step])``; ``start_step`` makes a
    resumed run draw fresh batches instead of replaying the first ones.
    """

    def __init__(self, maker: BatchMaker, seed: int, rank: int = 0, start_step: int = 0) -> None:
        super().__init__()
        self.maker = maker
        self.seed = int(seed)
        self.rank = int(rank)
        self.start_step = int(start_step)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        info = get_worker_info() if get_worker_info is not None else None
        worker_id = 0 if info is None else info.id
        rng = np.random.default_rng([self.seed, self.rank, worker_id, self.start_step])
        return batch_stream(self.maker, rng)
