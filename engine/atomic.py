"""Atomic file writes: every file the engine writes appears complete or not at all.

The data is written to a temporary file beside the target (created exclusively, mode 0666 minus the
umask like any new file), flushed and fsynced, then renamed onto the target with ``os.replace``; the
folder is fsynced where the platform allows. A failure removes the temporary file and re-raises.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


class CreateError(OSError):
    """The temporary file could not be created in the target's folder (permissions, missing folder)."""


def write_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; raises :class:`OSError` (:class:`CreateError` when
    the folder does not accept new files) and leaves no partial or temporary file behind."""
    path = Path(target)
    temp = path.parent / f".{path.name[:80]}.{uuid.uuid4().hex[:12]}.part"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temp, flags, 0o666)
    except OSError as exc:
        raise CreateError(exc.errno, exc.strerror, str(temp)) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)
    return path


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
