"""The CUDA path without a GPU: install choice, preload order, one-line reasons, CLI exit codes.

onnxruntime is mocked where a GPU build is needed (this environment has the CPU build); the NVIDIA
driver is a fake ``libcuda``. What a real GPU does is checked by ``bench/gpu_check.py``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from packaging.requirements import Requirement

import engine.backends.cuda as cuda_env
from engine.backends.onnx_backend import OnnxBackend
from engine.cli import main
from engine.imageio import Image, write_image
from engine.modelcards import find_card
from engine.pipeline.models import ModelSet, execution_text
from tests.backend_env import GPU_DRIVER, NO_DRIVER, fresh_backend_state  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]
CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
RealSession = ort.InferenceSession


@pytest.fixture
def tiny_models(tiny_models_dir, monkeypatch):
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(tiny_models_dir))
    return tiny_models_dir


def _names(providers):
    return [p[0] if isinstance(p, tuple) else p for p in providers]


@pytest.fixture
def gpu_build(monkeypatch):
    """onnxruntime that lists CUDA and has ``preload_dlls``; sessions really run (on the CPU) and
    report the provider ``outcome["provider"]`` says. ``events`` records calls in order."""
    events: list[str] = []
    outcome = {"provider": CUDA, "preload_prints": ""}

    def preload_dlls(cuda=True, cudnn=True, msvc=True, directory=None):
        events.append("preload")
        print(outcome["preload_prints"], end="")

    class Session(RealSession):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            events.append("session:" + "+".join(_names(providers)))
            self.asked_cuda = CUDA in _names(providers)
            super().__init__(path, sess_options, providers=[CPU], **kwargs)

        def get_providers(self):
            return [outcome["provider"], CPU] if self.asked_cuda and outcome["provider"] != CPU else [CPU]

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "preload_dlls", preload_dlls, raising=False)
    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(cuda_env, "driver_info", lambda: GPU_DRIVER)
    return events, outcome


# installation -------------------------------------------------------------------------------
def test_gpu_extra_is_onnxruntime_gpu_with_nvidia_runtime_wheels():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (gpu,) = [Requirement(r) for r in extras["gpu"]]
    assert gpu.name == "onnxruntime-gpu" and gpu.extras == {"cuda", "cudnn"}
    assert gpu.specifier.contains("1.21.0") and not gpu.specifier.contains("1.20.2")  # extras since 1.21
    assert [Requirement(r).name for r in extras["cpu"]] == ["onnxruntime"]


def _make_run_plan(path_dirs: list[Path]) -> str:
    """What ``make run`` would do (``-n``: nothing runs; ``-B``: as on a fresh checkout)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["PATH"] = os.pathsep.join(str(p) for p in path_dirs)
    out = subprocess.run([make, "-n", "-B", "-C", str(ROOT), "run"], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout


@pytest.mark.parametrize("smi_exit, extra, removed", [(0, "gpu", "onnxruntime"), (9, "cpu", "onnxruntime-gpu"),
                                                     (None, "cpu", "onnxruntime-gpu")])
def test_make_run_asks_for_the_gpu_build_only_when_nvidia_smi_answers(tmp_path, smi_exit, extra, removed):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi_exit is not None:
        stub = bin_dir / "nvidia-smi"
        stub.write_text(f"#!/bin/sh\nexit {smi_exit}\n")
        stub.chmod(0o755)
    plan = _make_run_plan([bin_dir])  # nothing else on PATH: a real nvidia-smi cannot answer
    assert f"install -e '.[{extra}]'" in plan
    assert f"uninstall -y {removed} " in plan
    other = "cpu" if extra == "gpu" else "gpu"
    assert f".[{other}]" not in plan


# preload ------------------------------------------------------------------------------------
def test_preload_dlls_runs_once_before_the_first_cuda_session(tiny_models, gpu_build):
    events, _ = gpu_build
    a = OnnxBackend("auto", threads=1).load(find_card("manet", 4))
    b = OnnxBackend("cuda", threads=1).load(find_card("rrdb_sft", 4))
    assert events[0] == "preload" and events.count("preload") == 1
    assert events[1:] == ["session:CUDAExecutionProvider+CPUExecutionProvider"] * 2
    assert a.provider == b.provider == CUDA and a.on_gpu
    assert a.device_name == "NVIDIA Test GPU (GPU 0)"


def test_cpu_sessions_never_preload(tiny_models, gpu_build):
    events, _ = gpu_build
    OnnxBackend("cpu", threads=1).load(find_card("manet", 4))
    assert events == ["session:CPUExecutionProvider"]


def test_missing_libraries_are_the_reason_and_stdout_stays_clean(tiny_models, gpu_build, caplog, capsys):
    events, outcome = gpu_build
    outcome["provider"] = CPU  # what onnxruntime-gpu does when it cannot load its CUDA provider
    outcome["preload_prints"] = ("Failed to load /venv/nvidia/cu13/lib/libcublasLt.so.13: cannot open shared "
                                 "object file\nFailed to load libcudnn.so.9: cannot open shared object file\n")
    with caplog.at_level(logging.WARNING):
        runner = OnnxBackend("auto", threads=1).load(find_card("manet", 4))
    assert runner.provider == CPU
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(msgs) == 1
    assert "libcublasLt.so.13, libcudnn.so.9" in msgs[0] and "kernelscope[gpu]" in msgs[0]
    assert capsys.readouterr().out == ""  # onnxruntime's prints were captured


# the driver ---------------------------------------------------------------------------------
class FakeLibcuda:
    """``libcuda`` functions answering like a driver that supports ``version`` with ``gpus``."""

    def __init__(self, version=13000, gpus=("NVIDIA Fake",), init_error=0):
        self.version, self.gpus, self.init_error = version, gpus, init_error

    @staticmethod
    def _set(ref, value):
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_int))[0] = value

    def cuDriverGetVersion(self, ref):
        self._set(ref, self.version)
        return 0

    def cuInit(self, flags):
        return self.init_error

    def cuGetErrorName(self, code, ref):
        ctypes.cast(ref, ctypes.POINTER(ctypes.c_char_p))[0] = {100: b"CUDA_ERROR_NO_DEVICE"}.get(code, b"X")
        return 0

    def cuDeviceGetCount(self, ref):
        self._set(ref, len(self.gpus))
        return 0

    def cuDeviceGet(self, ref, ordinal):
        self._set(ref, ordinal)
        return 0

    def cuDeviceGetName(self, buf, size, device):
        ctypes.memmove(buf, self.gpus[device.value].encode() + b"\0", len(self.gpus[device.value]) + 1)
        return 0


def test_probe_driver_reads_version_and_gpus_from_libcuda():
    info = cuda_env.probe_driver(lambda name: FakeLibcuda(12040, ("NVIDIA A", "NVIDIA B")), platform="linux")
    assert info == cuda_env.DriverInfo(loaded=True, cuda_version=(12, 4), gpus=("NVIDIA A", "NVIDIA B"))
    assert info.usable


def test_probe_driver_without_driver_or_device():
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")

    none = cuda_env.probe_driver(missing, platform="linux")
    assert not none.loaded and "libcuda.so.1" in none.error
    no_gpu = cuda_env.probe_driver(lambda name: FakeLibcuda(gpus=(), init_error=100), platform="linux")
    assert no_gpu.loaded and "CUDA_ERROR_NO_DEVICE (100)" in no_gpu.error and not no_gpu.usable
    assert not cuda_env.probe_driver(missing, platform="darwin").loaded


def test_reason_names_a_driver_too_old_for_the_build(monkeypatch):
    monkeypatch.setattr(cuda_env, "ort_cuda_version", lambda ort: "13.0")
    old = cuda_env.DriverInfo(loaded=True, cuda_version=(12, 4), gpus=("NVIDIA T4",))
    reason = cuda_env.cuda_unavailable_reason([CUDA, CPU], ort, driver=old)
    assert "supports CUDA up to 12.4" in reason and "CUDA 13 (NVIDIA driver ≥ 580)" in reason
    assert "no NVIDIA driver found" in cuda_env.cuda_unavailable_reason([CUDA, CPU], ort, driver=NO_DRIVER)
    no_gpu = cuda_env.DriverInfo(loaded=True, cuda_version=(13, 0), error="cuInit failed: CUDA_ERROR_NO_DEVICE (100)")
    assert "CUDA_ERROR_NO_DEVICE" in cuda_env.cuda_unavailable_reason([CUDA, CPU], ort, driver=no_gpu)
    assert "CPU build" in cuda_env.cuda_unavailable_reason([CPU], ort, driver=GPU_DRIVER)


def test_frozen_apps_loader_wording_is_not_shown_for_the_driver():
    def frozen_loader(name):
        raise OSError(f"Failed to load dynlib/dll {name!r}. Most likely this dynlib/dll was not found when the "
                      "application was frozen.")

    info = cuda_env.probe_driver(frozen_loader, platform="linux")
    assert info.error == "libcuda.so.1: not found"


def test_report_lines_say_whether_the_libraries_load(monkeypatch, gpu_build):
    _, outcome = gpu_build
    monkeypatch.setattr(cuda_env, "ort_cuda_version", lambda ort: "13.0")
    outcome["preload_prints"] = "Failed to load libcudnn.so.9: cannot open shared object file\n"
    lines = cuda_env.cuda_report_lines(ort)
    assert lines[0] == ("CUDA: onnxruntime built for CUDA 13.0 (needs NVIDIA driver ≥ 580); NVIDIA driver "
                        "supports CUDA 13.0, NVIDIA Test GPU")
    assert lines[1].endswith("; preload_dlls could not load libcudnn.so.9")


def test_library_source_for_cpu_build_and_for_nvidia_wheels(monkeypatch, tmp_path):
    assert cuda_env.cuda_library_source(ort) == "none needed (CPU build of onnxruntime)"
    package = tmp_path / "site-packages" / "onnxruntime"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for lib in ("cu13/lib/libcublas.so.13", "cudnn/lib/libcudnn.so.9"):
        (tmp_path / "site-packages" / "nvidia" / lib).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site-packages" / "nvidia" / lib).write_bytes(b"")
    fake = type("FakeOrt", (), {"__file__": str(package / "__init__.py"), "__name__": "fake_ort"})
    monkeypatch.setattr(cuda_env, "ort_cuda_version", lambda ort: "13.0")
    assert cuda_env.cuda_library_source(fake).startswith("NVIDIA pip wheels (")
    assert cuda_env.cuda_library_source(fake).endswith("nvidia: cu13, cudnn)")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert cuda_env.cuda_library_source(fake).startswith("bundled with the program")
    shutil.rmtree(tmp_path / "site-packages" / "nvidia")
    assert cuda_env.cuda_library_source(fake).startswith("the system's")


# what is shown --------------------------------------------------------------------------------
def test_execution_text_names_device_provider_and_precision(tiny_models, gpu_build):
    models = ModelSet(scale=4)
    models.runners["manet"] = OnnxBackend("auto", threads=1).load(find_card("manet", 4))
    assert models.execution == "NVIDIA Test GPU (GPU 0) · CUDAExecutionProvider · fp32"
    models.runners["rrdb_sft"] = OnnxBackend("cpu", threads=1).load(find_card("rrdb_sft", 4))
    assert models.execution == ("CPU+NVIDIA Test GPU (GPU 0) · CPUExecutionProvider+CUDAExecutionProvider · fp32")
    assert execution_text([]) == "CPU · numpy · fp32"


# the command line ---------------------------------------------------------------------------
def _image(tmp_path) -> Path:
    src = tmp_path / "in.png"
    write_image(src, Image(rgb_f32=np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)))
    return src


def test_cli_provider_cuda_without_gpu_exits_2_with_one_line(tmp_path, tiny_models, capsys):
    src = _image(tmp_path)
    code = main(["upscale", str(src), "--provider", "cuda", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("kernelscope-cli upscale: error: --provider cuda: onnxruntime")
    assert "CPU build" in err[0]
    assert not list((tmp_path / "out").glob("*"))


def test_cli_process_provider_cuda_prints_exactly_one_line(tmp_path, tiny_models_dir):
    """The real command (logging set up as for users): stderr is the one error line, nothing else."""
    src = _image(tmp_path)
    env = {**os.environ, "KERNELSCOPE_MODELS": str(tiny_models_dir)}
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "upscale", str(src), "--provider", "cuda",
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a GPU build is installed here")
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_cli_provider_cuda_with_a_gpu_build_that_cannot_start_exits_2(tmp_path, tiny_models, gpu_build, capsys,
                                                                      monkeypatch):
    _, outcome = gpu_build
    outcome["provider"] = CPU
    monkeypatch.setattr(cuda_env, "driver_info", lambda: NO_DRIVER)
    code = main(["upscale", str(_image(tmp_path)), "--provider", "cuda", "--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--provider cuda: no NVIDIA driver found (libcuda.so.1" in err[0]


def test_cli_provider_auto_falls_back_to_cpu_with_one_notice(tmp_path, tiny_models, gpu_build, capsys, caplog):
    _, outcome = gpu_build
    outcome["provider"] = CPU
    with caplog.at_level(logging.WARNING):
        code = main(["upscale", str(_image(tmp_path)), "--provider", "auto", "--out", str(tmp_path / "o"),
                     "--no-progress"])
    assert code == 0 and (tmp_path / "o" / "in_x4_manet.png").is_file()
    notices = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(notices) == 1 and "running on the CPU" in notices[0] and "\n" not in notices[0]
    assert "manet ×4 on CPU · CPUExecutionProvider · fp32" in capsys.readouterr().err


def test_cli_provider_auto_on_a_plain_cpu_machine_gives_no_notice(tmp_path, tiny_models, caplog):
    with caplog.at_level(logging.WARNING):
        code = main(["upscale", str(_image(tmp_path)), "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
