"""The worker: jobs run in order off the caller's thread, cancel within one tile, stale generations."""

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from engine.progress import Cancelled
from engine.service import Worker
from engine.tiling import tiled_apply


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.shutdown()


def tiled_job(started: threading.Event, tiles_run: list, *, progress):
    x = np.zeros((1, 64, 64), np.float32)

    def fn(crops):
        tiles_run.append(threading.current_thread().name)
        started.set()
        time.sleep(0.05)
        return crops[0].copy()

    return tiled_apply(fn, [x], scale=1, out_channels=1, tile=8, context=0, progress=progress)


def test_job_runs_on_worker_thread_with_progress(worker):
    seen = []
    started, tiles = threading.Event(), []
    handle = worker.submit(tiled_job, started, tiles, on_progress=lambda f, m: seen.append(f))
    out = handle.future.result(timeout=30)
    assert out.shape == (1, 64, 64)
    assert all(name.startswith("kernelscope-engine") for name in tiles)
    assert seen[-1] == pytest.approx(1.0) and len(seen) == 64


def test_cancel_stops_within_one_tile(worker):
    started, tiles = threading.Event(), []
    handle = worker.submit(tiled_job, started, tiles)
    assert started.wait(10)
    handle.cancel()
    with pytest.raises(Cancelled):
        handle.future.result(timeout=10)
    assert len(tiles) <= 2  # the tile in flight, at most one more that had already begun


def test_queued_job_cancelled_never_starts(worker):
    gate = threading.Event()
    first = worker.submit(lambda *, progress: gate.wait(10))
    ran = []
    second = worker.submit(lambda *, progress: ran.append(1))
    second.cancel()
    gate.set()
    first.future.result(timeout=10)
    with pytest.raises((CancelledError, Cancelled)):
        second.future.result(timeout=10)
    assert ran == []


def test_superseding_job_makes_older_results_stale(worker):
    gate = threading.Event()
    old = worker.submit(lambda *, progress: (gate.wait(10), "old")[1], supersede=True)
    new = worker.submit(lambda *, progress: "new", supersede=True)
    gate.set()
    assert new.future.result(timeout=10) == "new"
    assert worker.is_current(new) and not worker.is_current(old)
    assert old.progress.cancelled


def test_errors_reach_the_future(worker):
    def boom(*, progress):
        raise ValueError("bad input: example.png")

    handle = worker.submit(boom)
    with pytest.raises(ValueError, match="example.png"):
        handle.future.result(timeout=10)
