"""Loading the networks a pipeline needs, through their model cards."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from engine.backends import Runner, load_runner
from engine.errors import ModelError
from engine.methods import networks_for
from engine.modelcards import ModelCard, find_card, verify
from engine.pca import KernelPCA, load_checked_basis, shipped_basis_path


@dataclass
class ModelSet:
    """Loaded runners (by network name) and PCA bases (by network name) for one scale."""

    scale: int
    runners: dict[str, Runner] = field(default_factory=dict)
    cards: dict[str, ModelCard] = field(default_factory=dict)
    pcas: dict[str, KernelPCA] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """The execution provider actually in use ("CPUExecutionProvider", "torch-cuda", …)."""
        providers = sorted({r.provider for r in self.runners.values()})
        return "+".join(providers) if providers else "numpy"

    @property
    def execution(self) -> str:
        """Device, execution provider and precision actually used, for a status bar or report:
        ``"NVIDIA H200 (GPU 0) · CUDAExecutionProvider · fp32"``, ``"CPU · CPUExecutionProvider · fp32"``."""
        return execution_text(list(self.runners.values()))

    def runner(self, network: str) -> Runner:
        try:
            return self.runners[network]
        except KeyError:
            raise ModelError(f"no {network} model loaded (loaded: {', '.join(self.runners) or 'none'})") from None

    def pca(self, network: str) -> KernelPCA:
        try:
            return self.pcas[network]
        except KeyError:
            raise ModelError(f"no PCA basis loaded for {network}") from None


def execution_text(runners: Sequence[Runner]) -> str:
    """``device · provider · precision`` of ``runners`` (each part joined with ``+`` when they differ);
    no runners (bicubic) → ``CPU · numpy · fp32``."""
    if not runners:
        return "CPU · numpy · fp32"

    def part(values: list[str]) -> str:
        return "+".join(sorted(set(values)))

    return " · ".join((part([r.device_name for r in runners]), part([r.provider for r in runners]),
                       part([r.precision for r in runners])))


def load_models(
    networks: Sequence[str],
    scale: int,
    *,
    device: str = "auto",
    backend: str = "auto",
    threads: int | None = None,
    models_dir: str | Path | None = None,
    check_sha256: bool = True,
    precision: str = "auto",
) -> ModelSet:
    """Find each network's card for ``scale``, check it, and load a runner (and its PCA basis).

    With ``check_sha256`` every file the cards name is checked against its recorded sha256 as it is
    loaded: the graph here and in the backend, torch weights in the torch backend, and the PCA basis
    against its own card (:func:`engine.pca.load_checked_basis`). ``precision`` (``auto`` | ``fp32`` |
    ``int8``): which graph runs, see :mod:`engine.backends.onnx_backend` (``auto``: int8 on the CPU
    where a card ships one)."""
    models = ModelSet(scale=int(scale))
    for network in networks:
        card = find_card(network, scale, models_dir=models_dir)
        if check_sha256 and card.graph_path.is_file():
            verify(card)
        models.cards[network] = card
        models.runners[network] = load_runner(card, backend, device=device, threads=threads,
                                                precision=precision)
        load_basis = load_checked_basis if check_sha256 else KernelPCA.load
        if card.pca_path is not None:
            models.pcas[network] = load_basis(card.pca_path)
        elif network == "manet":  # MANet's kernels are summarised with the MANet basis of its scale
            models.pcas[network] = load_basis(shipped_basis_path("manet", scale, card.folder))
    return models


def load_for_method(method: str, scale: int, **kwargs) -> ModelSet:
    """The networks ``method`` runs (its row of :data:`engine.methods.METHOD_TABLE`), loaded for ``scale``
    by :func:`load_models` with ``kwargs``; ``ValueError`` for an unknown method."""
    return load_models(networks_for(method), scale, **kwargs)
