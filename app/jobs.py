"""What the studio runs on its engine worker, one function per :class:`app.session.JobKind` (no Qt).

Each wraps an engine job (:mod:`engine.jobs`, :mod:`engine.pipeline.lab`) and, for runs that the GUI
shows, also prepares the display on the worker (8-bit SR, kernel lattice, IKC change curves, the
input's noise level), so the GUI thread only hands arrays to the views. ``models_for(method, scale)``
is the studio's model cache bound to a device (:meth:`app.bridge.EngineBridge.models_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.imageio import Image, to_u8
from engine.jobs import ModelsFor, upscale_job
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
    return RunOutput(result, to_u8(result.image.rgb_f32), lattice, changes, noise)


def lab_experiment(models_for: ModelsFor, hr_rgb_f32: np.ndarray, labels_lr: np.ndarray,
                   params: dict[int, tuple[float, float, float]], scale: int, *,
                   progress: Progress = NULL_PROGRESS) -> LabResult:
    """The degradation lab's experiment with MANet's kernel estimator (:mod:`engine.pipeline.lab`)."""
    return synthesise_and_estimate(hr_rgb_f32, labels_lr, params, scale, models_for("estimate", scale),
                                   progress=progress)


def preload(models_for: ModelsFor, method: str, scale: int, *, progress: Progress = NULL_PROGRESS) -> bool:
    """Load the models of ``method`` at ``scale`` into the cache now; True when there are any."""
    return models_for(method, scale) is not None
