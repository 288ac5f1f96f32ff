"""Reading and formatting the numbers of a results dict: shared by the bars, the report and the cards."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.methods import METHOD_TABLE


VARIANTS = tuple(f"variant{m}" for m in range(1, 6))
"""The clean spatially variant protocols, in report order."""


def finite(x: float) -> float | None:
    """``x`` as a float, or ``None`` when it is infinite (JSON has no infinity: identical images)."""
    return float(x) if math.isfinite(x) else None


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not ``None``; ``None`` when there are none."""
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def round_or_none(v: float | None, digits: int) -> float | None:
    """``v`` rounded to ``digits`` decimals, ``None`` kept."""
    return None if v is None else round(float(v), digits)


def fmt(v: float | None, digits: int = 2) -> str:
    """``v`` with ``digits`` decimals for a table; "—" for ``None``."""
    return "—" if v is None else f"{v:.{digits}f}"


def value(results: Mapping[str, Any], bench: str, protocol: str, method: str, key: str = "psnr") -> float | None:
    """``cells[bench][protocol][method][key]`` of ``results`` as a float; ``None`` when absent."""
    cell = results["cells"].get(bench, {}).get(protocol, {}).get(method, {})
    v = cell.get(key)
    return None if v is None else float(v)


def variant_mean(results: Mapping[str, Any], bench: str, method: str,
                 variants: Sequence[str] = VARIANTS) -> tuple[float | None, list[str]]:
    """Results, benchmark, method → (mean PSNR-Y over the variant modes present, those modes).

    Each mode weighs the same; the mean is ``None`` when a present mode has no value."""
    present = [p for p in variants if p in results["protocols"]]
    vals = [value(results, bench, p, method) for p in present]
    if not present or any(v is None for v in vals):
        return None, present
    return float(np.mean(vals)), present


def results_key(prefix: str, method: str) -> str:
    """A results entry name and a method → the entry for that method (``prefix`` or ``prefix_previous``).

    ``prefix_previous`` for a method run with the previous models (``ikc_fixed_step_previous``)."""
    return prefix + ("_previous" if METHOD_TABLE[method].repeats else "")
