"""Static int8 quantization of the shipped ONNX graphs (issue 18): QDQ format, per-channel weights.

    python -m engine.quantize --card manet_small_x4 --card rrdb_sft_small_x4 --out /tmp/int8   # candidates
    python -m engine.quantize --card manet_small_x4 --ship        # into models/, recorded in the card

Calibration inputs are what the fp32 pipeline feeds each network (:func:`calibration_feeds`): crops of
the **training pool** (:func:`engine.data.train_paths`, never a benchmark image), degraded as the
method's SR network was trained (MANet convention + the RRDB-SFT card's noise/JPEG for ``manet`` and
``rrdb_sft``; IKC convention + the SFTMD card's for the IKC networks), every draw from one
``numpy.random.Generator`` seeded by ``--seed``; then MANet + RRDB-SFT, or IKC, runs on them in fp32
with each network's inputs recorded. :func:`quantize_graph` runs onnxruntime's
``quant_pre_process`` (shape inference + basic graph optimisation) and ``quantize_static`` (QDQ,
activations uint8 asymmetric, weights int8 symmetric per output channel, min/max calibration),
leaving the output head (:func:`output_head`) in fp32. With ``--ship`` the graph is written as
``models/<id>_int8.onnx`` and the card's ``precisions.int8`` records its sha256, the sha256 of the
fp32 graph it came from, the settings and this command. Whether a network's int8 graph is shipped
is decided by measurement (``bench/bench_int8.py``), not here.

This module imports onnx and onnxruntime.quantization: only this command uses it.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from engine.atomic import write_atomic
from engine.modelcards import ModelCard, find_cards, save_card, sha256_file, verify
from engine.paths import models_dir as default_models_dir

log = logging.getLogger(__name__)

METHOD_OF_NETWORK = {"manet": "manet", "rrdb_sft": "manet", "ikc_predictor": "ikc", "sftmd": "ikc",
                     "ikc_corrector": "ikc"}
"""The pipeline whose run provides a network's calibration inputs."""
SR_NETWORK = {"manet": "rrdb_sft", "ikc": "sftmd"}
"""The SR network of each method: its card's training degradations are the calibration degradations."""



_COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_PASS_OPS = ("Concat", "Expand", "Unsqueeze", "Reshape", "Tile", "Cast", "Shape", "Squeeze")
"""Ops that only move or join a tensor: the kernel code passes through them unchanged to its first layer."""


def conditioning_entry(graph_path: Path, input_names: Sequence[str] = ("kernel_code", "noise_sigma_255")) -> list[str]:
    """Names of the nodes from the ``kernel_code`` input (and RRDB-SFT's ``noise_sigma_255``) to its first
    weighted layer on every path: the Expand/Concat that joins the code to image features (an 8-bit tensor shared with features
    tens of times larger leaves the small code values a few levels) and the Conv/Gemm that reads it
    (its input is one quantized tensor, so it would do the same). RRDB-SFT: the ``[F, H]`` concat and
    the first conv of each SFT layer's scale and shift branches; SFTMD likewise; the IKC corrector: the
    code's first fully connected layer."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    entry: list[str] = []
    todo = [i.name for i in graph.input if i.name in input_names]
    seen: set[str] = set()
    while todo:
        for node in consumers.get(todo.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in _COMPUTE_OPS:
                entry.append(node.name)
            elif node.op_type in _PASS_OPS:
                entry.append(node.name)
                todo.extend(node.output)
    return entry


def last_layers(graph_path: Path, n: int, *, first: bool = False) -> list[str]:
    """Names of the last (``first``: the first) ``n`` weighted layers (Conv, ConvTranspose, Gemm,
    MatMul) in graph order."""
    import onnx

    if n <= 0:
        return []
    graph = onnx.load(str(graph_path), load_external_data=False).graph
    layers = [node.name for node in graph.node if node.op_type in _COMPUTE_OPS]
    return layers[:n] if first else layers[-n:]


def output_head(graph_path: Path) -> list[str]:
    """Names of the nodes between the graph's outputs and the first Conv on every path back from them,
    that Conv included: MANet's last conv and softmax, the output conv of the SR networks (before the
    pixel shuffle and clip), the last conv and pooling of predictor and corrector. They stay fp32, so
    the output tensors are not rounded to 8 bits (MANet's kernel taps would lose their sum of 1)."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    head: list[str] = []
    todo = [o.name for o in graph.output]
    seen: set[str] = set()
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        head.append(node.name)
        if node.op_type not in _COMPUTE_OPS:
            todo.extend(node.input)
    return head


CALIBRATION_IMAGES = 32
CALIBRATION_HR_PX = 256
"""Calibration crops: this many HR crops of this side (LR side = HR side / scale)."""


def int8_graph_name(card: ModelCard) -> str:
    return f"{card.id}_int8.onnx"


# --- calibration data --------------------------------------------------------------------------------
def calibration_lr(method: str, scale: int, n: int, hr_px: int, rng: np.random.Generator,
                   models_dir: Path | None = None) -> list[np.ndarray]:
    """``n`` LR ``rgb_f32`` images (h×w×3 in [0, 1]) from training-pool crops, degraded as ``method``'s
    SR network was trained (its card's convention, noise and JPEG settings)."""
    from engine.data import TrainPool
    from engine.modelcards import find_card
    from engine.training.batches import Augment, IkcBatchMaker, ManetBatchMaker

    card = find_card(SR_NETWORK[method], scale, models_dir=models_dir)
    noise = card.training.get("noise") or {}
    jpeg_q = noise.get("jpeg_q") or [70, 100]
    augment = Augment(noise_prob=float(noise.get("prob", 0.0)), noise_max_255=float(noise.get("max_sigma_255", 15.0)),
                      jpeg_prob=float(noise.get("jpeg_prob", 0.0)), jpeg_min=int(jpeg_q[0]), jpeg_max=int(jpeg_q[1]),
                      noise_per_channel_prob=float(noise.get("per_channel_prob", 0.5)))
    pool = TrainPool(min_size=hr_px)
    maker_cls = ManetBatchMaker if method == "manet" else IkcBatchMaker
    maker = maker_cls(pool, batch_size=1, patch_size=hr_px, scale=scale, with_hr=False, augment=augment)
    return [np.ascontiguousarray(maker(rng)["lr"][0].transpose(1, 2, 0)) for _ in range(n)]


class RecordingRunner:
    """Wraps a runner; keeps a copy of every feed it is given."""

    def __init__(self, runner: Any, store: list[dict[str, np.ndarray]]) -> None:
        self._runner = runner
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def run(self, inputs: dict[str, np.ndarray], *, keep_memory: bool = False) -> dict[str, np.ndarray]:
        self._store.append({k: np.array(v, np.float32, copy=True) for k, v in inputs.items()})
        return self._runner.run(inputs, keep_memory=keep_memory)


def calibration_feeds(method: str, scale: int = 4, *, images: int = CALIBRATION_IMAGES,
                      hr_px: int = CALIBRATION_HR_PX, seed: int = 0,
                      models_dir: Path | None = None) -> dict[str, list[dict[str, np.ndarray]]]:
    """The inputs the fp32 ``method`` pipeline (``manet`` or ``ikc``) gives each of its networks on
    :func:`calibration_lr` images, by network name."""
    from engine.pipeline.blind import run_manet
    from engine.pipeline.ikc import run_ikc
    from engine.pipeline.models import load_for_method

    rng = np.random.default_rng(seed)
    lrs = calibration_lr(method, scale, images, hr_px, rng, models_dir)
    models = load_for_method(method, scale, device="cpu", backend="onnx", models_dir=models_dir, precision="fp32")
    feeds: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    models.runners = {name: RecordingRunner(r, feeds[name]) for name, r in models.runners.items()}
    for lr in lrs:
        if method == "manet":
            run_manet(lr, models)
        else:
            run_ikc(lr, models)
    return dict(feeds)


# --- quantization ------------------------------------------------------------------------------------
def quantize_graph(card: ModelCard, feeds: Sequence[dict[str, np.ndarray]], target: Path, *,
                   op_types: Sequence[str] | None = None, calibration: str = "minmax",
                   keep_conditioning: bool = False, fp32_tail: int = 0, fp32_first: int = 0) -> dict[str, Any]:
    """Quantize ``card``'s fp32 graph with ``feeds`` as calibration data into ``target`` (atomic),
    its :func:`output_head`, its first ``fp32_first`` and last ``fp32_tail`` weighted layers (and with ``keep_conditioning``
    its :func:`conditioning_entry`) left in fp32; ``op_types``: the op types to quantize (None: onnxruntime's default set); ``calibration``:
    ``minmax``, ``percentile`` (99.999 %) or ``entropy``. Returns the settings (recorded in the card)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    if calibration not in methods:
        raise ValueError(f"unknown calibration {calibration!r}; choose one of {', '.join(methods)}")
    verify(card)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    # no CalibMaxIntermediateOutputs: onnxruntime 1.32 discards the batches it clears; min/max
    # calibration keeps only reduced (scalar) outputs per feed anyway
    extra = {"ActivationSymmetric": False, "WeightSymmetric": True}
    with tempfile.TemporaryDirectory(prefix="kernelscope_quant_") as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        quant_pre_process(str(card.graph_path), str(pre), skip_symbolic_shape=True)
        exclude = list(dict.fromkeys(output_head(pre) + last_layers(pre, fp32_tail)
                                     + last_layers(pre, fp32_first, first=True)
                                     + (conditioning_entry(pre) if keep_conditioning else [])))
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(exclude), calibrate_method=methods[calibration],
                        op_types_to_quantize=list(op_types) if op_types else None, extra_options=extra)
        write_atomic(target, out.read_bytes(), overwrite=True)
    return {
        "format": "QDQ",
        "activations": "uint8, asymmetric, per tensor",
        "weights": "int8, symmetric, per output channel",
        "calibration": calibration,
        "op_types": list(op_types) if op_types else "onnxruntime default",
        "pre_process": "onnxruntime quant_pre_process (shape inference, basic optimisation)",
        "fp32_tail": fp32_tail,
        "fp32_first": fp32_first,
        "keep_conditioning_fp32": keep_conditioning,
        "fp32_nodes": exclude,
        "onnxruntime": _ort_version(),
    }


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def record_int8(card: ModelCard, graph: Path, settings: dict[str, Any], calibration: dict[str, Any],
                command: str) -> ModelCard:
    """Record ``graph`` (in the card's folder) as the card's int8 graph and save the card."""
    precisions = dict(card.extra.get("precisions") or {})
    precisions["int8"] = {
        "graph": graph.name,
        "graph_sha256": sha256_file(graph),
        "source_graph_sha256": card.graph_sha256,
        "quantization": settings,
        "calibration": calibration,
        "command": command,
    }
    card.extra["precisions"] = precisions
    save_card(card)
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.quantize", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--card", action="append", metavar="ID", help="quantize this card's graph (repeatable)")
    what.add_argument("--all", action="store_true", help="every network card")
    parser.add_argument("--models-dir", type=Path, default=None, help="models folder (default: the shipped models/)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write <id>_int8.onnx here (candidates; the card is not changed)")
    parser.add_argument("--ship", action="store_true",
                        help="write <id>_int8.onnx into the models folder and record it in the card")
    parser.add_argument("--images", type=int, default=CALIBRATION_IMAGES, help="calibration crops (default %(default)s)")
    parser.add_argument("--hr-px", type=int, default=CALIBRATION_HR_PX, help="HR crop side (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="calibration generator seed (default 0)")
    parser.add_argument("--op-types", nargs="+", default=None, metavar="OP",
                        help="quantize only these op types (default: onnxruntime's set)")
    parser.add_argument("--calibration", choices=("minmax", "percentile", "entropy"), default="minmax",
                        help="activation range calibration (default minmax)")
    parser.add_argument("--fp32-tail", type=int, default=0, metavar="N",
                        help="leave the last N weighted layers in fp32 (default 0: only the output head)")
    parser.add_argument("--fp32-first", type=int, default=0, metavar="N",
                        help="leave the first N weighted layers in fp32 (default 0)")
    parser.add_argument("--keep-conditioning-fp32", action="store_true",
                        help="leave the kernel code's first layers in fp32 (see conditioning_entry)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxruntime", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.ship == (args.out is not None):
        print("python -m engine.quantize: give exactly one of --out DIR and --ship", file=sys.stderr)
        return 2
    folder = args.models_dir or default_models_dir()
    cards = [c for c in find_cards(folder) if args.all or c.id in args.card]
    unknown = sorted(set(args.card or ()) - {c.id for c in cards})
    if unknown:
        print(f"python -m engine.quantize: no card {', '.join(unknown)} in {folder}", file=sys.stderr)
        return 2
    command = "python -m engine.quantize " + shlex.join(a for a in (argv if argv is not None else sys.argv[1:]))
    feeds_by_method: dict[str, dict[str, list]] = {}
    for card in cards:
        method = METHOD_OF_NETWORK[card.network]
        if method not in feeds_by_method:
            log.info("calibration: %d training-pool crops through the fp32 %s pipeline", args.images, method)
            feeds_by_method[method] = calibration_feeds(method, card.scale, images=args.images, hr_px=args.hr_px,
                                                        seed=args.seed, models_dir=args.models_dir)
        feeds = feeds_by_method[method][card.network]
        target = (folder if args.ship else args.out) / int8_graph_name(card)
        target.parent.mkdir(parents=True, exist_ok=True)
        settings = quantize_graph(card, feeds, target, op_types=args.op_types, calibration=args.calibration,
                                  keep_conditioning=args.keep_conditioning_fp32, fp32_tail=args.fp32_tail,
                                  fp32_first=args.fp32_first)
        calibration = {"images": args.images, "hr_px": args.hr_px, "seed": args.seed, "feeds": len(feeds),
                       "source": f"training pool, degraded as {SR_NETWORK[method]} was trained, fp32 {method} pipeline"}
        if args.ship:
            record_int8(card, target, settings, calibration, command)
        print(f"{card.id}: {target} ({target.stat().st_size / 1e6:.2f} MB, {len(feeds)} calibration feeds, "
              f"sha256 {sha256_file(target)[:12]}…)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
