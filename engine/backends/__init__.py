"""Runtime backends: one interface (:class:`Backend` → :class:`Runner`), two implementations.

- :class:`~engine.backends.onnx_backend.OnnxBackend`: onnxruntime, the default;
- :class:`~engine.backends.torch_backend.TorchBackend`: PyTorch eager, for parity, training and as
  the fallback when onnxruntime is missing or a card's graph file is absent.

Typical use::

    card = find_card("manet", 4)
    runner = get_backend("auto", card).load(card)
    kernels = runner.run({"lr_rgb": lr_nchw_f32})["kernels"]

Neither onnxruntime nor torch is imported by this package until a backend is created or used.
"""

from __future__ import annotations

import logging

from engine.backends.base import DEVICE_LABELS, DEVICES, Backend, Runner, physical_cores, validate_inputs
from engine.errors import ModelError
from engine.modelcards import ModelCard

__all__ = [
    "BACKENDS",
    "DEVICES",
    "DEVICE_LABELS",
    "Backend",
    "Runner",
    "get_backend",
    "load_runner",
    "physical_cores",
    "validate_inputs",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")


def get_backend(
    kind: str = "auto",
    card: ModelCard | None = None,
    *,
    device: str = "auto",
    threads: int | None = None,
    precision: str = "auto",
) -> Backend:
    """The backend to run ``card`` with.

    ``kind="auto"``: ONNX Runtime when onnxruntime imports and the card's graph file exists (or no
    card is given), else PyTorch; the choice and its reason are logged. ``"onnx"`` / ``"torch"``
    force one (:class:`ModelError` when its library is not installed). ``precision`` (``auto`` |
    ``fp32`` | ``int8``) is the ONNX backend's (see :mod:`engine.backends.onnx_backend`); PyTorch runs fp32.
    """
    from engine.backends.onnx_backend import OnnxBackend, onnxruntime_available
    from engine.backends.torch_backend import TorchBackend, torch_available

    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")
    if kind == "onnx":
        if not onnxruntime_available():
            raise ModelError("onnxruntime is not installed; install kernelscope[cpu] or kernelscope[gpu]")
        return OnnxBackend(device, threads, precision=precision)
    if kind == "torch":
        if not torch_available():
            raise ModelError("PyTorch is not installed; the torch backend needs kernelscope[train]")
        return TorchBackend(device, threads)

    what = card.id if card is not None else "models"
    if not onnxruntime_available():
        reason = "onnxruntime is not installed"
    elif card is not None and not card.graph_path.is_file():
        reason = f"graph {card.graph_path} is missing"
    else:
        log.debug("backend for %s: onnxruntime", what)
        return OnnxBackend(device, threads, precision=precision)
    if not torch_available():
        raise ModelError(
            f"cannot run {what}: {reason}, and PyTorch (the fallback) is not installed"
            + (f"; regenerate the graph with `kernelscope-cli export --card {card.id}`" if card is not None else "")
        )
    log.warning("backend for %s: PyTorch eager (%s)", what, reason)
    return TorchBackend(device, threads)


def load_runner(
    card: ModelCard, kind: str = "auto", *, device: str = "auto", threads: int | None = None,
    precision: str = "auto",
) -> Runner:
    """``get_backend(kind, card, device=..., threads=..., precision=...).load(card)``."""
    return get_backend(kind, card, device=device, threads=threads, precision=precision).load(card)
