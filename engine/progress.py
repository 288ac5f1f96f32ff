"""The small progress/cancel contract passed into every long piece of work.

Long functions take a ``progress: Progress`` argument (default :data:`NULL_PROGRESS`), call
``progress.set_progress(fraction)`` as they go, ``progress.check_cancelled()`` at every cancellation
point (every tile), ``progress.notify(message)`` for events the user should hear about (an
out-of-memory retry), and hand ``progress.sub_progress(offset, length)`` to the work they delegate.
"""

from __future__ import annotations

import threading
from typing import Callable


class Cancelled(Exception):
    """Raised by :meth:`Progress.check_cancelled` once cancellation was requested."""


class Progress:
    """Reports a fraction in [0, 1] to an optional callback and carries a cancellation flag.

    ``callback(fraction, message)`` is called from the working thread; keep it cheap.
    """

    def __init__(
        self,
        callback: Callable[[float, str], None] | None = None,
        cancel_event: threading.Event | None = None,
        notice_callback: Callable[[str], None] | None = None,
    ) -> None:
        self._callback = callback
        self._notice_callback = notice_callback
        self._cancel = cancel_event if cancel_event is not None else threading.Event()
        self.fraction = 0.0
        self.message = ""
        self.notices: list[str] = []

    # reporting -----------------------------------------------------------------------------
    def set_progress(self, fraction: float, message: str = "") -> None:
        self.fraction = min(1.0, max(0.0, float(fraction)))
        if message:
            self.message = message
        if self._callback is not None:
            self._callback(self.fraction, self.message)

    def notify(self, message: str) -> None:
        """Report something the user should know that is not progress (e.g. an out-of-memory retry)."""
        self.notices.append(message)
        if self._notice_callback is not None:
            self._notice_callback(message)

    def sub_progress(self, offset: float, length: float, phase: str = "") -> "Progress":
        """A view that maps its own [0, 1] onto ``[offset, offset + length]`` of this one.

        With ``phase`` ("estimating kernels"), every report through the view carries that name, followed
        by the view's own message if any ("estimating kernels · tile 3 of 12").
        """
        return _SubProgress(self, offset, length, phase)

    # cancellation --------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")


class _SubProgress(Progress):
    def __init__(self, parent: Progress, offset: float, length: float, phase: str = "") -> None:
        super().__init__(None, parent._cancel)
        self._parent = parent
        self._offset = float(offset)
        self._length = float(length)
        self._phase = phase

    def set_progress(self, fraction: float, message: str = "") -> None:
        self.fraction = min(1.0, max(0.0, float(fraction)))
        if self._phase:
            message = f"{self._phase} · {message}" if message else self._phase
        self._parent.set_progress(self._offset + self._length * self.fraction, message)

    def notify(self, message: str) -> None:
        self._parent.notify(message)


class _NullProgress(Progress):
    def cancel(self) -> None:  # a shared default must never become cancelled
        raise RuntimeError("NULL_PROGRESS cannot be cancelled; pass your own Progress")

    def notify(self, message: str) -> None:  # shared: keep nothing
        pass


NULL_PROGRESS: Progress = _NullProgress()
"""A progress object that reports nowhere and is never cancelled."""
