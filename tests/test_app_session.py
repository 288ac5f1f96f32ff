"""The studio's session without Qt: the queue, the job tracker and what it asks its view to show.

A recording view stands in for the window and a synchronous engine for the worker (tiny bicubic
runs need no models). One test imports :mod:`app.session` in a fresh interpreter with PySide6,
shiboken6 and pyqtgraph made unimportable and runs a whole job lifecycle there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.session import JobKind, QueueEntry, StudioSession
from engine.imageio import Image, read_image
from engine.progress import NULL_PROGRESS
from engine.upscale import UpscaleOptions

BICUBIC = UpscaleOptions(method="bicubic", scale=4)


class RecordingView:
    """A :class:`app.session.StudioView` that records every call as ``(name, args)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.labels = np.zeros((1, 1), np.uint8)

    def __getattr__(self, name: str):
        def record(*args):
            self.calls.append((name, args))

        return record

    def painted_labels(self) -> np.ndarray:
        return self.labels

    def method_label(self, method: str) -> str:
        return {"bicubic": "Bicubic (baseline)", "manet": "MANet + RRDB-SFT (blind)"}[method]

    def named(self, name: str) -> list[tuple]:
        return [args for n, args in self.calls if n == name]


@dataclass
class Handle:
    job_id: int


class SyncEngine:
    """A :class:`app.session.Engine` that keeps submitted jobs until the test runs them."""

    def __init__(self) -> None:
        self.submitted: dict[int, tuple] = {}
        self.cancelled: list[int | None] = []

    def submit(self, kind: str, fn, *args, **kwargs) -> Handle:
        job_id = len(self.submitted) + 1
        self.submitted[job_id] = (kind, fn, args, kwargs)
        return Handle(job_id)

    def run(self, job_id: int):
        _kind, fn, args, kwargs = self.submitted[job_id]
        return fn(*args, progress=NULL_PROGRESS, **kwargs)

    def cancel(self, job_id: int | None = None) -> None:
        self.cancelled.append(job_id)

    def models_for(self, method: str, scale: int, device: str):
        assert method == "bicubic", "these tests run bicubic only"
        return None


def session_with_image(h: int = 12, w: int = 16) -> tuple[StudioSession, RecordingView, SyncEngine, QueueEntry]:
    view, engine = RecordingView(), SyncEngine()
    session = StudioSession(view, engine)
    rgb = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    entry = session.add_image(Image(rgb), "a.png", Path("a.png"))
    view.labels = np.zeros((h, w), np.uint8)
    session.select(entry)
    return session, view, engine, entry


def run_lifecycle() -> None:
    """Start a run, report progress, deliver its result; then a failed and a cancelled run."""
    session, view, engine, entry = session_with_image()
    assert view.named("add_queue_item") == [(entry,)] and view.named("show_entry")[-1] == (entry,)
    job_id = session.start_run(BICUBIC, "cpu")
    assert job_id is not None and engine.submitted[job_id][0] == "upscale"
    assert session.jobs.get(job_id).kind is JobKind.UPSCALE and session.is_running()
    assert view.named("set_running")[-1] == (True, "Bicubic")
    assert session.start_run(BICUBIC, "cpu") is None  # one run at a time
    session.job_progress(job_id, 0.5, "super-resolving", now_s=10.0)
    assert view.named("show_progress")[-1][1].startswith("super-resolving · ETA")
    session.job_finished(job_id, engine.run(job_id))
    assert not session.job_pending(job_id) and not session.is_running()
    assert entry.result is not None and entry.result.image.rgb_f32.shape == (48, 64, 3)
    assert entry.sr_u8.dtype == np.uint8 and entry.output.noise is not None
    assert view.named("set_running")[-1] == (False,)
    assert view.named("finish_progress")[-1][0].startswith("done in")
    assert view.named("show_entry")[-1] == (entry,) and view.named("refresh_region_stats")
    failing = session.start_run(BICUBIC, "cpu")
    session.job_failed(failing, "out of memory")
    assert view.named("notify")[-1] == ("a.png: out of memory",) and view.named("finish_progress")[-1] == ("failed",)
    cancelled = session.start_run(BICUBIC, "cpu")
    session.cancel()
    assert engine.cancelled == [None]
    session.job_cancelled(cancelled)
    assert view.named("finish_progress")[-1] == ("cancelled",) and not session.jobs.has()


def test_job_lifecycle():
    run_lifecycle()


def test_session_imports_and_runs_without_qt():
    script = textwrap.dedent(
        """
        import sys
        for name in ("PySide6", "shiboken6", "pyqtgraph"):
            sys.modules[name] = None  # "import PySide6" now raises ImportError anywhere in this process
        import app.session, app.jobs, app.saving, app.analysis, app.geometry, app.layout  # the Qt-free part of app/
        from tests.test_app_session import run_lifecycle
        run_lifecycle()
        assert sys.modules["PySide6"] is None and not any(m.startswith("PySide6.") for m in sys.modules)
        print("ok")
        """
    )
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_upscale_all_tallies_names_like_the_cli_and_reports_failures(tmp_path):
    session, view, engine, _entry = session_with_image()
    session.add_image(Image(np.full((8, 8, 3), 0.5, np.float32)), "b.jpg")
    ids = session.run_all(BICUBIC, "cpu", tmp_path)
    assert len(ids) == 2 and all(session.jobs.get(j).kind is JobKind.BATCH for j in ids)
    assert view.named("set_running")[-1] == (True, "Upscale all (2)")
    assert session.run_all(BICUBIC, "cpu", tmp_path) == []  # not while it runs
    session.job_progress(ids[0], 0.25, "resizing", now_s=1.0)
    assert view.named("show_progress")[-1][1].startswith("1/2 a.png · resizing")
    session.job_finished(ids[0], engine.run(ids[0]))
    assert (tmp_path / "a_x4_bicubic.png").is_file()  # engine.outputs.output_name, as the CLI names it
    assert session.is_running() and view.named("set_running")[-1] == (True, "Upscale all (2)")
    session.job_failed(ids[1], "disk full")
    assert not session.is_running()
    assert view.named("finish_progress")[-1] == ("upscaled 1/2",)
    assert view.named("notify")[-1] == ("Upscale all — b.jpg: failed: disk full",)
    assert read_image(tmp_path / "a_x4_bicubic.png").width == 64


def test_region_preview_is_the_regions_box_of_the_crop_run():
    session, view, engine, entry = session_with_image(20, 24)
    assert session.upscale_region(2, BICUBIC, "cpu") is None  # nothing painted
    assert view.named("notify")[-1] == ("Region 2 is empty: paint it first.",)
    view.labels[3:6, 18:22] = 2
    job_id = session.upscale_region(2, BICUBIC, "cpu")
    job = session.jobs.get(job_id)
    assert job.kind is JobKind.REGION and job.box_lr == (3, 6, 18, 22) and job.crop_lr == (0, 18, 6, 24)
    assert not session.is_running() and session.can_cancel()  # a preview does not hold the run panel
    output = engine.run(job_id)
    session.job_finished(job_id, output)
    (shown_entry, sr, x_sr, y_sr, title, scale), = view.named("add_region_preview")
    assert shown_entry is entry and (x_sr, y_sr, title, scale) == (72, 12, "region 2", 4)
    crop = output.result.image.rgb_f32
    np.testing.assert_array_equal(sr, crop[3 * 4:6 * 4, (18 - 6) * 4:(22 - 6) * 4])


def test_results_of_a_removed_image_are_dropped_and_running_images_stay():
    session, view, engine, entry = session_with_image()
    other = session.add_image(Image(np.zeros((8, 8, 3), np.float32)), "b.png")
    job_id = session.start_run(BICUBIC, "cpu")
    session.remove_current()  # not while it runs
    assert session.entries == [entry, other] and session.current is entry
    session.job_finished(job_id, engine.run(job_id))
    session.remove_current()
    assert session.entries == [other] and session.current is other
    assert view.named("remove_queue_item") == [(0,)] and view.named("show_entry")[-1] == (other,)
    session.remove_current()
    assert session.entries == [] and session.current is None and view.named("show_entry")[-1] == (None,)


def test_lab_needs_paint_and_one_job_at_a_time():
    session, view, engine, _entry = session_with_image()
    hr = np.zeros((16, 16, 3), np.float32)
    labels = np.zeros((4, 4), np.uint8)
    assert session.run_lab(None, labels, {}, 4, "cpu") is None
    assert session.run_lab(hr, labels, {}, 4, "cpu") is None
    assert view.named("notify")[-1] == ("Lab: paint at least one region first.",)
    labels[1:3, 1:3] = 1
    job_id = session.run_lab(hr, labels, {}, 4, "cpu")
    assert session.jobs.get(job_id).kind is JobKind.LAB and view.named("set_lab_running")[-1] == (True,)
    assert session.run_lab(hr, labels, {}, 4, "cpu") is None
    labels[:] = 0  # the job ran on a copy of the labels
    assert engine.submitted[job_id][2][2].any()
    session.job_cancelled(job_id)
    assert view.named("set_lab_running")[-1] == (False,) and not session.is_running()


def test_preload_failures_are_quiet_and_unknown_jobs_are_ignored():
    session, view, engine, _entry = session_with_image()
    job_id = session.preload(BICUBIC, "cpu")
    assert session.jobs.get(job_id).kind is JobKind.PRELOAD
    assert engine.run(job_id) is False  # bicubic needs no models
    notices = len(view.named("notify"))
    session.job_failed(job_id, "no models")
    assert len(view.named("notify")) == notices and not session.jobs.has()
    session.job_finished(99, object())  # not the session's job: nothing happens
    session.job_progress(99, 0.5, "x")
    assert not session.jobs.has()
