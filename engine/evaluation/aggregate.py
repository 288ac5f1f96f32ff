"""From per-case records to the results dict: the IKC step rule, means per cell, kernel-estimation cells, timing."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.evaluation.bars import check_bars
from engine.evaluation.config import (
    FORMAT,
    STEP_RULE_BENCHMARK,
    STEP_RULE_PROTOCOL,
    EvalConfig,
    images_used,
    not_applicable,
)
from engine.evaluation.values import mean, results_key
from engine.methods import METHOD_TABLE


Cases = Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]]
"""Per-case records (as :func:`engine.evaluation.cases.evaluate_case` returns) by benchmark → protocol."""


def _iteration_means(records: Sequence[Mapping[str, Any]], key: str, method: str = "ikc") -> list[float | None]:
    rows = [r[method][key] for r in records if method in r]
    if not rows:
        return []
    n = min(len(row) for row in rows)
    return [mean([row[t] for row in rows]) for t in range(n)]


def choose_ikc_step(cases: Cases, fixed_step: int | None = None, method: str = "ikc") -> dict[str, Any]:
    """Per-case records (benchmark → protocol → records) → the IKC iteration reported, and why.

    ``method``: ``ikc`` or ``ikc_previous``. With ``fixed_step`` given, that step is used. Otherwise
    (``auto``) the step with the best mean PSNR-Y over the Set5 Gaussian8 cases is chosen (the
    earliest on ties); no other benchmark or protocol is looked at. Raises ``ValueError`` when
    ``auto`` has no Set5 Gaussian8 IKC results.
    """
    if fixed_step is not None:
        return {"step": int(fixed_step), "rule": f"fixed by the command (--ikc-fixed-step {fixed_step})"}
    records = cases.get(STEP_RULE_BENCHMARK, {}).get(STEP_RULE_PROTOCOL, [])
    means = _iteration_means(records, "psnr", method)
    if not means or all(m is None for m in means):
        raise ValueError(f"the automatic IKC iteration needs {method} results on Set5 gaussian8, and there are none")
    best = max(range(len(means)), key=lambda t: (means[t] if means[t] is not None else -math.inf, -t))
    return {
        "step": int(best),
        "rule": "auto: the iteration with the best mean PSNR-Y on Set5 gaussian8 (chosen there only)",
        "set5_gaussian8_psnr_per_iteration": means,
        "set5_gaussian8_cases": len(records),
    }


def _method_cell(records: Sequence[Mapping[str, Any]], method: str, step: int | None) -> dict[str, Any]:
    """Means of one method over a cell's records (iterative methods: per iteration, at ``step``, oracle-best)."""
    rows = [r for r in records if method in r]
    cell: dict[str, Any] = {"n": len(rows)}
    if not METHOD_TABLE[method].iterative:
        cell["psnr"] = mean([r[method]["psnr"] for r in rows])
        cell["ssim"] = mean([r[method]["ssim"] for r in rows])
        return cell
    m = method
    cell["psnr_per_iteration"] = _iteration_means(rows, "psnr", m)
    cell["ssim_per_iteration"] = _iteration_means(rows, "ssim", m)
    if rows and "kernel_l1" in rows[0][m]:
        cell["kernel_l1_per_iteration"] = _iteration_means(rows, "kernel_l1", m)
    cell["fixed_step"] = step
    if step is not None and rows:
        cell["psnr"] = mean([r[m]["psnr"][step] for r in rows])
        cell["ssim"] = mean([r[m]["ssim"][step] for r in rows])
    else:
        cell["psnr"] = cell["ssim"] = None
    best_steps = [int(np.argmax([-math.inf if p is None else p for p in r[m]["psnr"]])) for r in rows]
    cell["oracle_best_psnr"] = mean([r[m]["psnr"][t] for r, t in zip(rows, best_steps)])
    cell["oracle_best_ssim"] = mean([r[m]["ssim"][t] for r, t in zip(rows, best_steps)])
    cell["oracle_best_note"] = "best of t per image, chosen with the ground truth (not a blind result)"
    return cell


def _kernel_cell(records: Sequence[Mapping[str, Any]], method: str = "manet") -> dict[str, Any] | None:
    """Mean LR-PSNR and kernel error of a per-pixel kernel estimator over a cell (None: not measured there)."""
    rows = [r[method] for r in records if method in r and "lr_psnr" in r[method]]
    if not rows:
        return None
    return {
        "n": len(rows),
        "lr_psnr": mean([r["lr_psnr"] for r in rows]),
        "kernel_l1": mean([r["kernel_l1"] for r in rows]),
        "kernel_psnr": mean([r["kernel_psnr"] for r in rows]),
    }


_NO_KERNEL_TRUTH = {"na": "LR-PSNR and kernel error use the MANet convention (direct subsampling); "
                          "this protocol uses bicubic downsampling"}


def _cells(config: EvalConfig, cases: Cases, step_of: Mapping[str, int | None]
           ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``cells[benchmark][protocol][method]`` and the kernel-estimation tables (by results key)."""
    estimators = [m for m in config.methods if METHOD_TABLE[m].kernel == "per_pixel"]
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    kernels: dict[str, dict[str, Any]] = {"kernel_estimation": {}}  # present even when MANet did not run
    kernels.update({results_key("kernel_estimation", m): {} for m in estimators})
    for b in config.benchmarks:
        cells[b] = {}
        for table in kernels.values():
            table[b] = {}
        for p in config.protocols:
            records = cases.get(b, {}).get(p)
            cells[b][p] = {}
            for m in config.methods:
                reason = not_applicable(m, p)
                if reason is not None:
                    cells[b][p][m] = {"na": reason}
                elif config.is_skipped(m, p, b):
                    cells[b][p][m] = {"skipped": "not run (--skip, to fit the time budget)"}
                elif records is None:
                    cells[b][p][m] = {"pending": True}
                else:
                    cells[b][p][m] = _method_cell(records, m, step_of.get(m))
            for m in estimators:
                if records is not None:
                    kcell = _kernel_cell(records, m)
                    kernels[results_key("kernel_estimation", m)][b][p] = dict(_NO_KERNEL_TRUTH) if kcell is None else kcell
    return cells, kernels


def _timing(cases: Cases, seconds: float | None) -> dict[str, Any]:
    per_method: dict[str, list[float]] = {}
    for by_protocol in cases.values():
        for records in by_protocol.values():
            for r in records:
                for m, sec in r.get("seconds", {}).items():
                    per_method.setdefault(m, []).append(sec)
    timing: dict[str, Any] = {"mean_seconds_per_case": {m: round(float(np.mean(v)), 3) for m, v in per_method.items()}}
    if seconds is not None:
        timing["total_seconds"] = round(float(seconds), 1)
    return timing


def aggregate(
    config: EvalConfig,
    cases: Cases,
    *,
    environment: Mapping[str, Any] | None = None,
    models: Sequence[Mapping[str, Any]] = (),
    models_previous: Sequence[Mapping[str, Any]] = (),
    complete: bool = True,
    seconds: float | None = None,
) -> dict[str, Any]:
    """A config and per-case records → the JSON-ready results: means per benchmark × protocol × method.

    ``cells[benchmark][protocol][method]`` is ``{"psnr", "ssim", "n"}`` (IKC adds per-iteration
    means, the fixed step and the oracle-best numbers), or ``{"na": reason}`` when the method does
    not apply, or ``{"pending": true}`` in a partial result. ``kernel_estimation[benchmark][protocol]``
    holds MANet's LR-PSNR and kernel error where the conventions allow it (``kernel_estimation_previous``
    the previous MANet's, ``ikc_fixed_step_previous`` the previous IKC's step, when they were run).
    """
    steps_info: dict[str, dict[str, Any] | None] = {}
    for ikc in [m for m in config.methods if METHOD_TABLE[m].iterative]:
        try:
            steps_info[ikc] = choose_ikc_step(cases, config.ikc_fixed_step, ikc)
        except ValueError:
            if complete:
                raise
            steps_info[ikc] = None  # partial result: Set5 gaussian8 not done yet
    step_of = {m: (None if info is None else info["step"]) for m, info in steps_info.items()}
    cells, kernels = _cells(config, cases, step_of)

    results: dict[str, Any] = {
        "format": FORMAT,
        "complete": bool(complete),
        "command": config.command,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scale": config.scale,
        "seed": config.seed,
        "benchmarks": list(config.benchmarks),
        "protocols": list(config.protocols),
        "methods": list(config.methods),
        "ikc_steps": config.ikc_steps,
        "images": images_used(config),
        "skipped": sorted(f"{m}@{p}@{b}" for m, p, b in config.skip),
        "metric": f"PSNR-Y (dB) / SSIM-Y, BT.601 luma, {config.scale} px shaved, 8-bit rounded; mean over cases",
        "environment": dict(environment or {}),
        "models": [dict(m) for m in models],
        "ikc_fixed_step": steps_info.get("ikc"),
        "cells": cells,
        "kernel_estimation": kernels["kernel_estimation"],
        "timing": _timing(cases, seconds),
        "cases": {b: {p: list(recs) for p, recs in by_p.items()} for b, by_p in cases.items()},
    }
    for m, info in steps_info.items():
        if METHOD_TABLE[m].repeats:  # the previous models' IKC step
            results[results_key("ikc_fixed_step", m)] = info
    results.update({key: table for key, table in kernels.items() if key != "kernel_estimation"})
    if config.previous_models_dir is not None or config.previous_results_path is not None:
        results["previous_models_dir"] = str(config.previous_models_dir or config.previous_results_path)
        results["models_previous"] = [dict(m) for m in models_previous]
    results["bars"] = check_bars(results)
    return results
