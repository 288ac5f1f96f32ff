import threading

import pytest

from engine.progress import NULL_PROGRESS, Cancelled, Progress


def test_sub_progress_maps_into_parent_range():
    seen = []
    p = Progress(lambda f, m: seen.append(round(f, 6)))
    sub = p.sub_progress(0.5, 0.25)
    sub.set_progress(0.0)
    sub.set_progress(1.0)
    sub.sub_progress(0.5, 0.5).set_progress(1.0)
    assert seen == [0.5, 0.75, 0.75]


def test_cancel_reaches_sub_progress():
    event = threading.Event()
    p = Progress(cancel_event=event)
    sub = p.sub_progress(0, 1)
    sub.check_cancelled()
    event.set()
    with pytest.raises(Cancelled):
        sub.check_cancelled()


def test_fraction_is_clamped_and_null_progress_cannot_be_cancelled():
    p = Progress()
    p.set_progress(3.0)
    assert p.fraction == 1.0
    with pytest.raises(RuntimeError):
        NULL_PROGRESS.cancel()
    NULL_PROGRESS.check_cancelled()
