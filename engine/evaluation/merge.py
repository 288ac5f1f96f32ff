"""Join results files of separate ``kernelscope-cli evaluate`` runs into one report (``evaluate --merge``).

Evaluations of the full benchmarks take hours on a small CPU, so they are run as parallel processes
(one per group of protocols) and, after a retraining, only for the methods whose networks changed.
:func:`merge_results` joins their per-case records and re-aggregates them with
:func:`engine.evaluation.aggregate.aggregate`, exactly as one run would have.

A source is ``FILE`` (every method of every case), ``FILE:m1,m2`` (only those methods) or
``FILE:manet=manet_previous`` (a method taken under another name: the ``manet`` records of a run with
the previous models become the ``manet_previous`` row). Sources are read in order; a later source's
record of a method replaces an earlier one's for the same case. All sources must share the format,
scale, seed and number of IKC steps, since only then are their LR images and iteration lists the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data import ALL_PROTOCOLS, BENCHMARKS
from engine.evaluation.aggregate import aggregate
from engine.evaluation.config import ALL_METHODS, FORMAT, PREVIOUS_METHODS, EvalConfig, not_applicable
from engine.methods import networks_for

__all__ = ["MergeSource", "parse_merge_source", "load_merge_source", "merge_results"]


@dataclass(frozen=True)
class MergeSource:
    """One results file of a merge and which of its methods to take, under which names.

    ``take``: method in the file → name in the merged results; empty: every method, same names.
    """

    path: Path
    take: Mapping[str, str] = field(default_factory=dict)

    def name_of(self, method: str) -> str | None:
        """The merged name of ``method`` from this file, or None when it is not taken."""
        if not self.take:
            return method
        return self.take.get(method)


def parse_merge_source(text: str) -> MergeSource:
    """``FILE``, ``FILE:m1,m2`` or ``FILE:m1=renamed,m2`` → :class:`MergeSource`; ``ValueError`` names bad methods."""
    path_text, sep, spec = text.rpartition(":") if ":" in text and not Path(text).exists() else (text, "", "")
    if not sep:
        return MergeSource(Path(text))
    take: dict[str, str] = {}
    for item in filter(None, spec.split(",")):
        source, _, target = item.partition("=")
        target = target or source
        for name in (source, target):
            if name not in ALL_METHODS:
                raise ValueError(f"--merge {text}: unknown method {name!r}; choose from {', '.join(ALL_METHODS)}")
        take[source] = target
    if not take:
        raise ValueError(f"--merge {text}: no method after ':'")
    return MergeSource(Path(path_text), take)


def load_merge_source(source: MergeSource) -> dict[str, Any]:
    """Read one source's results JSON; ``ValueError`` (one line naming the file) when it is not one."""
    try:
        results = json.loads(source.path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--merge {source.path}: cannot read it ({exc})") from None
    if not isinstance(results, dict) or results.get("format") != FORMAT or not isinstance(results.get("cases"), dict):
        raise ValueError(f"--merge {source.path}: not a {FORMAT} results file with per-case records")
    if not results.get("complete", False):
        raise ValueError(f"--merge {source.path}: a partial (preliminary) result; merge finished runs only")
    return results


def _ordered(names: set[str], order: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in order if n in names)


def merge_results(sources: Sequence[tuple[MergeSource, Mapping[str, Any]]], *, command: str) -> dict[str, Any]:
    """Loaded sources (in order) → the results dict of their joined per-case records.

    Cells no source covers for every case read "not run" (they become ``skip`` entries of the merged
    config); a method that covers only some cases of a cell is an error, as is a source made with
    another scale, seed or IKC step count than the first.
    """
    if not sources:
        raise ValueError("--merge needs at least one results file")
    first = sources[0][1]
    for source, results in sources[1:]:
        for key in ("scale", "seed", "ikc_steps"):
            if results.get(key) != first.get(key):
                raise ValueError(f"--merge {source.path}: made with {key} {results.get(key)}, "
                                 f"{sources[0][0].path} with {first.get(key)}")
    merged: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}  # bench → protocol → case name → record
    used: dict[str, int] = {}
    seconds = 0.0
    models: dict[str, Mapping[str, Any]] = {}
    models_previous: dict[str, Mapping[str, Any]] = {}
    previous_from: list[str] = []  # where the "previous models" rows came from, in source order
    for source, results in sources:
        taken_any = False
        for bench, by_protocol in results["cases"].items():
            for protocol, records in by_protocol.items():
                cell = merged.setdefault(bench, {}).setdefault(protocol, {})
                for record in records:
                    out = cell.setdefault(record["name"], {k: v for k, v in record.items()
                                                           if k not in ALL_METHODS and k != "seconds"})
                    for method, value in record.items():
                        target = source.name_of(method) if method in ALL_METHODS else None
                        if target is None:
                            continue
                        taken_any = True
                        out[target] = value
                        if method in record.get("seconds", {}):
                            out.setdefault("seconds", {})[target] = record["seconds"][method]
            n = int(results.get("images", {}).get(bench, {}).get("used", 0))
            used[bench] = n if bench not in used else min(used[bench], n)
        if not taken_any:
            raise ValueError(f"--merge {source.path}: none of {', '.join(source.take) or 'its methods'} is in it")
        seconds += float(results.get("timing", {}).get("total_seconds") or 0.0)
        targets = {m: source.name_of(m) for m in results.get("methods", [])}  # method in the file → merged name
        takes_current = any(t in ALL_METHODS and t not in PREVIOUS_METHODS for t in targets.values())
        previous = [m for m, t in targets.items() if t in PREVIOUS_METHODS]  # methods that make "previous" rows
        takes_previous_as_current = any(m not in PREVIOUS_METHODS for m in previous)
        if takes_current:  # the cards of the networks the taken methods ran, not every card the file lists
            networks = {n for m, t in targets.items() if t in ALL_METHODS and t not in PREVIOUS_METHODS
                        for n in networks_for(m)}
            models.update({m["id"]: m for m in results.get("models", []) if m.get("network") in networks})
        if takes_previous_as_current:
            models_previous.update({m["id"]: m for m in results.get("models", [])})
            previous_from.append(str(source.path))
        else:
            models_previous.update({m["id"]: m for m in results.get("models_previous", [])})
            if previous and results.get("previous_models_dir"):
                previous_from.extend(str(results["previous_models_dir"]).split("; "))

    benchmarks = _ordered(set(merged), BENCHMARKS)
    protocols = _ordered({p for by_p in merged.values() for p in by_p}, ALL_PROTOCOLS)
    methods = _ordered({k for by_p in merged.values() for recs in by_p.values() for r in recs.values() for k in r
                        if k in ALL_METHODS}, ALL_METHODS)
    cases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    skip: set[tuple[str, str, str]] = set()
    for bench in benchmarks:
        for protocol in protocols:
            records = list(merged[bench].get(protocol, {}).values())
            cases.setdefault(bench, {})[protocol] = records
            for method in methods:
                have = sum(method in r for r in records)
                if have == 0 and not_applicable(method, protocol) is None:
                    skip.add((method, protocol, bench))
                elif 0 < have < len(records):
                    raise ValueError(f"--merge: {method} has {have} of the {len(records)} {bench} {protocol} cases; "
                                     "merge runs over the same images")
    totals = {b: int(sources[0][1].get("images", {}).get(b, {}).get("total", used[b])) for b in benchmarks}
    step = first.get("ikc_fixed_step") or {}
    config = EvalConfig(
        benchmarks=benchmarks, protocols=protocols, methods=methods, scale=int(first["scale"]),
        ikc_steps=int(first["ikc_steps"]),
        ikc_fixed_step=None if str(step.get("rule", "auto")).startswith("auto") else int(step["step"]),
        max_images={b: used[b] for b in benchmarks if used[b] < totals[b]}, skip=frozenset(skip),
        seed=int(first["seed"]), command=command,
    )
    results = aggregate(config, cases, environment=first.get("environment", {}), models=list(models.values()),
                        models_previous=list(models_previous.values()), complete=True, seconds=seconds)
    if models_previous:
        results["previous_models_dir"] = "; ".join(dict.fromkeys(previous_from)) or "the merged files"
        results["models_previous"] = list(models_previous.values())
    results["merged_from"] = [{"path": str(s.path), "take": dict(s.take) or "all", "command": r.get("command"),
                               "date": r.get("date")} for s, r in sources]
    return results
