"""Shared by the backend tests (test_backends.py, test_cuda.py): fake NVIDIA drivers and a clean
backend state per test. Import ``fresh_backend_state`` into a test module to make it autouse there."""

from __future__ import annotations

import pytest

import engine.backends.cuda as cuda_env
import engine.backends.onnx_backend as onnx_backend
from engine.backends.onnx_backend import clear_session_cache

NO_DRIVER = cuda_env.DriverInfo(loaded=False, error="libcuda.so.1 cannot be loaded (not found)")
GPU_DRIVER = cuda_env.DriverInfo(loaded=True, cuda_version=(13, 0), gpus=("NVIDIA Test GPU",))


@pytest.fixture(autouse=True)
def fresh_backend_state(monkeypatch):
    """Every test starts with an empty session cache, the once-per-process warning and preload
    unused, and (unless it says otherwise) a machine without an NVIDIA driver."""
    clear_session_cache()
    monkeypatch.setattr(onnx_backend, "_CUDA_WARNED", False)
    monkeypatch.setattr(cuda_env, "driver_info", lambda: NO_DRIVER)
    cuda_env._reset_preload_for_tests()
    yield
    clear_session_cache()
    cuda_env._reset_preload_for_tests()
