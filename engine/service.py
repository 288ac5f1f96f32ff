"""The engine worker: one background thread running jobs, with progress, cancel and generations.

No Qt here: the GUI wraps this with a main-thread bridge that re-emits results as signals; tests use
plain ``handle.future.result()``.

* :meth:`Worker.submit` returns a :class:`JobHandle` (a ``concurrent.futures.Future`` plus the job's
  :class:`~engine.progress.Progress` and generation). Jobs run one at a time, in order.
* :meth:`JobHandle.cancel` requests cancellation; long work checks it at every tile, so a running job
  stops within one tile (a queued job never starts). The future then raises
  :class:`~engine.progress.Cancelled`.
* Each ``submit(..., supersede=True)`` starts a new *generation*: results of older jobs are stale
  (:meth:`Worker.is_current`), and those jobs are cancelled, so a fast-moving user never sees an old
  result replace a newer one.
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from engine.progress import Progress

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]


@dataclass
class JobHandle:
    """A submitted job: its future, progress token, generation and id."""

    job_id: int
    generation: int
    future: Future
    progress: Progress

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation point; a job not yet started never starts.

        A running job's future then raises :class:`~engine.progress.Cancelled`; a queued one's
        raises ``concurrent.futures.CancelledError``.
        """
        self.progress.cancel()
        self.future.cancel()

    def done(self) -> bool:
        return self.future.done()


class Worker:
    """A single worker thread executing jobs ``fn(*args, progress=..., **kwargs)`` in order."""

    def __init__(self, name: str = "kernelscope-engine") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._generation = 0
        self._ids = itertools.count(1)
        self._live: list[JobHandle] = []

    @property
    def generation(self) -> int:
        return self._generation

    def is_current(self, handle: JobHandle) -> bool:
        """False once a later ``supersede=True`` job was submitted: drop this job's result."""
        return handle.generation == self._generation

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_progress: ProgressCallback | None = None,
        on_notice: Callable[[str], None] | None = None,
        supersede: bool = False,
        **kwargs: Any,
    ) -> JobHandle:
        """Queue ``fn(*args, progress=<Progress>, **kwargs)``.

        ``on_progress(fraction, message)`` and ``on_notice(message)`` (e.g. an out-of-memory retry)
        are called from the worker thread.
        """
        progress = Progress(on_progress, notice_callback=on_notice)

        def run() -> Any:
            progress.check_cancelled()
            return fn(*args, progress=progress, **kwargs)

        with self._lock:
            if supersede:
                self._generation += 1
                for old in self._live:
                    old.cancel()
            future = self._executor.submit(run)
            handle = JobHandle(next(self._ids), self._generation, future, progress)
            self._live = [h for h in self._live if not h.done()] + [handle]
        return handle

    def cancel_all(self) -> None:
        with self._lock:
            for handle in self._live:
                handle.cancel()

    def shutdown(self, wait: bool = True) -> None:
        self.cancel_all()
        self._executor.shutdown(wait=wait, cancel_futures=True)
