"""Work-arounds for bugs of the installed Qt binding, applied explicitly (never at import time).

PySide6 6.12.0 returns ``True`` from ``SignalInstance.emit()`` without taking a reference to it, so every
signal emitted from Python (pyqtgraph emits several per mouse move) lowers the reference count of
``True`` by one. After a few thousand emits CPython deallocates ``True`` and aborts with
"Fatal Python error: bool_dealloc". :func:`guard_bool_refcounts` detects the bug with a private probe
signal and, only when it is present, gives ``True`` and ``False`` a reserve of 2**40 references (what
CPython ≥ 3.12 does anyway by making them immortal). Nothing else changes.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6 import QtCore

_RESERVE = 1 << 40
_applied = False


class _Probe(QtCore.QObject):
    ping = QtCore.Signal()


def emit_leaks_true() -> bool:
    """True when emitting a Python signal lowers ``True``'s reference count (the PySide6 6.12.0 bug)."""
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(16):
        probe.ping.emit()
    return sys.getrefcount(True) - before <= -16


def guard_bool_refcounts() -> bool:
    """Apply the reserve once if the bug is present; returns whether the guard is active."""
    global _applied
    if _applied:
        return True
    if not emit_leaks_true():
        return False
    if sys.version_info >= (3, 12):  # immortal objects: nothing can reach zero
        _applied = True
        return True
    for obj in (True, False):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is PyObject's first field
        refcnt.value += _RESERVE
    _applied = True
    return True
