"""The main-thread bridge to the engine worker: jobs in, Qt signals out.

:class:`EngineBridge` owns one :class:`engine.service.Worker` and a cache of loaded
:class:`~engine.pipeline.models.ModelSet` per ``(method, scale, device)`` (loading takes about a
second, so it happens inside the job, on the worker thread). Results, failures and progress come
back as signals delivered on the GUI thread; progress is throttled to about 20 updates a second and
the final 100 % is always delivered. A tile split after an out-of-memory error is reported through
:attr:`EngineBridge.notice`.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PySide6 import QtCore

from engine.methods import METHOD_TABLE
from engine.progress import Cancelled
from engine.service import JobHandle, Worker

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals a second


@dataclass
class Job:
    """A submitted job as the GUI sees it: what it is for (``kind``, ``tag``) and when it started."""

    handle: JobHandle
    kind: str
    tag: Any = None
    started: float = field(default_factory=time.monotonic)
    last_emit: float = 0.0
    last_phase: str = ""  # the last message without its "· tile k of n": a new phase is never throttled

    @property
    def job_id(self) -> int:
        return self.handle.job_id


class EngineBridge(QtCore.QObject):
    """Submits work to the engine worker and re-emits its outcome on the GUI thread."""

    progressed = QtCore.Signal(int, float, str)  # job id, fraction, message
    finished = QtCore.Signal(int, str, object)  # job id, kind, result
    failed = QtCore.Signal(int, str, str)  # job id, kind, user-readable reason
    cancelled = QtCore.Signal(int, str)  # job id, kind
    notice = QtCore.Signal(str)  # e.g. "out of memory: retrying with smaller tiles"

    _done = QtCore.Signal(int, object, object)  # internal: job id, result, exception (worker thread)
    _progress = QtCore.Signal(int, float, str)  # internal, worker thread
    _notice = QtCore.Signal(str)  # internal, any thread

    def __init__(self, parent: QtCore.QObject | None = None, *, models_dir: Path | None = None) -> None:
        super().__init__(parent)
        self._worker = Worker()
        self._jobs: dict[int, Job] = {}
        self._models: dict[tuple[str, int, str], Any] = {}
        self._models_lock = threading.Lock()
        self.models_dir = models_dir
        self._done.connect(self._on_done, QtCore.Qt.ConnectionType.QueuedConnection)
        self._progress.connect(self._on_progress, QtCore.Qt.ConnectionType.QueuedConnection)
        self._notice.connect(self._on_notice, QtCore.Qt.ConnectionType.QueuedConnection)

    # models ------------------------------------------------------------------------------------
    def models_for(self, method: str, scale: int, device: str) -> Any:
        """The cached ModelSet for ``(method, scale, device)``, loading it on first use (worker thread)."""
        from engine.pipeline.models import load_for_method

        if not METHOD_TABLE[method].needs_models:
            return None
        key = (method, int(scale), device)
        with self._models_lock:
            if key not in self._models:
                self._models[key] = load_for_method(method, scale, device=device, models_dir=self.models_dir)
            return self._models[key]

    # jobs ----------------------------------------------------------------------------------------
    def submit(self, kind: str, fn: Callable[..., Any], *args: Any, tag: Any = None, **kwargs: Any) -> Job:
        """Run ``fn(*args, progress=..., **kwargs)`` on the worker; outcome arrives as a signal."""
        box: dict[str, Any] = {"early": []}
        lock = threading.Lock()  # reports made before submit() knows the job id are kept, then sent in order

        def on_progress(fraction: float, message: str) -> None:
            with lock:
                job_id = box.get("id")
                if job_id is None:
                    box["early"].append((fraction, message))
                    return
                report(job_id, fraction, message)

        def report(job_id: int, fraction: float, message: str) -> None:
            job = self._jobs.get(job_id)
            now = time.monotonic()
            phase = message.split(" · tile ")[0]  # "IKC step 1 of 7 · super-resolving" without "· tile k of n"
            if (job is not None and fraction < 1.0 and now - job.last_emit < PROGRESS_INTERVAL_S
                    and phase == job.last_phase):
                return
            if job is not None:
                job.last_emit = now
                job.last_phase = phase
            self._progress.emit(job_id, fraction, message)

        handle = self._worker.submit(fn, *args, on_progress=on_progress, on_notice=self._notice.emit, **kwargs)
        job = Job(handle, kind, tag)
        self._jobs[handle.job_id] = job
        with lock:
            box["id"] = handle.job_id
            for fraction, message in box.pop("early"):
                report(handle.job_id, fraction, message)

        def done(future, job_id=handle.job_id) -> None:
            try:
                result, error = future.result(), None
            except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the GUI
                result, error = None, exc
            self._done.emit(job_id, result, error)

        handle.future.add_done_callback(done)
        return job

    def job(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job, or every job when ``job_id`` is None."""
        for jid, job in list(self._jobs.items()):
            if job_id is None or jid == job_id:
                job.handle.cancel()

    def busy(self) -> bool:
        return bool(self._jobs)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=True)
        QtCore.QCoreApplication.processEvents()

    # main-thread slots -----------------------------------------------------------------------------
    @QtCore.Slot(int, float, str)
    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        if job_id in self._jobs:
            self.progressed.emit(job_id, fraction, message)

    @QtCore.Slot(str)
    def _on_notice(self, message: str) -> None:
        self.notice.emit(message)

    @QtCore.Slot(int, object, object)
    def _on_done(self, job_id: int, result: Any, error: Any) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        if error is None:
            self.progressed.emit(job_id, 1.0, "done")
            self.finished.emit(job_id, job.kind, result)
        elif isinstance(error, (Cancelled, CancelledError)):
            self.cancelled.emit(job_id, job.kind)
        else:
            log.warning("job %s (%s) failed: %s", job_id, job.kind, error, exc_info=error)
            self.failed.emit(job_id, job.kind, describe_error(error))


def describe_error(exc: BaseException) -> str:
    """A one-line, user-readable reason for a failed job."""
    from engine.errors import DeviceOutOfMemory, ModelError
    from engine.imageio import ImageIOError

    if isinstance(exc, DeviceOutOfMemory):
        return f"out of memory even with the smallest tiles ({exc}); try the CPU or a smaller tile size"
    if isinstance(exc, (ModelError, ImageIOError)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"model file missing: {exc}"
    return f"{type(exc).__name__}: {exc}"
