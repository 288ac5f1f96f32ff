"""ONNX export of the networks and upkeep of their model cards.

Every network goes to its own self-contained ``.onnx`` file (no external-data side file) with
dynamic batch, height and width, opset :data:`DEFAULT_OPSET`. The dynamo exporter
(``torch.onnx.export(..., dynamo=True)``) is tried first; the TorchScript exporter is the fallback
when dynamo fails or its graph does not match the torch module. Each exported graph is checked with
``onnx.checker`` and run once in onnxruntime against the torch module (parity) before it replaces the
old file (temporary file + rename). The card records which exporter produced the graph
(``"exporter"``), its sha256, the parameter count and the opset.

Typical use::

    export_card(load_card(models_dir() / "manet_small_x4.json"))   # re-export from the card's weights
    export_all()                                                     # every card in models/
    init_untrained("manet", "small", 4, seed=0)                      # seeded weights + card + graph

This module imports torch and onnx: only the CLI sub-command ``export`` and training use it.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from engine.archs import NETWORKS, build_network, count_parameters, example_inputs, get_spec, ikc, manet, rrdb_sft
from engine.archs.weights import load_card_weights
from engine.atomic import write_atomic
from engine.errors import ModelError
from engine.modelcards import ModelCard, TensorSpec, find_cards, save_card, sha256_file
from engine.paths import models_dir as default_models_dir

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
Exporter = Literal["auto", "dynamo", "torchscript"]

PARITY_ATOL = 1e-4
PARITY_RTOL = 1e-4
"""An export is accepted when max |onnxruntime − torch| ≤ PARITY_ATOL + PARITY_RTOL · max |torch|."""

TRACE_SIZE = (2, 24, 32)
"""(batch, height, width) of the example inputs the graph is traced with. None of them is 0 or 1
(torch.export would specialise such axes) and height ≠ width; multiples of 8 suit MANet."""
CHECK_SIZE = (1, 40, 48)
"""(batch, height, width) of the parity check run after export: a different size than the trace, so
a graph that silently fixed a dynamic axis fails it."""

INITIAL_ARTIFACTS: tuple[tuple[str, str, int], ...] = (
    ("manet", "small", 4),
    ("rrdb_sft", "small", 4),
    ("sftmd", "small", 4),
    ("ikc_predictor", "small", 4),
    ("ikc_corrector", "small", 4),
)
"""(network, preset, scale) of the artifacts shipped before any training."""

_LAYOUTS = {
    "lr_rgb": ("NCHW, RGB", [0.0, 1.0]),
    "sr_rgb": ("NCHW, RGB", [0.0, 1.0]),
    "kernels": ("NCHW, 21x21 kernel per LR pixel (row-major), softmax over channels", [0.0, 1.0]),
    "kernel_code": ("kernel PCA code", None),
    "noise_sigma_255": ("estimated noise std per LR pixel, 8-bit scale (engine.noise)", [0.0, 255.0]),
    "code_delta": ("kernel PCA code correction", None),
}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        exporter: ``"dynamo"`` or ``"torchscript"``.
        opset: ONNX opset of the default domain.
        sha256: hex digest of the file.
        max_abs_diff: largest |onnxruntime − torch| of the post-export parity run.
    """

    path: Path
    exporter: str
    opset: int
    sha256: str
    max_abs_diff: float


# --- card contents derived from the architecture ---------------------------------------------------


def card_id(network: str, preset: str, scale: int) -> str:
    """The id (and file stem) of a network card, e.g. ``manet_small_x4``."""
    return f"{network}_{preset}_x{scale}"


def pca_file(network: str, scale: int) -> str | None:
    """The PCA basis a network's codes refer to: ``pca_manet_x{s}.npz``, ``pca_ikc_x{s}.npz`` or None."""
    if network == "manet":
        return None
    if network == "rrdb_sft":
        return f"pca_manet_x{scale}.npz"
    return f"pca_ikc_x{scale}.npz"


def tensor_specs(network: str, preset: str, scale: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The card's ``inputs`` and ``outputs`` for a network (names, symbolic shapes, ranges, layouts)."""
    spec = get_spec(network)

    def make(names: Sequence[str], shapes: Sequence[tuple]) -> list[TensorSpec]:
        out = []
        for name, shape in zip(names, shapes):
            layout, value_range = _LAYOUTS[name]
            out.append(TensorSpec(name=name, shape=list(shape), dtype="float32", range=value_range, layout=layout))
        return out

    return (
        make(spec.input_names, spec.input_shapes(preset, scale)),
        make(spec.output_names, spec.output_shapes(preset, scale)),
    )


def tiling_policy(network: str, preset: str, scale: int) -> dict:
    """How a network may be tiled (the card's ``tiling``).

    MANet tiles exactly with :data:`engine.archs.manet.CONTEXT_LR_PX` of context at origins that are
    multiples of 8; the SR networks overlap tiles by their receptive radius and blend; predictor and
    corrector pool over the whole image and must not be tiled.
    """
    if network == "manet":
        return {"policy": "exact", "context_lr_px": manet.CONTEXT_LR_PX, "multiple_of": manet.MULTIPLE_OF}
    if network == "rrdb_sft":
        return {"policy": "overlap_blend", "overlap_lr_px": rrdb_sft.receptive_radius_lr_px(preset, scale)}
    if network == "sftmd":
        return {"policy": "overlap_blend", "overlap_lr_px": ikc.sftmd_receptive_radius_lr_px(preset, scale)}
    get_spec(network)  # raises for unknown networks
    return {"policy": "whole_image"}


# --- export -------------------------------------------------------------------------------------


def _dynamic_shapes(network: str, preset: str, scale: int) -> dict[str, dict[int, object]]:
    """``dynamic_shapes`` for ``torch.export``: batch, height and width of every input are dynamic."""
    from torch.export import Dim

    spec = get_spec(network)
    batch = Dim("N")
    if spec.multiple_of > 1:
        height = spec.multiple_of * Dim("H_div")
        width = spec.multiple_of * Dim("W_div")
    else:
        height, width = Dim("H"), Dim("W")
    dims = {"N": batch, "H": height, "W": width}
    return {
        name: {axis: dims[sym] for axis, sym in enumerate(shape) if isinstance(sym, str)}
        for name, shape in zip(spec.input_names, spec.input_shapes(preset, scale))
    }


def _dynamic_axes(network: str, preset: str, scale: int) -> dict[str, dict[int, str]]:
    """``dynamic_axes`` for the TorchScript exporter (inputs and outputs)."""
    spec = get_spec(network)
    axes: dict[str, dict[int, str]] = {}
    names = list(spec.input_names) + list(spec.output_names)
    shapes = list(spec.input_shapes(preset, scale)) + list(spec.output_shapes(preset, scale))
    for name, shape in zip(names, shapes):
        axes[name] = {axis: sym for axis, sym in enumerate(shape) if isinstance(sym, str)}
    return axes


def _export_dynamo(model: nn.Module, network: str, preset: str, scale: int, args: tuple, opset: int) -> bytes:
    spec = get_spec(network)
    with warnings.catch_warnings():
        # torch-internal deprecation chatter, and a note that equal axis names were merged
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used", category=UserWarning)
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(network, preset, scale),
            opset_version=opset,
            output_names=list(spec.output_names),
            external_data=False,
            verbose=False,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.onnx"
        program.save(path, external_data=False)
        return path.read_bytes()


def _export_torchscript(model: nn.Module, network: str, preset: str, scale: int, args: tuple, opset: int) -> bytes:
    spec = get_spec(network)
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        args,
        buffer,
        dynamo=False,
        input_names=list(spec.input_names),
        output_names=list(spec.output_names),
        dynamic_axes=_dynamic_axes(network, preset, scale),
        opset_version=opset,
    )
    return buffer.getvalue()


def _check_graph(data: bytes, network: str) -> int:
    """``onnx.checker`` (full check) on serialised ``data``; returns the default-domain opset."""
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    spec = get_spec(network)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != list(spec.input_names) or outputs != list(spec.output_names):
        raise ModelError(
            f"exported {network} graph has inputs {inputs} and outputs {outputs}; expected "
            f"{list(spec.input_names)} and {list(spec.output_names)}"
        )
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer):
        raise ModelError(f"exported {network} graph refers to external data")
    return next(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))


def _parity(
    graph: bytes | str | os.PathLike[str],
    model: nn.Module,
    network: str,
    preset: str,
    scale: int,
    size: tuple[int, int, int],
    generator: torch.Generator,
) -> tuple[float, float]:
    """(max |onnxruntime − torch|, max |torch|) over all outputs, on random inputs of
    ``size = (batch, height, width)``.

    ``graph`` is a file path or serialised bytes; inputs come from
    :func:`engine.archs.example_inputs` with ``generator``. Raises :class:`ModelError` if the
    output shapes differ. Runs onnxruntime on the CPU provider.
    """
    import onnxruntime as ort

    batch, height, width = size
    args = example_inputs(network, preset, scale, batch, height, width, generator)
    with torch.inference_mode():
        expected = model.eval()(*args)
    expected_list = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    source = graph if isinstance(graph, bytes) else str(graph)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    spec = get_spec(network)
    feed = {name: t.numpy() for name, t in zip(spec.input_names, args)}
    got = session.run(list(spec.output_names), feed)
    worst = magnitude = 0.0
    for name, ref, out in zip(spec.output_names, expected_list, got):
        ref_np = ref.numpy()
        if out.shape != ref_np.shape:
            raise ModelError(f"{network} output {name}: onnxruntime shape {out.shape}, torch {ref_np.shape}")
        if out.size:
            worst = max(worst, float(np.max(np.abs(out - ref_np))))
            magnitude = max(magnitude, float(np.max(np.abs(ref_np))))
    return worst, magnitude


def parity(*args: Any, **kwargs: Any) -> float:
    """Max |onnxruntime − torch| on random inputs: the first number of :func:`_parity` (same arguments)."""
    return _parity(*args, **kwargs)[0]


def export_onnx(
    model: nn.Module,
    network: str,
    preset: str,
    scale: int,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "auto",
) -> ExportResult:
    """Export ``model`` (a ``network`` at ``preset``/``scale``) to a self-contained ONNX file.

    ``exporter="auto"`` tries dynamo and falls back to TorchScript when dynamo raises or its graph
    fails the checker or the parity run at :data:`CHECK_SIZE` (see :data:`PARITY_RTOL`). The file
    is written to a temporary name beside ``path`` and renamed, so ``path`` is never left
    half-written. Raises :class:`ModelError` when no exporter succeeds.
    """
    if exporter not in ("auto", "dynamo", "torchscript"):
        raise ValueError(f"exporter must be auto, dynamo or torchscript, got {exporter!r}")
    model = model.eval()
    trace_args = example_inputs(network, preset, scale, *TRACE_SIZE, generator=torch.Generator().manual_seed(0))
    order = ["dynamo", "torchscript"] if exporter == "auto" else [exporter]
    failures: list[str] = []
    for name in order:
        try:
            make = _export_dynamo if name == "dynamo" else _export_torchscript
            data = make(model, network, preset, scale, trace_args, opset)
            found_opset = _check_graph(data, network)
            diff, magnitude = _parity(data, model, network, preset, scale, CHECK_SIZE, torch.Generator().manual_seed(1))
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the next one
            failures.append(f"{name}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            log.warning("%s export of %s failed: %s", name, network, failures[-1])
            continue
        tolerance = PARITY_ATOL + PARITY_RTOL * magnitude
        if not diff <= tolerance:
            failures.append(f"{name}: parity {diff:.3g} exceeds {tolerance:.3g}")
            log.warning("%s export of %s rejected: %s", name, network, failures[-1])
            continue
        out = Path(path)
        _atomic_write(out, data)
        log.info("exported %s (%s, x%d) with %s to %s; parity %.2g", network, preset, scale, name, out, diff)
        return ExportResult(out, name, found_opset, sha256_file(out), diff)
    raise ModelError(f"could not export {network} ({preset}, x{scale}): " + "; ".join(failures))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, overwrite=True)


# --- cards ----------------------------------------------------------------------------------------


def load_weights(card: ModelCard) -> nn.Module:
    """Build the card's network and load its weights (sha256-checked, ``weights_only``, strict)."""
    return load_card_weights(card, build_network(card.network, card.preset, card.scale)).eval()


def export_card(card: ModelCard, *, opset: int = DEFAULT_OPSET, exporter: Exporter = "auto") -> ModelCard:
    """Re-export the graph of ``card`` from its weights and update the card file.

    Updates ``graph_sha256``, ``parameters``, ``opset``, ``inputs``/``outputs`` (always derived from the
    architecture) and ``exporter``; fills ``tiling`` and ``pca`` only when the card has none. Returns
    the saved card.
    """
    model = load_weights(card)
    result = export_onnx(model, card.network, card.preset, card.scale, card.graph_path, opset=opset, exporter=exporter)
    inputs, outputs = tensor_specs(card.network, card.preset, card.scale)
    card.graph_sha256 = result.sha256
    card.parameters = count_parameters(model)
    card.opset = result.opset
    card.inputs = inputs
    card.outputs = outputs
    if not card.tiling:
        card.tiling = tiling_policy(card.network, card.preset, card.scale)
    if card.pca is None:
        card.pca = pca_file(card.network, card.scale)
    card.extra["exporter"] = result.exporter
    save_card(card)
    return card


def export_all(
    models_folder: str | os.PathLike[str] | None = None,
    *,
    ids: Sequence[str] | None = None,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "auto",
) -> list[ModelCard]:
    """Re-export every network card in ``models_folder`` (or only those in ``ids``).

    Raises :class:`ModelError` naming unknown ids. Returns the updated cards.
    """
    cards = find_cards(models_folder if models_folder is not None else default_models_dir())
    if ids is not None:
        by_id = {c.id: c for c in cards}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ModelError(f"no model card with id {', '.join(unknown)} (available: {', '.join(by_id) or 'none'})")
        cards = [by_id[i] for i in ids]
    return [export_card(c, opset=opset, exporter=exporter) for c in cards]


def _atomic_torch_save(state: dict, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _atomic_write(path, buffer.getvalue())


def init_untrained(
    network: str,
    preset: str,
    scale: int,
    *,
    seed: int = 0,
    models_folder: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "auto",
) -> ModelCard:
    """Write seeded untrained weights, a card and the exported graph for one network.

    Weights come from :func:`engine.archs.init_weights` with ``torch.Generator().manual_seed(seed)``
    (the global RNG is not touched). Refuses to replace an existing card unless ``overwrite``.
    """
    folder = Path(models_folder) if models_folder is not None else default_models_dir()
    ident = card_id(network, preset, scale)
    card_path = folder / f"{ident}.json"
    if card_path.exists() and not overwrite:
        raise ModelError(f"model card {card_path} exists; pass overwrite=True to replace it")
    model = build_network(network, preset, scale, generator=torch.Generator().manual_seed(seed))
    weights = folder / f"{ident}.pt"
    _atomic_torch_save(model.state_dict(), weights)
    inputs, outputs = tensor_specs(network, preset, scale)
    card = ModelCard(
        id=ident,
        network=network,
        preset=preset,
        scale=scale,
        graph=f"{ident}.onnx",
        graph_sha256="",
        inputs=inputs,
        outputs=outputs,
        weights=weights.name,
        weights_sha256=sha256_file(weights),
        pca=pca_file(network, scale),
        parameters=count_parameters(model),
        opset=opset,
        tiling=tiling_policy(network, preset, scale),
        training={"steps": 0, "note": f"untrained initialisation (seed {seed}); replaced by the training issue"},
        metrics={},
        path=card_path,
    )
    return export_card(card, opset=opset, exporter=exporter)


__all__ = [
    "CHECK_SIZE",
    "DEFAULT_OPSET",
    "INITIAL_ARTIFACTS",
    "NETWORKS",
    "ExportResult",
    "TRACE_SIZE",
    "card_id",
    "export_all",
    "export_card",
    "export_onnx",
    "init_untrained",
    "load_weights",
    "parity",
    "pca_file",
    "tensor_specs",
    "tiling_policy",
]
