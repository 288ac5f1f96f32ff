"""What stands between ``onnxruntime-gpu`` and a working CUDA session, in one place.

- :func:`preload_cuda_libraries`: ``onnxruntime.preload_dlls()`` once per process, before the first
  CUDA session. With the ``gpu`` extra (``onnxruntime-gpu[cuda,cudnn]``) NVIDIA's CUDA and cuDNN
  runtime libraries are pip wheels under ``site-packages/nvidia`` (``_internal/nvidia`` in the -gpu
  bundle), where the dynamic loader does not look by itself; ``preload_dlls`` loads them by path.
- :func:`probe_driver`: the NVIDIA driver as the CUDA driver API (``libcuda``, loaded with ctypes)
  reports it: the newest CUDA it supports and the GPUs it sees. No CUDA toolkit is needed.
- :func:`cuda_unavailable_reason`: why CUDA was not obtained, in one line (CPU build of
  onnxruntime, no driver, a driver too old for the CUDA major onnxruntime was built for, no GPU,
  libraries missing, or onnxruntime's own error).
- :func:`cuda_library_source`: where the CUDA libraries come from (bundled, pip wheels, the system).

Neither onnxruntime nor torch is imported here; callers pass the onnxruntime module in.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = [
    "CUDA_MIN_DRIVER",
    "DriverInfo",
    "cuda_library_source",
    "cuda_unavailable_reason",
    "driver_info",
    "ort_cuda_version",
    "preload_cuda_libraries",
    "probe_driver",
]

log = logging.getLogger(__name__)

CUDA_MIN_DRIVER: dict[int, int] = {11: 450, 12: 525, 13: 580}
"""Oldest NVIDIA driver branch that runs anything built with CUDA ``major`` (NVIDIA's "minor version
compatibility" table: docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html)."""

CUDA_PROVIDER = "CUDAExecutionProvider"

_DRIVER_LIBRARIES = {"win32": "nvcuda.dll", "linux": "libcuda.so.1"}


@dataclass(frozen=True)
class DriverInfo:
    """The NVIDIA driver as seen through ``libcuda``.

    ``loaded``: the driver library could be loaded at all; ``cuda_version``: (major, minor) of the
    newest CUDA the driver supports; ``gpus``: names of the GPUs it sees; ``error``: why the driver
    could not be used (load error, or ``cuInit``'s error name), else None.
    """

    loaded: bool
    cuda_version: tuple[int, int] | None = None
    gpus: tuple[str, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.loaded and self.error is None and bool(self.gpus)


def _error_name(lib: Any, code: int) -> str:
    name = ctypes.c_char_p()
    try:
        if lib.cuGetErrorName(code, ctypes.byref(name)) == 0 and name.value:
            return f"{name.value.decode(errors='replace')} ({code})"
    except (AttributeError, OSError):
        pass
    return f"CUDA driver error {code}"


def probe_driver(load: Callable[[str], Any] = ctypes.CDLL, platform: str | None = None) -> DriverInfo:
    """Ask the NVIDIA driver (``libcuda.so.1`` / ``nvcuda.dll``) for its CUDA version and GPUs.

    ``load`` opens a shared library by name (``ctypes.CDLL``; tests pass a fake). Never raises.
    """
    platform = platform or sys.platform
    name = _DRIVER_LIBRARIES.get("win32" if platform.startswith("win") else platform)
    if name is None:
        return DriverInfo(loaded=False, error=f"no NVIDIA CUDA driver exists for {platform}")
    try:
        lib = load(name)
    except OSError as exc:
        text = " ".join(str(exc).split())[:160]
        if "when the application was frozen" in text:  # PyInstaller's wording; the driver is never bundled
            text = f"{name}: not found"
        return DriverInfo(loaded=False, error=text if name in text else f"{name} cannot be loaded ({text})")
    version = ctypes.c_int(0)
    cuda_version = None
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
        cuda_version = (version.value // 1000, (version.value % 1000) // 10)
    code = lib.cuInit(0)
    if code != 0:
        return DriverInfo(loaded=True, cuda_version=cuda_version, error=f"cuInit failed: {_error_name(lib, code)}")
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        count.value = 0
    gpus = []
    for ordinal in range(count.value):
        device = ctypes.c_int(0)
        buf = ctypes.create_string_buffer(256)
        if lib.cuDeviceGet(ctypes.byref(device), ordinal) == 0 and lib.cuDeviceGetName(buf, 256, device) == 0:
            gpus.append(buf.value.decode(errors="replace") or f"GPU {ordinal}")
        else:
            gpus.append(f"GPU {ordinal}")
    return DriverInfo(loaded=True, cuda_version=cuda_version, gpus=tuple(gpus))


@functools.lru_cache(maxsize=1)
def driver_info() -> DriverInfo:
    """:func:`probe_driver` once per process (the driver does not change under a running program)."""
    return probe_driver()


def ort_cuda_version(ort: Any) -> str | None:
    """The CUDA version this onnxruntime was built with (``"13.0"``), None for CPU builds.

    Read from ``onnxruntime.capi.build_and_package_info``, the module onnxruntime itself uses.
    """
    try:
        from importlib import import_module

        info = import_module(f"{ort.__name__}.capi.build_and_package_info")
    except Exception:  # noqa: BLE001 - absent in CPU builds and in fakes
        return None
    value = getattr(info, "cuda_version", None)
    return str(value) if value else None


def _cuda_major(ort: Any) -> int | None:
    version = ort_cuda_version(ort)
    try:
        return int(version.split(".")[0]) if version else None
    except ValueError:
        return None


_PRELOAD_LOCK = threading.Lock()
_PRELOAD_MISSING: tuple[str, ...] | None = None
_FAILED_LOAD = re.compile(r"Failed to load (\S+?):")


def preload_cuda_libraries(ort: Any) -> tuple[str, ...]:
    """Call ``ort.preload_dlls()`` once per process, when this onnxruntime has it.

    Returns the file names of the libraries it could not load (empty when all loaded or when there
    is no ``preload_dlls``). onnxruntime prints those failures to stdout; they are captured here and
    logged at debug level, so the command line's output stays clean (the reason reaches the user
    through :func:`cuda_unavailable_reason` when CUDA is then not obtained).
    """
    global _PRELOAD_MISSING
    with _PRELOAD_LOCK:
        if _PRELOAD_MISSING is not None:
            return _PRELOAD_MISSING
        preload = getattr(ort, "preload_dlls", None)
        missing: list[str] = []
        if preload is not None:
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    preload()
            except Exception as exc:  # noqa: BLE001 - a failed preload must not stop the CPU path
                missing.append(f"preload_dlls failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            text = out.getvalue()
            if text.strip():
                log.debug("onnxruntime.preload_dlls: %s", " | ".join(text.strip().splitlines()))
            for path in _FAILED_LOAD.findall(text):
                lib = Path(path).name
                if lib not in missing:
                    missing.append(lib)
        _PRELOAD_MISSING = tuple(missing)
        return _PRELOAD_MISSING


def _reset_preload_for_tests() -> None:
    global _PRELOAD_MISSING
    with _PRELOAD_LOCK:
        _PRELOAD_MISSING = None


def _provider_library_error(ort: Any) -> str | None:
    """The loader's error for onnxruntime's CUDA provider library, or None when it loads (or is absent)."""
    try:
        capi = Path(ort.__file__).parent / "capi"
    except (AttributeError, TypeError):
        return None
    for name in ("libonnxruntime_providers_cuda.so", "onnxruntime_providers_cuda.dll"):
        lib = capi / name
        if lib.exists():
            try:
                ctypes.CDLL(str(lib))
            except OSError as exc:
                return " ".join(str(exc).split())[:300]
            return None
    return None


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cuda_unavailable_reason(
    available: Sequence[str],
    ort: Any,
    *,
    session_error: str | None = None,
    missing_libraries: Sequence[str] = (),
    driver: DriverInfo | None = None,
) -> str:
    """Why onnxruntime did not give a CUDA session, in one line, most basic cause first.

    ``available``: ``ort.get_available_providers()``; ``session_error``: the exception text of a
    failed CUDA session, if any; ``missing_libraries``: what :func:`preload_cuda_libraries` could
    not load; ``driver``: default :func:`driver_info`.
    """
    version = getattr(ort, "__version__", "?")
    if CUDA_PROVIDER not in available:
        return (f"onnxruntime {version} is the CPU build (it has no CUDA provider); "
                "install kernelscope[gpu] (onnxruntime-gpu) instead of kernelscope[cpu]")
    driver = driver if driver is not None else driver_info()
    major = _cuda_major(ort)
    needs = f"CUDA {major} (NVIDIA driver ≥ {CUDA_MIN_DRIVER[major]})" if major in CUDA_MIN_DRIVER else "CUDA"
    if not driver.loaded:
        return f"no NVIDIA driver found ({driver.error}); onnxruntime-gpu {version} needs {needs}"
    if driver.cuda_version is not None and major is not None and driver.cuda_version[0] < major:
        have = f"{driver.cuda_version[0]}.{driver.cuda_version[1]}"
        return (f"the NVIDIA driver is too old: it supports CUDA up to {have}, onnxruntime-gpu {version} "
                f"is built for {needs}; update the driver")
    if driver.error is not None:
        return f"the NVIDIA driver cannot start CUDA ({driver.error})"
    if not driver.gpus:
        return "the NVIDIA driver sees no GPU"
    if missing_libraries:
        shown = ", ".join(missing_libraries[:4]) + (", …" if len(missing_libraries) > 4 else "")
        return (f"CUDA/cuDNN libraries missing ({shown}); install kernelscope[gpu], which brings them as "
                f"NVIDIA wheels, or install {needs.split(' (')[0]} and cuDNN 9")
    provider_error = _provider_library_error(ort)
    if provider_error:
        return f"onnxruntime's CUDA provider cannot be loaded: {provider_error}"
    if session_error:
        return f"onnxruntime could not start CUDA: {_short(session_error)}"
    return "onnxruntime could not start CUDA on this GPU"


def cuda_library_source(ort: Any) -> str:
    """Where onnxruntime's CUDA/cuDNN libraries come from, in words (for ``--selftest``).

    NVIDIA's wheels install into ``<site-packages>/nvidia`` — beside the onnxruntime package, which
    is also where ``preload_dlls`` looks — and the -gpu bundle keeps that layout in ``_internal``.
    """
    if ort_cuda_version(ort) is None:
        return "none needed (CPU build of onnxruntime)"
    try:
        root = Path(ort.__file__).resolve().parent.parent
    except (AttributeError, TypeError):
        return "unknown"
    nvidia = root / "nvidia"
    libs = [*nvidia.glob("*/lib/*.so*"), *nvidia.glob("*/bin/**/*.dll")] if nvidia.is_dir() else []
    found = sorted({p.relative_to(nvidia).parts[0] for p in libs})
    frozen = bool(getattr(sys, "frozen", False))
    if found:
        where = "bundled with the program" if frozen else "NVIDIA pip wheels"
        return f"{where} ({root / 'nvidia'}: {', '.join(found)})"
    major = _cuda_major(ort)
    return (f"the system's (none beside onnxruntime: CUDA {major or '?'} and cuDNN 9 must be on the "
            "library path)")


def cuda_report_lines(ort: Any) -> list[str]:
    """What ``--selftest`` and ``bench/gpu_check.py`` print about CUDA: the build, the driver, the
    libraries and whether they load (this runs :func:`preload_cuda_libraries` for GPU builds)."""
    build = ort_cuda_version(ort)
    if build is None:
        return ["CUDA: not used (CPU build of onnxruntime)"]
    major = _cuda_major(ort)
    need = f" (needs NVIDIA driver ≥ {CUDA_MIN_DRIVER[major]})" if major in CUDA_MIN_DRIVER else ""
    driver = driver_info()
    if not driver.loaded:
        seen = f"no NVIDIA driver ({driver.error})"
    else:
        supports = f"supports CUDA {driver.cuda_version[0]}.{driver.cuda_version[1]}" if driver.cuda_version else "?"
        gpus = ", ".join(driver.gpus) if driver.gpus else "no GPU"
        seen = f"NVIDIA driver {supports}, {driver.error or gpus}"
    missing = preload_cuda_libraries(ort)
    loaded = "preload_dlls loaded them" if not missing else f"preload_dlls could not load {', '.join(missing)}"
    return [f"CUDA: onnxruntime built for CUDA {build}{need}; {seen}",
            f"CUDA libraries: {cuda_library_source(ort)}; {loaded}"]
