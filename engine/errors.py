"""Error types shared across the engine, and the one place that recognises out-of-memory errors.

- :class:`ModelError`: a model cannot be used (card missing or invalid, graph file missing or
  corrupt, weights that do not fit, inputs of the wrong shape). The message says which file or
  model and, where it can, how to fix it.
- :class:`DeviceUnavailable`: the device asked for by name (``cuda``) cannot run here; the
  message is the reason in one line. ``auto`` never raises it: it falls back to the CPU.
- :class:`DeviceOutOfMemory`: a device (GPU or host) ran out of memory during inference. Tiling
  code catches this one type and retries with smaller tiles.

:func:`classify_device_error` turns the many ways PyTorch, onnxruntime and Python report an
out-of-memory condition into :class:`DeviceOutOfMemory`; nothing else in the engine matches error
strings. Neither torch nor onnxruntime is imported here: exceptions are recognised by their
type's name and module, so this module works whichever of the two is installed.
"""

from __future__ import annotations

import re

__all__ = [
    "ModelError",
    "DeviceUnavailable",
    "DeviceOutOfMemory",
    "is_out_of_memory",
    "classify_device_error",
]


class ModelError(Exception):
    """A model (card, graph, weights) cannot be used, or was given inputs it cannot take."""


class DeviceUnavailable(ModelError):
    """The device asked for explicitly (``device="cuda"``) cannot run here; ``reason`` says why."""

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"{device} cannot run here: {reason}")
        self.device = device
        self.reason = reason


class DeviceOutOfMemory(RuntimeError):
    """A device ran out of memory while running a model.

    ``device`` names where it happened (a provider such as ``"CUDAExecutionProvider"`` or
    ``"torch-cuda"``) when known. The original exception is kept as ``__cause__``.
    """

    def __init__(self, message: str, device: str | None = None) -> None:
        super().__init__(message)
        self.device = device


# Messages that mean "out of memory" in runtime errors from torch and onnxruntime.
_OOM_PATTERNS = re.compile(
    r"CUDA out of memory"  # torch (older releases, and the OutOfMemoryError text)
    r"|DefaultCPUAllocator: can't allocate"  # torch on the host
    r"|Failed to allocate memory"  # onnxruntime arenas (CPU and CUDA)
    r"|BFCArena"  # onnxruntime's CUDA arena allocator
    r"|CUDA failure 2\b"  # cudaErrorMemoryAllocation, as onnxruntime reports it
    r"|CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED"
    r"|out of memory",
    re.IGNORECASE,
)

# onnxruntime's pybind exception types do not derive from RuntimeError; recognise them by name.
_ORT_ERROR_NAMES = {"RuntimeException", "Fail", "EPFail"}


def _is_torch_oom_type(exc: BaseException) -> bool:
    cls = type(exc)
    return cls.__name__ == "OutOfMemoryError" and cls.__module__.split(".")[0] == "torch"


def _is_ort_error(exc: BaseException) -> bool:
    cls = type(exc)
    return cls.__name__ in _ORT_ERROR_NAMES and cls.__module__.split(".")[0] == "onnxruntime"


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` reports that a device (GPU or host) ran out of memory.

    Recognised: :class:`DeviceOutOfMemory` itself, Python's ``MemoryError`` (numpy's
    allocation failures included), ``torch.cuda.OutOfMemoryError``, and ``RuntimeError`` or
    onnxruntime ``RuntimeException`` / ``Fail`` / ``EPFail`` whose message carries one of the
    out-of-memory phrases of torch, onnxruntime or CUDA.
    """
    if isinstance(exc, (DeviceOutOfMemory, MemoryError)):
        return True
    if _is_torch_oom_type(exc):
        return True
    if isinstance(exc, RuntimeError) or _is_ort_error(exc):
        return _OOM_PATTERNS.search(str(exc)) is not None
    return False


def classify_device_error(exc: BaseException, device: str | None = None) -> BaseException:
    """Map an error raised while running a model to the engine's error types.

    Returns a new :class:`DeviceOutOfMemory` (with ``exc`` as its ``__cause__``) when ``exc`` is an
    out-of-memory error, otherwise ``exc`` itself. Use as::

        except Exception as exc:
            err = classify_device_error(exc, device="torch-cuda")
            if err is exc:
                raise
            raise err from exc
    """
    if isinstance(exc, DeviceOutOfMemory):
        return exc
    if not is_out_of_memory(exc):
        return exc
    where = f" on {device}" if device else ""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    err = DeviceOutOfMemory(f"out of memory{where}: {first_line}", device=device)
    err.__cause__ = exc
    return err
