"""One image in, one upscaled image out: the job shared by the command line and the GUI.

:func:`upscale` runs a method on an :class:`~engine.imageio.Image` (RGB through the networks, alpha
upscaled separately with bicubic so transparency survives) and returns an :class:`UpscaleResult`
that keeps the input's bit depth, ICC profile and EXIF for saving.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.degradation.kernels import KernelParams
from engine.degradation.resize import imresize_strips, output_length
from engine.imageio import Image, IntegerImage, to_u8, to_u16
from engine.methods import DEFAULT_METHOD, UPSCALE, method, methods_for
from engine.noise import NoiseEstimate
from engine.pipeline.blind import run_bicubic, run_manet, run_nonblind
from engine.pipeline.ikc import IKC_LOOP_PIXELS, IkcResult, run_ikc
from engine.pipeline.kernelmap import KernelMap
from engine.pipeline.models import ModelSet, execution_text
from engine.progress import NULL_PROGRESS, Progress

METHODS = methods_for(UPSCALE)
"""The methods :func:`upscale` runs (rows of :data:`engine.methods.METHOD_TABLE`)."""
IKC_STEPS_MAX = 20
"""Most IKC correction iterations a run may ask for (the paper uses 7; each one runs two networks)."""


@dataclass(frozen=True)
class UpscaleOptions:
    """What to run: ``method`` in :data:`METHODS`, ``scale``, tile size in LR px (None: automatic),
    IKC ``ikc_steps`` (None: the step recorded in the IKC corrector's card, see
    :func:`engine.modelcards.ikc_steps_from_card`), the non-blind kernel (std devs in HR px, angle in
    rad), and the largest image (LR px) IKC's correction loop runs on whole: larger ones run it on
    their most detailed crop of that size, and SFTMD runs at full size only for the iterations shown
    (``None``: always whole; see :func:`engine.pipeline.ikc.run_ikc`).

    ``integer_output``: bicubic returns an :class:`~engine.imageio.IntegerImage` at the input's bit
    depth, rounded strip by strip into one preallocated array (for writing: a 12 MP image ×4 then
    needs ~0.6 GB instead of several GB of float copies). Other methods ignore it.
    """

    method: str = DEFAULT_METHOD
    scale: int = 4
    tile: int | None = None
    ikc_steps: int | None = None
    nonblind_sigmas: KernelParams = KernelParams(2.0, 2.0, 0.0)
    integer_output: bool = False
    ikc_loop_pixels: int | None = IKC_LOOP_PIXELS

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, not {self.scale}")
        if self.ikc_steps is not None and not 0 <= self.ikc_steps <= IKC_STEPS_MAX:
            raise ValueError(f"ikc_steps must be in 0..{IKC_STEPS_MAX}, got {self.ikc_steps}")
        object.__setattr__(self, "nonblind_sigmas", KernelParams(*self.nonblind_sigmas))  # a tuple becomes typed
        if method(self.method).user_kernel:
            try:
                self.nonblind_sigmas.checked()
            except ValueError as exc:
                raise ValueError(f"nonblind_sigmas: {exc}") from None
        if self.ikc_loop_pixels is not None and self.ikc_loop_pixels < 64:
            raise ValueError("ikc_loop_pixels must be None or at least 64")


@dataclass
class UpscaleResult:
    """The upscaled image (metadata carried), what produced it, and the method's extra outputs."""

    image: Image | IntegerImage
    method: str
    scale: int
    provider: str
    seconds: float
    kernel_map: KernelMap | None = None
    ikc: IkcResult | None = None
    info: dict[str, Any] = field(default_factory=dict)
    execution: str = ""
    """Device, execution provider and precision used (:attr:`ModelSet.execution`)."""
    nonblind_sigmas: KernelParams | None = None
    """The non-blind run's kernel as it ran: σ1, σ2 (HR px) and θ (rad); None for other methods."""
    noise: NoiseEstimate | None = None
    """The input's noise level where the method measured it (MANet: it conditions RRDB-SFT); else None."""


def upscale(
    image: Image,
    options: UpscaleOptions,
    models: ModelSet | None,
    *,
    progress: Progress = NULL_PROGRESS,
) -> UpscaleResult:
    """An image, options and loaded networks → the image upscaled with ``options.method``.

    ``models`` may be None only for a method without networks (bicubic)."""
    start = time.perf_counter()
    spec = method(options.method)
    if spec.needs_models and models is None:
        raise ValueError(f"method {options.method!r} needs loaded models")
    if models is not None and models.scale != options.scale:
        raise ValueError(f"models are for ×{models.scale}, options ask for ×{options.scale}")
    if not spec.needs_models and options.integer_output:
        return UpscaleResult(
            image=_bicubic_integers(image, options.scale, progress),
            method=options.method,
            scale=options.scale,
            provider="numpy",
            seconds=time.perf_counter() - start,
        )
    has_alpha = image.alpha_f32 is not None
    rgb_share = 0.97 if has_alpha else 1.0
    rgb_progress = progress.sub_progress(0.0, rgb_share)
    run = _RUNNERS[spec.name](image.rgb_f32, options, models, rgb_progress)
    progress.check_cancelled()
    alpha = None
    if has_alpha:
        alpha = run_bicubic(image.alpha_f32, options.scale)
    progress.set_progress(1.0)
    return UpscaleResult(
        image=image.with_pixels(np.ascontiguousarray(run.sr_rgb_f32, dtype=np.float32), alpha),
        method=options.method,
        scale=options.scale,
        provider=run.provider,
        seconds=time.perf_counter() - start,
        kernel_map=run.kernel_map,
        ikc=run.ikc,
        execution=models.execution if models is not None and spec.needs_models else execution_text([]),
        nonblind_sigmas=options.nonblind_sigmas if spec.user_kernel else None,
        noise=run.noise,
    )


@dataclass
class _Run:
    """What one method's runner hands back: the SR image (``rgb_f32``), the provider, extra outputs."""

    sr_rgb_f32: np.ndarray
    provider: str
    kernel_map: KernelMap | None = None
    ikc: IkcResult | None = None
    noise: NoiseEstimate | None = None


def _run_manet(lr: np.ndarray, options: UpscaleOptions, models: ModelSet, progress: Progress) -> _Run:
    result = run_manet(lr, models, tile=options.tile, progress=progress)
    return _Run(result.sr_rgb_f32, result.provider, kernel_map=result.kernel_map, noise=result.noise)


def _run_ikc(lr: np.ndarray, options: UpscaleOptions, models: ModelSet, progress: Progress) -> _Run:
    ikc = run_ikc(lr, models, steps=options.ikc_steps, tile=options.tile, progress=progress,
                  loop_max_pixels=options.ikc_loop_pixels)
    return _Run(ikc.final.sr_rgb_f32, ikc.provider, ikc=ikc)


def _run_nonblind(lr: np.ndarray, options: UpscaleOptions, models: ModelSet, progress: Progress) -> _Run:
    return _Run(run_nonblind(lr, models, options.nonblind_sigmas, tile=options.tile, progress=progress),
                models.provider)


def _run_bicubic(lr: np.ndarray, options: UpscaleOptions, models: ModelSet | None, progress: Progress) -> _Run:
    return _Run(run_bicubic(lr, options.scale), "numpy")


_RUNNERS: dict[str, Callable[[np.ndarray, UpscaleOptions, Any, Progress], _Run]] = {
    "bicubic": _run_bicubic,
    "manet": _run_manet,
    "ikc": _run_ikc,
    "nonblind": _run_nonblind,
}
"""How each of :data:`METHODS` runs on the RGB planes (the tests check the keys against the table)."""


def _bicubic_integers(image: Image, scale: int, progress: Progress) -> IntegerImage:
    """Bicubic ×``scale`` of colour and alpha, each strip clipped and rounded to the image's bit
    depth straight into one H×W×(3|4) integer array: no full-size float array exists."""
    to_int = to_u16 if image.bit_depth == 16 else to_u8
    planes = [(image.rgb_f32, slice(0, 3))]
    if image.alpha_f32 is not None:
        planes.append((image.alpha_f32, 3))
    oh, ow = output_length(image.height, scale), output_length(image.width, scale)
    pixels = np.empty((oh, ow, 2 + len(planes)), np.uint16 if image.bit_depth == 16 else np.uint8)
    for i, (values, channels) in enumerate(planes):
        part = progress.sub_progress(i / len(planes), 1 / len(planes))

        def store(r0: int, r1: int, strip: np.ndarray, channels=channels, part=part) -> None:
            part.check_cancelled()
            if not (np.isfinite(strip.min()) and np.isfinite(strip.max())):  # NaN/inf would round to 0
                raise ValueError("bicubic: the image holds non-finite values (NaN or inf)")
            pixels[r0:r1, :, channels] = to_int(strip)  # rounds and clips to [0, 1] as bicubic_upsample
            part.set_progress(r1 / oh)

        imresize_strips(values, float(scale), store)
    progress.set_progress(1.0)
    return IntegerImage.like(image, pixels)
