"""Reading images off the GUI thread.

Decoding a large PNG or TIFF takes seconds; doing it on the GUI thread froze the window. An
:class:`ImageLoader` owns one reader thread (separate from the engine worker, so opening a file never
waits behind a running upscale), reads every file of a request in order, and reports each image and
each failure back on the GUI thread as Qt signals:

- :attr:`ImageLoader.opened` ``(request_id, purpose, path, image)`` for every readable file, as soon as
  it is decoded (a folder fills the queue progressively);
- :attr:`ImageLoader.finished` ``(request_id, purpose, problems)`` once per request, with one
  ``"name: reason"`` string per file that could not be read.

``purpose`` is the caller's tag (the window uses ``"queue"`` and ``"lab"``). Folders are expanded on
the reader thread too (a deep tree takes time to walk).
"""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PySide6 import QtCore

from engine.imageio import READ_SUFFIXES, Image, ImageIOError, read_image

log = logging.getLogger(__name__)


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given, and the readable-suffix files inside folders (recursively, sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READ_SUFFIXES))
        else:
            out.append(p)
    return out


def read_reason(path: Path, exc: BaseException) -> str:
    """``"name: reason"`` for a file that could not be opened."""
    if isinstance(exc, ImageIOError):
        return f"{Path(exc.path).name}: {exc.reason}"
    if isinstance(exc, OSError):
        return f"{path.name}: {exc.strerror or exc}"
    return f"{path.name}: {type(exc).__name__}: {exc}"


class ImageLoader(QtCore.QObject):
    """Reads image files on a private thread; results arrive as signals on the GUI thread."""

    opened = QtCore.Signal(int, str, object, object)  # request id, purpose, Path, engine Image
    finished = QtCore.Signal(int, str, object)  # request id, purpose, list of "name: reason"

    _opened = QtCore.Signal(int, str, object, object)  # internal, emitted on the reader thread
    _finished = QtCore.Signal(int, str, object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernelscope-read")
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self._closed = threading.Event()
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self._opened.connect(self._relay_opened, queued)
        self._finished.connect(self._relay_finished, queued)

    def read(self, paths: list[Path], purpose: str = "queue") -> int:
        """Start reading ``paths`` (files or folders) in order; returns the request id."""
        request_id = next(self._ids)
        self._pending.add(request_id)
        self._pool.submit(self._run, request_id, purpose, [Path(p) for p in paths])
        return request_id

    def busy(self) -> bool:
        """Whether any request has not reported :attr:`finished` yet."""
        return bool(self._pending)

    def shutdown(self) -> None:
        """Stop: requests not started are dropped, the file being read finishes unreported."""
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()

    # reader thread -----------------------------------------------------------------------------
    def _run(self, request_id: int, purpose: str, paths: list[Path]) -> None:
        problems: list[str] = []
        try:
            files = expand_paths(paths)
        except OSError as exc:
            files, problems = [], [f"{', '.join(p.name for p in paths)}: {exc.strerror or exc}"]
        for path in files:
            if self._closed.is_set():
                return
            try:
                image = read_image(path)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops the rest
                if not isinstance(exc, (ImageIOError, OSError)):
                    log.warning("reading %s failed", path, exc_info=exc)
                problems.append(read_reason(path, exc))
                continue
            if self._closed.is_set():
                return
            self._opened.emit(request_id, purpose, path, image)
        if not self._closed.is_set():
            self._finished.emit(request_id, purpose, problems)

    # GUI thread ---------------------------------------------------------------------------------
    @QtCore.Slot(int, str, object, object)
    def _relay_opened(self, request_id: int, purpose: str, path: Path, image: Image) -> None:
        if request_id in self._pending:
            self.opened.emit(request_id, purpose, path, image)

    @QtCore.Slot(int, str, object)
    def _relay_finished(self, request_id: int, purpose: str, problems: list[str]) -> None:
        if request_id in self._pending:
            self._pending.discard(request_id)
            self.finished.emit(request_id, purpose, problems)
