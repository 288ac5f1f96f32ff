"""``kernelscope --selftest``: check, without a display, that this installation can upscale.

Runs the checks a user (or the installer build) needs before trusting a bundle:

1. every model card in ``models/`` loads, and every card's ONNX graph has the sha256 the card records;
2. every PCA basis card's ``.npz`` has its recorded sha256 and loads;
3. a 16-bit RGBA TIFF with LZW + predictor (the common editors' default) is decoded exactly,
   16 bit and alpha kept: tifffile's codecs (``imagecodecs``) are really there;
4. the bundled sample (``resources/sample_lr.png``, RGB) is upscaled ×4 with MANet and with IKC
   (one correction step) on the best available execution provider, and each result has shape
   ``(4·H, 4·W, 3)`` with finite values in [0, 1]; the report names the device, execution provider
   and precision used, the CUDA version onnxruntime was built for, the NVIDIA driver found, and
   whether the CUDA libraries are bundled, pip wheels or the system's.

It prints a short report and returns 0, or 1 with a ``SELFTEST FAILED`` line naming what broke.
This module never imports Qt (no QApplication is created), so it runs on headless machines.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from engine.methods import METHOD_TABLE, UPSCALE, methods_for

SELFTEST_METHODS = tuple(m for m in methods_for(UPSCALE) if METHOD_TABLE[m].blind)
"""Methods upscaled on the sample: the blind ones (MANet, IKC), at every scale they have models for."""
SELFTEST_SCALE = 4
"""The scale a method is checked at when the models folder offers it none (the check then fails)."""
SELFTEST_IKC_STEPS = 1
"""One correction step runs all three IKC networks (predictor, SFTMD, corrector) at a quarter of the cost."""
SAMPLE_NAME = "sample_lr.png"
REPORT_FILE_NAME = "kernelscope-selftest.txt"


@dataclass
class SelftestReport:
    """What the self-test found: one line per passed check, one per failure."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _environment_lines() -> list[str]:
    """Version, frozen or source, where models live, onnxruntime and its providers."""
    from engine import __version__
    from engine.paths import models_dir, project_root

    frozen = bool(getattr(sys, "frozen", False))
    lines = [
        f"kernelscope {__version__} ({'bundle' if frozen else 'source tree'}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()})",
        f"root: {project_root()}",
        f"models: {models_dir()}",
    ]
    try:
        import onnxruntime as ort
    except ImportError:
        lines.append("onnxruntime: not installed")
    else:
        from engine.backends.cuda import cuda_report_lines

        lines.append(f"onnxruntime {ort.__version__}: {', '.join(ort.get_available_providers())}")
        lines.extend(cuda_report_lines(ort))
    return lines


def check_model_cards(models_folder: Path) -> list[str]:
    """Load every network card in ``models_folder`` and verify the sha256 of its graphs (fp32, and the
    int8 one where the card lists it).

    Returns one line per card; raises :class:`~engine.errors.ModelError` on the first bad card, and
    when there are no cards at all.
    """
    from engine.errors import ModelError
    from engine.modelcards import find_cards, verify

    cards = find_cards(models_folder)
    if not cards:
        raise ModelError(f"no model cards found in {models_folder}")
    lines = []
    for card in cards:
        for graph in [card] + [card.at_precision(p) for p in card.precisions if p != "fp32"]:
            verify(graph)
            size_kib = graph.graph_path.stat().st_size / 1024
            lines.append(f"card {card.id}: {graph.precision} graph {graph.graph} sha256 ok ({size_kib:.0f} KiB)")
    return lines


def check_pca_bases(models_folder: Path) -> list[str]:
    """Verify the sha256 of every PCA basis named by a ``"kind": "pca"`` card and load it.

    Returns one line per basis; raises :class:`~engine.errors.ModelError` on the first bad one.
    """
    from engine.errors import ModelError
    from engine.pca import load_checked_basis

    lines = []
    for path in sorted(models_folder.glob("pca_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"PCA card {path} cannot be read: {exc}") from exc
        if not isinstance(data, dict) or data.get("kind") != "pca":
            continue
        npz = models_folder / str(data.get("file", ""))
        if not npz.is_file():
            raise ModelError(f"PCA basis {npz} named by {path.name} is missing")
        basis = load_checked_basis(npz)  # sha256 against this card, as every load does
        lines.append(f"pca {data.get('id', npz.stem)}: sha256 ok, {basis.n_components} components")
    return lines


def check_tiff_codecs() -> str:
    """Encode a 16-bit RGBA TIFF with LZW + horizontal predictor in memory and read it back exactly."""
    import io

    import numpy as np
    import tifffile

    from engine.imageio import decode_image_bytes, rgb_to_u16

    values = (np.arange(16 * 24 * 4, dtype=np.uint32).reshape(16, 24, 4) * 167 % 65536).astype(np.uint16)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, values, photometric="rgb", extrasamples=("unassalpha",),
                     compression="lzw", predictor=True)
    image = decode_image_bytes(buffer.getvalue(), "lzw16.tif")
    if image.bit_depth != 16 or image.alpha_f32 is None:
        raise AssertionError(f"16-bit RGBA LZW TIFF read as {image.bit_depth}-bit, alpha={image.has_alpha}")
    if not (np.array_equal(rgb_to_u16(image.rgb_f32), values[:, :, :3])
            and np.array_equal(rgb_to_u16(image.alpha_f32), values[:, :, 3])):
        raise AssertionError("16-bit RGBA LZW TIFF decoded with wrong values")
    return "tiff 16-bit RGBA LZW+predictor: read exactly"


def check_upscale(sample: Path, method: str, *, device: str = "auto", models_folder: Path | None = None,
                  scale: int = SELFTEST_SCALE) -> str:
    """Upscale ``sample`` ×``scale`` with ``method`` on the best provider for ``device``; check the output.

    The networks come from ``models_folder`` (default: the shipped models folder).

    Returns a one-line summary; raises :class:`AssertionError` when the output has the wrong shape,
    non-finite values or values outside [0, 1], and lets engine errors through.
    """
    import numpy as np

    from engine.imageio import read_image
    from engine.pipeline.models import load_for_method
    from engine.upscale import UpscaleOptions, upscale

    image = read_image(sample)
    start = time.perf_counter()
    models = load_for_method(method, scale, device=device, models_dir=models_folder)
    options = UpscaleOptions(method=method, scale=scale, ikc_steps=SELFTEST_IKC_STEPS)
    result = upscale(image, options, models)
    seconds = time.perf_counter() - start
    rgb_f32 = result.image.rgb_f32
    want = (image.height * scale, image.width * scale, 3)
    if tuple(rgb_f32.shape) != want:
        raise AssertionError(f"{method}: output shape {tuple(rgb_f32.shape)}, expected {want}")
    if not np.all(np.isfinite(rgb_f32)):
        raise AssertionError(f"{method}: output has non-finite values")
    lo, hi = float(rgb_f32.min()), float(rgb_f32.max())
    if lo < 0.0 or hi > 1.0:
        raise AssertionError(f"{method}: output values in [{lo:.3g}, {hi:.3g}], expected within [0, 1]")
    return (
        f"upscale {method} x{scale}: {image.width}x{image.height} -> {want[1]}x{want[0]} on "
        f"{result.execution} in {seconds:.2f} s (values {lo:.3f}..{hi:.3f})"
    )


def collect(
    models_folder: Path | None = None, sample: Path | None = None, *, device: str = "auto"
) -> SelftestReport:
    """Run every check, continuing after a failure so the report lists all of them."""
    from engine.paths import models_dir, resources_dir

    folder = Path(models_folder) if models_folder is not None else models_dir()
    sample_path = Path(sample) if sample is not None else resources_dir() / SAMPLE_NAME
    report = SelftestReport(lines=_environment_lines())

    def attempt(label: str, check: Callable[[], list[str] | str]) -> None:
        try:
            out = check()
        except Exception as exc:  # noqa: BLE001 - the self-test reports every failure
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            report.failures.append(f"{label}: {type(exc).__name__}: {first}".rstrip(": "))
            report.lines.append(f"FAIL {label}")
            report.lines.extend("    " + ln for ln in traceback.format_exc().rstrip().splitlines()[-3:])
            return
        report.lines.extend([out] if isinstance(out, str) else out)

    attempt("model cards", lambda: check_model_cards(folder))
    attempt("PCA bases", lambda: check_pca_bases(folder))
    attempt("TIFF codecs", check_tiff_codecs)
    if not sample_path.is_file():
        report.failures.append(f"sample image {sample_path} is missing")
    else:
        from engine.modelcards import scales_with_models

        for method in SELFTEST_METHODS:
            for scale in scales_with_models(method, folder) or (SELFTEST_SCALE,):
                attempt(
                    f"upscale {method} x{scale}",
                    lambda m=method, s=scale: check_upscale(sample_path, m, device=device, models_folder=folder,
                                                           scale=s),
                )
    return report


def run_selftest(
    models_folder: Path | None = None,
    sample: Path | None = None,
    *,
    device: str = "auto",
    out: TextIO | None = None,
) -> int:
    """Run the self-test, print the report to ``out`` and return the exit code (0 = passed).

    ``out`` defaults to stdout; a windowed executable on Windows has no stdout, so there the report
    goes to ``<temp>/kernelscope-selftest.txt`` (:data:`REPORT_FILE_NAME`) instead.
    """
    report = collect(models_folder, sample, device=device)
    if out is None and sys.stdout is None:
        import io
        import tempfile

        from engine.atomic import write_atomic

        text = io.StringIO()
        code = _print_report(report, text)
        write_atomic(Path(tempfile.gettempdir()) / REPORT_FILE_NAME, text.getvalue().encode("utf-8"), overwrite=True)
        return code
    return _print_report(report, out if out is not None else sys.stdout)


def _print_report(report: SelftestReport, stream: TextIO) -> int:
    for line in report.lines:
        print(line, file=stream)
    if report.ok:
        print("SELFTEST PASSED", file=stream)
        return 0
    for failure in report.failures:
        print(f"SELFTEST FAILED: {failure}", file=stream)
    stream.flush()
    return 1


if __name__ == "__main__":  # pragma: no cover - ``python -m app.selftest``
    sys.exit(run_selftest())
