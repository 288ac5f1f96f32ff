"""``kernelscope-cli upscale``: batch blind super-resolution of files, folders and globs.

Exit codes: 0 every image written (or skipped on request); 1 at least one image failed, or an output
appeared while it was computed (each is reported with its file and reason, the rest are processed,
and a summary is printed); 2 bad arguments (checked before any work; ``--provider cuda`` where CUDA
cannot run included: one line says why); 130 interrupted (Ctrl-C stops after the current tile;
nothing partial is left on disk, since every file is written to a temporary name and published only
when complete).

Every output is planned before any work (:mod:`engine.outputs`): an output never replaces an input
of the run or another output of the run, and an existing file is replaced only with ``--overwrite``
(also when another process writes it meanwhile: that result is kept and this one is reported as
skipped). Write failures are reported under the output's path.
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
from concurrent.futures import CancelledError
from pathlib import Path

from engine.commands import auto_or_int
from engine.degradation.kernels import KernelParams
from engine.outputs import DEFAULT_NAME_PATTERN, kernels_name, output_name

NAME = "upscale"
HELP = "Upscale images (files, folders, globs) with MANet+RRDB-SFT, IKC, bicubic or a given kernel."

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("same", "png", "tiff", "jpg", "webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``upscale`` options on ``parser``."""
    from engine.backends import BACKENDS, DEVICES
    from engine.methods import DEFAULT_METHOD, UPSCALE, methods_for

    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--method", choices=methods_for(UPSCALE), default=DEFAULT_METHOD,
                        help="manet: per-pixel kernels + RRDB-SFT (default); ikc: iterative kernel "
                             "correction; bicubic: baseline; nonblind: RRDB-SFT with --kernel-sigmas")
    from engine.modelcards import upscale_scales

    scales = upscale_scales() or (4,)
    parser.add_argument("--scale", type=int, choices=scales, default=4 if 4 in scales else scales[-1],
                        help="upscaling factor: the scales this installation has models for (default %(default)s)")
    parser.add_argument("--tile", default="auto", help="tile size in LR pixels, or 'auto' (default)")
    parser.add_argument("--provider", choices=DEVICES, default="auto",
                        help="execution device; auto: CUDA when it really works, else the CPU with a "
                             "one-line notice when CUDA was expected (default); cuda: CUDA or exit 2 with "
                             "the reason")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="runtime: onnxruntime (default when installed) or PyTorch")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                        help="auto: the int8 graphs on the CPU where the model cards ship them, fp32 on a GPU "
                             "(default); fp32: always fp32; int8: the int8 graphs where shipped, CPU only. "
                             "The device line printed before the run names the precision that ran")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the runtime")
    parser.add_argument("--ikc-steps", type=int, default=None,
                        help="IKC correction iterations (default: the step the evaluation chose, from the IKC "
                             "corrector's model card)")
    parser.add_argument("--kernel-sigmas", type=float, nargs=3, metavar=("SIGMA1", "SIGMA2", "THETA"),
                        default=(2.0, 2.0, 0.0), help="nonblind kernel: std devs in HR px and angle in rad")
    parser.add_argument("--save-kernels", action="store_true",
                        help="also write the kernel map (.npz; manet) or per-iteration codes and kernels (ikc)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: beside each input)")
    parser.add_argument("--name", default=DEFAULT_NAME_PATTERN,
                        help="output name pattern with {stem}, {scale}, {method}, {ext} (default %(default)s)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="same",
                        help="output format; 'same' keeps the input's (BMP becomes PNG)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    exists = parser.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    exists.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    parser.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def expand_inputs(items: list[str], recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files from paths, folders and globs (sorted, de-duplicated) and ``(item, reason)`` for the
    items that gave no image (nothing matched, or a folder without images)."""
    from engine.imageio import READ_SUFFIXES

    found: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
            found.extend(files)
            if not files:
                missing.append((item, "is a folder with no images in it ("
                                      + ", ".join(READ_SUFFIXES) + ("; sub-folders searched)" if recursive else
                                                                    "; add --recursive for sub-folders)")))
        elif path.exists():
            found.append(path)  # a file named explicitly is tried whatever its suffix
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            if matches:
                found.extend(matches)
            else:
                missing.append((item, "no file matches this pattern"))
        else:
            missing.append((item, "no such file or folder"))
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, missing


def _extension(src: Path, args: argparse.Namespace) -> str:
    ext = src.suffix.lower().lstrip(".") if args.format == "same" else args.format
    if ext not in ("png", "jpg", "jpeg", "jpe", "tif", "tiff", "webp"):
        ext = "png"  # BMP, and inputs named without an image suffix
    return {"jpeg": "jpg", "jpe": "jpg", "tif": "tiff"}.get(ext, ext)


def output_path(src: Path, args: argparse.Namespace) -> Path:
    """Where ``src``'s result goes: ``--name`` filled in, in ``--out`` (default: beside ``src``)."""
    name = output_name(src.stem, args.scale, args.method, _extension(src, args), args.name)
    folder = args.out if args.out is not None else src.parent
    return folder / name


def kernels_path(dst: Path) -> Path:
    """``<stem>_kernels.npz`` beside the image ``dst`` (``--save-kernels``)."""
    return dst.with_name(kernels_name(dst.name))


def _usage_problem(args: argparse.Namespace) -> str | None:
    """One line naming the argument that cannot work and why, checked before any work; else None."""
    from engine.outputs import check_name_pattern, check_out_folder
    from engine.upscale import IKC_STEPS_MAX

    if not 1 <= args.quality <= 100:
        return f"--quality must be in 1..100, got {args.quality}"
    if args.ikc_steps is not None and not 0 <= args.ikc_steps <= IKC_STEPS_MAX:
        return f"--ikc-steps must be in 0..{IKC_STEPS_MAX}, got {args.ikc_steps}"
    if args.threads is not None and args.threads < 1:
        return f"--threads must be at least 1, got {args.threads}"
    if args.precision == "int8" and args.provider == "cuda":
        return "--precision int8 runs on the CPU only; with --provider cuda use --precision fp32 or auto"
    problem = check_name_pattern(args.name, {"stem": "image", "scale": args.scale, "method": args.method,
                                             "ext": "png"})
    if problem:
        return problem
    if args.out is not None:
        return check_out_folder(args.out)
    return None


class _NoBar:
    """Stands in for a tqdm bar under ``--no-progress``: importing tqdm reads installed package
    metadata (tens of ms of process start that a scripted run does not need)."""

    n = 0.0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def update(self, n: float = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def run(args: argparse.Namespace) -> int:
    if args.no_progress:
        tqdm = _NoBar
    else:
        from tqdm import tqdm

    from engine.atomic import InterruptedAfterWrite
    from engine.errors import DeviceUnavailable, ModelError
    from engine.imageio import ImageIOError, OutputExistsError, read_image, write_image
    from engine.methods import method
    from engine.outputs import OutputPlan, OutputRefused, make_out_folder
    from engine.pipeline.models import load_for_method
    from engine.progress import Cancelled
    from engine.service import Worker
    from engine.upscale import UpscaleOptions, upscale

    def usage(message: str) -> int:
        print(f"kernelscope-cli upscale: error: {message}", file=sys.stderr)
        return 2

    problem = _usage_problem(args)
    if problem:
        return usage(problem)
    spec = method(args.method)
    from engine.modelcards import scales_with_models

    have = scales_with_models(args.method)
    if args.scale not in have:
        return usage(f"--scale {args.scale}: {args.method} has no models at x{args.scale} "
                     f"(it has {', '.join(f'x{s}' for s in have) or 'none'})")
    if spec.user_kernel:
        try:
            KernelParams(*args.kernel_sigmas).checked()
        except ValueError as exc:
            return usage(f"--kernel-sigmas: {exc}")
    try:
        tile = auto_or_int(args.tile, 16, "--tile (LR px)")
        options = UpscaleOptions(method=args.method, scale=args.scale, tile=tile, ikc_steps=args.ikc_steps,
                                 nonblind_sigmas=KernelParams(*args.kernel_sigmas), integer_output=True)
    except ValueError as exc:
        return usage(str(exc))
    files, missing = expand_inputs(args.inputs, args.recursive)
    failures: list[tuple[str, str]] = list(missing)
    noticed: list[tuple[str, str]] = []  # skipped without --skip-existing: an output appeared meanwhile
    if args.out is not None and files:
        problem = make_out_folder(args.out)
        if problem:
            return usage(problem)

    # every output of the run is planned before any work: inputs and other outputs are never replaced
    plan = OutputPlan(files, overwrite=args.overwrite)
    jobs: list[tuple[Path, Path, Path | None]] = []
    skipped = 0
    for src in files:
        dst = output_path(src, args)
        npz = kernels_path(dst) if args.save_kernels and spec.blind else None
        targets = [(dst, "output")] + ([(npz, "kernel map")] if npz is not None else [])
        try:
            plan.claim_all(targets)
        except OutputRefused as exc:
            if exc.exists and args.skip_existing:
                skipped += 1
            elif exc.exists:
                failures.append((str(exc.path), f"already exists (input {src}; use --overwrite or --skip-existing)"))
            else:
                failures.append((str(exc.path), exc.reason if str(src) in exc.reason else f"{exc.reason} (input {src})"))
            continue
        jobs.append((src, dst, npz))

    models = None
    if spec.needs_models and jobs:
        try:
            models = load_for_method(args.method, args.scale, device=args.provider, backend=args.backend,
                                     threads=args.threads, precision=args.precision)
        except DeviceUnavailable as exc:  # --provider cuda where CUDA cannot run: a bad argument here
            print(f"kernelscope-cli upscale: error: --provider {exc.device}: {exc.reason}", file=sys.stderr)
            return 2
        except ModelError as exc:
            print(f"kernelscope-cli upscale: error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.method} ×{args.scale} on {models.execution}", file=sys.stderr)

    worker = Worker()
    written = 0
    overall = tqdm(total=len(jobs), unit="img", desc="images", disable=args.no_progress or len(jobs) < 2,
                   position=0)
    try:
        for src, dst, npz in jobs:
            try:
                image = read_image(src)
            except ImageIOError as exc:
                failures.append((str(src), exc.reason))
                overall.update(1)
                continue
            bar = tqdm(total=100, desc=src.name[:30], unit="%", leave=False, disable=args.no_progress,
                       position=1, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}]")

            def on_progress(fraction: float, message: str, bar=bar) -> None:
                bar.n = round(100 * fraction, 1)
                bar.refresh()

            handle = worker.submit(upscale, image, options, models, on_progress=on_progress)
            try:
                while True:
                    try:
                        result = handle.future.result(timeout=0.2)
                        break
                    except TimeoutError:
                        continue
            except KeyboardInterrupt:
                handle.cancel()
                try:
                    handle.future.result(timeout=120)
                except (Cancelled, CancelledError, Exception):
                    pass
                bar.close()
                raise
            except Exception as exc:  # one bad image must not stop the batch
                failures.append((str(src), f"{type(exc).__name__}: {exc}"))
                bar.close()
                overall.update(1)
                continue
            finally:
                bar.close()
            overall.update(1)
            try:
                write_image(dst, result.image, quality=args.quality, overwrite=args.overwrite)
            except InterruptedAfterWrite:
                written += 1
                raise
            except OutputExistsError:
                skipped += 1
                noticed.append((str(dst), f"appeared while {src} was processed (another process?); "
                                          "kept it, this result was not written"))
                continue
            except ImageIOError as exc:
                failures.append((str(dst), f"{exc.reason} (input {src})"))
                continue
            written += 1
            log.info("%s → %s (%.1f s, %s)", src, dst, result.seconds, result.provider)
            if npz is not None:
                try:
                    _save_kernels(result, npz, overwrite=args.overwrite)
                except OutputExistsError:
                    noticed.append((str(npz), "appeared meanwhile (another process?); kept it"))
                except ImageIOError as exc:
                    failures.append((str(npz), f"{exc.reason} (input {src})"))
    except KeyboardInterrupt:
        overall.close()
        worker.shutdown(wait=False)
        print(f"\ninterrupted: {written} written; nothing partial was left on disk", file=sys.stderr)
        return 130
    overall.close()
    worker.shutdown()
    summary = f"{written} written, {skipped} skipped, {len(failures)} failed"
    for title, entries in (("skipped:", noticed), ("failed:", failures)):
        if entries:
            print(title, file=sys.stderr)
            for name, reason in entries:
                print(f"  {name}: {reason}", file=sys.stderr)
    print(summary, file=sys.stderr)
    return 1 if failures or (noticed and not args.skip_existing) else 0


def _save_kernels(result, target: Path, *, overwrite: bool) -> None:
    """MANet's kernel map or IKC's per-iteration kernels to ``target`` (``.npz``)."""
    if result.kernel_map is not None:
        result.kernel_map.save_npz(target, overwrite=overwrite)
    elif result.ikc is not None:
        result.ikc.save_npz(target, overwrite=overwrite)
