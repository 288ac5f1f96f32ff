"""What the studio holds per opened image, free of Qt: the image, one result per method, painted regions.

A run adds (or replaces) the result of its method and makes it the one shown; results of the other
methods stay, so MANet and IKC can be compared on the same image. The painted label map belongs to
the image: it is written back after every stroke and survives runs and switching images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.imageio import Image
from engine.methods import METHOD_TABLE, UPSCALE, methods_for
from engine.noise import NoiseEstimate
from engine.upscale import UpscaleResult

from app.analysis import Lattice

_entry_ids = itertools.count(1)

METHOD_SHORT = {m: METHOD_TABLE[m].short for m in methods_for(UPSCALE)}
"""Short method names for titles and pickers (the run panel's long labels live in ``app.panels``)."""


def device_name(provider: str) -> str:
    """"CPU", "CUDA", "TensorRT" from an onnxruntime provider name ("CPUExecutionProvider", ...)."""
    return provider.removesuffix("ExecutionProvider") or provider


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


@dataclass
class QueueEntry:
    """One opened image: where it came from, its pixels, its results by method and its painted regions."""

    name: str
    image: Image
    path: Path | None = None
    results: dict[str, RunOutput] = field(default_factory=dict)
    shown: str | None = None
    labels: np.ndarray | None = None
    entry_id: int = field(default_factory=lambda: next(_entry_ids))

    # results -------------------------------------------------------------------------------------------
    def add_result(self, output: RunOutput) -> None:
        """Keep ``output`` as this image's result for its method and show it."""
        self.results[output.method] = output
        self.shown = output.method

    def show(self, method: str) -> None:
        if method not in self.results:
            raise KeyError(f"{self.name} has no {METHOD_SHORT.get(method, method)} result")
        self.shown = method

    @property
    def output(self) -> RunOutput | None:
        """The result on show (None before any run)."""
        return self.results.get(self.shown) if self.shown is not None else None

    @property
    def result(self) -> UpscaleResult | None:
        out = self.output
        return None if out is None else out.result

    @property
    def sr_u8(self) -> np.ndarray | None:
        out = self.output
        return None if out is None else out.sr_u8

    @property
    def ikc_changes(self) -> tuple[np.ndarray, np.ndarray] | None:
        out = self.results.get("ikc")
        return None if out is None else out.ikc_changes

    def kernel_source(self) -> RunOutput | None:
        """The result whose per-pixel kernel map feeds the lattice and the region statistics: the one
        shown if it has a map, otherwise the MANet result if there is one."""
        for out in (self.output, self.results.get("manet")):
            if out is not None and out.result.kernel_map is not None:
                return out
        return None

    def other_kernel(self, lr_row: int, lr_col: int, ikc_iteration: int):
        """The kernel the *other* blind method found at LR pixel (row, col): MANet's when IKC is shown and
        IKC's (whole image, iteration ``ikc_iteration``) when MANet is shown; ``(KernelInfo, method)`` or
        None when this image lacks the other result."""
        from engine.pipeline.kernelmap import describe_kernel

        other = {"manet": "ikc", "ikc": "manet"}.get(self.shown or "")
        out = self.results.get(other) if other else None
        if out is None:
            return None
        if other == "manet":
            return out.result.kernel_map.kernel_at(lr_col, lr_row, space="lr"), other
        its = out.result.ikc.iterations
        return describe_kernel(its[min(ikc_iteration, len(its) - 1)].kernel, (lr_row, lr_col)), other

    # regions -------------------------------------------------------------------------------------------
    def lr_hw(self) -> tuple[int, int]:
        return self.image.height, self.image.width

    def labels_or_empty(self) -> np.ndarray:
        """The painted label map (a fresh empty one when none was painted or its size is stale)."""
        if self.labels is None or self.labels.shape != self.lr_hw():
            return np.zeros(self.lr_hw(), np.uint8)
        return self.labels

    def keep_labels(self, labels: np.ndarray) -> None:
        if labels.shape == self.lr_hw():
            self.labels = labels.copy()
