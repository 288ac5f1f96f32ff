"""Honest timing for the benchmark scripts: an idle machine, interleaved variants, medians and ratios.

Every timing script in ``bench/`` starts with :func:`require_idle` (refuses to run when the 1-minute
load average is above :data:`MAX_LOAD_1MIN`, unless ``--allow-load`` is given, which marks every
result as LOADED), times its variants with :func:`interleaved` (one run of each variant per round,
so load that comes and goes hits them alike) and reports medians and ratios with :func:`report`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

MAX_LOAD_1MIN = 0.5

# Time the checkout these scripts live in (not whatever ``engine`` an editable install points at).
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@dataclass
class Conditions:
    """Load averages when the benchmark started (and ended), and whether the results are loaded."""

    load_start: tuple[float, float, float]
    allowed_load: bool
    load_end: tuple[float, float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> bool:
        """Other work ran: the machine was busy at the start, or the load at the end exceeds what the
        benchmark itself can make (one runnable thread per CPU) by more than the idle margin."""
        own = float(os.cpu_count() or 1)
        busy_end = self.load_end is not None and self.load_end[0] > own + MAX_LOAD_1MIN
        return self.load_start[0] > MAX_LOAD_1MIN or busy_end

    def finish(self) -> None:
        self.load_end = _loadavg()

    def header(self) -> str:
        end = f", at the end {self.load_end[0]:.2f}" if self.load_end else ""
        mark = "LOADED — not a valid measurement; " if self.loaded else ""
        return (f"{mark}load average (1 min) at the start {self.load_start[0]:.2f}{end}; "
                f"{os.cpu_count()} CPUs; {platform.processor() or platform.machine()}; Python {platform.python_version()}")

    def as_dict(self) -> dict:
        return {"load1_start": round(self.load_start[0], 2),
                "load1_end": None if self.load_end is None else round(self.load_end[0], 2),
                "loaded": self.loaded}


def _loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):  # pragma: no cover - not on Linux/macOS
        return (0.0, 0.0, 0.0)


def add_load_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-load", action="store_true",
                        help=f"run even when the 1-minute load average is above {MAX_LOAD_1MIN} "
                             "(results are marked LOADED)")


def require_idle(allow_load: bool, *, script: str | None = None) -> Conditions:
    """Exit with one line when the machine is busy (unless ``allow_load``); else the conditions."""
    load = _loadavg()
    cond = Conditions(load, allow_load)
    if load[0] > MAX_LOAD_1MIN and not allow_load:
        name = script or os.path.basename(sys.argv[0])
        print(f"{name}: refusing to time on a busy machine: 1-minute load average {load[0]:.2f} > "
              f"{MAX_LOAD_1MIN} (stop other work, or pass --allow-load to mark the results LOADED)",
              file=sys.stderr)
        raise SystemExit(3)
    return cond


def interleaved(variants: dict[str, Callable[[], object]], repeats: int, *, warmup: int = 1,
                progress: bool = True) -> dict[str, list[float]]:
    """Seconds of every run of every variant: ``warmup`` untimed rounds, then ``repeats`` rounds,
    each running every variant once in order (A B C A B C …)."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(repeats):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if progress:
            print(f"  round {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.2f} s" for n in variants),
                  file=sys.stderr, flush=True)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(v) for name, v in times.items()}


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def report(cond: Conditions, title: str, rows: list[list[str]], header: list[str], extra: dict | None = None) -> None:
    """Print the conditions line, a markdown table and one JSON line (for the record)."""
    cond.finish()
    print(f"## {title}")
    print(cond.header())
    print()
    print(table(header, rows))
    print()
    print(json.dumps({"bench": title, **cond.as_dict(), "rows": rows, **(extra or {})}))
