"""The studio's session, free of Qt: the queue of opened images, the one on show, its results per method
and painted regions, and the jobs running on the engine worker.

A run adds (or replaces) the result of its method and makes it the one shown; results of the other
methods stay, so MANet and IKC can be compared on the same image. The painted label map belongs to
the image: it is written back after every stroke and survives runs and switching images.

:class:`StudioSession` is the controller: the window forwards user actions and worker outcomes to it,
and it renders through the small :class:`StudioView` protocol that the window implements (tests use
a plain recording object). Jobs go to an :class:`Engine` (the window's :class:`app.bridge.EngineBridge`);
each is tracked with its :class:`JobKind` until its outcome arrives.
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from engine.imageio import Image
from engine.methods import METHOD_TABLE, UPSCALE, methods_for
from engine.pipeline.lab import LabResult
from engine.upscale import UpscaleOptions, UpscaleResult

from app.analysis import RegionStats, label_bbox, region_stats
from app.geometry import HoverHit, RunEta, format_duration
from app.jobs import RunOutput, lab_experiment, preload, run_for_display

log = logging.getLogger(__name__)

_entry_ids = itertools.count(1)

REGION_MARGIN_LR = 12
"""Context around an "Upscale region" crop, LR px."""

METHOD_SHORT = {m: METHOD_TABLE[m].short for m in methods_for(UPSCALE)}
"""Short method names for titles and pickers (the run panel's long labels live in ``app.panels``)."""


def file_text(image: Image) -> str:
    """The inspector's "file" line: ``"JPEG q 75"`` (:meth:`engine.imageio.jpegquality.JpegQuality.describe`),
    or the format of a file without JPEG tables (``"PNG"``), or ``"–"`` for an image made in memory."""
    if image.jpeg_quality is not None:
        return image.jpeg_quality.describe()
    return (image.source_format or "–").upper()


def device_name(provider: str) -> str:
    """"CPU", "CUDA", "TensorRT" from an onnxruntime provider name ("CPUExecutionProvider", ...)."""
    return provider.removesuffix("ExecutionProvider") or provider


@dataclass
class QueueEntry:
    """One opened image: where it came from, its pixels, its results by method and its painted regions."""

    name: str
    image: Image
    path: Path | None = None
    results: dict[str, RunOutput] = field(default_factory=dict)
    shown: str | None = None
    labels: np.ndarray | None = None
    entry_id: int = field(default_factory=lambda: next(_entry_ids))

    # results -------------------------------------------------------------------------------------------
    def add_result(self, output: RunOutput) -> None:
        """Keep ``output`` as this image's result for its method and show it."""
        self.results[output.method] = output
        self.shown = output.method

    def show(self, method: str) -> None:
        if method not in self.results:
            raise KeyError(f"{self.name} has no {METHOD_SHORT.get(method, method)} result")
        self.shown = method

    @property
    def output(self) -> RunOutput | None:
        """The result on show (None before any run)."""
        return self.results.get(self.shown) if self.shown is not None else None

    @property
    def result(self) -> UpscaleResult | None:
        out = self.output
        return None if out is None else out.result

    @property
    def sr_u8(self) -> np.ndarray | None:
        out = self.output
        return None if out is None else out.sr_u8

    @property
    def ikc_changes(self) -> tuple[np.ndarray, np.ndarray] | None:
        out = self.results.get("ikc")
        return None if out is None else out.ikc_changes

    def kernel_source(self) -> RunOutput | None:
        """The result whose per-pixel kernel map feeds the lattice and the region statistics: the one
        shown if it has a map, otherwise the MANet result if there is one."""
        for out in (self.output, self.results.get("manet")):
            if out is not None and out.result.kernel_map is not None:
                return out
        return None

    def other_kernel(self, lr_row: int, lr_col: int, ikc_iteration: int):
        """The kernel the *other* blind method found at LR pixel (row, col): MANet's when IKC is shown and
        IKC's (whole image, iteration ``ikc_iteration``) when MANet is shown; ``(KernelInfo, method)`` or
        None when this image lacks the other result."""
        from engine.pipeline.kernelmap import describe_kernel

        other = {"manet": "ikc", "ikc": "manet"}.get(self.shown or "")
        out = self.results.get(other) if other else None
        if out is None:
            return None
        if other == "manet":
            return out.result.kernel_map.kernel_at(lr_col, lr_row, space="lr"), other
        its = out.result.ikc.iterations
        return describe_kernel(its[min(ikc_iteration, len(its) - 1)].kernel, (lr_row, lr_col)), other

    # regions -------------------------------------------------------------------------------------------
    def lr_hw(self) -> tuple[int, int]:
        return self.image.height, self.image.width

    def labels_or_empty(self) -> np.ndarray:
        """The painted label map (a fresh empty one when none was painted or its size is stale)."""
        if self.labels is None or self.labels.shape != self.lr_hw():
            return np.zeros(self.lr_hw(), np.uint8)
        return self.labels

    def keep_labels(self, labels: np.ndarray) -> None:
        if labels.shape == self.lr_hw():
            self.labels = labels.copy()


# jobs ------------------------------------------------------------------------------------------------
class JobKind(Enum):
    """What a job on the engine worker is for; it decides what happens with its outcome."""

    UPSCALE = "upscale"  # Run: the current image with the run panel's settings (one at a time)
    BATCH = "batch"  # one image of "Upscale all", written into a folder
    REGION = "region"  # "Upscale region": a preview of one painted region, in place
    LAB = "lab"  # the degradation lab's experiment
    PRELOAD = "preload"  # loading the run panel's models ahead of the first run


@dataclass
class Job:
    """A job the session waits for: its kind, what it runs on, and its ETA clock."""

    kind: JobKind
    entry_id: int | None = None
    """UPSCALE and REGION: the image it runs on (its result goes there, also when another one is shown)."""
    name: str = ""
    """BATCH: the image's name; REGION: "region <label>"."""
    box_lr: tuple[int, int, int, int] | None = None
    """REGION: the region's bounding box ``(y0, y1, x0, x1)``, LR px."""
    crop_lr: tuple[int, int, int, int] | None = None
    """REGION: the box grown by :data:`REGION_MARGIN_LR`, as it ran."""
    eta: RunEta = field(default_factory=RunEta)


@dataclass
class BatchTally:
    """How "Upscale all" is going: images submitted, finished (either way), and failures ("name: reason")."""

    total: int = 0
    done: int = 0
    failures: list[str] = field(default_factory=list)


class JobTracker:
    """The jobs in flight by id, and the tally of the current "Upscale all"."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self.batch = BatchTally()

    def add(self, job_id: int, job: Job) -> None:
        self._jobs[job_id] = job

    def get(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    def pop(self, job_id: int) -> Job | None:
        return self._jobs.pop(job_id, None)

    def ids(self, *kinds: JobKind) -> list[int]:
        """Ids of the jobs in flight of any of ``kinds`` (all jobs when none is given), oldest first."""
        return [jid for jid, job in self._jobs.items() if not kinds or job.kind in kinds]

    def has(self, *kinds: JobKind) -> bool:
        return bool(self.ids(*kinds))


class StudioView(Protocol):
    """What the session asks of its view (the main window; a recording object in tests)."""

    def show_entry(self, entry: QueueEntry | None) -> None:
        """Render ``entry`` (image, result on show, regions, IKC panel, inspector); None: the empty state."""

    def add_queue_item(self, entry: QueueEntry) -> None:
        """Append ``entry`` to the queue list."""

    def remove_queue_item(self, row: int) -> None:
        """Remove row ``row`` of the queue list (without selecting anything: the session does)."""

    def painted_labels(self) -> np.ndarray:
        """The label map being painted on the image on show."""

    def method_label(self, method: str) -> str:
        """The run panel's label of ``method``, e.g. "MANet + RRDB-SFT (blind)"."""

    def set_running(self, running: bool, title: str = "") -> None:
        """Enter (``title`` on the progress bar) or leave the running state of the run panel."""

    def show_progress(self, fraction: float, text: str) -> None: ...

    def finish_progress(self, text: str) -> None:
        """Leave ``text`` on the progress bar ("done in 1.2 s", "cancelled", ...)."""

    def show_device(self, text: str) -> None:
        """The device line of the status bar (what the last run actually used)."""

    def notify(self, message: str) -> None:
        """A non-modal message the user should see (bad input, a failed job)."""

    def show_status(self, message: str, timeout_ms: int) -> None:
        """A passing status-bar message."""

    def refresh_actions(self) -> None:
        """Enable or disable the actions that depend on the session's state."""

    def refresh_region_stats(self) -> None:
        """Recompute the painted regions' statistics (a new kernel map may have arrived)."""

    def add_region_preview(self, entry: QueueEntry, sr_rgb_f32: np.ndarray, x_sr: int, y_sr: int, title: str,
                           scale: int) -> None:
        """Draw a region's upscaled pixels over the result view at scene (SR px) ``(x_sr, y_sr)``."""

    def set_lab_running(self, running: bool) -> None:
        """The lab's experiment is running (its button is off) or not."""

    def show_lab_result(self, result: LabResult) -> None:
        """Show the lab's experiment."""


class Engine(Protocol):
    """Where the session's jobs run (:class:`app.bridge.EngineBridge`): ``fn(*args, progress=..., **kwargs)``
    on the worker; the outcome comes back through :meth:`StudioSession.job_finished` and its siblings."""

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start a job; the returned handle has ``job_id``."""

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job, or all of them."""

    def models_for(self, method: str, scale: int, device: str) -> Any:
        """The loaded models (cached) for a run; None for bicubic. Called on the worker."""


# the session -----------------------------------------------------------------------------------------
class StudioSession:
    """The queue, the image on show and the jobs in flight; renders through ``view``, runs on ``engine``."""

    def __init__(self, view: StudioView, engine: Engine) -> None:
        self.view = view
        self.engine = engine
        self.entries: list[QueueEntry] = []
        self.current: QueueEntry | None = None
        self.jobs = JobTracker()
        self._hover_cache: tuple[Any, Any] = (None, None)
        self._on_done: dict[JobKind, Callable[[int, Job, Any], None]] = {
            JobKind.UPSCALE: self._run_done, JobKind.BATCH: self._batch_done, JobKind.REGION: self._region_done,
            JobKind.LAB: self._lab_done, JobKind.PRELOAD: lambda _job_id, _job, _loaded: None}

    # the queue ---------------------------------------------------------------------------------------
    def add_image(self, image: Image, name: str, path: Path | None = None) -> QueueEntry:
        entry = QueueEntry(name=name, image=image, path=path)
        self.entries.append(entry)
        self.view.add_queue_item(entry)
        return entry

    def entry_by_id(self, entry_id: int | None) -> QueueEntry | None:
        return next((e for e in self.entries if e.entry_id == entry_id), None)

    def select(self, entry: QueueEntry | None) -> None:
        """Show ``entry`` (None: no image); the regions painted on the one shown so far stay with it."""
        if self.current is not None:
            self.current.keep_labels(self.view.painted_labels())
        self.current = entry
        self._hover_cache = (None, None)
        self.view.show_entry(entry)

    def remove_current(self) -> None:
        """Take the image on show out of the queue (not while it runs) and show its neighbour."""
        if self.current is None or self.jobs.has(JobKind.UPSCALE):
            return
        row = self.entries.index(self.current)
        self.entries.pop(row)
        self.view.remove_queue_item(row)
        self.current = None
        self.select(self.entries[min(row, len(self.entries) - 1)] if self.entries else None)

    def show_method(self, method: str) -> None:
        """Show the current image's result of ``method`` (kept from an earlier run)."""
        if self.current is not None and method in self.current.results and method != self.current.shown:
            self.current.show(method)
            self.select(self.current)

    # state the actions depend on -------------------------------------------------------------------------
    def is_running(self) -> bool:
        """A run, "Upscale all" or the lab is in flight (the run panel shows its progress)."""
        return self.jobs.has(JobKind.UPSCALE, JobKind.BATCH, JobKind.LAB)

    def can_run(self) -> bool:
        return self.current is not None and not self.jobs.has(JobKind.UPSCALE, JobKind.BATCH)

    def can_run_all(self) -> bool:
        return bool(self.entries) and not self.jobs.has(JobKind.UPSCALE, JobKind.BATCH)

    def can_cancel(self) -> bool:
        return self.jobs.has(JobKind.UPSCALE, JobKind.BATCH, JobKind.REGION, JobKind.LAB)

    def job_pending(self, job_id: int) -> bool:
        """True until the outcome of job ``job_id`` has arrived."""
        return self.jobs.get(job_id) is not None

    # starting jobs --------------------------------------------------------------------------------------
    def _submit(self, job: Job, fn: Callable[..., Any], device: str, *args: Any, **kwargs: Any) -> int:
        models_for = functools.partial(self.engine.models_for, device=device)
        job_id = self.engine.submit(job.kind.value, fn, models_for, *args, **kwargs).job_id
        self.jobs.add(job_id, job)
        return job_id

    def preload(self, options: UpscaleOptions, device: str) -> int:
        """Load the models of ``options`` on the worker now (better at start-up than in the first run)."""
        return self._submit(Job(JobKind.PRELOAD), preload, device, options.method, options.scale)

    def start_run(self, options: UpscaleOptions, device: str) -> int | None:
        """Upscale the current image; the job id, or None when there is nothing to run or a run is on."""
        if not self.can_run():
            return None
        entry = self.current
        job_id = self._submit(Job(JobKind.UPSCALE, entry.entry_id), run_for_display, device, entry.image, options)
        self.view.set_running(True, self.view.method_label(options.method).split(" (")[0])
        self.view.refresh_actions()
        return job_id

    def run_all(self, options: UpscaleOptions, device: str, folder: Path) -> list[int]:
        """Upscale every queued image into ``folder`` (:func:`engine.jobs.batch_job`); the job ids."""
        from engine.jobs import batch_job

        if self.is_running() or not self.entries:
            return []
        self.jobs.batch = BatchTally(total=len(self.entries))
        ids = [self._submit(Job(JobKind.BATCH, name=entry.name), batch_job, device, None, entry.image, entry.name,
                            options, folder) for entry in self.entries]
        self.view.set_running(True, f"Upscale all ({self.jobs.batch.total})")
        self.view.refresh_actions()
        return ids

    def upscale_region(self, label: int, options: UpscaleOptions, device: str) -> int | None:
        """Run ``options`` on the bounding box of painted region ``label`` (with context) for a preview."""
        if self.current is None:
            return None
        labels = self.view.painted_labels()
        box = label_bbox(labels, label)
        if box is None:
            self.view.notify(f"Region {label} is empty: paint it first.")
            return None
        crop = label_bbox(labels, label, REGION_MARGIN_LR)
        y0, y1, x0, x1 = crop
        img = self.current.image
        part = img.with_pixels(np.ascontiguousarray(img.rgb_f32[y0:y1, x0:x1]),
                               None if img.alpha_f32 is None else np.ascontiguousarray(img.alpha_f32[y0:y1, x0:x1]))
        job = Job(JobKind.REGION, self.current.entry_id, f"region {label}", box, crop)
        job_id = self._submit(job, run_for_display, device, part, options, with_lattice=False)
        self.view.show_status(f"Upscaling region {label}…", 5000)
        return job_id

    def run_lab(self, hr_rgb_f32: np.ndarray | None, labels_lr: np.ndarray, params: dict[int, tuple[float, float, float]],
                scale: int, device: str) -> int | None:
        """Synthesise the painted degradation and estimate it with MANet (:mod:`engine.pipeline.lab`)."""
        if hr_rgb_f32 is None or self.jobs.has(JobKind.LAB, JobKind.UPSCALE):
            return None
        if not labels_lr.any():
            self.view.notify("Lab: paint at least one region first.")
            return None
        job_id = self._submit(Job(JobKind.LAB), lab_experiment, device, hr_rgb_f32, labels_lr.copy(), dict(params),
                              scale)
        self.view.set_lab_running(True)
        self.view.set_running(True, "Lab")
        return job_id

    def cancel(self) -> None:
        """Cancel what is running (Esc); the session stays usable."""
        if self.can_cancel():
            self.engine.cancel()

    # outcomes --------------------------------------------------------------------------------------------
    def job_progress(self, job_id: int, fraction: float, message: str, now_s: float | None = None) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            return
        eta = job.eta.update(time.monotonic() if now_s is None else now_s, fraction, message)
        text = f"{message or 'working'} · ETA {format_duration(eta)}" if fraction < 1 else "finishing"
        if job.kind is JobKind.BATCH:
            text = f"{self.jobs.batch.done + 1}/{self.jobs.batch.total} {job.name} · " + text
        if job.kind in (JobKind.UPSCALE, JobKind.BATCH, JobKind.LAB):
            self.view.show_progress(fraction, text)

    def job_finished(self, job_id: int, payload: Any) -> None:
        job = self.jobs.pop(job_id)
        if job is not None:
            self._on_done[job.kind](job_id, job, payload)
        self.view.refresh_actions()

    def job_failed(self, job_id: int, reason: str) -> None:
        job = self.jobs.pop(job_id)
        if job is None:
            self.view.notify(reason)
        elif job.kind is JobKind.BATCH:
            self._batch_ended(job, f"failed: {reason}", failed=True)
        elif job.kind is JobKind.PRELOAD:  # reported when the user runs
            log.info("preloading models failed: %s", reason)
        else:
            self._job_ended(job, "failed")
            where = self.current.name if self.current is not None and job.kind is JobKind.UPSCALE else job.kind.value
            self.view.notify(f"{where}: {reason}")

    def job_cancelled(self, job_id: int) -> None:
        job = self.jobs.pop(job_id)
        if job is not None and job.kind is JobKind.BATCH:
            self._batch_ended(job, "cancelled", failed=True)
            return
        if job is not None:
            self._job_ended(job, "cancelled")
        self.view.show_status("Cancelled", 5000)

    def _job_ended(self, job: Job, text: str) -> None:
        """A job ended without a result."""
        if job.kind is JobKind.LAB:
            self.view.set_lab_running(False)
        if not self.is_running():
            self.view.set_running(False)
            self.view.finish_progress(text)
        self.view.refresh_actions()

    def _run_done(self, _job_id: int, job: Job, output: RunOutput) -> None:
        result = output.result
        entry = self.entry_by_id(job.entry_id)
        self.view.set_running(False)
        self.view.finish_progress(f"done in {result.seconds:.1f} s")
        self.view.show_device(result.execution)
        if entry is not None:
            entry.add_result(output)
            if entry is self.current:
                self.select(entry)
        self.view.show_status(f"{self.view.method_label(result.method)} ×{result.scale} in {result.seconds:.2f} s "
                              f"on {device_name(result.provider)}", 10_000)
        self.view.refresh_region_stats()

    def _batch_done(self, _job_id: int, job: Job, written: Path) -> None:
        self._batch_ended(job, f"wrote {Path(written).name}")

    def _batch_ended(self, job: Job, text: str, failed: bool = False) -> None:
        tally = self.jobs.batch
        tally.done += 1
        if failed:
            tally.failures.append(f"{job.name}: {text}")
        if not self.jobs.has(JobKind.BATCH):
            self.view.set_running(False)
            ok = tally.done - len(tally.failures)
            self.view.finish_progress(f"upscaled {ok}/{tally.total}")
            if tally.failures:
                self.view.notify("Upscale all — " + "; ".join(tally.failures))
            else:
                self.view.show_status(f"Upscaled {ok} images", 10_000)
        self.view.refresh_actions()

    def _region_done(self, _job_id: int, job: Job, output: RunOutput) -> None:
        if self.current is None or self.current.entry_id != job.entry_id:
            return
        result = output.result
        s = result.scale
        (ty0, ty1, tx0, tx1), (wy0, wx0) = job.box_lr, job.crop_lr[::2]
        sr = result.image.rgb_f32[(ty0 - wy0) * s:(ty1 - wy0) * s, (tx0 - wx0) * s:(tx1 - wx0) * s]
        self.view.add_region_preview(self.current, sr, tx0 * s, ty0 * s, job.name, s)
        self.view.show_status(f"Region preview ({tx1 - tx0}×{ty1 - ty0} LR px) in {result.seconds:.2f} s "
                              f"on {device_name(result.provider)}", 10_000)

    def _lab_done(self, _job_id: int, _job: Job, result: LabResult) -> None:
        self.view.set_running(False)
        self.view.finish_progress("lab: done")
        self.view.set_lab_running(False)
        self.view.show_lab_result(result)
        self.view.show_device(f"device: {device_name(result.provider)}")

    # what the panels show --------------------------------------------------------------------------------
    def region_summary(self, labels: np.ndarray) -> tuple[list[RegionStats], str, str]:
        """Keep ``labels`` with the image on show and say what the regions panel shows for them:
        ``(statistics, note, source)`` from the kernel map of :meth:`QueueEntry.kernel_source`."""
        if self.current is None:
            return [], "", ""
        self.current.keep_labels(labels)
        source = self.current.kernel_source()
        kmap = None if source is None else source.result.kernel_map
        if kmap is None or labels.shape != kmap.lr_hw:
            note = "" if self.current.result is None else \
                "Region statistics need a MANet result (they use its kernel map)."
            return [], note, ""
        return region_stats(labels, kmap), "", f"{METHOD_SHORT[source.method]} kernel map"

    def inspector_title(self) -> str:
        result = self.current.result if self.current is not None else None
        if result is None:
            return "Run MANet to see kernels"
        return {"manet": "Kernel under the cursor (MANet)", "ikc": "IKC kernel (whole image)",
                "nonblind": "Your kernel (non-blind)", "bicubic": "Bicubic: no kernel"}[result.method]

    def inspector_source(self, ikc_iteration: int) -> str:
        result = self.current.result if self.current is not None else None
        if result is None:
            return "–"
        return f"iteration {ikc_iteration}" if result.method == "ikc" else result.method

    def kernel_at(self, hit: HoverHit, space: str, ikc_iteration: int):
        """The kernel the result on show has at ``hit`` (a :class:`~engine.pipeline.kernelmap.KernelInfo`,
        or None): exactly ``KernelMap.kernel_at`` for MANet, the iteration's kernel for IKC, the kernel
        the run used for non-blind."""
        from engine.pipeline.kernelmap import describe_kernel

        result = self.current.result if self.current is not None else None
        if result is None:
            return None
        if result.kernel_map is not None:
            key = (id(result), hit.lr_row, hit.lr_col)
            if self._hover_cache[0] != key:
                info = (result.kernel_map.kernel_at(hit.sr_x, hit.sr_y, space="sr") if space == "sr"
                        else result.kernel_map.kernel_at(hit.lr_x, hit.lr_y, space="lr"))
                self._hover_cache = (key, info)
            return self._hover_cache[1]
        if result.ikc is not None:
            return describe_kernel(self.ikc_iteration(result, ikc_iteration).kernel, (hit.lr_row, hit.lr_col))
        if result.nonblind_sigmas is not None:
            from engine.degradation.kernels import anisotropic_gaussian_kernel

            # the kernel the run used, not the panel's current one
            return describe_kernel(anisotropic_gaussian_kernel(result.nonblind_sigmas, result.scale),
                                   (hit.lr_row, hit.lr_col))
        return None

    @staticmethod
    def ikc_iteration(result: UpscaleResult, index: int):
        """IKC iteration ``index`` of ``result`` (the last one when ``index`` is past the end)."""
        its = result.ikc.iterations
        return its[min(index, len(its) - 1)]
