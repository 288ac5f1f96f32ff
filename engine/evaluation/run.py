"""Running an evaluation: load the networks, run every case, reuse earlier results, check the scoring path."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.data import benchmark_paths, iter_test_set
from engine.evaluation.aggregate import aggregate
from engine.evaluation.cases import evaluate_case, score
from engine.evaluation.config import FORMAT, PREVIOUS_METHODS, EvalConfig, count_cases, images_used
from engine.evaluation.environment import describe_environment, describe_models
from engine.evaluation.values import mean, round_or_none
from engine.progress import NULL_PROGRESS, Progress


# Bicubic ×s on the benchmarks without any blur, as the SR literature tabulates it (EDSR, RCAN, ...):
# reproducing these shows the scoring (crop, Y channel, shave, rounding, MATLAB bicubic) is the standard one.
STANDARD_BICUBIC_CLEAN: dict[int, dict[str, float]] = {
    2: {"Set5": 33.66, "Set14": 30.24, "BSD100": 29.56},
    3: {"Set5": 30.39, "Set14": 27.55, "BSD100": 27.21},
    4: {"Set5": 28.42, "Set14": 26.00, "BSD100": 25.96},
}


def protocol_check(config: EvalConfig) -> dict[str, Any]:
    """A config → per benchmark, mean PSNR-Y of bicubic ↓s then ↑s with no blur on the images in use.

    A measured sanity check of the scoring path: with every image of a benchmark it should match
    :data:`STANDARD_BICUBIC_CLEAN` to about 0.01 dB.
    """
    from engine.data import load_hr
    from engine.degradation.degrade import quantize_u8
    from engine.degradation.resize import bicubic_upsample, imresize

    out: dict[str, Any] = {}
    for bench in config.benchmarks:
        paths = benchmark_paths(bench)
        n = config.images_for(bench)
        if n is not None:
            paths = paths[:n]
        values = []
        for path in paths:
            hr = load_hr(path, config.scale)
            lr = quantize_u8(imresize(hr, 1.0 / config.scale))
            values.append(score(bicubic_upsample(lr, config.scale), hr, config.scale)["psnr"])
        out[bench] = {"bicubic_clean_psnr_y": round_or_none(mean(values), 3), "images": len(paths),
                      "published": STANDARD_BICUBIC_CLEAN.get(config.scale, {}).get(bench)}
    return out


def load_previous_results(config: EvalConfig) -> dict[str, Any]:
    """A config → the results JSON its ``previous_results_path`` names, checked against it.

    Raises ``ValueError`` (one line naming the file and the reason) when it cannot be read, is not a
    results file, or was made with another scale, seed or number of IKC steps (its LR images or
    iteration lists would not match this run's).
    """
    path = Path(config.previous_results_path)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--previous-results {path}: cannot read it ({exc})") from None
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        raise ValueError(f"--previous-results {path}: not a {FORMAT} results file")
    for key, mine in (("scale", config.scale), ("seed", config.seed), ("ikc_steps", config.ikc_steps)):
        if old.get(key) != mine:
            raise ValueError(f"--previous-results {path}: made with {key} {old.get(key)}, this run uses {mine}")
    return old


def _imported_previous(config: EvalConfig, old: Mapping[str, Any] | None,
                       method: str, protocol: str, bench: str) -> dict[str, Any] | None:
    """name → the earlier run's record of ``method``'s base method, when it covers every image used here."""
    if old is None:
        return None
    records = old.get("cases", {}).get(bench, {}).get(protocol)
    used_before = old.get("images", {}).get(bench, {}).get("used", 0)
    used_now = images_used(config)[bench]["used"]
    base = PREVIOUS_METHODS[method]
    if not records or used_before < used_now or not all(base in r for r in records):
        return None
    return {r["name"]: r[base] for r in records}


def run_evaluation(
    config: EvalConfig,
    *,
    progress: Progress = NULL_PROGRESS,
    on_case: Callable[[str, Mapping[str, Any]], None] | None = None,
    on_partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """A config → the results of every requested benchmark × protocol × method (see :func:`aggregate`).

    Protocols are run in the given order, each over the benchmarks in the given order; after each
    (protocol, benchmark) group ``on_partial`` receives the results so far (``complete`` False), so
    an interrupted run still leaves a labelled preliminary table. ``on_case(name, record)`` is
    called after every case (progress bars). Cancellation is checked between methods and tiles.
    """
    config.validate()
    from engine.pipeline.models import ModelSet, load_models

    old = load_previous_results(config) if config.previous_results_path is not None else None
    imported = {(m, p, b): _imported_previous(config, old, m, p, b)
                for p in config.protocols for b in config.benchmarks for m in config.methods_for(p, b)
                if m in PREVIOUS_METHODS}
    missing = [f"{m}@{p}@{b}" for (m, p, b), recs in imported.items() if recs is None]
    if missing and config.previous_models_dir is None:
        raise ValueError(f"--previous-results {config.previous_results_path} does not cover {', '.join(missing)}: "
                         "give --previous-models DIR to run them, or --skip them")

    def load(previous: bool) -> Any:
        networks = config.networks(previous)
        folder = config.previous_models_dir if previous else config.models_dir
        return (load_models(networks, config.scale, device=config.device, backend=config.backend,
                            threads=config.threads, models_dir=folder, precision="fp32")  # the trained networks
                if networks else ModelSet(scale=config.scale))

    models = load(False)
    previous_models = load(True) if config.previous_models_dir is not None and missing else None
    environment = describe_environment(models.provider)
    model_info = describe_models(models)
    previous_info = (describe_models(previous_models) if previous_models is not None
                     else list(old.get("models", [])) if old is not None else [])
    total = count_cases(config)
    done = 0
    t0 = time.perf_counter()
    cases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    groups = [(p, b) for p in config.protocols for b in config.benchmarks]
    for gi, (protocol, bench) in enumerate(groups):
        records: list[dict[str, Any]] = []
        copy = {m: recs for (m, p, b), recs in imported.items() if p == protocol and b == bench and recs}
        run_here = tuple(m for m in config.methods_for(protocol, bench) if m not in copy)
        for case in iter_test_set(bench, protocol, config.scale, config.seed, max_images=config.images_for(bench)):
            sub = progress.sub_progress(done / max(total, 1), 1.0 / max(total, 1))
            record = evaluate_case(case, run_here, models, ikc_steps=config.ikc_steps,
                                   tile=config.tile, progress=sub, previous_models=previous_models)
            for m, recs in copy.items():
                if case.name not in recs:
                    raise ValueError(f"--previous-results {config.previous_results_path} has no {bench} {protocol} "
                                     f"case {case.name}")
                record[m] = recs[case.name]
            records.append(record)
            done += 1
            progress.set_progress(done / max(total, 1), f"{bench} {case.name}")
            if on_case is not None:
                on_case(f"{bench}/{case.name}", record)
        cases.setdefault(bench, {})[protocol] = records
        if on_partial is not None and gi < len(groups) - 1:
            on_partial(aggregate(config, cases, environment=environment, models=model_info,
                                 models_previous=previous_info, complete=False, seconds=time.perf_counter() - t0))
    results = aggregate(config, cases, environment=environment, models=model_info, models_previous=previous_info,
                        complete=True, seconds=time.perf_counter() - t0)
    results["protocol_check"] = protocol_check(config)
    if old is not None:
        results["previous_results"] = {"path": str(config.previous_results_path), "command": old.get("command"),
                                       "date": old.get("date"),
                                       "cells": sorted(f"{m}@{p}@{b}" for (m, p, b), r in imported.items() if r)}
    return results
