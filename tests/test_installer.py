"""The desktop bundle: build_installer.py's checks, the bundle launchers, and (slow) a real build.

Fast tests cover the pieces the build relies on: the onnxruntime-variant check, archive naming and
packing, the clean environment, the CLI launcher's "needs the training extras" message, the GUI
launcher's headless ``--selftest`` dispatch, and that the app and CLI import with the spec's
excluded modules made unimportable (what a bundle without them sees).

The full build (PyInstaller, minutes of CPU) runs only with ``KERNELSCOPE_RUN_SLOW=1``.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_SLOW = os.environ.get("KERNELSCOPE_RUN_SLOW") == "1"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bi():
    """``build_installer.py`` as a module (it lives at the repository root, outside any package)."""
    return _load("build_installer", ROOT / "build_installer.py")


@pytest.fixture(scope="module")
def launch_cli():
    return _load("kernelscope_launch_cli", ROOT / "installer" / "launch_cli.py")


@pytest.fixture(scope="module")
def launch_gui():
    return _load("kernelscope_launch_gui", ROOT / "installer" / "launch_gui.py")


def spec_excludes() -> list[str]:
    """The ``EXCLUDES`` list of installer/kernelscope.spec, evaluated without PyInstaller."""
    src = (ROOT / "installer" / "kernelscope.spec").read_text(encoding="utf-8")
    start, end = src.index("QT_UNUSED = ["), src.index("# Files dropped")
    namespace: dict = {}
    exec(src[start:end], namespace)  # plain list literals, no PyInstaller names
    return list(namespace["EXCLUDES"])


# ------------------------------------------------------------------------------------------------
# build_installer.py helpers
def test_archive_name_has_version_platform_and_variant(bi):
    linux = bi.archive_name("0.1.0", "cpu", "linux-x86_64", windows=False)
    assert linux == "kernelscope-0.1.0-linux-x86_64-cpu.tar.gz"
    windows = bi.archive_name("1.2.3", "gpu", "windows-amd64", windows=True)
    assert windows == "kernelscope-1.2.3-windows-amd64-gpu.zip"
    assert bi.archive_stem("kernelscope-1.2.3-windows-amd64-gpu.zip") == "kernelscope-1.2.3-windows-amd64-gpu"
    with pytest.raises(ValueError):
        bi.archive_name("0.1.0", "tpu", "linux-x86_64")
    tag = bi.platform_tag()
    system, _, machine = tag.partition("-")
    assert system in ("linux", "windows", "macos") or system == sys.platform
    assert machine and machine == machine.lower()


def test_onnxruntime_variant_mismatch_is_refused(bi):
    assert bi.check_onnxruntime("cpu", {"onnxruntime": "1.32.0", "onnxruntime-gpu": None}) == "onnxruntime"
    assert bi.check_onnxruntime("gpu", {"onnxruntime": None, "onnxruntime-gpu": "1.32.0"}) == "onnxruntime-gpu"
    wrong = r"--gpu bundles onnxruntime-gpu, but onnxruntime 1.32.0 is installed instead.*or pass --cpu"
    with pytest.raises(bi.BuildError, match=wrong):
        bi.check_onnxruntime("gpu", {"onnxruntime": "1.32.0", "onnxruntime-gpu": None})
    with pytest.raises(bi.BuildError, match="neither is installed"):
        bi.check_onnxruntime("cpu", {"onnxruntime": None, "onnxruntime-gpu": None})
    with pytest.raises(bi.BuildError, match="overwrite each other"):
        bi.check_onnxruntime("cpu", {"onnxruntime": "1.32.0", "onnxruntime-gpu": "1.32.0"})


def test_build_refuses_the_leaking_qt_binding(bi):
    pins = bi.pinned_requirements()
    assert "6.12" in pins["PySide6-Essentials"] and "6.12" in pins["shiboken6"]
    ok = {"PySide6-Essentials": "6.11.3", "shiboken6": "6.11.3"}
    bi.check_qt_binding(ok, pins)
    with pytest.raises(bi.BuildError, match="shiboken6 6.12.0 is installed but pyproject.toml allows"):
        bi.check_qt_binding({**ok, "shiboken6": "6.12.0"}, pins)
    with pytest.raises(bi.BuildError, match="PySide6-Essentials 6.12.1 is installed"):
        bi.check_qt_binding({**ok, "PySide6-Essentials": "6.12.1"}, pins)
    with pytest.raises(bi.BuildError, match="shiboken6 is not installed"):
        bi.check_qt_binding({**ok, "shiboken6": None}, pins)
    bi.check_qt_binding({d: bi.installed_version(d) for d in bi.QT_DISTRIBUTIONS}, pins)  # this environment


def test_build_refuses_gpu_in_this_cpu_environment(bi):
    """This environment has onnxruntime (CPU): ``--gpu`` must stop before PyInstaller runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("onnxruntime-gpu")
    except PackageNotFoundError:
        pass
    else:
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(bi.BuildError, match="--gpu bundles onnxruntime-gpu"):
        bi.check_environment("gpu")


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX modes and symlinks")
def test_archive_round_trip_keeps_modes_and_symlinks(bi, tmp_path):
    bundle = tmp_path / "kernelscope"
    (bundle / "_internal" / "models").mkdir(parents=True)
    exe = bundle / "kernelscope-cli"
    exe.write_bytes(b"#!/bin/sh\necho hi\n")
    exe.chmod(0o755)
    (bundle / "_internal" / "models" / "a.json").write_text("{}", encoding="utf-8")
    (bundle / "_internal" / "libx.so.1").write_bytes(b"\0" * 1000)
    (bundle / "_internal" / "libx.so").symlink_to("libx.so.1")

    archive = bi.make_archive(bundle, tmp_path / "dist" / "kernelscope-9.9.9-test-cpu.tar.gz")
    unpacked = bi.unpack(archive, tmp_path / "unpacked")

    assert unpacked.name == "kernelscope-9.9.9-test-cpu"
    assert (unpacked / "kernelscope-cli").stat().st_mode & stat.S_IXUSR
    assert (unpacked / "_internal" / "libx.so").is_symlink()
    assert (unpacked / "_internal" / "models" / "a.json").read_text(encoding="utf-8") == "{}"
    assert bi.tree_size(unpacked) == bi.tree_size(bundle) == len(exe.read_bytes()) + 2 + 1000
    assert not list((tmp_path / "dist").glob("*.part"))


@pytest.mark.skipif(sys.platform.startswith("win"), reason="POSIX clean environment")
def test_clean_environment_has_no_python_or_venv(bi, tmp_path):
    env = bi.clean_env(tmp_path)
    assert env == {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}


def test_check_contents_names_what_is_wrong(bi, tmp_path):
    bundle = tmp_path / "kernelscope"
    internal = bundle / "_internal"
    (internal / "models").mkdir(parents=True)
    (internal / "resources").mkdir()
    (internal / "torch").mkdir()
    (internal / "models" / "m.pt").write_bytes(b"x")
    with pytest.raises(bi.BuildError) as info:
        bi.check_contents(bundle)
    message = str(info.value)
    for expected in ("executable", "no *.onnx", "torch weights", "sample_lr.png", "'torch'"):
        assert expected in message


def _fake_nvidia_tree(root: Path, names: list[str]) -> Path:
    """An ``nvidia`` namespace folder laid out like the CUDA 13 and cuDNN wheels."""
    for name in names:
        folder = root / "nvidia" / ("cudnn" if "cudnn" in name else "cu13") / "lib"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"\0")
    (root / "nvidia" / "cu13" / "include").mkdir(parents=True, exist_ok=True)
    (root / "nvidia" / "cu13" / "include" / "cuda.h").write_text("")  # headers stay out
    return root / "nvidia"


ALL_NVIDIA = ["libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13", "libcudnn.so.9",
              "libcudnn_graph.so.9", "libcufft.so.12", "libcurand.so.10"]


def test_gpu_bundle_carries_nvidia_libraries_at_the_wheels_paths(bi, tmp_path):
    nvidia = _fake_nvidia_tree(tmp_path, ALL_NVIDIA)
    files = bi.nvidia_runtime_files([nvidia])
    assert {(Path(src).name, dest) for src, dest in files} == {
        (n, "nvidia/cudnn/lib" if "cudnn" in n else "nvidia/cu13/lib") for n in ALL_NVIDIA}
    bi.check_nvidia_runtime(files)
    assert bi.missing_nvidia_libraries(["cudart64_13.dll", "cublasLt64_13.dll", "cublas64_13.dll",
                                        "cudnn64_9.dll", "cufft64_12.dll", "curand64_10.dll"]) == []
    without_cudnn = bi.nvidia_runtime_files([_fake_nvidia_tree(tmp_path / "b", ALL_NVIDIA[:3])])
    with pytest.raises(bi.BuildError, match=r"cudnn, cufft, curand is not installed.*\.\[gpu,build\]"):
        bi.check_nvidia_runtime(without_cudnn)


def test_check_contents_wants_nvidia_libraries_in_gpu_bundles_only(bi, tmp_path):
    bundle = tmp_path / "kernelscope"
    _fake_nvidia_tree(bundle / "_internal", ALL_NVIDIA[:2])
    with pytest.raises(bi.BuildError) as gpu:
        bi.check_contents(bundle, "gpu")
    assert "NVIDIA library cudnn is missing" in str(gpu.value) and "cudart is missing" not in str(gpu.value)
    with pytest.raises(bi.BuildError) as cpu:
        bi.check_contents(bundle, "cpu")
    assert "the CPU bundle carries NVIDIA libraries" in str(cpu.value)


# ------------------------------------------------------------------------------------------------
# launchers
def test_cli_launcher_reports_missing_training_extras(launch_cli, monkeypatch, capsys):
    import engine.cli

    def needs_torch(argv):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(engine.cli, "main", needs_torch)
    assert launch_cli.main(["export", "--all"]) == 1
    err = capsys.readouterr().err
    assert "kernelscope-cli export: needs the training extras" in err
    assert "torch" in err


def test_cli_launcher_lets_other_missing_modules_through(launch_cli, monkeypatch):
    import engine.cli

    def needs_other(argv):
        raise ModuleNotFoundError("No module named 'cv2'", name="cv2")

    monkeypatch.setattr(engine.cli, "main", needs_other)
    with pytest.raises(ModuleNotFoundError):
        launch_cli.main(["upscale", "x.png"])
    assert launch_cli.missing_extra(ModuleNotFoundError(name="torch.nn")) == "torch"
    assert launch_cli.missing_extra(ModuleNotFoundError(name="torchlike")) is None


def test_gui_launcher_runs_selftest_without_the_window(launch_gui, monkeypatch):
    import app.selftest

    calls = []
    monkeypatch.setattr(app.selftest, "run_selftest", lambda: calls.append(1) or 7)
    assert launch_gui.main(["--selftest"]) == 7
    assert calls == [1]


# ------------------------------------------------------------------------------------------------
# the spec's excludes, simulated: a bundle without those modules must still import everything
_BLOCKED_IMPORTS = textwrap.dedent(
    """
    import importlib.abc, json, sys
    blocked = json.loads(sys.argv[1])

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if any(name == b or name.startswith(b + ".") for b in blocked):
                raise ModuleNotFoundError(f"No module named {name!r} (left out of the bundle)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    import argparse
    import app.main, app.window, app.selftest  # the GUI, as the bundle's launcher imports it
    from engine import cli
    parser = cli.build_parser()  # every sub-command's add_arguments
    import engine.pipeline.models, engine.upscale, engine.backends.onnx_backend
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "scipy", "onnx", "yaml", "cv2"))
    assert not leaked, leaked
    print("imports ok")
    """
)


def test_app_and_cli_import_with_the_bundle_excludes(tmp_path):
    import json

    excludes = spec_excludes()
    assert "torch" in excludes and "PySide6.QtQml" in excludes and "cv2" in excludes
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORTS, json.dumps(excludes)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "imports ok" in proc.stdout


# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not RUN_SLOW, reason="builds the PyInstaller bundle (minutes); set KERNELSCOPE_RUN_SLOW=1")
@pytest.mark.timeout(1800)
def test_build_cpu_bundle_and_selftest_in_clean_environment(tmp_path):
    pytest.importorskip("PyInstaller", reason="pip install -e '.[build]'")
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "build_installer.py"), "--cpu",
         "--dist", str(dist), "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=1700,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    archives = list(dist.glob("kernelscope-*-cpu.tar.gz")) + list(dist.glob("kernelscope-*-cpu.zip"))
    assert len(archives) == 1, output[-3000:]
    assert "SELFTEST PASSED" in output
    assert "upscale manet x4" in output and "upscale ikc x4" in output
    for check in ("cli --version", "gui --selftest", "cli upscale", "cli export (no torch)"):
        assert f"ok   {check}" in output
