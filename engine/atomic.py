"""Atomic file writes: every file the engine writes appears complete or not at all.

The one writer of the project (images, kernel maps, reports, cards, graphs and checkpoints all come
through :func:`write_atomic`):

- The data goes to a hidden temporary file beside the target (``.<name>.<pid>-<random>.part``,
  created exclusively, mode 0666 minus the umask like any new file), flushed and fsynced.
- It is then published. With ``overwrite=False`` the publication is a hard link, which the kernel
  refuses when the target exists: of two processes racing for one name exactly one wins, the other
  gets :class:`TargetExists` and nothing is replaced. With ``overwrite=True`` it is a rename
  (``os.replace``). File systems without hard links fall back to an exclusive create of the target.
- Ctrl-C (SIGINT) arriving during the write is held back until the file is either published or
  removed, then raised; every other failure removes the temporary file and re-raises. A temporary
  file left by a killed process (SIGKILL, power cut) is removed when a process first writes into its
  folder, once the process that made it no longer runs (:func:`clean_stale_parts`).

:func:`same_file` is the one test of "these two paths are one file" (resolved paths, and the same
inode for hard links), used by the output planner (:mod:`engine.outputs`) and the image writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

PART_SUFFIX = ".part"
_PART_RE = re.compile(r"^\..+\.(\d+)-[0-9a-f]{12}\.part$")
STALE_PART_SECONDS = 24 * 3600
"""A temporary file this old is removed even when its process id is in use again."""
_cleaned_folders: set[str] = set()
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}


class CreateError(OSError):
    """The temporary file could not be created in the target's folder (permissions, missing folder)."""


class InterruptedAfterWrite(KeyboardInterrupt):
    """Ctrl-C came during a write that then completed: ``path`` was written (whole) before stopping."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


class TargetExists(FileExistsError):
    """``overwrite=False`` and the target exists (possibly created by another process meanwhile)."""


def write_atomic(target: str | os.PathLike[str], data: bytes, *, overwrite: bool) -> Path:
    """Write ``data`` to ``target`` atomically and return the path.

    ``overwrite=False`` never replaces an existing file, even one that appears while writing
    (:class:`TargetExists`). Raises :class:`OSError` (:class:`CreateError` when the folder does not
    accept new files) and leaves no partial or temporary file behind.
    """
    path = _prepare(target, overwrite)
    published = False
    with _sigint_deferred(lambda: published and InterruptedAfterWrite(path)):
        temp, fd = _create_temp(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            _publish(temp, path, overwrite)
            published = True
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)  # already gone after a rename; the extra name after a link
        _fsync_folder(path.parent)
    return path


@contextlib.contextmanager
def atomic_writer(target: str | os.PathLike[str], *, overwrite: bool) -> Iterator[BinaryIO]:
    """A binary file to stream a large output into (an archive); published at ``target`` like
    :func:`write_atomic` when the block ends without an error, removed (nothing published) when it
    raises, Ctrl-C included. Ctrl-C is held back only while publishing."""
    path = _prepare(target, overwrite)
    temp, fd = _create_temp(path)
    published = False
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with _sigint_deferred(lambda: published and InterruptedAfterWrite(path)):
            _publish(temp, path, overwrite)
            published = True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    _fsync_folder(path.parent)


def _prepare(target: str | os.PathLike[str], overwrite: bool) -> Path:
    """The target as a Path, after the once-per-folder clean-up; TargetExists when it may not be replaced."""
    path = Path(target)
    folder_key = os.path.abspath(path.parent)
    if folder_key not in _cleaned_folders:  # once per folder and process: a batch writes many files
        _cleaned_folders.add(folder_key)
        clean_stale_parts(path.parent)
    if not overwrite and os.path.lexists(path):
        raise TargetExists(errno.EEXIST, "file exists", str(path))
    return path


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden temporary file beside ``path``: (its path, an open write descriptor)."""
    temp = path.parent / f".{path.name[:80]}.{os.getpid()}-{uuid.uuid4().hex[:12]}{PART_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        return temp, os.open(temp, flags, 0o666)
    except OSError as exc:
        raise CreateError(exc.errno, exc.strerror, str(temp)) from exc


def _publish(temp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
    else:
        _publish_no_replace(temp, path)


def _publish_no_replace(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless that name exists (atomically where links work)."""
    try:
        os.link(temp, path)
        return
    except FileExistsError:
        raise TargetExists(errno.EEXIST, "file exists", str(path)) from None
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
    # no hard links here (FAT, some network shares): claim the name exclusively, then fill it
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    except FileExistsError:
        raise TargetExists(errno.EEXIST, "file exists", str(path)) from None
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


@contextlib.contextmanager
def _sigint_deferred(interrupt: Callable[[], KeyboardInterrupt | bool]) -> Iterator[None]:
    """Hold back Ctrl-C (main thread, default handler only) until the block is done, then raise
    ``interrupt()`` (or a plain KeyboardInterrupt when it gives none)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):
        previous = None
    if previous is not signal.default_int_handler:
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:  # Ctrl-C wins over a failure of the write itself
            raise interrupt() or KeyboardInterrupt


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name one file: the same inode if both exist, else the same resolved path."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    try:
        ra, rb = os.path.realpath(a), os.path.realpath(b)
    except (OSError, ValueError):
        ra, rb = os.path.abspath(a), os.path.abspath(b)
    return os.path.normcase(ra) == os.path.normcase(rb)


def clean_stale_parts(folder: str | os.PathLike[str]) -> int:
    """Remove temporary files of :func:`write_atomic` left in ``folder`` by a process that no longer
    runs (or older than :data:`STALE_PART_SECONDS`); returns how many were removed. Best effort."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        match = _PART_RE.match(entry.name)
        if match is None:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_PART_SECONDS
            if old or not _process_alive(int(match.group(1))):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check: rely on the age limit
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows (POSIX); best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
