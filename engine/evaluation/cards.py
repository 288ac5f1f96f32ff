"""The block of measured numbers recorded in each model card (``kernelscope-cli evaluate --update-cards``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.evaluation.config import METHODS
from engine.evaluation.values import round_or_none
from engine.methods import ESTIMATE, METHOD_TABLE, methods_for


_KERNEL_ESTIMATORS = frozenset(n for m in methods_for(ESTIMATE) for n in METHOD_TABLE[m].networks)
"""Networks whose card also records the kernel-estimation numbers (LR-PSNR, kernel error): MANet."""


def _card_methods(network: str) -> tuple[str, ...]:
    """The evaluated methods (current models) that run ``network``: their numbers go into its card."""
    return tuple(m for m in METHODS if network in METHOD_TABLE[m].networks)


def card_metrics(results: Mapping[str, Any], network: str,
                 reports: str = "docs/RESULTS.md, docs/results.json") -> dict[str, Any]:
    """A results dict and a network name → the measured numbers for its model card's ``metrics`` block
    (``reports``: the files the results were written to, named in its ``source``)."""
    block: dict[str, Any] = {
        "source": f"kernelscope-cli evaluate ({reports})",
        "command": results.get("command"),
        "date": results.get("date"),
        "complete": results.get("complete"),
        "images": {b: f"{u['used']}/{u['total']}" for b, u in results["images"].items()},
        "metric": "mean PSNR-Y (dB) / SSIM-Y per benchmark and protocol",
    }
    methods = _card_methods(network)
    for m in methods:
        if m not in results["methods"]:
            continue
        table: dict[str, dict[str, Any]] = {}
        for b, by_p in results["cells"].items():
            for p, by_m in by_p.items():
                cell = by_m.get(m, {})
                if cell.get("psnr") is None:
                    continue
                entry = {"psnr_y": round(cell["psnr"], 3), "ssim_y": round(cell["ssim"], 4)}
                if METHOD_TABLE[m].iterative:
                    entry["fixed_step"] = cell.get("fixed_step")
                    entry["oracle_best_psnr_y"] = round_or_none(cell.get("oracle_best_psnr"), 3)
                table.setdefault(p, {})[b] = entry
        block[m] = table
    if any(METHOD_TABLE[m].iterative for m in methods) and results.get("ikc_fixed_step") is not None:
        block["ikc_fixed_step"] = dict(results["ikc_fixed_step"])  # the default number of IKC steps
    if network in _KERNEL_ESTIMATORS:
        ke = {}
        for b, by_p in results["kernel_estimation"].items():
            for p, cell in by_p.items():
                if "lr_psnr" in cell:
                    ke.setdefault(p, {})[b] = {"lr_psnr": round_or_none(cell["lr_psnr"], 3),
                                               "kernel_l1": round_or_none(cell["kernel_l1"], 7),
                                               "kernel_psnr": round_or_none(cell["kernel_psnr"], 3)}
        block["kernel_estimation"] = ke
    return block
