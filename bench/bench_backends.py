"""ONNX Runtime vs PyTorch eager on the CPU, side by side, for the ``small`` presets at ×4.

Run by hand (not a test)::

    .venv/bin/python bench/bench_backends.py                    # all five networks
    .venv/bin/python bench/bench_backends.py --networks manet --repeats 7 --variants

Each network is built from ``engine.archs`` with random weights (a fixed torch.Generator), exported
with the dynamo exporter (dynamic N/H/W, as shipped graphs are) to ``--work-dir`` (``/tmp``, never
``models/``), and timed on a 256×256 LR input (the corrector on the 1024×1024 SR input). The ORT
side goes through the application's own path (:class:`engine.backends.onnx_backend.OnnxBackend`:
ORT_ENABLE_ALL, sequential, intra-op threads = ``--threads``); the torch side uses the same thread
count, ``torch.inference_mode()``, and is timed both NCHW-contiguous and channels-last. Runs of the
backends are interleaved so that load from other processes hits both alike; the table shows
medians and ``torch best / ORT``. ``--variants`` also times ORT settings worth trying. Refuses to
time on a busy machine (1-minute load average above 0.5) unless ``--allow-load`` (results marked LOADED).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from honest import add_load_argument, require_idle  # noqa: E402

NETWORKS = ("manet", "rrdb_sft", "sftmd", "ikc_predictor", "ikc_corrector")


def _export(model: Any, args: tuple, spec: Any, path: Path, dynamic: bool) -> None:
    """Export ``model`` to ``path`` with the dynamo exporter (single file, opset 18)."""
    import torch

    dynamic_shapes = None
    if dynamic:
        n, h, w = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
        dynamic_shapes = tuple({0: n, 2: h, 3: w} if a.ndim == 4 else {0: n} for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=18,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _card_for(network: str, graph: Path, spec: Any, args: tuple) -> Any:
    from engine.modelcards import ModelCard, TensorSpec

    def symbolic(a: Any) -> list[int | str]:
        return ["N", int(a.shape[1]), "H", "W"] if a.ndim == 4 else ["N", int(a.shape[1])]

    return ModelCard(
        id=graph.stem,
        network=network,
        preset="small",
        scale=4,
        graph=graph.name,
        graph_sha256=hashlib.sha256(graph.read_bytes()).hexdigest(),
        inputs=[TensorSpec(n, symbolic(a)) for n, a in zip(spec.input_names, args)],
        outputs=[TensorSpec(n, ["N"]) for n in spec.output_names],
        path=graph.with_suffix(".json"),
    )


def _time_once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ort_session(graph: Path, threads: int, level: str = "all", spinning: bool = True,
                 save_to: Path | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.enable_mem_pattern = True
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])


def bench_network(network: str, a: argparse.Namespace, variants_out: list[list[str]]) -> list[str]:
    import torch

    from engine.archs import build_network, example_inputs, get_spec
    from engine.backends.onnx_backend import OnnxBackend
    from engine.backends.torch_backend import TorchRunner

    spec = get_spec(network)
    side = a.size * 4 if network == "ikc_corrector" else a.size
    model = build_network(network, "small", 4, generator=torch.Generator().manual_seed(0)).eval()
    args = example_inputs(network, "small", 4, 1, side, side, torch.Generator().manual_seed(1))
    graph = a.work_dir / f"{network}_small_x4{'' if a.dynamic else '_static'}.onnx"
    if a.reexport or not graph.is_file():
        t = _time_once(lambda: _export(model, args, spec, graph, a.dynamic))
        print(f"  exported {graph} in {t:.1f} s", file=sys.stderr)
    card = _card_for(network, graph, spec, args)
    feed = {n: t.numpy() for n, t in zip(spec.input_names, args)}

    ort_runner = OnnxBackend("cpu", threads=a.threads).load(card)
    torch_runner = TorchRunner(card, model, "cpu")
    cl_runner = TorchRunner(card, copy.deepcopy(model), "cpu", channels_last=True)

    runs: dict[str, Callable[[], Any]] = {
        "ort": lambda: ort_runner.run(feed),
        "torch": lambda: torch_runner.run(feed),
        "torch_cl": lambda: cl_runner.run(feed),
    }
    outs = {k: fn() for k, fn in runs.items()}  # warm-up, and the parity check
    name0 = spec.output_names[0]
    diff = float(np.max(np.abs(outs["ort"][name0] - outs["torch"][name0])))
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(a.repeats):
        for k, fn in runs.items():  # interleaved
            times[k].append(_time_once(fn))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    best_torch = min(med["torch"], med["torch_cl"])
    shape = "x".join(str(s) for s in args[0].shape)

    if a.variants:
        _bench_variants(network, graph, feed, a, variants_out, med["ort"])
    return [
        network,
        shape,
        f"{med['ort']:.0f}",
        f"{med['torch']:.0f}",
        f"{med['torch_cl']:.0f}",
        f"{best_torch / med['ort']:.2f}x",
        f"{diff:.1e}",
    ]


def _bench_variants(network: str, graph: Path, feed: dict, a: argparse.Namespace,
                    rows: list[list[str]], baseline_ms: float) -> None:
    """Time ORT settings against the application's default, interleaved like the main table."""
    saved = a.work_dir / f"{graph.stem}.opt.onnx"
    t_create = _time_once(lambda: _ort_session(graph, a.threads, save_to=saved))
    t_create_saved = _time_once(lambda: _ort_session(saved, a.threads))
    sessions = {
        "default (all, spin)": _ort_session(graph, a.threads),
        "extended": _ort_session(graph, a.threads, level="extended"),
        "basic": _ort_session(graph, a.threads, level="basic"),
        "no spinning": _ort_session(graph, a.threads, spinning=False),
        "saved optimised": _ort_session(saved, a.threads),
        "1 thread": _ort_session(graph, 1),
    }
    for s in sessions.values():
        s.run(None, feed)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(a.repeats):
        for k, s in sessions.items():
            times[k].append(_time_once(lambda s=s: s.run(None, feed)))
    for k, v in times.items():
        rows.append([network, k, f"{statistics.median(v) * 1e3:.0f}"])
    rows.append([network, "session create: graph / saved optimised",
                 f"{t_create * 1e3:.0f} / {t_create_saved * 1e3:.0f}"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    from engine.backends.base import physical_cores

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=NETWORKS)
    p.add_argument("--size", type=int, default=256, help="LR side in pixels (corrector: 4x this)")
    p.add_argument("--threads", type=int, default=physical_cores(), help="threads for both backends")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per backend (median reported)")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/kernelscope_bench"))
    p.add_argument("--reexport", action="store_true", help="export again even if the graph exists")
    p.add_argument("--static", dest="dynamic", action="store_false", help="export with fixed shapes")
    p.add_argument("--variants", action="store_true", help="also time ORT setting variants")
    add_load_argument(p)
    a = p.parse_args(argv)
    cond = require_idle(a.allow_load)

    import onnxruntime as ort
    import torch

    torch.set_num_threads(a.threads)
    a.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__} "
          f"({a.threads} intra-op threads), {a.repeats} timed runs each, interleaved", file=sys.stderr)
    rows, variant_rows = [], []
    for network in a.networks:
        print(f"{network} ...", file=sys.stderr)
        rows.append(bench_network(network, a, variant_rows))
    cond.finish()
    print(cond.header())
    print(_table(["network (small, x4)", "input", "ORT ms", "torch ms", "torch CL ms", "torch/ORT", "max |diff|"],
                 rows))
    if variant_rows:
        print()
        print(_table(["network", "ORT variant", "median ms"], variant_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
