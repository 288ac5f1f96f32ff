"""ONNX Runtime backend: the default way the application runs its networks.

Providers are chosen from what ``onnxruntime.get_available_providers()`` lists:

- ``auto``: TensorRT (only with ``tensorrt=True``) → CUDA → CPU;
- ``cuda``: CUDA only — when no CUDA session can be had, :class:`~engine.errors.DeviceUnavailable`
  says why in one line (nothing falls back silently);
- ``cpu``: CPU only.

Before the first session that asks for CUDA, ``onnxruntime.preload_dlls()`` loads NVIDIA's CUDA and
cuDNN libraries from their pip wheels (:mod:`engine.backends.cuda`). The runner reports the provider
the session *actually* uses (``session.get_providers()[0]``): ``onnxruntime-gpu`` lists CUDA on
machines without a usable GPU and silently runs on the CPU. When ``auto`` expected CUDA (the GPU
build is installed, or an NVIDIA GPU is present) and did not get it, one warning with the reason is
logged per process; a plain CPU machine with the CPU build gets none. onnxruntime's own C++ log
lines are silenced. Sessions are cached per (graph path, sha256, providers, threads).

Precision (:data:`PRECISION_CHOICES`): ``auto`` runs a card's int8 graph (``precisions.int8``,
:meth:`~engine.modelcards.ModelCard.at_precision`) when the session runs on the CPU and the card
ships one, else the fp32 graph — GPUs keep fp32; ``fp32`` always runs the fp32 graph; ``int8`` runs
the int8 graph where shipped (fp32 elsewhere), on the CPU only. A stale or missing int8 graph under
``auto`` falls back to fp32 with one logged warning; under ``int8`` it is an error.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import numpy as np

from engine.backends import cuda as cuda_env
from engine.backends.base import DEVICES, Backend, Runner, import_optional, importable, physical_cores
from engine.errors import DeviceUnavailable, ModelError, classify_device_error
from engine.modelcards import ModelCard, regenerate_hint, verify

__all__ = [
    "OnnxBackend",
    "OnnxRunner",
    "choose_providers",
    "clear_session_cache",
    "onnxruntime_available",
    "ORT_LOG_SEVERITY",
    "PRECISION_CHOICES",
    "cpu_graph_card",
]

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)
PRECISION_CHOICES = ("auto", "fp32", "int8")
"""What callers may ask for (see the module docstring); cards ship :data:`engine.modelcards.PRECISIONS`."""

ORT_LOG_SEVERITY = 4
"""onnxruntime log level used for our sessions and the default logger (4 = fatal only).

Level 3 (errors) is not quiet enough: ``onnxruntime-gpu`` without CUDA libraries logs a
multi-line ``[E:onnxruntime:...] Failed to load library libonnxruntime_providers_cuda.so`` on every
session. Real failures still reach us as Python exceptions, and we log our own one-line warning.
"""

_SESSIONS: dict[tuple[Any, ...], tuple[Any, str | None]] = {}
"""(session, why a GPU provider failed to start or None) by cache key."""
_SESSIONS_LOCK = threading.Lock()
_CUDA_WARNED = False
_CUDA_WARN_LOCK = threading.Lock()
# One CPU arena for every session of the process ("session.use_env_allocators"): the pages one
# network's run touched are reused by the next network instead of being faulted in again (MANet
# then RRDB-SFT on a 512² image: 0.27 s less, idle, bench/bench_upscale_overhead.py). Registered
# once; None until tried, then whether it worked.
_SHARED_ARENA: bool | None = None
_SHARED_ARENA_LOCK = threading.Lock()


def onnxruntime_available() -> bool:
    """True when ``onnxruntime`` (CPU or GPU build) imports."""
    return importable("onnxruntime")


def _ort():
    return import_optional("onnxruntime", "onnxruntime is not installed; install kernelscope[cpu] or "
                           "kernelscope[gpu], or use the torch backend")


def choose_providers(
    device: str,
    available: list[str],
    *,
    tensorrt: bool = False,
    device_id: int = 0,
    cuda_options: dict[str, Any] | None = None,
) -> list[str | tuple[str, dict[str, Any]]]:
    """The providers to request for ``device`` (``auto`` | ``cuda`` | ``cpu``), in order.

    Only providers in ``available`` are requested; the CPU provider always ends the list (the
    backend refuses a CPU session itself when ``cuda`` was asked for). ``cuda_options`` are extra
    CUDA provider options (e.g. ``gpu_mem_limit`` in bytes).
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    chosen: list[str | tuple[str, dict[str, Any]]] = []
    if device in ("auto", "cuda"):
        if tensorrt and TENSORRT in available:
            chosen.append((TENSORRT, {"device_id": device_id}))
        if CUDA in available:
            chosen.append((CUDA, {"device_id": device_id, **(cuda_options or {})}))
    chosen.append(CPU)
    return chosen


def _provider_name(p: str | tuple[str, dict[str, Any]]) -> str:
    return p[0] if isinstance(p, tuple) else p


def _warn_cuda_fallback(reason: str | Callable[[], str]) -> None:
    """Log the CUDA fallback warning once per process (``reason`` may be computed lazily)."""
    global _CUDA_WARNED
    with _CUDA_WARN_LOCK:
        if _CUDA_WARNED:
            log.debug("CUDA not used; running on the CPU")
            return
        _CUDA_WARNED = True
    log.warning("CUDA not used (%s); running on the CPU", reason() if callable(reason) else reason)


def cpu_graph_card(card: ModelCard, precision: str) -> ModelCard:
    """The card whose graph a CPU session runs for ``precision`` (``auto`` | ``fp32`` | ``int8``).

    ``auto`` and ``int8``: the card's int8 graph when it ships one, else ``card`` (fp32). Under ``auto``
    an int8 graph that is missing or was quantized from another fp32 graph gives one warning and
    ``card``; under ``int8`` it raises :class:`ModelError`.
    """
    if precision not in PRECISION_CHOICES:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "fp32" or "int8" not in card.precisions:
        return card
    try:
        chosen = card.at_precision("int8")
        if precision == "auto" and not chosen.graph_path.is_file():
            raise ModelError(f"int8 graph {chosen.graph_path} of model {card.id} is missing")
    except ModelError as exc:
        if precision == "int8":
            raise
        log.warning("%s; running %s in fp32", exc, card.id)
        return card
    return chosen


def clear_session_cache() -> None:
    """Forget all cached sessions (they are freed once no runner holds them)."""
    with _SESSIONS_LOCK:
        _SESSIONS.clear()


def _model_error(card: ModelCard, exc: BaseException) -> ModelError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"model graph {card.graph_path} of model {card.id} cannot be loaded by onnxruntime "
        f"({type(exc).__name__}: {first}); the file is corrupt or incomplete — regenerate it with "
        f"{regenerate_hint(card.id, card.precision)}"
    )


class OnnxRunner(Runner):
    """A card's graph in an onnxruntime ``InferenceSession``."""

    def __init__(self, card: ModelCard, session: Any, provider: str, device_id: int = 0) -> None:
        super().__init__(card, provider)
        self.device_id = device_id
        self.session = session
        self.run_options = _ort().RunOptions()
        # Give the CPU arena back after a run: otherwise it keeps the largest tile's activations for
        # the life of the process (hundreds of MB), which dominated peak RSS on large images.
        # Measured: same speed, peak RSS of an RRDB-SFT tile 726 → 432 MB. A run whose memory the
        # next network of the job will reuse (MANet before RRDB-SFT) keeps it: see _SHARED_ARENA.
        self.run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.keep_options = _ort().RunOptions()

    @property
    def device_name(self) -> str:
        if not self.on_gpu:
            return "CPU"
        gpus = cuda_env.driver_info().gpus
        name = gpus[self.device_id] if self.device_id < len(gpus) else "NVIDIA GPU"
        return f"{name} (GPU {self.device_id})"

    def _run(self, feed: dict[str, np.ndarray], *, keep_memory: bool = False) -> dict[str, np.ndarray]:
        options = self.keep_options if keep_memory else self.run_options
        try:
            results = self.session.run(self.output_names, feed, options)
        except Exception as exc:
            err = classify_device_error(exc, self.provider)
            if err is exc:
                raise
            raise err from exc
        return {name: np.asarray(value, dtype=np.float32) for name, value in zip(self.output_names, results)}


class OnnxBackend(Backend):
    """Runs model cards' ONNX graphs with onnxruntime.

    Args:
        device: ``auto`` (GPU when one works, else the CPU), ``cuda`` (GPU or
            :class:`~engine.errors.DeviceUnavailable`) or ``cpu``.
        threads: intra-op threads; default: the physical cores this process may use.
        tensorrt: put TensorRT ahead of CUDA when it is available (off by default: first runs
            build engines for minutes).
        device_id: the CUDA device index.
        cuda_options: extra CUDA provider options, e.g. ``{"gpu_mem_limit": 2 << 30}``.
        precision: ``auto`` (int8 where shipped when running on the CPU), ``fp32`` or ``int8``
            (CPU only: ``device="cuda"`` raises :class:`~engine.errors.DeviceUnavailable`).
    """

    name = "onnx"

    def __init__(
        self,
        device: str = "auto",
        threads: int | None = None,
        *,
        tensorrt: bool = False,
        device_id: int = 0,
        cuda_options: dict[str, Any] | None = None,
        precision: str = "auto",
    ) -> None:
        if device not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
        if precision not in PRECISION_CHOICES:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
        self.device = device
        self.precision = precision
        self.threads = int(threads) if threads else physical_cores()
        self.tensorrt = tensorrt
        self.device_id = device_id
        self.cuda_options = dict(cuda_options or {})

    def load(self, card: ModelCard) -> OnnxRunner:
        """Verify the graph that will run (exists, sha256) and return a runner on a cached session."""
        ort = _ort()
        device = self.device
        if self.precision == "int8":
            if device == "cuda":
                raise DeviceUnavailable("cuda", "int8 graphs run on the CPU only (use precision fp32 or auto)")
            device = "cpu"
        available = list(ort.get_available_providers())
        if device == "cuda" and CUDA not in available:
            raise DeviceUnavailable("cuda", cuda_env.cuda_unavailable_reason(available, ort))
        providers = choose_providers(device, available, tensorrt=self.tensorrt, device_id=self.device_id,
                                     cuda_options=self.cuda_options)
        names = tuple(_provider_name(p) for p in providers)
        missing: tuple[str, ...] = ()
        if CUDA in names:
            missing = cuda_env.preload_cuda_libraries(ort)  # once per process, before the first CUDA session
        graph = card if CUDA in names else cpu_graph_card(card, self.precision)
        session, gpu_error = self._cached_session(ort, graph, providers)
        provider = session.get_providers()[0]
        if CUDA in names and provider not in GPU_PROVIDERS:
            reason = cuda_env.cuda_unavailable_reason(available, ort, session_error=gpu_error,
                                                      missing_libraries=missing)
            if self.device == "cuda":
                raise DeviceUnavailable("cuda", reason)
            _warn_cuda_fallback(reason)
            cpu_graph = cpu_graph_card(card, self.precision)
            if cpu_graph is not graph:  # CUDA did not start: the CPU gets its own precision
                graph = cpu_graph
                session, _ = self._cached_session(ort, graph, [CPU])
                provider = session.get_providers()[0]
        elif device == "auto" and CUDA not in available and cuda_env.driver_info().usable:
            _warn_cuda_fallback(lambda: "an NVIDIA GPU is present, but " + cuda_env.cuda_unavailable_reason(
                available, ort))
        log.debug("model %s (%s) on %s (%d threads)", card.id, graph.precision, provider, self.threads)
        return OnnxRunner(graph, session, provider, self.device_id)

    def _cached_session(self, ort: Any, card: ModelCard, providers: list) -> tuple[Any, str | None]:
        """(session, GPU start error) for ``card``'s graph on ``providers``, verified and cached."""
        verify(card)
        names = tuple(_provider_name(p) for p in providers)
        options = tuple(sorted((k, str(v)) for k, v in self.cuda_options.items()))
        key = (str(card.graph_path.resolve()), card.graph_sha256, names, self.device_id, self.threads, options)
        with _SESSIONS_LOCK:
            cached = _SESSIONS.get(key)
            if cached is None:
                cached = self._create_session(ort, card, providers)
                _SESSIONS[key] = cached
        return cached

    def _session_options(self, ort: Any) -> Any:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = ORT_LOG_SEVERITY
        if _register_shared_arena(ort):
            so.add_session_config_entry("session.use_env_allocators", "1")
        return so

    def _create_session(self, ort: Any, card: ModelCard, providers: list) -> tuple[Any, str | None]:
        """A session on ``providers`` (or on the CPU when a GPU provider failed to start) and that failure."""
        ort.set_default_logger_severity(ORT_LOG_SEVERITY)
        gpu_error = None
        path = str(card.graph_path)
        try:
            # enable_fallback=0: no "EP Error … Falling back" banner printed by onnxruntime;
            # we retry on the CPU ourselves below.
            session = ort.InferenceSession(
                path, self._session_options(ort), providers=providers, enable_fallback=0
            )
        except Exception as exc:
            if len(providers) == 1 or _is_graph_error(exc):
                raise _model_error(card, exc) from exc
            # A GPU provider failed to start: retry on the CPU; if that fails too, the graph is bad.
            try:
                session = ort.InferenceSession(path, self._session_options(ort), providers=[CPU], enable_fallback=0)
            except Exception as cpu_exc:
                raise _model_error(card, cpu_exc) from cpu_exc
            gpu_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        _check_io(card, session)
        return session, gpu_error


def _register_shared_arena(ort: Any) -> bool:
    """Register the process-wide CPU arena with onnxruntime once; False where it cannot be (the
    sessions then keep one arena each, as before)."""
    global _SHARED_ARENA
    with _SHARED_ARENA_LOCK:
        if _SHARED_ARENA is None:  # tried once per process: a failure is not retried for every session
            try:
                info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
                ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))  # defaults
                _SHARED_ARENA = True
            except Exception as exc:  # an onnxruntime without the API: per-session arenas
                log.debug("shared CPU arena not registered (%s: %s)", type(exc).__name__, exc)
                _SHARED_ARENA = False
        return _SHARED_ARENA


def _is_graph_error(exc: BaseException) -> bool:
    """True for onnxruntime errors about the model file itself (not about a provider)."""
    return type(exc).__name__ in ("InvalidProtobuf", "NoSuchFile", "InvalidGraph", "InvalidArgument")


def _check_io(card: ModelCard, session: Any) -> None:
    """The graph's input and output names must be the card's."""
    graph_inputs = [i.name for i in session.get_inputs()]
    graph_outputs = [o.name for o in session.get_outputs()]
    if sorted(graph_inputs) != sorted(card.input_names) or not set(card.output_names) <= set(graph_outputs):
        raise ModelError(
            f"model graph {card.graph_path} does not fit its model card {card.id}: graph inputs "
            f"{graph_inputs} / outputs {graph_outputs}, card inputs {card.input_names} / outputs "
            f"{card.output_names}; regenerate it with {regenerate_hint(card.id, card.precision)}"
        )

