"""Model cards: one JSON file per shipped graph, the only way the engine finds its models.

A card (``models/<id>.json``) names the network, preset and scale, the ONNX graph and torch weights
beside it (paths relative to the card's folder) with their sha256, the PCA basis it depends on, the
graph's inputs and outputs, and how it may be tiled. Example::

    {"schema": 1, "id": "manet_small_x4", "network": "manet", "preset": "small", "scale": 4,
     "graph": "manet_small_x4.onnx", "graph_sha256": "…",
     "weights": "manet_small_x4.pt", "weights_sha256": "…", "pca": null,
     "parameters": 123456, "opset": 18,
     "inputs": [{"name": "lr_rgb", "shape": ["N", 3, "H", "W"], "dtype": "float32",
                 "range": [0, 1], "layout": "NCHW, RGB"}],
     "outputs": [...], "tiling": {"policy": "exact", "context_lr_px": 12, "multiple_of": 8},
     "training": {"steps": 0, "note": "…"}, "metrics": {}}

PCA bases have cards of their own (``"kind": "pca"``); :func:`find_cards` skips them.

Reduced-precision graphs of the same network are listed under ``"precisions"`` (the main graph is
fp32)::

    "precisions": {"int8": {"graph": "manet_small_x4_int8.onnx", "graph_sha256": "…",
                            "source_graph_sha256": "<the fp32 graph it was quantized from>",
                            "quantization": {…}, "command": "python -m engine.quantize …"}}

:meth:`ModelCard.at_precision` gives the card of such a graph (same id, ``extra["precision"]`` set),
verified like any other; one quantized from another fp32 graph than the card's is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.atomic import write_atomic
from engine.errors import ModelError
from engine.methods import METHOD_TABLE, UPSCALE, methods_for
from engine.paths import models_dir as _default_models_dir

__all__ = [
    "SCHEMA_VERSION",
    "NETWORKS",
    "TensorSpec",
    "ModelCard",
    "load_card",
    "save_card",
    "find_cards",
    "find_card",
    "sha256_file",
    "cached_sha256",
    "verify",
    "verify_weights",
    "regenerate_hint",
    "PRECISIONS",
    "IKC_STEPS_FALLBACK",
    "ikc_steps_from_card",
    "default_ikc_steps",
    "IKC_CORRECTION_STEPS",
    "ikc_correction_step_from_card",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
NETWORKS = ("manet", "rrdb_sft", "sftmd", "ikc_predictor", "ikc_corrector")

PRECISIONS = ("fp32", "int8")
"""Numeric precisions a card may ship graphs at: the main graph (fp32) and those under ``"precisions"``."""

_REQUIRED = ("schema", "id", "network", "preset", "scale", "graph", "graph_sha256", "inputs", "outputs")
_TENSOR_REQUIRED = ("name", "shape")


@dataclass
class TensorSpec:
    """One graph input or output.

    ``shape`` mixes fixed sizes (ints, e.g. the channel count) and symbolic names (``"N"``,
    ``"H"``): the same name must have the same size across all inputs of one call.
    """

    name: str
    shape: list[int | str]
    dtype: str = "float32"
    range: list[float] | None = None
    layout: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "range": None if self.range is None else list(self.range),
            "layout": self.layout,
        }


@dataclass
class ModelCard:
    """A shipped model, as described by its JSON card (see the module docstring for the schema).

    ``path`` is where the card was loaded from (not stored in the JSON); file names in the card are
    relative to its folder. Keys this version does not know are kept in ``extra`` and written back.
    """

    id: str
    network: str
    preset: str
    scale: int
    graph: str
    graph_sha256: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    schema: int = SCHEMA_VERSION
    weights: str | None = None
    weights_sha256: str | None = None
    pca: str | None = None
    parameters: int | None = None
    opset: int | None = None
    tiling: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    # file locations ------------------------------------------------------------------------
    @property
    def folder(self) -> Path:
        """The folder the card's file names are relative to (the models folder by default)."""
        return self.path.parent if self.path is not None else _default_models_dir()

    @property
    def graph_path(self) -> Path:
        return self.folder / self.graph

    @property
    def weights_path(self) -> Path | None:
        return None if not self.weights else self.folder / self.weights

    @property
    def pca_path(self) -> Path | None:
        return None if not self.pca else self.folder / self.pca

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def training_steps(self) -> int:
        try:
            return int(self.training.get("steps", 0) or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def precision(self) -> str:
        """The precision of this card's graph: ``fp32``, or the one :meth:`at_precision` selected."""
        return str(self.extra.get("precision", "fp32"))

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions shipped for this network: ``fp32`` and each key of ``"precisions"``."""
        listed = self.extra.get("precisions")
        return ("fp32",) + tuple(p for p in PRECISIONS[1:] if isinstance(listed, dict) and p in listed)

    def at_precision(self, precision: str) -> "ModelCard":
        """The card of this network's graph at ``precision`` (``fp32``: this card).

        Same id, ``graph``/``graph_sha256`` of the listed graph and ``extra["precision"]`` set, so
        :func:`verify` checks that file and runners report the precision. Raises :class:`ModelError`
        when the precision is not shipped, its entry is malformed, or it was made from another fp32
        graph than this card's (a retrained or re-exported network whose int8 graph is stale).
        """
        if precision == self.precision:
            return self
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if precision == "fp32" or self.precision != "fp32":
            raise ValueError(f"at_precision is asked of the fp32 card (this one is {self.precision})")
        entry = (self.extra.get("precisions") or {}).get(precision)
        where = f"model card {self.path or self.id}"
        if entry is None:
            raise ModelError(f"model {self.id} has no {precision} graph (shipped: {', '.join(self.precisions)})")
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in
                                                  ("graph", "graph_sha256", "source_graph_sha256")):
            raise ModelError(f"{where}: precisions.{precision} needs 'graph', 'graph_sha256' and "
                             "'source_graph_sha256' strings")
        if entry["source_graph_sha256"].lower() != self.graph_sha256:
            raise ModelError(
                f"{precision} graph {self.folder / entry['graph']} of model {self.id} was made from another "
                f"fp32 graph (sha256 {entry['source_graph_sha256'][:12]}…, the card's is "
                f"{self.graph_sha256[:12]}…); regenerate it with {regenerate_hint(self.id, precision)}"
            )
        extra = {k: v for k, v in self.extra.items() if k != "precisions"}
        extra["precision"] = precision
        return replace(self, graph=entry["graph"], graph_sha256=entry["graph_sha256"].lower(), extra=extra)

    def describe(self) -> str:
        """Short human label, e.g. ``manet_small_x4 (manet, small, x4)``."""
        return f"{self.id} ({self.network}, {self.preset}, x{self.scale})"

    def to_json(self) -> dict[str, Any]:
        """The card as a JSON-ready dict, keys in schema order, unknown keys kept."""
        data: dict[str, Any] = {
            "schema": self.schema,
            "id": self.id,
            "network": self.network,
            "preset": self.preset,
            "scale": self.scale,
            "graph": self.graph,
            "graph_sha256": self.graph_sha256,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "pca": self.pca,
            "parameters": self.parameters,
            "opset": self.opset,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "tiling": dict(self.tiling),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
        }
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data


def regenerate_hint(card_id: str, precision: str = "fp32") -> str:
    """The command that rebuilds a card's graph at ``precision`` (used in error messages)."""
    if precision == "int8":
        return f"`python -m engine.quantize --card {card_id} --ship`"
    return f"`kernelscope-cli export --card {card_id}`"


# loading and saving ------------------------------------------------------------------------
def _tensor_from_json(item: Any, where: str) -> TensorSpec:
    if not isinstance(item, dict):
        raise ModelError(f"{where}: expected an object, found {type(item).__name__}")
    missing = [k for k in _TENSOR_REQUIRED if k not in item]
    if missing:
        raise ModelError(f"{where}: missing field(s) {', '.join(missing)}")
    shape = item["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, (int, str)) for d in shape):
        raise ModelError(f"{where}: 'shape' must be a list of ints and names, found {shape!r}")
    rng = item.get("range")
    return TensorSpec(
        name=str(item["name"]),
        shape=list(shape),
        dtype=str(item.get("dtype", "float32")),
        range=None if rng is None else [float(v) for v in rng],
        layout=str(item.get("layout", "")),
    )


def card_from_json(data: Any, path: Path | None = None) -> ModelCard:
    """Build a :class:`ModelCard` from parsed JSON; :class:`ModelError` names ``path`` on problems."""
    where = f"model card {path}" if path is not None else "model card"
    if not isinstance(data, dict):
        raise ModelError(f"{where}: expected a JSON object, found {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ModelError(f"{where}: missing field(s) {', '.join(missing)}")
    if data["schema"] != SCHEMA_VERSION:
        raise ModelError(
            f"{where}: schema {data['schema']!r} is not supported (this version reads schema {SCHEMA_VERSION})"
        )
    if data["network"] not in NETWORKS:
        raise ModelError(f"{where}: unknown network {data['network']!r} (known: {', '.join(NETWORKS)})")
    for key in ("inputs", "outputs"):
        if not isinstance(data[key], list) or not data[key]:
            raise ModelError(f"{where}: '{key}' must be a non-empty list")
    known = set(_REQUIRED) | {
        "weights", "weights_sha256", "pca", "parameters", "opset", "tiling", "training", "metrics",
    }
    try:
        return ModelCard(
            schema=int(data["schema"]),
            id=str(data["id"]),
            network=str(data["network"]),
            preset=str(data["preset"]),
            scale=int(data["scale"]),
            graph=str(data["graph"]),
            graph_sha256=str(data["graph_sha256"]).lower(),
            weights=data.get("weights"),
            weights_sha256=(data.get("weights_sha256") or None),
            pca=data.get("pca"),
            parameters=None if data.get("parameters") is None else int(data["parameters"]),
            opset=None if data.get("opset") is None else int(data["opset"]),
            inputs=[_tensor_from_json(t, f"{where}, inputs[{i}]") for i, t in enumerate(data["inputs"])],
            outputs=[_tensor_from_json(t, f"{where}, outputs[{i}]") for i, t in enumerate(data["outputs"])],
            tiling=dict(data.get("tiling") or {}),
            training=dict(data.get("training") or {}),
            metrics=dict(data.get("metrics") or {}),
            extra={k: v for k, v in data.items() if k not in known},
            path=path,
        )
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: invalid value ({exc})") from exc


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"model card {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"model card {path} cannot be read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path} is not valid JSON: {exc}") from exc
    except RecursionError:
        raise ModelError(f"model card {path} is not valid JSON: arrays or objects nested too deeply") from None


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read one model card. Raises :class:`ModelError` naming the file when it is missing, is not
    valid JSON, or lacks a required field."""
    p = Path(path)
    return card_from_json(_read_json(p), p.resolve())


def save_card(card: ModelCard, path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``card`` as JSON atomically (temporary file + rename) and return the path.

    ``path`` defaults to the card's own ``path``, else ``<models_dir>/<id>.json``.
    """
    if path is None:
        path = card.path if card.path is not None else _default_models_dir() / f"{card.id}.json"
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(card.to_json(), indent=2, ensure_ascii=False) + "\n"
    write_atomic(p, text.encode("utf-8"), overwrite=True)
    return p


def find_cards(models_dir: str | os.PathLike[str] | None = None) -> list[ModelCard]:
    """All network cards (``*.json`` with a ``"network"`` key) in ``models_dir``, sorted by id.

    PCA cards (``"kind": "pca"``) and other JSON files are skipped; a network card that cannot be
    read is skipped with a logged warning, so one broken file does not hide the others.
    """
    folder = Path(models_dir) if models_dir is not None else _default_models_dir()
    cards: list[ModelCard] = []
    if not folder.is_dir():
        return cards
    for path in sorted(folder.glob("*.json")):
        try:
            data = _read_json(path)
        except ModelError as exc:
            log.warning("skipping %s", exc)
            continue
        if not isinstance(data, dict) or data.get("kind") == "pca" or "network" not in data:
            continue
        try:
            cards.append(card_from_json(data, path.resolve()))
        except ModelError as exc:
            log.warning("skipping %s", exc)
    cards.sort(key=lambda c: c.id)
    return cards


SCALES = (2, 3, 4)
"""Every SR factor the architectures and degradations support; which of them work depends on the models."""


def scales_with_models(method: str, models_dir: str | os.PathLike[str] | None = None) -> tuple[int, ...]:
    """Method name → the scales at which every network it runs has a card in ``models_dir``
    (bicubic, which runs none: the scales :func:`upscale_scales` offers)."""
    have = _networks_by_scale(models_dir)
    networks = METHOD_TABLE[method].networks
    if not networks:
        return _offered(have)
    return tuple(s for s in SCALES if all((n, s) in have for n in networks))


def upscale_scales(models_dir: str | os.PathLike[str] | None = None) -> tuple[int, ...]:
    """The scales offered to users (``upscale --scale``, the studio's list): those at which at least
    one upscale method that runs networks has all its cards."""
    return _offered(_networks_by_scale(models_dir))


def _networks_by_scale(models_dir: str | os.PathLike[str] | None) -> set[tuple[str, int]]:
    """``(network, scale)`` of every card in ``models_dir`` (read once per call)."""
    return {(card.network, card.scale) for card in find_cards(models_dir)}


def _offered(have: set[tuple[str, int]]) -> tuple[int, ...]:
    """The scales at which some upscale method that runs networks finds all of them in ``have``."""
    return tuple(s for s in SCALES if any(
        all((n, s) in have for n in METHOD_TABLE[m].networks)
        for m in methods_for(UPSCALE) if METHOD_TABLE[m].needs_models))


def find_card(
    network: str,
    scale: int,
    preset: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
) -> ModelCard:
    """The card of the shipped graph for ``network`` at ``scale`` (and ``preset``, if given).

    When several cards match, the one whose graph file is present wins, then the most trained one
    (``training.steps``), then the smallest id (so the choice is stable). Raises
    :class:`ModelError` listing what is available when none matches.
    """
    cards = find_cards(models_dir)
    matches = [
        c for c in cards
        if c.network == network and c.scale == int(scale) and (preset is None or c.preset == preset)
    ]
    if not matches:
        folder = Path(models_dir) if models_dir is not None else _default_models_dir()
        want = f"network {network!r} at x{scale}" + (f", preset {preset!r}" if preset else "")
        have = ", ".join(c.describe() for c in cards) or "none"
        raise ModelError(f"no model card for {want} in {folder} (available: {have})")
    matches.sort(key=lambda c: (not c.graph_path.is_file(), -c.training_steps, c.id))
    return matches[0]


# integrity ---------------------------------------------------------------------------------
_HASH_CACHE: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of ``path``, remembered per (path, size, mtime) so repeated checks are free."""
    path = Path(path)
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_CACHE:
            return _HASH_CACHE[key]
    digest = sha256_file(path)
    with _HASH_LOCK:
        _HASH_CACHE[key] = digest
    return digest


def _verify_file(card: ModelCard, what: str, path: Path, expected: str | None) -> None:
    hint = regenerate_hint(card.id, card.precision if what == "model graph" else "fp32")
    if not path.is_file():
        raise ModelError(f"{what} {path} of model {card.id} is missing; regenerate it with {hint}")
    if not expected:
        return
    found = cached_sha256(path)
    if found != expected.lower():
        raise ModelError(
            f"{what} {path} does not match its model card {card.id} "
            f"(expected sha256 {expected[:12]}…, found {found[:12]}…); the file was changed or "
            f"corrupted — regenerate it with {hint}"
        )


def verify(card: ModelCard) -> None:
    """Check that the card's ONNX graph exists and has the sha256 the card records.

    Raises :class:`ModelError` naming the file and the command that regenerates it.
    """
    _verify_file(card, "model graph", card.graph_path, card.graph_sha256)


def verify_weights(card: ModelCard) -> None:
    """Like :func:`verify`, for the card's torch weights file."""
    if card.weights_path is None:
        raise ModelError(f"model card {card.id} names no weights file")
    _verify_file(card, "model weights", card.weights_path, card.weights_sha256)


# IKC's default number of corrections ---------------------------------------------------------
IKC_STEPS_FALLBACK = 7
"""IKC corrections run when the corrector's card records no evaluated step (the IKC paper's 7)."""


def ikc_steps_from_card(card: ModelCard | None) -> int:
    """How many IKC corrections to run by default: the step ``kernelscope-cli evaluate --update-cards``
    reported IKC at (chosen on Set5 Gaussian8), read from the corrector's card.

    The card's ``metrics.ikc_fixed_step.step`` is used, else the ``fixed_step`` of its Set5 Gaussian8
    IKC cell (cards written before the step had an entry of its own), else :data:`IKC_STEPS_FALLBACK`.
    """
    metrics = (card.metrics if card is not None else None) or {}
    step = (metrics.get("ikc_fixed_step") or {}).get("step")
    if step is None:
        step = ((metrics.get("ikc") or {}).get("gaussian8") or {}).get("Set5", {}).get("fixed_step")
    try:
        return int(step) if step is not None and int(step) >= 0 else IKC_STEPS_FALLBACK
    except (TypeError, ValueError):
        return IKC_STEPS_FALLBACK


IKC_CORRECTION_STEPS = ("full", "harmonic")
"""How much of the corrector's change the IKC loop applies at correction t = 1, 2, …: ``full`` (all
of it, as in the IKC paper) or ``harmonic`` (1/t of it: the first correction in full, later ones
less and less, a Robbins–Monro step size for a corrector whose own error is comparable to what is
left to correct)."""


def ikc_correction_step_from_card(card: ModelCard | None) -> str:
    """The IKC loop's correction step schedule (one of :data:`IKC_CORRECTION_STEPS`) recorded in the
    corrector's card as ``ikc_loop.correction_step``; ``full`` when the card records none."""
    loop = (card.extra.get("ikc_loop") if card is not None else None) or {}
    step = loop.get("correction_step", "full")
    if step not in IKC_CORRECTION_STEPS:
        raise ModelError(f"model card {card.id if card else '?'}: ikc_loop.correction_step {step!r} is not one of "
                         f"{', '.join(IKC_CORRECTION_STEPS)}")
    return step


def default_ikc_steps(scale: int = 4, models_dir: str | os.PathLike[str] | None = None) -> int:
    """:func:`ikc_steps_from_card` of the IKC corrector :func:`find_card` picks for ``scale`` in
    ``models_dir`` (default: the shipped models); :data:`IKC_STEPS_FALLBACK` when there is none."""
    try:
        card = find_card("ikc_corrector", scale, models_dir=models_dir)
    except ModelError:
        card = None
    return ikc_steps_from_card(card)
