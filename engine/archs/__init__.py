"""The networks in PyTorch: MANet, RRDB-SFT and IKC (SFTMD, predictor, corrector).

Importing this package imports torch: only training, export and the torch backend may do so, never
modules the GUI needs at run time. The table :data:`NETWORKS` lists every network explicitly (no
folder scan); each entry knows its presets, builder and graph input/output names and shapes.

>>> model = build_network("manet", "small", 4, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from engine.archs import ikc, manet, rrdb_sft

Shape = tuple[int | str, ...]
"""A tensor shape with symbolic axes: ``"N"`` batch, ``"H"``/``"W"`` (LR) or ``"4*H"`` (SR)."""


@dataclass(frozen=True)
class NetworkSpec:
    """What the rest of the engine needs to know about one network.

    Attributes:
        name: the card's ``network`` value.
        presets: named sizes (preset name → config dataclass).
        builder: ``builder(preset, scale) -> nn.Module`` with PyTorch-default weights.
        input_names: graph input names, in ``forward`` argument order.
        output_names: graph output names.
        input_shapes: ``input_shapes(preset, scale)`` → one symbolic shape per input.
        output_shapes: ``output_shapes(preset, scale)`` → one symbolic shape per output.
        multiple_of: spatial input sizes must be multiples of this (1: any size).
    """

    name: str
    presets: Mapping[str, object]
    builder: Callable[[str, int], nn.Module]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    input_shapes: Callable[[str, int], tuple[Shape, ...]]
    output_shapes: Callable[[str, int], tuple[Shape, ...]]
    multiple_of: int = 1


def _sr(scale: int) -> Shape:
    return ("N", 3, f"{scale}*H", f"{scale}*W")


NETWORKS: dict[str, NetworkSpec] = {
    "manet": NetworkSpec(
        name="manet",
        presets=manet.PRESETS,
        builder=manet.build,
        input_names=manet.INPUT_NAMES,
        output_names=manet.OUTPUT_NAMES,
        input_shapes=lambda p, s: (("N", 3, "H", "W"),),
        output_shapes=lambda p, s: (("N", manet.PRESETS[p].kernel_size ** 2, "H", "W"),),
        multiple_of=manet.MULTIPLE_OF,
    ),
    "rrdb_sft": NetworkSpec(
        name="rrdb_sft",
        presets=rrdb_sft.PRESETS,
        builder=rrdb_sft.build,
        input_names=rrdb_sft.INPUT_NAMES,
        output_names=rrdb_sft.OUTPUT_NAMES,
        input_shapes=lambda p, s: (("N", 3, "H", "W"), ("N", rrdb_sft.PRESETS[p].code_len, "H", "W")),
        output_shapes=lambda p, s: (_sr(s),),
    ),
    "sftmd": NetworkSpec(
        name="sftmd",
        presets=ikc.SFTMD_PRESETS,
        builder=ikc.build_sftmd,
        input_names=ikc.SFTMD_INPUT_NAMES,
        output_names=ikc.SFTMD_OUTPUT_NAMES,
        input_shapes=lambda p, s: (("N", 3, "H", "W"), ("N", ikc.SFTMD_PRESETS[p].code_len)),
        output_shapes=lambda p, s: (_sr(s),),
    ),
    "ikc_predictor": NetworkSpec(
        name="ikc_predictor",
        presets=ikc.PREDICTOR_PRESETS,
        builder=ikc.build_predictor,
        input_names=ikc.PREDICTOR_INPUT_NAMES,
        output_names=ikc.PREDICTOR_OUTPUT_NAMES,
        input_shapes=lambda p, s: (("N", 3, "H", "W"),),
        output_shapes=lambda p, s: (("N", ikc.PREDICTOR_PRESETS[p].code_len),),
    ),
    "ikc_corrector": NetworkSpec(
        name="ikc_corrector",
        presets=ikc.CORRECTOR_PRESETS,
        builder=ikc.build_corrector,
        input_names=ikc.CORRECTOR_INPUT_NAMES,
        output_names=ikc.CORRECTOR_OUTPUT_NAMES,
        input_shapes=lambda p, s: (("N", 3, "H", "W"), ("N", ikc.CORRECTOR_PRESETS[p].code_len)),
        output_shapes=lambda p, s: (("N", ikc.CORRECTOR_PRESETS[p].code_len),),
    ),
}


def get_spec(network: str) -> NetworkSpec:
    """The :class:`NetworkSpec` of ``network``; ``KeyError`` names the known networks."""
    try:
        return NETWORKS[network]
    except KeyError:
        raise KeyError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}") from None


def build_network(
    network: str, preset: str, scale: int, generator: torch.Generator | None = None
) -> nn.Module:
    """Build ``network`` at ``preset`` and ``scale`` on the CPU.

    With ``generator`` the weights are drawn from it by :func:`init_weights` and the global torch
    RNG is neither used nor advanced (the modules are created on the meta device, then
    materialised). Without one they are PyTorch's defaults, drawn from the global RNG.
    """
    spec = get_spec(network)
    if preset not in spec.presets:
        raise KeyError(f"unknown preset {preset!r} for {network}; known: {', '.join(spec.presets)}")
    if generator is None:
        return spec.builder(preset, scale)
    with torch.device("meta"):
        model = spec.builder(preset, scale)
    model = model.to_empty(device="cpu")
    init_weights(model, generator)
    for module in model.modules():  # constant buffers (not in the weights) come back uninitialised
        if hasattr(module, "init_constants"):
            module.init_constants()
    return model


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every conv / transposed-conv / linear weight and bias from ``generator``.

    Same distribution as PyTorch's default initialisation (``U(-1/√fan_in, 1/√fan_in)`` for weights
    and biases, ``fan_in`` computed from ``weight.shape[1:]`` as PyTorch does), but reproducible
    without touching the global seed. Modules are visited in registration order. Raises
    ``TypeError`` if the model holds a parameter outside those layers (it would stay uninitialised).
    """
    done: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = module.weight
            fan_in = math.prod(weight.shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
            done.add(id(weight))
            if module.bias is not None:
                module.bias.uniform_(-bound, bound, generator=generator)
                done.add(id(module.bias))
    missed = [name for name, p in model.named_parameters() if id(p) not in done]
    if missed:
        raise TypeError(f"init_weights does not know how to initialise {', '.join(missed)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (every parameter of these networks is used)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def example_inputs(
    network: str,
    preset: str,
    scale: int,
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, ...]:
    """Random float32 inputs in ``forward`` order for an LR (or SR, corrector) image of ``height × width``.

    Images are uniform in [0, 1]; codes are standard normal (PCA codes are centred).
    """
    spec = get_spec(network)
    tensors = []
    for shape in spec.input_shapes(preset, scale):
        concrete = [
            {"N": batch, "H": height, "W": width}[axis] if isinstance(axis, str) else axis for axis in shape
        ]
        if concrete[1] == 3 and len(concrete) == 4:
            tensors.append(torch.rand(concrete, generator=generator))
        else:
            tensors.append(torch.randn(concrete, generator=generator))
    return tuple(tensors)


__all__ = [
    "NETWORKS",
    "NetworkSpec",
    "Shape",
    "build_network",
    "count_parameters",
    "example_inputs",
    "get_spec",
    "ikc",
    "init_weights",
    "manet",
    "rrdb_sft",
]
