"""Waiting for background threads from GUI tests.

``qtbot.wait``/``waitUntil`` spin Qt's event loop in short slices without always giving other Python
threads the GIL (seen with PySide6 6.12), so the studio's loader thread can starve while a test
waits on it. :func:`wait_until` sleeps between event rounds, which releases the GIL.
"""

from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Process Qt events until ``predicate()`` is true; AssertionError after ``timeout_s``."""
    from PySide6 import QtWidgets

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.005)
        QtWidgets.QApplication.processEvents()
