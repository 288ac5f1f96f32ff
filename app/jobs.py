"""What the studio runs on its engine worker, one function per :class:`app.session.JobKind` (no Qt).

Each wraps an engine job (:mod:`engine.jobs`, :mod:`engine.pipeline.lab`) and, for runs that the GUI
shows, also prepares the display on the worker (8-bit SR, kernel lattice, IKC change curves, the
input's noise level), so the GUI thread only hands arrays to the views. ``models_for(method, scale)``
is the studio's model cache bound to a device (:meth:`app.bridge.EngineBridge.models_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import ModelError
from engine.imageio import Image, to_u8
from engine.jobs import ModelsFor, upscale_job
from engine.methods import METHOD_TABLE
from engine.noise import NoiseEstimate, estimate_noise
from engine.pipeline.lab import LabResult, synthesise_and_estimate
from engine.progress import NULL_PROGRESS, Progress
from engine.upscale import UpscaleOptions, UpscaleResult

from app.analysis import Lattice, lattice_overlay


@dataclass
class RunOutput:
    """What a run hands the GUI: the result plus everything display-ready that was costly to make."""

    result: UpscaleResult
    sr_u8: np.ndarray
    lattice: Lattice | None = None
    ikc_changes: tuple[np.ndarray, np.ndarray] | None = None
    noise: NoiseEstimate | None = None
    """The input's noise level (:func:`engine.noise.estimate_noise`), per block and for the whole image."""
    hint: str | None = None
    """One line for the user when the method's networks never saw inputs like this one (:func:`photo_input_hint`)."""

    @property
    def method(self) -> str:
        return self.result.method


def run_for_display(models_for: ModelsFor, image: Image, options: UpscaleOptions, *, with_lattice: bool = True,
                    progress: Progress = NULL_PROGRESS) -> RunOutput:
    """Upscale ``image`` (:func:`engine.jobs.upscale_job`) and prepare what the views show."""
    result = upscale_job(image, options, models_for, progress=progress)
    lattice = lattice_overlay(result.kernel_map) if with_lattice and result.kernel_map is not None else None
    changes = None
    if result.ikc is not None:
        changes = result.ikc.changes()  # measured in the loop: renders no iteration
    noise = result.noise  # the input's noise level, shown beside the kernel on hover (MANet measured it)
    if noise is None:
        noise = estimate_noise(image.rgb_f32)
    hint = photo_input_hint(options.method, options.scale, image, noise, models_for)
    return RunOutput(result, to_u8(result.image.rgb_f32), lattice, changes, noise, hint)


NOISY_READING_255 = 4.0
"""A whole-image noise estimate (:mod:`engine.noise`, σ/255) from which an input reads as a noisy photo:
clean 8-bit photos read about 0.5–3, sensor noise of σ 5/255 about 5."""

LOSSY_JPEG_QUALITY = 90
"""A JPEG saved at this quality or lower (:class:`engine.imageio.jpegquality.JpegQuality`) counts as compressed."""

PHOTO_METHOD = "manet"
"""The blind method to point to when another one's networks were trained on clean images only."""


def _trained_on_photos(models, every: bool) -> bool:
    """Every (``every``) or any network of a ModelSet was trained with noise or JPEG (its card says so)."""
    flags = [card.trained_on_photo_degradations for card in models.cards.values()] if models is not None else []
    return bool(flags) and (all(flags) if every else any(flags))


def photo_input_hint(method: str, scale: int, image: Image, noise: NoiseEstimate | None,
                     models_for: ModelsFor) -> str | None:
    """One line when ``method``'s networks at ``scale`` were trained on clean images only (their cards'
    ``training.noise``) and the input reads as noisy (:data:`NOISY_READING_255`) or compressed
    (:data:`LOSSY_JPEG_QUALITY`), naming :data:`PHOTO_METHOD` when its networks were trained with noise
    and JPEG; else None (also for that method itself and for methods without networks)."""
    reasons = []
    if noise is not None and noise.sigma_255 >= NOISY_READING_255:
        reasons.append(f"noise ≈ {noise.sigma_255:.1f}/255")
    if image.jpeg_quality is not None and image.jpeg_quality.quality <= LOSSY_JPEG_QUALITY:
        reasons.append(image.jpeg_quality.describe())
    if not reasons or method == PHOTO_METHOD:
        return None
    try:
        models = models_for(method, scale)
        if (models is None or _trained_on_photos(models, every=False)
                or not _trained_on_photos(models_for(PHOTO_METHOD, scale), every=True)):
            return None
    except (ModelError, OSError, RuntimeError):  # no photo-trained alternative to name; the result stands
        return None
    return (f"{METHOD_TABLE[method].short} ×{scale} was trained on clean images only, and this input reads as "
            f"{' and '.join(reasons)}: {METHOD_TABLE[PHOTO_METHOD].label}, trained with noise and JPEG, "
            "usually does better on such photos.")


def lab_experiment(models_for: ModelsFor, hr_rgb_f32: np.ndarray, labels_lr: np.ndarray,
                   params: dict[int, tuple[float, float, float]], scale: int, *,
                   progress: Progress = NULL_PROGRESS) -> LabResult:
    """The degradation lab's experiment with MANet's kernel estimator (:mod:`engine.pipeline.lab`)."""
    return synthesise_and_estimate(hr_rgb_f32, labels_lr, params, scale, models_for("estimate", scale),
                                   progress=progress)


def preload(models_for: ModelsFor, method: str, scale: int, *, progress: Progress = NULL_PROGRESS) -> bool:
    """Load the models of ``method`` at ``scale`` into the cache now; True when there are any."""
    return models_for(method, scale) is not None
