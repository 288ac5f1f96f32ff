"""bench/honest.py: a benchmark's own threads do not mark its result as loaded; other work does."""

import importlib.util
import os
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "bench" / "honest.py"


def _honest():
    spec = importlib.util.spec_from_file_location("bench_honest", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_loaded_judges_other_work_not_the_benchmarks_own_threads():
    honest = _honest()
    cpus = float(os.cpu_count() or 1)
    idle_start = honest.Conditions((0.2, 0.2, 0.2), allowed_load=False)
    idle_start.load_end = (cpus, cpus, 0.5)  # the benchmark kept every CPU busy: still a valid run
    assert not idle_start.loaded
    busy_start = honest.Conditions((0.9, 0.5, 0.5), allowed_load=True)
    assert busy_start.loaded
    competed = honest.Conditions((0.2, 0.2, 0.2), allowed_load=False)
    competed.load_end = (cpus + 1.0, cpus, 0.5)  # more runnable work than the benchmark can make
    assert competed.loaded
