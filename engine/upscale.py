"""One image in, one upscaled image out: the job shared by the command line and the GUI.

:func:`upscale` runs a method on an :class:`~engine.imageio.Image` (RGB through the networks, alpha
upscaled separately with bicubic so transparency survives) and returns an :class:`UpscaleResult`
that keeps the input's bit depth, ICC profile and EXIF for saving.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.imageio import Image
from engine.pipeline.blind import IKC_LOOP_PIXELS, IkcResult, run_bicubic, run_ikc, run_manet, run_nonblind
from engine.pipeline.kernelmap import KernelMap
from engine.pipeline.models import ModelSet
from engine.progress import NULL_PROGRESS, Progress

METHODS = ("manet", "ikc", "bicubic", "nonblind")


@dataclass(frozen=True)
class UpscaleOptions:
    """What to run: ``method`` in :data:`METHODS`, ``scale``, tile size in LR px (None: automatic),
    IKC ``ikc_steps``, the non-blind kernel (std devs in HR px, angle in rad), and the largest image
    (LR px) IKC's correction loop runs on whole: larger ones run it on their most detailed crop of
    that size, and SFTMD runs at full size only for the iterations shown (``None``: always whole;
    see :func:`engine.pipeline.blind.run_ikc`)."""

    method: str = "manet"
    scale: int = 4
    tile: int | None = None
    ikc_steps: int = 7
    nonblind_sigmas: tuple[float, float, float] = (2.0, 2.0, 0.0)
    ikc_loop_pixels: int | None = IKC_LOOP_PIXELS

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, not {self.scale}")
        if self.ikc_steps < 0:
            raise ValueError("ikc_steps must be ≥ 0")
        if self.ikc_loop_pixels is not None and self.ikc_loop_pixels < 64:
            raise ValueError("ikc_loop_pixels must be None or at least 64")


@dataclass
class UpscaleResult:
    """The upscaled image (metadata carried), what produced it, and the method's extra outputs."""

    image: Image
    method: str
    scale: int
    provider: str
    seconds: float
    kernel_map: KernelMap | None = None
    ikc: IkcResult | None = None
    info: dict[str, Any] = field(default_factory=dict)


def upscale(
    image: Image,
    options: UpscaleOptions,
    models: ModelSet | None,
    *,
    progress: Progress = NULL_PROGRESS,
) -> UpscaleResult:
    """Upscale ``image`` with ``options.method``; ``models`` may be None only for bicubic."""
    start = time.perf_counter()
    if options.method != "bicubic" and models is None:
        raise ValueError(f"method {options.method!r} needs loaded models")
    if models is not None and models.scale != options.scale:
        raise ValueError(f"models are for ×{models.scale}, options ask for ×{options.scale}")
    has_alpha = image.alpha_f32 is not None
    rgb_share = 0.97 if has_alpha else 1.0
    rgb_progress = progress.sub_progress(0.0, rgb_share)
    lr = image.rgb_f32
    kernel_map = None
    ikc = None
    if options.method == "manet":
        result = run_manet(lr, models, tile=options.tile, progress=rgb_progress)
        sr, kernel_map, provider = result.sr_rgb_f32, result.kernel_map, result.provider
    elif options.method == "ikc":
        ikc = run_ikc(lr, models, steps=options.ikc_steps, tile=options.tile, progress=rgb_progress,
                      loop_max_pixels=options.ikc_loop_pixels)
        sr, provider = ikc.final.sr_rgb_f32, ikc.provider
    elif options.method == "nonblind":
        s1, s2, th = options.nonblind_sigmas
        sr = run_nonblind(lr, models, s1, s2, th, tile=options.tile, progress=rgb_progress)
        provider = models.provider
    else:
        sr = run_bicubic(lr, options.scale)
        provider = "numpy"
    progress.check_cancelled()
    alpha = None
    if has_alpha:
        alpha = run_bicubic(np.repeat(image.alpha_f32[:, :, None], 3, axis=2), options.scale)[:, :, 0]
        alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    progress.set_progress(1.0)
    return UpscaleResult(
        image=image.with_pixels(np.ascontiguousarray(sr, dtype=np.float32), alpha),
        method=options.method,
        scale=options.scale,
        provider=provider,
        seconds=time.perf_counter() - start,
        kernel_map=kernel_map,
        ikc=ikc,
    )
