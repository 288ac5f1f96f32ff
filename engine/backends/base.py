"""The backend interface: a :class:`Backend` loads a model card into a :class:`Runner`.

A runner maps named float32 NCHW arrays to named float32 arrays::

    runner = backend.load(card)
    out = runner.run({"lr_rgb": lr_nchw_f32})   # {"kernels": (N, 441, H, W) float32}
    runner.provider                              # "CPUExecutionProvider", "torch-cuda", ...

Inputs are checked against the card before they reach the runtime (:func:`validate_inputs`), and
out-of-memory errors leave ``run`` as :class:`~engine.errors.DeviceOutOfMemory`.
"""

from __future__ import annotations

import abc
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Mapping

import numpy as np

from engine.errors import ModelError
from engine.modelcards import ModelCard


def importable(module: str) -> bool:
    """True when ``module`` imports (an optional runtime such as onnxruntime or torch)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def import_optional(module: str, missing: str) -> ModuleType:
    """``module`` imported; ModelError with the one line ``missing`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelError(missing) from exc

__all__ = ["Backend", "Runner", "validate_inputs", "physical_cores", "DEVICES", "DEVICE_LABELS"]

DEVICE_LABELS: dict[str, str] = {"auto": "Auto (GPU if available)", "cuda": "CUDA GPU", "cpu": "CPU"}
"""Device requests understood by every backend, with the studio's label for each: ``auto`` (GPU when
usable), ``cuda``, ``cpu``. The CLI choices, the training config and the studio read it."""
DEVICES = tuple(DEVICE_LABELS)


class Runner(abc.ABC):
    """A loaded model, ready to run. Subclasses implement :meth:`_run`."""

    def __init__(self, card: ModelCard, provider: str) -> None:
        self.card = card
        self.provider = provider

    @property
    def input_names(self) -> list[str]:
        return self.card.input_names

    @property
    def output_names(self) -> list[str]:
        return self.card.output_names

    @property
    def on_gpu(self) -> bool:
        """True when the runner executes on a GPU (CUDA, TensorRT or torch-cuda)."""
        return self.provider not in ("CPUExecutionProvider", "torch-cpu")

    @property
    def precision(self) -> str:
        """The numeric precision of the model that runs: a card's ``precision`` key (``fp16``,
        ``int8``) for reduced-precision graphs, ``fp32`` otherwise."""
        return str(self.card.extra.get("precision", "fp32"))

    @property
    def device_name(self) -> str:
        """Where it runs, for people: ``CPU``, or the GPU's name (subclasses know it)."""
        return "GPU" if self.on_gpu else "CPU"

    def run(self, inputs: Mapping[str, np.ndarray], *, keep_memory: bool = False) -> dict[str, np.ndarray]:
        """Run the model on float32 arrays shaped as the card says; returns float32 arrays by name.

        ``keep_memory``: keep the run's working memory for the next run (another network of the same
        job, which then reuses it instead of faulting in fresh pages); by default it is given back.

        Raises :class:`ModelError` for inputs that do not fit the card or an output holding NaN or
        inf (never passed on, where it would end as black pixels), and
        :class:`~engine.errors.DeviceOutOfMemory` when the device runs out of memory.
        """
        feed = validate_inputs(self.card, inputs)
        outputs = self._run(feed, keep_memory=keep_memory)
        for name, value in outputs.items():
            # min/max propagate NaN and reach ±inf: two reductions, no full-size mask per tile
            if value.size and not (np.isfinite(value.min()) and np.isfinite(value.max())):
                bad = int(value.size - np.count_nonzero(np.isfinite(value)))
                raise ModelError(
                    f"model {self.card.id} on {self.provider}: output {name} has {bad} non-finite "
                    "values (NaN or inf); the result was discarded"
                )
        return outputs

    @abc.abstractmethod
    def _run(self, feed: dict[str, np.ndarray], *, keep_memory: bool = False) -> dict[str, np.ndarray]:
        """Run on validated, C-contiguous float32 inputs (``keep_memory``: see :meth:`run`)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.card.id!r}, provider={self.provider!r})"


class Backend(abc.ABC):
    """Something that turns a model card into a :class:`Runner` (ONNX Runtime or PyTorch)."""

    name: str = "?"

    @abc.abstractmethod
    def load(self, card: ModelCard) -> Runner:
        """Load the card's model; raises :class:`ModelError` when its files are missing or bad."""


def validate_inputs(card: ModelCard, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check ``inputs`` against the card and return them as C-contiguous arrays.

    Checks: exactly the card's input names; dtype float32 (no silent casts); rank; every fixed
    size in the card's shape (the channel count); the same size for the same symbolic dimension
    across inputs (e.g. ``N``, or ``h``/``w`` shared by ``lr_rgb`` and ``kernel_code``); non-empty
    dimensions; and, for cards tiled with a ``multiple_of``, image height and width multiples of it.
    Raises :class:`ModelError` naming the model and the input.
    """
    model = card.id
    expected = card.input_names
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown input(s) {', '.join(unknown)}")
        raise ModelError(f"model {model}: {'; '.join(parts)} (expects {', '.join(expected)})")

    multiple = card.tiling.get("multiple_of") if isinstance(card.tiling, dict) else None
    symbols: dict[str, tuple[int, str]] = {}
    feed: dict[str, np.ndarray] = {}
    for spec in card.inputs:
        arr = inputs[spec.name]
        if not isinstance(arr, np.ndarray):
            raise ModelError(f"model {model}: input {spec.name} must be a numpy array, not {type(arr).__name__}")
        want_shape = "(" + ", ".join(str(d) for d in spec.shape) + ")"
        if arr.ndim != spec.rank:
            raise ModelError(
                f"model {model}: input {spec.name} must have rank {spec.rank} {want_shape}, "
                f"got shape {arr.shape}"
                + (" (add a batch axis: NCHW)" if spec.rank == 4 and arr.ndim == 3 else "")
            )
        if arr.dtype != np.dtype(spec.dtype):
            raise ModelError(f"model {model}: input {spec.name} must be {spec.dtype}, got {arr.dtype}")
        for axis, (want, got) in enumerate(zip(spec.shape, arr.shape)):
            if got == 0:
                raise ModelError(f"model {model}: input {spec.name} has an empty axis {axis}: shape {arr.shape}")
            if isinstance(want, int):
                if got != want:
                    what = f"{want} channels" if axis == 1 else f"size {want} on axis {axis}"
                    raise ModelError(
                        f"model {model}: input {spec.name} must have {what} (shape {want_shape}), "
                        f"got shape {arr.shape}"
                    )
            else:
                seen = symbols.get(want)
                if seen is not None and seen[0] != got:
                    raise ModelError(
                        f"model {model}: input {spec.name} has {want}={got} but {seen[1]} has {want}={seen[0]}"
                    )
                symbols.setdefault(want, (got, spec.name))
        if multiple and spec.rank == 4 and spec.shape[1] == 3:
            h, w = arr.shape[2:]
            if h % int(multiple) or w % int(multiple):
                raise ModelError(
                    f"model {model}: input {spec.name} height and width must be multiples of {multiple} "
                    f"(pad outside the model), got {h}x{w}"
                )
        feed[spec.name] = np.ascontiguousarray(arr)
    return feed


def physical_cores() -> int:
    """Physical CPU cores this process may use (hyper-threads counted once); at least 1.

    Reads the Linux CPU topology for the CPUs in this process's affinity mask; elsewhere falls back
    to ``os.cpu_count()``.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topo / "physical_package_id").read_text().strip()
            core = (topo / "core_id").read_text().strip()
        except OSError:
            return max(1, len(cpus))
        cores.add((package, core))
    return max(1, len(cores) or len(cpus))
