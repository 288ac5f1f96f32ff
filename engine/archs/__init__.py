"""The networks in PyTorch: MANet, RRDB-SFT and IKC (SFTMD, predictor, corrector).

Importing this package imports torch: only training, export and the torch backend may do so, never
modules the GUI needs at run time. The table :data:`NETWORKS` lists every network explicitly (no
folder scan); each entry knows its presets, builder and graph input/output names and shapes.

>>> model = build_network("manet", "small", 4, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

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


def _shape(kind: str, presets: Mapping[str, Any], preset: str, scale: int) -> Shape:
    """The symbolic shape of one graph tensor of ``kind``: ``image`` (N, 3, H, W), ``sr`` (the
    ``scale``× image), ``code`` (N, L), ``code_map`` (N, L, H, W), ``noise_map`` (N, 1, H, W) or ``kernels`` (N, k², H, W)."""
    if kind == "image":
        return ("N", 3, "H", "W")
    if kind == "sr":
        return ("N", 3, f"{scale}*H", f"{scale}*W")
    config = presets[preset]
    if kind == "code":
        return ("N", config.code_len)
    if kind == "code_map":
        return ("N", config.code_len, "H", "W")
    if kind == "noise_map":
        return ("N", 1, "H", "W")
    if kind == "kernels":
        return ("N", config.kernel_size**2, "H", "W")
    raise KeyError(f"unknown tensor kind {kind!r}")


def _network(name: str, presets: Mapping[str, Any], builder: Callable[[str, int], nn.Module],
             names: tuple[tuple[str, ...], tuple[str, ...]], kinds: tuple[tuple[str, ...], tuple[str, ...]],
             multiple_of: int = 1) -> NetworkSpec:
    """A :class:`NetworkSpec` from (input, output) graph names and the :func:`_shape` kinds of those tensors."""
    (inputs, outputs), (in_kinds, out_kinds) = names, kinds
    return NetworkSpec(
        name=name, presets=presets, builder=builder, input_names=inputs, output_names=outputs,
        input_shapes=lambda p, s: tuple(_shape(k, presets, p, s) for k in in_kinds),
        output_shapes=lambda p, s: tuple(_shape(k, presets, p, s) for k in out_kinds),
        multiple_of=multiple_of,
    )


NETWORKS: dict[str, NetworkSpec] = {spec.name: spec for spec in (
    _network("manet", manet.PRESETS, manet.build, (manet.INPUT_NAMES, manet.OUTPUT_NAMES),
             (("image",), ("kernels",)), multiple_of=manet.MULTIPLE_OF),
    _network("rrdb_sft", rrdb_sft.PRESETS, rrdb_sft.build, (rrdb_sft.INPUT_NAMES, rrdb_sft.OUTPUT_NAMES),
             (("image", "code_map", "noise_map"), ("sr",))),
    _network("sftmd", ikc.SFTMD_PRESETS, ikc.build_sftmd, (ikc.SFTMD_INPUT_NAMES, ikc.SFTMD_OUTPUT_NAMES),
             (("image", "code", "noise_map"), ("sr",))),
    _network("ikc_predictor", ikc.PREDICTOR_PRESETS, ikc.build_predictor,
             (ikc.PREDICTOR_INPUT_NAMES, ikc.PREDICTOR_OUTPUT_NAMES), (("image",), ("code",))),
    _network("ikc_corrector", ikc.CORRECTOR_PRESETS, ikc.build_corrector,
             (ikc.CORRECTOR_INPUT_NAMES, ikc.CORRECTOR_OUTPUT_NAMES), (("image", "code"), ("code",))),
)}
"""Every network, by the card's ``network`` name (explicit: no folder scan)."""


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

    Images are uniform in [0, 1]; noise maps (one channel) uniform in [0, 15] (σ on the 8-bit scale);
    codes are standard normal (PCA codes are centred).
    """
    spec = get_spec(network)
    tensors = []
    for shape in spec.input_shapes(preset, scale):
        concrete = [
            {"N": batch, "H": height, "W": width}[axis] if isinstance(axis, str) else axis for axis in shape
        ]
        if concrete[1] == 3 and len(concrete) == 4:
            tensors.append(torch.rand(concrete, generator=generator))
        elif concrete[1] == 1 and len(concrete) == 4:
            tensors.append(torch.rand(concrete, generator=generator) * 15.0)
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
