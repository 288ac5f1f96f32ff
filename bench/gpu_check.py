"""One command that checks the CUDA path on a machine with an NVIDIA GPU (results go to docs/PERFORMANCE.md).

    .venv/bin/python bench/gpu_check.py [--json gpu_check.json] [--skip-train] [--sizes 256 1024]

Needs the ``gpu`` extra (``onnxruntime-gpu[cuda,cudnn]``); the training step also needs the ``train``
extra with a CUDA build of PyTorch, and ``onnx`` for the fp16 graphs. Sections, each line ``PASS``,
``FAIL`` or ``SKIP`` with its numbers:

1. ``session``: a CUDA session (``--provider cuda``: nothing falls back) for every graph in
   ``models/``, its creation time, and parity against the CPU provider on the same seeded input
   (max |diff| / max |CPU output|; bar 2e-3 for fp32, TF32 convolutions included);
2. ``fp16``: every graph converted to fp16 (``onnxruntime.transformers.float16``, float32 inputs and
   outputs kept) on CUDA against the fp32 CPU output (bar 3e-2);
3. ``pipeline``: MANet + RRDB-SFT and IKC (7 steps) at 256² and 1024² LR, ×4, fp32 and fp16, after a
   warm-up: seconds, and the peak GPU memory over the run (NVML, whole device, above the level
   before the run);
4. ``oom``: MANet + RRDB-SFT on a 512² tile with onnxruntime's CUDA arena capped at 256 MiB — the
   out-of-memory error must reach the tiling, which splits the tile, and the result must equal the
   uncapped run;
5. ``train``: one optimiser step of every training stage on CUDA (PyTorch), from the stage's config
   in ``configs/`` (shipped models as frozen parts and PCA bases), loss finite.

Exit codes: 0 every check passed (SKIPs allowed), 1 a check failed, 3 no usable CUDA GPU here (one
line says why; nothing was checked). Target: under 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXIT_OK, EXIT_FAILED, EXIT_NO_GPU = 0, 1, 3
PARITY_BAR = {"fp32": 2e-3, "fp16": 3e-2}
"""Largest max|diff| / max|reference| accepted, per precision (judgment, not measured)."""
TRAIN_STAGES = ("manet", "rrdb_sft", "rrdb_sft_blind", "sftmd", "ikc_predictor", "ikc_corrector")
OOM_ARENA_BYTES = 256 << 20
OOM_TILE_LR = 512


# ------------------------------------------------------------------------------------------------
# results
class Report:
    """Check lines as they happen, and the same as JSON rows."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, section: str, name: str, status: str, detail: str = "", **numbers: Any) -> None:
        self.rows.append({"section": section, "name": name, "status": status, "detail": detail, **numbers})
        print(f"{status:4s} {section:8s} {name}: {detail}", flush=True)

    @property
    def failed(self) -> bool:
        return any(r["status"] == "FAIL" for r in self.rows)


def relative_diff(got: np.ndarray, want: np.ndarray) -> float:
    """max |got − want| / max |want| (inf when shapes differ or values are not finite)."""
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return math.inf
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(float(np.max(np.abs(want))), 1e-12))


# ------------------------------------------------------------------------------------------------
# peak GPU memory through NVML (ships with the driver)
class GpuMemorySampler:
    """Samples the device's used memory every ``period_s`` while active; :attr:`peak_bytes` above the start."""

    def __init__(self, index: int = 0, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.peak_bytes: int | None = None
        self._lib = self._handle = None
        try:
            self._lib = ctypes.CDLL("nvml.dll" if sys.platform.startswith("win") else "libnvidia-ml.so.1")
            handle = ctypes.c_void_p()
            if self._lib.nvmlInit_v2() != 0 or self._lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)):
                self._lib = None
            self._handle = handle
        except OSError:
            self._lib = None

    def used(self) -> int | None:
        if self._lib is None:
            return None
        mem = (ctypes.c_ulonglong * 3)()  # nvmlMemory_t: total, free, used
        return int(mem[2]) if self._lib.nvmlDeviceGetMemoryInfo(self._handle, ctypes.byref(mem)) == 0 else None

    def __enter__(self) -> "GpuMemorySampler":
        self._base = self.used()
        self._top = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(self.period_s):
                now = self.used()
                if now is not None and (self._top is None or now > self._top):
                    self._top = now

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        now = self.used()
        if now is not None and self._top is not None:
            self._top = max(self._top, now)
        self.peak_bytes = None if self._base is None or self._top is None else self._top - self._base


# ------------------------------------------------------------------------------------------------
# is there a GPU at all?
def gpu_unavailable_reason(models_folder: Path) -> str | None:
    """None when onnxruntime gets a CUDA session for the first graph in ``models_folder``, else why not."""
    from engine.backends.cuda import cuda_unavailable_reason
    from engine.backends.onnx_backend import OnnxBackend, onnxruntime_available
    from engine.errors import DeviceUnavailable
    from engine.modelcards import find_cards

    if not onnxruntime_available():
        return "onnxruntime is not installed (install kernelscope[gpu])"
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return cuda_unavailable_reason(available, ort)
    cards = find_cards(models_folder)
    if not cards:
        return f"no model cards in {models_folder}"
    try:
        OnnxBackend("cuda").load(cards[0])
    except DeviceUnavailable as exc:
        return exc.reason
    return None


# ------------------------------------------------------------------------------------------------
# 1 + 2. sessions, parity, fp16
def card_inputs(card: Any, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded inputs shaped as the card says: images in their range, codes ~ N(0, 0.5²); symbols → 1 or ``size``."""
    feed = {}
    for spec in card.inputs:
        shape = [d if isinstance(d, int) else (1 if d == "N" else size) for d in spec.shape]
        if spec.range is not None:
            lo, hi = spec.range
            feed[spec.name] = rng.uniform(lo, hi, shape).astype(np.float32)
        else:
            feed[spec.name] = (0.5 * rng.standard_normal(shape)).astype(np.float32)
    return feed


def write_fp16_models(src: Path, dst: Path) -> list[str]:
    """Copy ``src``'s cards and PCA bases into ``dst`` with every graph converted to fp16.

    Inputs and outputs stay float32 (``keep_io_types``), so the engine feeds them unchanged; the graph
    is topologically sorted again (a valid ONNX file); each card gets the new sha256 and
    ``"precision": "fp16"``. Returns the card ids converted.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    from engine.modelcards import find_cards, save_card, sha256_file

    dst.mkdir(parents=True, exist_ok=True)
    for path in src.glob("pca_*"):
        shutil.copy(path, dst / path.name)
    done = []
    for card in find_cards(src):
        model = convert_float_to_float16(onnx.load(str(card.graph_path)), keep_io_types=True)
        OnnxModel(model).topological_sort()  # the converter appends its input casts at the end
        graph = dst / card.graph
        onnx.save(model, str(graph))
        card.graph_sha256 = sha256_file(graph)
        card.extra["precision"] = "fp16"
        card.weights = card.weights_sha256 = None  # fp16 graphs have no matching torch weights
        card.path = save_card(card, dst / card.path.name)
        done.append(card.id)
    return done


def check_graphs(report: Report, folder: Path, precision: str, *, device: str = "cuda", size: int = 64,
                 reference: Path | None = None) -> None:
    """Session creation on ``device`` and parity against the CPU (fp32 graphs of ``reference``) per card."""
    from engine.backends.onnx_backend import OnnxBackend
    from engine.errors import DeviceUnavailable
    from engine.modelcards import find_card, find_cards

    for card in find_cards(folder):
        ref_card = find_card(card.network, card.scale, models_dir=reference) if reference else card
        feed = card_inputs(card, size, np.random.default_rng(0))
        name = f"{card.id} {precision}"
        try:
            t0 = time.perf_counter()
            runner = OnnxBackend(device).load(card)
            created = time.perf_counter() - t0
            got = runner.run(feed)
            t0 = time.perf_counter()
            got = runner.run(feed)
            ran = time.perf_counter() - t0
        except DeviceUnavailable as exc:
            report.add("session", name, "FAIL", f"no {device} session: {exc.reason}")
            continue
        except Exception as exc:  # noqa: BLE001 - every graph is reported
            report.add("session", name, "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            continue
        want = OnnxBackend("cpu").load(ref_card).run(feed)
        diff = max(relative_diff(got[k], want[k]) for k in want)
        ok = diff <= PARITY_BAR[precision]
        report.add("session", name, "PASS" if ok else "FAIL",
                   f"{runner.provider}, created in {created:.2f} s, {size}² run {ran * 1e3:.1f} ms, "
                   f"rel. diff vs CPU fp32 {diff:.1e} (bar {PARITY_BAR[precision]:.0e})",
                   created_s=created, run_ms=ran * 1e3, rel_diff=diff, provider=runner.provider)


# ------------------------------------------------------------------------------------------------
# 3. pipelines
def synthetic_lr(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.stack([np.sin(x / (7 + 3 * c)) * np.cos(y / (11 - 2 * c)) for c in range(3)], axis=-1)
    return np.clip(0.5 + 0.35 * img + 0.05 * rng.standard_normal((size, size, 3)), 0, 1).astype(np.float32)


def check_pipelines(report: Report, folders: dict[str, Path], sizes: list[int], device: str = "cuda") -> None:
    from engine.imageio import Image
    from engine.pipeline.models import load_for_method
    from engine.upscale import UpscaleOptions, upscale

    for precision, folder in folders.items():
        for method in ("manet", "ikc"):
            name = f"{method} {precision}"
            try:
                models = load_for_method(method, 4, device=device, models_dir=folder)
                opts = UpscaleOptions(method=method, scale=4, ikc_steps=7)
                upscale(Image(rgb_f32=synthetic_lr(64)), opts, models)  # warm-up
            except Exception as exc:  # noqa: BLE001
                report.add("pipeline", name, "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
                continue
            for size in sizes:
                image = Image(rgb_f32=synthetic_lr(size))
                try:
                    with GpuMemorySampler() as mem:
                        t0 = time.perf_counter()
                        result = upscale(image, opts, models)
                        seconds = time.perf_counter() - t0
                except Exception as exc:  # noqa: BLE001
                    report.add("pipeline", f"{name} {size}²", "FAIL", f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                finite = bool(np.all(np.isfinite(result.image.rgb_f32)))
                peak = "n/a" if mem.peak_bytes is None else f"{mem.peak_bytes / 2**20:.0f} MiB"
                report.add("pipeline", f"{name} {size}²", "PASS" if finite else "FAIL",
                           f"{seconds:.2f} s, peak GPU memory +{peak}, {result.execution}"
                           + ("" if finite else ", NON-FINITE output"),
                           seconds=seconds, peak_gpu_bytes=mem.peak_bytes, lr=size, execution=result.execution)


# ------------------------------------------------------------------------------------------------
# 4. out of memory on a huge tile
def check_oom_retry(report: Report, folder: Path, device: str = "cuda", arena_bytes: int = OOM_ARENA_BYTES,
                    tile: int = OOM_TILE_LR, capped_backend: Any = None) -> None:
    """``capped_backend``: the backend with little memory (default: CUDA with its arena capped)."""
    from engine.backends.onnx_backend import OnnxBackend
    from engine.pipeline.blind import run_manet
    from engine.pipeline.models import load_for_method

    splits: list[str] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "out of memory" in record.getMessage():
                splits.append(record.getMessage())

    lr = synthetic_lr(tile)
    try:
        free = load_for_method("manet", 4, device=device, models_dir=folder)
        want = run_manet(lr, free, tile=tile).sr_rgb_f32
        capped = load_for_method("manet", 4, device=device, models_dir=folder)
        backend = capped_backend or OnnxBackend(device, cuda_options={"gpu_mem_limit": arena_bytes,
                                                                      "arena_extend_strategy": "kSameAsRequested"})
        capped.runners = {n: backend.load(card) for n, card in capped.cards.items()}
        handler = Count()
        logging.getLogger("engine.tiling").addHandler(handler)
        try:
            got = run_manet(lr, capped, tile=tile).sr_rgb_f32
        finally:
            logging.getLogger("engine.tiling").removeHandler(handler)
    except Exception as exc:  # noqa: BLE001
        report.add("oom", f"{tile}² tile, arena {arena_bytes >> 20} MiB", "FAIL",
                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:240]}")
        return
    diff = relative_diff(got, want)
    ok = bool(splits) and diff <= PARITY_BAR["fp32"]
    report.add("oom", f"{tile}² tile, arena {arena_bytes >> 20} MiB", "PASS" if ok else "FAIL",
               f"{len(splits)} split(s) after out-of-memory, rel. diff vs uncapped {diff:.1e}"
               + ("" if splits else " — no out-of-memory happened: lower the cap"), splits=len(splits), rel_diff=diff)


# ------------------------------------------------------------------------------------------------
# 5. one training step per stage
def check_training(report: Report, runs: Path, device: str = "cuda", stages=TRAIN_STAGES,
                   overrides: dict[str, Any] | None = None) -> None:
    try:
        import torch

        from engine.training.config import load_yaml_config
        from engine.training.trainer import train
    except ImportError as exc:
        report.add("train", "all stages", "SKIP", f"needs the train extra ({exc.name} is not installed)")
        return
    if device == "cuda" and not torch.cuda.is_available():
        report.add("train", "all stages", "FAIL",
                   f"torch {torch.__version__} sees no CUDA device (CPU build: {torch.version.cuda is None})")
        return
    for stage in stages:
        config = ROOT / "configs" / f"{stage}_small_x4.yaml"
        cfg = load_yaml_config(config, {"name": f"gpu_check_{stage}", "steps": 1, "device": device, "milestones": None,
                                        "runs_dir": str(runs), "val_every": 0, "val_images": 1, "max_images": 8,
                                        "log_every": 1, "ckpt_every": 1, "max_minutes": 0, "progress_bar": False,
                                        "ship": False, "workers": 0, **(overrides or {})})
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        try:
            t0 = time.perf_counter()
            result = train(cfg)
            seconds = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001
            report.add("train", stage, "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:240]}")
            continue
        peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
        ok = result.step == 1 and math.isfinite(result.loss)
        report.add("train", stage, "PASS" if ok else "FAIL",
                   f"1 step (batch {cfg.batch_size}, {cfg.patch_size}² px) in {seconds:.1f} s with validation, "
                   f"loss {result.loss:.4g}" + (f", torch peak {peak / 2**20:.0f} MiB" if peak else ""),
                   seconds=seconds, loss=result.loss, peak_torch_bytes=peak)


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="LR sides for the pipelines")
    parser.add_argument("--skip-train", action="store_true", help="leave out the PyTorch training steps")
    parser.add_argument("--json", type=Path, default=None, help="also write every result row as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from engine.paths import models_dir

    shipped = models_dir()
    reason = gpu_unavailable_reason(shipped)
    if reason is not None:
        print(f"gpu_check: no usable CUDA GPU here: {reason}; nothing was checked", file=sys.stderr)
        return EXIT_NO_GPU
    import onnxruntime as ort

    from engine.backends.cuda import cuda_report_lines

    started = time.perf_counter()
    print(f"onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())}")
    for line in cuda_report_lines(ort):
        print(line)
    report = Report()
    sections: list[tuple[str, Callable[[], None]]] = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        fp16 = Path(scratch) / "models_fp16"
        try:
            write_fp16_models(shipped, fp16)
            folders = {"fp32": shipped, "fp16": fp16}
        except ImportError as exc:
            report.add("fp16", "conversion", "SKIP", f"needs onnx ({exc.name} is not installed)")
            folders = {"fp32": shipped}
        sections.append(("session", lambda: check_graphs(report, shipped, "fp32")))
        if "fp16" in folders:
            sections.append(("fp16", lambda: check_graphs(report, fp16, "fp16", reference=shipped)))
        sections.append(("pipeline", lambda: check_pipelines(report, folders, args.sizes)))
        sections.append(("oom", lambda: check_oom_retry(report, shipped)))
        if not args.skip_train:
            sections.append(("train", lambda: check_training(report, Path(scratch) / "runs")))
        for name, run in sections:
            t0 = time.perf_counter()
            run()
            print(f"---- {name} done in {time.perf_counter() - t0:.0f} s", flush=True)
    total = time.perf_counter() - started
    counts = {s: sum(r["status"] == s for r in report.rows) for s in ("PASS", "FAIL", "SKIP")}
    print(f"gpu_check: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped in {total:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps({"seconds": total, "rows": report.rows}, indent=1) + "\n", encoding="utf-8")
    return EXIT_FAILED if report.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
