"""One benchmark case: run each method on its LR image and score the SR image (and kernels) against the truth."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.data import TestCase
from engine.evaluation.config import PREVIOUS_METHODS, base_method, not_applicable
from engine.evaluation.values import finite
from engine.progress import NULL_PROGRESS, Progress



def score(sr_rgb_f32: np.ndarray, hr_rgb_f32: np.ndarray, scale: int) -> dict[str, float | None]:
    """SR and HR images (``rgb_f32``) → ``{"psnr", "ssim"}`` on Y with ``scale`` px shaved (infinite PSNR: None)."""
    from engine.metrics import psnr, ssim

    return {
        "psnr": finite(psnr(sr_rgb_f32, hr_rgb_f32, crop_border=scale, test_y_channel=True)),
        "ssim": float(ssim(sr_rgb_f32, hr_rgb_f32, crop_border=scale, test_y_channel=True)),
    }


def _case_meta(case: TestCase) -> dict[str, Any]:
    info = case.kernel_info
    meta: dict[str, Any] = {"name": case.name, "image": info["image"]}
    for key in ("sigma", "kernel_index", "mode"):
        if key in info:
            meta[key] = info[key]
    return meta


@dataclass
class _Case:
    """One case as the scorers see it: the images, how to run, and its true kernels (made once, on demand)."""

    case: TestCase
    tile: int | None
    ikc_steps: int
    _truth: np.ndarray | None = None

    def truth(self) -> np.ndarray:
        if self._truth is None:
            self._truth = self.case.true_kernels()
        return self._truth

    @property
    def manet_convention(self) -> bool:
        return self.case.kernel_info.get("convention") == "manet"


def _bicubic(c: _Case, models: Any, progress: Progress) -> dict[str, Any]:
    from engine.pipeline.blind import run_bicubic

    s = c.case.scale
    return score(run_bicubic(c.case.lr_rgb_f32, s), c.case.hr_rgb_f32, s)


def _manet(c: _Case, models: Any, progress: Progress) -> dict[str, Any]:
    """SR scores; under the MANet convention also LR-PSNR (against the noise-free LR) and kernel error."""
    from engine.metrics import kernel_error, lr_psnr
    from engine.pipeline.blind import run_manet

    s, hr = c.case.scale, c.case.hr_rgb_f32
    result = run_manet(c.case.lr_rgb_f32, models, tile=c.tile, progress=progress)
    block = score(result.sr_rgb_f32, hr, s)
    if c.manet_convention:
        est = result.kernel_map.reconstruct_all()  # (h, w, 21, 21)
        block["lr_psnr"] = finite(lr_psnr(hr, c.case.noise_free_lr(), est, s, crop_border=s))
        err = kernel_error(est, np.broadcast_to(c.truth(), est.shape))
        block["kernel_l1"] = err["mean_l1"]
        block["kernel_psnr"] = finite(err["psnr"])
    return block


def _manet_oracle(c: _Case, models: Any, progress: Progress) -> dict[str, Any]:
    """RRDB-SFT fed the PCA codes of the true kernels."""
    from engine.pipeline.blind import sr_from_codes

    lr = c.case.lr_rgb_f32
    codes = models.pca("rrdb_sft").project(c.truth()).astype(np.float32)
    if codes.ndim == 1:
        codes = np.broadcast_to(codes, lr.shape[:2] + codes.shape)
    sr = sr_from_codes(lr, codes, models, tile=c.tile, progress=progress)
    return score(sr, c.case.hr_rgb_f32, c.case.scale)


def _ikc(c: _Case, models: Any, progress: Progress) -> dict[str, Any]:
    """Lists over the ``ikc_steps + 1`` iterations; kernel L1 per iteration under IKC's own convention."""
    from engine.metrics import kernel_error
    from engine.pipeline.ikc import run_ikc

    result = run_ikc(c.case.lr_rgb_f32, models, steps=c.ikc_steps, tile=c.tile, progress=progress)
    scores = [score(it.sr_rgb_f32, c.case.hr_rgb_f32, c.case.scale) for it in result.iterations]
    block: dict[str, Any] = {"psnr": [sc["psnr"] for sc in scores], "ssim": [sc["ssim"] for sc in scores]}
    if not c.manet_convention:  # IKC's own convention: its kernels are comparable with the truth
        block["kernel_l1"] = [kernel_error(it.kernel, c.truth())["mean_l1"] for it in result.iterations]
    return block


def _sftmd_oracle(c: _Case, models: Any, progress: Progress) -> dict[str, Any]:
    """SFTMD fed the true σ's IKC-basis code."""
    from engine.pipeline.ikc import sftmd_sr

    code = models.pca("sftmd").project(c.truth()).astype(np.float32)
    sr = sftmd_sr(c.case.lr_rgb_f32, code, models, tile=c.tile, progress=progress)
    return score(sr, c.case.hr_rgb_f32, c.case.scale)


_SCORERS: dict[str, Callable[[_Case, Any, Progress], dict[str, Any]]] = {
    "bicubic": _bicubic,
    "manet": _manet,
    "manet_oracle": _manet_oracle,
    "ikc": _ikc,
    "sftmd_oracle": _sftmd_oracle,
}
"""How each evaluated method (by the method it repeats) runs on a case and is scored (tests check the keys)."""


def evaluate_case(
    case: TestCase,
    methods: Sequence[str],
    models: Any,
    *,
    ikc_steps: int = 7,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    previous_models: Any = None,
) -> dict[str, Any]:
    """A case, methods and their loaded networks → the case's JSON-ready record of scores.

    ``models`` is an :class:`engine.pipeline.models.ModelSet` holding the networks the methods need;
    ``previous_models`` the one the ``*_previous`` methods run with (recorded under their own names).
    Under a photo-like protocol MANet's ``lr_psnr`` is measured against the noise-free LR image.
    The record holds the case's name/image/kernel id, one ``{"psnr", "ssim"}`` block per applicable
    method (``manet`` adds ``lr_psnr``, ``kernel_l1``, ``kernel_psnr`` under the MANet convention;
    ``ikc`` holds lists over its ``ikc_steps + 1`` iterations, plus ``kernel_l1`` per iteration on
    Gaussian8) and ``seconds`` per method (wall time, inference + scoring).
    """
    record = _case_meta(case)
    seconds: dict[str, float] = {}
    todo = [m for m in methods if not_applicable(m, case.protocol) is None]
    c = _Case(case, tile, ikc_steps)
    for i, method in enumerate(todo):
        progress.check_cancelled()
        sub = progress.sub_progress(i / len(todo), 1.0 / len(todo))
        t0 = time.perf_counter()
        mset = previous_models if method in PREVIOUS_METHODS else models
        if mset is None:
            raise ValueError(f"{method} needs the previous models (previous_models)")
        record[method] = _SCORERS[base_method(method)](c, mset, sub)
        seconds[method] = round(time.perf_counter() - t0, 3)
    record["seconds"] = seconds
    progress.set_progress(1.0)
    return record
