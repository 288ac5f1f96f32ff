"""PyTorch eager backend: the same networks as the ONNX graphs, built from ``engine.archs``.

Used for parity checks, training-time evaluation, and as the fallback when onnxruntime is not
installed or a card's graph file is missing. torch is imported only when a model is loaded, so
importing this module (and the GUI) does not need torch.

Weights come from the card's ``weights`` file (a ``state_dict`` saved with ``torch.save``), checked
against ``weights_sha256``, loaded with ``torch.load(..., weights_only=True)`` and
``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from engine.backends.base import DEVICES, Backend, Runner, import_optional, importable
from engine.errors import DeviceUnavailable, ModelError, classify_device_error
from engine.modelcards import ModelCard

__all__ = ["TorchBackend", "TorchRunner", "build_module", "torch_available"]

log = logging.getLogger(__name__)


def torch_available() -> bool:
    """True when torch imports."""
    return importable("torch")


def _torch():
    return import_optional("torch", "PyTorch is not installed; the torch backend needs kernelscope[train] "
                           "(the application itself runs on onnxruntime)")


def build_module(card: ModelCard) -> Any:
    """An untrained ``torch.nn.Module`` for the card's network, preset and scale.

    Initialised from a fixed private generator so the global torch RNG is not touched (the weights
    are replaced by the card's right after).
    """
    torch = _torch()
    from engine.archs import build_network

    try:
        return build_network(card.network, card.preset, card.scale, generator=torch.Generator().manual_seed(0))
    except (KeyError, ValueError) as exc:
        raise ModelError(f"model card {card.id}: cannot build {card.describe()}: {exc}") from exc


def _resolve_device(torch: Any, device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        build = torch.version.cuda
        raise DeviceUnavailable("cuda", f"torch {torch.__version__} sees no CUDA device"
                                + ("" if build else " (it is a CPU-only build)"))
    return "cpu"


class TorchRunner(Runner):
    """A ``torch.nn.Module`` in eval mode, run under ``torch.inference_mode()``.

    Inputs are passed to ``forward`` positionally in the card's input order; a tuple/list output
    is matched to the card's outputs in order.
    """

    def __init__(self, card: ModelCard, module: Any, device: str = "cpu", *, channels_last: bool = False) -> None:
        torch = _torch()
        super().__init__(card, f"torch-{device}")
        self.device = torch.device(device)
        self.channels_last = channels_last
        module = module.eval().to(self.device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module

    @property
    def device_name(self) -> str:
        if self.device.type != "cuda":
            return "CPU"
        return f"{_torch().cuda.get_device_name(self.device)} (GPU {self.device.index or 0})"

    def _run(self, feed: dict[str, np.ndarray], *, keep_memory: bool = False) -> dict[str, np.ndarray]:
        torch = _torch()
        try:
            with torch.inference_mode():
                args = []
                for name in self.input_names:
                    t = torch.from_numpy(feed[name]).to(self.device)
                    if self.channels_last and t.ndim == 4:
                        t = t.contiguous(memory_format=torch.channels_last)
                    args.append(t)
                out = self.module(*args)
                outs = list(out) if isinstance(out, (tuple, list)) else [out]
                if len(outs) != len(self.output_names):
                    raise ModelError(
                        f"model {self.card.id}: network returned {len(outs)} output(s), card lists "
                        f"{len(self.output_names)} ({', '.join(self.output_names)})"
                    )
                return {
                    name: t.detach().float().contiguous().cpu().numpy()
                    for name, t in zip(self.output_names, outs)
                }
        except ModelError:
            raise
        except Exception as exc:
            err = classify_device_error(exc, self.provider)
            if err is exc:
                raise
            raise err from exc


class TorchBackend(Backend):
    """Runs model cards with PyTorch eager.

    Args:
        device: ``auto`` (CUDA when torch sees it), ``cuda`` (CUDA or
            :class:`~engine.errors.DeviceUnavailable`) or ``cpu``.
        threads: if given, ``torch.set_num_threads(threads)`` (a process-wide setting).
        channels_last: run 4-D tensors in channels-last memory format (often faster on CPU).
        builder: ``builder(card) -> nn.Module``; default :func:`build_module` (``engine.archs``).
    """

    name = "torch"

    def __init__(
        self,
        device: str = "auto",
        threads: int | None = None,
        *,
        channels_last: bool = False,
        builder: Callable[[ModelCard], Any] | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        self.device = device
        self.threads = threads
        self.channels_last = channels_last
        self.builder = builder

    def load(self, card: ModelCard) -> TorchRunner:
        """Build the card's network, load and check its weights, and return a runner."""
        torch = _torch()
        if self.threads:
            torch.set_num_threads(int(self.threads))
        from engine.archs.weights import load_card_weights  # torch: imported only when this backend loads

        builder = self.builder if self.builder is not None else build_module
        module = load_card_weights(card, builder(card))
        device = _resolve_device(torch, self.device)
        log.debug("model %s on torch-%s", card.id, device)
        return TorchRunner(card, module, device, channels_last=self.channels_last)
