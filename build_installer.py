#!/usr/bin/env python3
"""Build the self-contained Kernelscope desktop bundle and check that it runs without Python.

    python build_installer.py --cpu        # or --gpu (needs onnxruntime-gpu[cuda,cudnn] in this environment)

Steps (each one stops the build with a clear message when it fails):

1. check the build environment: the project is installed from this checkout, PyInstaller >= 6 is
   present (``pip install -e '.[build]'``), exactly the onnxruntime build the flag asks for is
   installed (``onnxruntime`` for ``--cpu``, ``onnxruntime-gpu`` for ``--gpu``); for ``--gpu`` also
   NVIDIA's CUDA and cuDNN runtime wheels (the ``gpu`` extra's ``onnxruntime-gpu[cuda,cudnn]``); the
   installed Qt binding is in the range ``pyproject.toml`` pins (6.12.0 leaks references and aborts the studio);
2. check the shipped models (every card's graph has its recorded sha256);
3. run PyInstaller on ``installer/kernelscope.spec``: one folder, two executables (``kernelscope``,
   the studio; ``kernelscope-cli``, the command line) sharing ``_internal/`` with ``models/`` and
   ``resources/`` inside; no PyTorch; Qt trimmed to QtCore/QtGui/QtWidgets. The ``-gpu`` bundle
   carries NVIDIA's CUDA and cuDNN runtime libraries in ``_internal/nvidia/`` (the wheels' layout,
   where ``onnxruntime.preload_dlls()`` looks), so the target machine needs only an NVIDIA driver;
4. check the folder holds no left-out package (torch, scipy, QtQml, ...), write ``build-info.json``;
5. pack ``dist/kernelscope-<version>-<platform>-<cpu|gpu>.tar.gz`` (``.zip`` on Windows);
6. unpack the archive into a scratch folder and, from an unrelated directory in a clean environment
   (no venv, no PYTHONPATH; on POSIX ``HOME=<tmp> PATH=/usr/bin:/bin`` only), run
   ``kernelscope-cli --version``, ``kernelscope --version``, ``kernelscope --selftest`` (the -gpu
   bundle's must say its CUDA libraries are bundled), a
   ``kernelscope-cli upscale`` of the bundled sample, ``kernelscope-cli export`` (must say it needs
   the training extras) and an offscreen ``kernelscope --screenshot``;
7. report the unpacked size (target: under 350 MB for the CPU bundle) and what dominates it.

Linux is the platform this was tried on; the Windows (``.ico``, no console window, ``.zip``) and
macOS (``Kernelscope.app``, ``.icns``) branches are written but untested.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
SPEC = ROOT / "installer" / "kernelscope.spec"
GUI_NAME = "kernelscope"
CLI_NAME = "kernelscope-cli"
APP_NAME = "Kernelscope"
FOLDER_NAME = "kernelscope"  # COLLECT's name in the spec
SIZE_TARGET_MB = {"cpu": 350, "gpu": None}
ORT_DISTRIBUTIONS = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
FORBIDDEN = (
    "torch", "torchvision", "scipy", "onnx", "onnxscript", "yaml", "matplotlib", "tkinter", "PyQt5", "PyQt6",
    "cv2", "opencv_python_headless.libs",
)
"""Top-level packages that must not be in the bundle's ``_internal/`` folder."""
REQUIRED = ("pyspng", "onnxruntime", "PySide6", "imagecodecs")
"""Packages with compiled parts that must be in ``_internal/`` (pyspng decodes every PNG,
imagecodecs every compressed 16-bit TIFF)."""
QT_DISTRIBUTIONS = ("PySide6-Essentials", "shiboken6")
"""The Qt binding's distributions; their allowed versions are the ones ``pyproject.toml`` pins."""
FORBIDDEN_LIB_PARTS = ("qt6qml", "qt6quick", "qt6webengine", "qt63d", "libtorch", "libc10", "libopencv", "libavcodec")
"""Substrings of shared-library names that must not be in the bundle (lower case)."""
SMOKE_TIMEOUT_S = 600
NVIDIA_REQUIRED = ("cudart", "cublasLt", "cublas", "cudnn", "cufft", "curand")
"""Libraries the -gpu bundle must carry (CUDA runtime, cuBLAS, cuDNN, cuFFT, cuRAND): ``lib<name>.so.N``
on Linux, ``<name>64_N.dll`` on Windows."""
BUNDLED_CUDA_LINE = "CUDA libraries: bundled with the program"
"""What ``--selftest`` prints when the libraries come from the bundle (engine.backends.cuda)."""

IS_WINDOWS = sys.platform.startswith("win")
IS_MACOS = sys.platform == "darwin"


class BuildError(RuntimeError):
    """A step failed; the message says which and what to do."""


def log(message: str) -> None:
    print(f"[build_installer] {message}", flush=True)


# ------------------------------------------------------------------------------------------------
# names
def platform_tag() -> str:
    """``linux-x86_64``, ``windows-amd64``, ``macos-arm64``, ...: the archive's platform part."""
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform.split("-")[0])
    if system.startswith("linux"):
        system = "linux"
    return f"{system}-{platform.machine().lower() or 'unknown'}"


def archive_name(version: str, variant: str, tag: str | None = None, *, windows: bool = IS_WINDOWS) -> str:
    """``kernelscope-<version>-<platform>-<cpu|gpu>.tar.gz`` (``.zip`` on Windows)."""
    if variant not in ORT_DISTRIBUTIONS:
        raise ValueError(f"variant must be one of {', '.join(ORT_DISTRIBUTIONS)}, not {variant!r}")
    stem = f"kernelscope-{version}-{tag or platform_tag()}-{variant}"
    return stem + (".zip" if windows else ".tar.gz")


def archive_stem(name: str) -> str:
    for suffix in (".tar.gz", ".zip"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ------------------------------------------------------------------------------------------------
# 1. environment
def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_onnxruntime(variant: str, installed: dict[str, str | None]) -> str:
    """The onnxruntime distribution to bundle for ``variant``, given ``installed`` {name: version}.

    Raises :class:`BuildError` when the wanted build is missing or both builds are installed
    (they overwrite each other's files, so the bundle would hold a mixture).
    """
    want = ORT_DISTRIBUTIONS[variant]
    other = ORT_DISTRIBUTIONS["gpu" if variant == "cpu" else "cpu"]
    if installed.get(want) and installed.get(other):
        raise BuildError(
            f"both {want} {installed[want]} and {other} {installed[other]} are installed; they overwrite "
            f"each other's files. Uninstall both, then `pip install {want}`."
        )
    if not installed.get(want):
        found = "neither is installed"
        if installed.get(other):
            found = f"{other} {installed[other]} is installed instead"
        raise BuildError(
            f"--{variant} bundles {want}, but {found}. Build the {variant.upper()} bundle in an environment "
            f"with {want} (`pip uninstall -y {other}; pip install -e '.[{variant},build]'`)"
            + (f", or pass --{'gpu' if variant == 'cpu' else 'cpu'}." if installed.get(other) else ".")
        )
    return want


def pinned_requirements(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """{distribution: version specifier} of ``pyproject.toml``'s runtime dependencies."""
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata carries the same list
        lines = [r for r in metadata.requires("kernelscope") or [] if "extra ==" not in r]
    else:
        lines = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    requirements = [Requirement(line) for line in lines]
    return {req.name: str(req.specifier) for req in requirements}


def check_qt_binding(installed: dict[str, str | None], pins: dict[str, str]) -> None:
    """Raise :class:`BuildError` when an installed Qt distribution is outside its pinned range: the bundle
    carries whatever is installed, and PySide6/shiboken6 6.12.0 abort the studio after some mouse moves."""
    from packaging.specifiers import SpecifierSet

    for name in QT_DISTRIBUTIONS:
        have, spec = installed.get(name), pins.get(name)
        if have is None:
            raise BuildError(f"{name} is not installed: `pip install -e '.[build]'`")
        if spec and have not in SpecifierSet(spec):
            raise BuildError(f"{name} {have} is installed but pyproject.toml allows {spec} (see the comment "
                             f"there); `pip install '{name}{spec}'` before building")


def check_environment(variant: str) -> dict[str, str]:
    """Check onnxruntime, PyInstaller and the checkout the project is imported from; return versions."""
    ort_installed = {d: installed_version(d) for d in ORT_DISTRIBUTIONS.values()}
    ort = check_onnxruntime(variant, ort_installed)  # first: the wrong runtime is the costliest mistake
    qt_installed = {d: installed_version(d) for d in QT_DISTRIBUTIONS}
    check_qt_binding(qt_installed, pinned_requirements())
    pyi = installed_version("pyinstaller")
    if pyi is None:
        raise BuildError("PyInstaller is not installed in this environment: `pip install -e '.[build]'`")
    if int(pyi.split(".")[0]) < 6:
        raise BuildError(f"PyInstaller {pyi} is too old (need >= 6): `pip install -U 'pyinstaller>=6'`")
    import engine

    engine_dir = Path(engine.__file__).resolve().parent
    if engine_dir != ROOT / "engine":
        raise BuildError(f"`engine` is imported from {engine_dir}, not from this checkout ({ROOT}); "
                         "run this script with the project's virtual environment (`pip install -e .`)")
    return {
        "kernelscope": engine.__version__,
        "python": platform.python_version(),
        "pyinstaller": pyi,
        "onnxruntime_distribution": ort,
        "onnxruntime": str(ort_installed[ort]),
        "pyside6": str(qt_installed["PySide6-Essentials"]),
    }


def nvidia_runtime_files(roots: list[Path] | None = None) -> list[tuple[str, str]]:
    """NVIDIA's shared libraries from the ``nvidia-*`` wheels, as PyInstaller ``(source, dest folder)``.

    ``roots`` are the ``nvidia`` namespace package folders (default: found by import machinery).
    The destination keeps the wheels' layout (``nvidia/cu13/lib``, ``nvidia/cudnn/lib``; Windows
    ``bin``) because that is where ``onnxruntime.preload_dlls()`` looks, relative to onnxruntime.
    Static libraries and headers are left out.
    """
    if roots is None:
        import importlib.util

        spec = importlib.util.find_spec("nvidia")
        roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    files = []
    for root in roots:
        libs = [*root.glob("*/lib/*.so*"), *root.glob("*/bin/**/*.dll")]
        for lib in sorted(libs):
            if lib.is_file():
                files.append((str(lib), (Path("nvidia") / lib.parent.relative_to(root)).as_posix()))
    return files


def missing_nvidia_libraries(file_names: list[str]) -> list[str]:
    """The :data:`NVIDIA_REQUIRED` libraries none of ``file_names`` is."""
    return [lib for lib in NVIDIA_REQUIRED
            if not any(n.startswith((f"lib{lib}.so", f"{lib}64_")) for n in file_names)]


def check_nvidia_runtime(files: list[tuple[str, str]]) -> None:
    """The -gpu bundle needs the CUDA and cuDNN runtime wheels; say how to get them when missing."""
    missing = missing_nvidia_libraries([Path(src).name for src, _ in files])
    if missing:
        raise BuildError(
            f"--gpu bundles NVIDIA's CUDA and cuDNN runtime libraries, but {', '.join(missing)} "
            "is not installed in this environment: `pip install -e '.[gpu,build]'` (onnxruntime-gpu[cuda,cudnn])"
        )


# ------------------------------------------------------------------------------------------------
# 2. models and icon
def check_models() -> list[str]:
    from app.selftest import check_model_cards, check_pca_bases

    from engine.errors import ModelError

    try:
        return check_model_cards(ROOT / "models") + check_pca_bases(ROOT / "models")
    except ModelError as exc:
        raise BuildError(f"shipped models are not consistent: {exc}") from exc


def make_icons(folder: Path) -> dict[str, Path]:
    """Draw the app icon (an anisotropic blur kernel as a heat map) as .png, .ico and .icns."""
    import numpy as np
    from PIL import Image as PILImage

    from engine.visualize import kernel_heatmap_u8

    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[-10:11, -10:11].astype(np.float32)
    c, s = np.cos(np.pi / 5), np.sin(np.pi / 5)
    u, v = c * xx + s * yy, -s * xx + c * yy
    kernel = np.exp(-0.5 * (u * u / 20.0 + v * v / 4.0))
    rgb_u8 = kernel_heatmap_u8(kernel / kernel.sum(), size=252)
    canvas = np.zeros((256, 256, 4), np.uint8)
    canvas[2:254, 2:254, :3] = rgb_u8
    canvas[2:254, 2:254, 3] = 255
    icon = PILImage.fromarray(canvas, "RGBA")
    paths = {ext: folder / f"kernelscope.{ext}" for ext in ("png", "ico", "icns")}
    icon.save(paths["png"])
    icon.save(paths["ico"], sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    try:
        icon.save(paths["icns"])
    except (OSError, ValueError, KeyError) as exc:  # .icns writing depends on the Pillow build
        log(f"no .icns icon ({exc}); the macOS bundle would get PyInstaller's default icon")
        del paths["icns"]
    return paths


# ------------------------------------------------------------------------------------------------
# 3. PyInstaller
def run_pyinstaller(dist: Path, work: Path, icon: Path | None, version: str, *, nvidia: bool = False) -> Path:
    """Run the spec; return the bundle folder (``dist/kernelscope``, or ``dist/Kernelscope.app``).

    ``nvidia``: also bundle NVIDIA's runtime libraries (:func:`nvidia_runtime_files`), for --gpu.
    """
    out = dist / (f"{APP_NAME}.app" if IS_MACOS else FOLDER_NAME)
    cmd = [
        sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm", "--log-level", "WARN",
        "--distpath", str(dist), "--workpath", str(work), "--", "--version", version,
    ]
    if nvidia:
        cmd.append("--nvidia-libs")
    if icon is not None:
        cmd += ["--icon", str(icon)]
    log("running " + " ".join(cmd))
    start = time.perf_counter()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise BuildError(f"PyInstaller failed with exit code {proc.returncode} (see its messages above)")
    if not out.exists():
        raise BuildError(f"PyInstaller finished but {out} does not exist")
    log(f"PyInstaller done in {time.perf_counter() - start:.0f} s: {out}")
    return out


def executables_dir(bundle: Path) -> Path:
    """The folder holding the two executables (``Contents/MacOS`` inside a macOS .app)."""
    return bundle / "Contents" / "MacOS" if bundle.suffix == ".app" else bundle


def internal_dir(bundle: Path) -> Path:
    """The folder PyInstaller unpacks to (``sys._MEIPASS``): ``_internal`` or, on macOS, Frameworks."""
    if bundle.suffix == ".app":
        return bundle / "Contents" / "Frameworks"
    return bundle / "_internal"


def exe_path(bundle: Path, name: str) -> Path:
    return executables_dir(bundle) / (name + (".exe" if IS_WINDOWS else ""))


def strip_python_runtime(bundle: Path) -> int:
    """Linux: drop the debug info of the Python runtime copied from the build interpreter.

    Only ``libpython3*.so*`` and ``python3.*/lib-dynload/*.so`` are touched (a pyenv-built Python
    carries debug info: 23 MB -> 6.5 MB for libpython). PyInstaller's own ``strip=True`` is not used:
    it also strips the wheels' auditwheel-patched libraries, and numpy's OpenBLAS then fails to load
    ("ELF load command address/offset not page-aligned"). Returns the bytes saved.
    """
    if not sys.platform.startswith("linux") or shutil.which("strip") is None:
        return 0
    internal = internal_dir(bundle)
    targets = [p for p in internal.glob("libpython3*.so*") if p.is_file() and not p.is_symlink()]
    targets += [p for p in internal.glob("python3*/lib-dynload/*.so") if p.is_file() and not p.is_symlink()]
    before = sum(p.stat().st_size for p in targets)
    for path in targets:
        proc = subprocess.run(["strip", "--strip-debug", str(path)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"strip --strip-debug {path} failed: {proc.stderr.strip()}")
    saved = before - sum(p.stat().st_size for p in targets)
    log(f"stripped debug info from {len(targets)} Python runtime libraries: {saved / 1e6:.1f} MB saved")
    return saved


# ------------------------------------------------------------------------------------------------
# 4. contents
def check_contents(bundle: Path, variant: str = "cpu") -> None:
    """The executables, models and resources are there; nothing that was meant to be left out is;
    the -gpu bundle carries NVIDIA's runtime libraries in ``nvidia/`` (the CPU bundle none)."""
    problems = []
    for name in (GUI_NAME, CLI_NAME):
        if not exe_path(bundle, name).is_file():
            problems.append(f"executable {exe_path(bundle, name)} is missing")
    internal = internal_dir(bundle)
    if bundle.suffix == ".app":  # data files live under Contents/Resources, linked from Frameworks
        resources = bundle / "Contents" / "Resources"
        internal = resources if (resources / "models").exists() else internal
    models = internal / "models"
    for pattern in ("*.json", "*.onnx", "pca_*.npz"):
        if not list(models.glob(pattern)):
            problems.append(f"no {pattern} in {models}")
    if list(models.glob("*.pt")):
        problems.append(f"torch weights (*.pt) found in {models}")
    if not (internal / "resources" / "sample_lr.png").is_file():
        problems.append(f"{internal / 'resources' / 'sample_lr.png'} is missing")
    for name in FORBIDDEN:
        if (internal / name).exists():
            problems.append(f"left-out package {name!r} is in the bundle ({internal / name})")
    for name in REQUIRED:
        if not (internal / name).exists():
            problems.append(f"package {name!r} is missing from the bundle ({internal / name})")
    for path in bundle.rglob("*"):
        low = path.name.lower()
        if path.is_file() and any(part in low for part in FORBIDDEN_LIB_PARTS):
            problems.append(f"left-out library in the bundle: {path.relative_to(bundle)}")
    bundled_nvidia = [p.name for p in (internal / "nvidia").rglob("*") if p.is_file()]
    if variant == "cpu" and bundled_nvidia:
        problems.append(f"the CPU bundle carries NVIDIA libraries ({internal / 'nvidia'})")
    if variant == "gpu" and not IS_MACOS:
        for lib in missing_nvidia_libraries(bundled_nvidia):
            problems.append(f"NVIDIA library {lib} is missing from {internal / 'nvidia'}")
    if problems:
        raise BuildError("bundle contents:\n  " + "\n  ".join(problems[:30]))


def write_build_info(bundle: Path, info: dict[str, str]) -> None:
    """Write ``info`` as ``build-info.json`` into the bundle (beside the executables; Resources on macOS)."""
    from engine.atomic import write_atomic

    target = executables_dir(bundle).parent / "Resources" if bundle.suffix == ".app" else bundle
    write_atomic(target / "build-info.json", (json.dumps(info, indent=2) + "\n").encode("utf-8"), overwrite=True)


# ------------------------------------------------------------------------------------------------
# 5. archive
def make_archive(bundle: Path, archive: Path) -> Path:
    """Pack ``bundle`` as ``archive`` (.tar.gz keeps symlinks and modes; .zip on Windows) under a
    top folder named like the archive."""
    top = archive_stem(archive.name)
    if bundle.suffix == ".app":
        top = f"{top}/{bundle.name}"
    from engine.atomic import atomic_writer  # the project's one atomic writer, streaming form

    archive.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with atomic_writer(archive, overwrite=True) as out:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
                for path in sorted(bundle.rglob("*")):
                    if path.is_file():
                        zf.write(path, f"{top}/{path.relative_to(bundle).as_posix()}")
        else:
            with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tf:
                tf.add(bundle, arcname=top)
    log(f"archive {archive} ({archive.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.0f} s")
    return archive


def unpack(archive: Path, into: Path) -> Path:
    """Unpack ``archive`` into ``into`` (emptied first); return the bundle folder inside it."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="tar")
    top = into / archive_stem(archive.name)
    apps = list(top.glob("*.app"))
    return apps[0] if apps else top


# ------------------------------------------------------------------------------------------------
# 6. smoke tests in a clean environment
def clean_env(home: Path) -> dict[str, str]:
    """No venv, no PYTHONPATH: on POSIX only HOME and PATH=/usr/bin:/bin (plus TMPDIR for the scratch)."""
    if IS_WINDOWS:
        system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return {
            "SYSTEMROOT": system_root,
            "PATH": f"{system_root}\\System32;{system_root}",
            "USERPROFILE": str(home),
            "APPDATA": str(home / "AppData" / "Roaming"),
            "LOCALAPPDATA": str(home / "AppData" / "Local"),
            "TEMP": str(home),
            "TMP": str(home),
        }
    return {"HOME": str(home), "PATH": "/usr/bin:/bin"}


@dataclass
class SmokeResult:
    name: str
    command: list[str]
    returncode: int
    output: str
    seconds: float


def _run(name: str, command: list[str], cwd: Path, env: dict[str, str]) -> SmokeResult:
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=SMOKE_TIMEOUT_S, errors="replace")
        code, output = proc.returncode, (proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as exc:
        code, output = -1, f"timed out after {SMOKE_TIMEOUT_S} s: {exc}"
    return SmokeResult(name, command, code, output.strip(), time.perf_counter() - start)


def smoke_test(bundle: Path, version: str, scratch: Path, *, gui_check: bool = True,
               variant: str = "cpu") -> list[SmokeResult]:
    """Run the bundle's executables from ``scratch`` (an unrelated folder) in a clean environment.

    Raises :class:`BuildError` on the first check that fails; returns all results otherwise.
    """
    home = scratch / "home"
    work = scratch / "cwd"
    for d in (home, work):
        d.mkdir(parents=True, exist_ok=True)
    env = clean_env(home)
    gui, cli = str(exe_path(bundle, GUI_NAME)), str(exe_path(bundle, CLI_NAME))
    sample = internal_dir(bundle) / "resources" / "sample_lr.png"
    if not sample.is_file():
        sample = bundle / "Contents" / "Resources" / "resources" / "sample_lr.png"
    upscaled = work / "upscaled"
    shot = work / "window.png"
    checks: list[tuple[str, list[str], dict[str, str], Callable[[SmokeResult], bool]]] = [
        ("cli --version", [cli, "--version"], {}, lambda r: version in r.output),
        ("gui --version", [gui, "--version"], {}, lambda r: version in r.output or IS_WINDOWS),
        ("gui --selftest", [gui, "--selftest"], {},
         lambda r: "SELFTEST PASSED" in r.output and ((BUNDLED_CUDA_LINE in r.output) == (variant == "gpu"))),
        ("cli upscale",
         [cli, "upscale", str(sample), "--out", str(upscaled), "--method", "manet", "--no-progress"],
         {}, lambda r: len(list(upscaled.glob("*.png"))) == 1),
        ("cli export (no torch)",
         [cli, "export", "--all", "--models-dir", str(work / "models")], {"expect_rc": "1"},
         lambda r: "needs the training extras" in r.output and "Traceback" not in r.output),
    ]
    if gui_check:
        checks.append(("gui offscreen screenshot", [gui, str(sample), "--screenshot", str(shot)],
                       {"QT_QPA_PLATFORM": "offscreen"}, lambda r: shot.is_file() and shot.stat().st_size > 0))
    results = []
    for name, command, extra, ok in checks:
        expect_rc = int(extra.pop("expect_rc", "0")) if "expect_rc" in extra else 0
        result = _run(name, command, work, {**env, **extra})
        report = home / "kernelscope-selftest.txt"  # app.selftest.REPORT_FILE_NAME, in TEMP (= home)
        if IS_WINDOWS and name == "gui --selftest" and report.is_file():  # windowed: no stdout
            result.output = (result.output + "\n" + report.read_text(encoding="utf-8", errors="replace")).strip()
        results.append(result)
        passed = result.returncode == expect_rc and ok(result)
        log(f"{'ok  ' if passed else 'FAIL'} {name} (exit {result.returncode}, {result.seconds:.1f} s)")
        if not passed:
            raise BuildError(
                f"smoke test '{name}' failed in a clean environment (cwd {work}, env {env}):\n"
                f"  $ {' '.join(command)}\n  exit code {result.returncode}, expected {expect_rc}\n"
                + "\n".join("  | " + ln for ln in result.output.splitlines()[-40:])
            )
    return results


# ------------------------------------------------------------------------------------------------
# 7. size
def tree_size(path: Path) -> int:
    """Bytes of all regular files under ``path`` (symlinks not followed, not counted)."""
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def size_breakdown(bundle: Path, top: int = 12) -> list[tuple[str, int]]:
    """The largest entries two levels into the bundle's internal folder (plus the executables)."""
    internal = internal_dir(bundle)
    entries: list[tuple[str, int]] = []
    for child in sorted(internal.iterdir()) if internal.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            grandchildren = [g for g in child.iterdir() if not g.is_symlink()]
            big = [(g, tree_size(g) if g.is_dir() else g.stat().st_size) for g in grandchildren]
            big.sort(key=lambda t: -t[1])
            for g, size in big[:4]:
                entries.append((str(g.relative_to(bundle)), size))
            rest = tree_size(child) - sum(s for _, s in big[:4])
            if rest > 0:
                entries.append((f"{child.relative_to(bundle)}/ (rest)", rest))
        elif child.is_file() and not child.is_symlink():
            entries.append((str(child.relative_to(bundle)), child.stat().st_size))
    for name in (GUI_NAME, CLI_NAME):
        exe = exe_path(bundle, name)
        if exe.is_file():
            entries.append((str(exe.relative_to(bundle)), exe.stat().st_size))
    entries.sort(key=lambda t: -t[1])
    return entries[:top]


# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    variant = parser.add_mutually_exclusive_group()
    variant.add_argument("--cpu", dest="variant", action="store_const", const="cpu",
                         help="bundle onnxruntime (CPU); the default")
    variant.add_argument("--gpu", dest="variant", action="store_const", const="gpu",
                         help="bundle onnxruntime-gpu with NVIDIA's CUDA and cuDNN runtime libraries "
                              "(the target machine needs only an NVIDIA driver)")
    parser.set_defaults(variant="cpu")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where the archive goes (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "installer",
                        help="PyInstaller's work folder and the scratch for checks (default: build/installer/)")
    parser.add_argument("--no-gui-check", action="store_true",
                        help="skip the offscreen --screenshot check (the --selftest check always runs)")
    parser.add_argument("--keep-unpacked", action="store_true",
                        help="keep the unpacked copy of the archive the checks ran on")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        info = check_environment(args.variant)
        if args.variant == "gpu":
            check_nvidia_runtime(nvidia_runtime_files())
        version = info["kernelscope"]
        log(f"kernelscope {version}, {args.variant} bundle with {info['onnxruntime_distribution']} "
            f"{info['onnxruntime']}, PyInstaller {info['pyinstaller']}, Python {info['python']}")
        for line in check_models():
            log(line)
        work = args.work.resolve()
        icons = make_icons(work / "icon")
        icon = icons.get("ico") if IS_WINDOWS else icons.get("icns") if IS_MACOS else None
        staging = work / "dist"
        bundle = run_pyinstaller(staging, work / "pyinstaller", icon, version, nvidia=args.variant == "gpu")
        strip_python_runtime(bundle)
        check_contents(bundle, args.variant)
        info.update({"variant": args.variant, "platform": platform_tag(),
                     "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        write_build_info(bundle, info)
        archive = make_archive(bundle, args.dist.resolve() / archive_name(version, args.variant))

        unpacked_root = work / "unpacked"
        unpacked = unpack(archive, unpacked_root)
        size = tree_size(unpacked)
        with tempfile.TemporaryDirectory(prefix="kernelscope-smoke-") as scratch:
            results = smoke_test(unpacked, version, Path(scratch), gui_check=not args.no_gui_check,
                                 variant=args.variant)
        selftest = next(r for r in results if r.name == "gui --selftest")
        print("\n--- selftest of the unpacked bundle, clean environment ---")
        print(selftest.output)
        print("\n--- size ---")
        print(f"archive  {archive.name}: {archive.stat().st_size / 1e6:.1f} MB")
        print(f"unpacked {unpacked.name}: {size / 1e6:.1f} MB")
        for name, nbytes in size_breakdown(unpacked):
            print(f"  {nbytes / 1e6:8.1f} MB  {name}")
        target = SIZE_TARGET_MB[args.variant]
        if target is not None and size / 1e6 > target:
            log(f"WARNING: the unpacked {args.variant} bundle is {size / 1e6:.0f} MB, over the {target} MB target")
        if not args.keep_unpacked:
            shutil.rmtree(unpacked_root, ignore_errors=True)
    except BuildError as exc:
        log(f"FAILED: {exc}")
        return 1
    log(f"done in {time.perf_counter() - started:.0f} s: {archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
