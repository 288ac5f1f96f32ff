"""``kernelscope-cli upscale``: batch blind super-resolution of files, folders and globs.

Exit codes: 0 every image written (or skipped on request); 1 at least one image failed (each failure
is reported with its file and reason, the rest are processed, and a summary is printed); 2 bad
arguments (``--provider cuda`` where CUDA cannot run included: one line says why); 130 interrupted (Ctrl-C stops after the current tile; nothing partial is left on disk,
since every file is written to a temporary name and renamed only when complete).
"""

from __future__ import annotations

import argparse
import glob
import logging
import sys
from concurrent.futures import CancelledError
from pathlib import Path

NAME = "upscale"
HELP = "Upscale images (files, folders, globs) with MANet+RRDB-SFT, IKC, bicubic or a given kernel."

log = logging.getLogger(__name__)

DEFAULT_PATTERN = "{stem}_x{scale}_{method}.{ext}"
OUTPUT_FORMATS = ("same", "png", "tiff", "jpg", "webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    parser.add_argument("--method", choices=("manet", "ikc", "bicubic", "nonblind"), default="manet",
                        help="manet: per-pixel kernels + RRDB-SFT (default); ikc: iterative kernel "
                             "correction; bicubic: baseline; nonblind: RRDB-SFT with --kernel-sigmas")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="upscaling factor (default 4)")
    parser.add_argument("--tile", default="auto", help="tile size in LR pixels, or 'auto' (default)")
    parser.add_argument("--provider", choices=("auto", "cuda", "cpu"), default="auto",
                        help="execution device; auto: CUDA when it really works, else the CPU with a "
                             "one-line notice when CUDA was expected (default); cuda: CUDA or exit 2 with "
                             "the reason")
    parser.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                        help="runtime: onnxruntime (default when installed) or PyTorch")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the runtime")
    parser.add_argument("--ikc-steps", type=int, default=7, help="IKC correction iterations (default 7)")
    parser.add_argument("--kernel-sigmas", type=float, nargs=3, metavar=("SIGMA1", "SIGMA2", "THETA"),
                        default=(2.0, 2.0, 0.0), help="nonblind kernel: std devs in HR px and angle in rad")
    parser.add_argument("--save-kernels", action="store_true",
                        help="also write the kernel map (.npz; manet) or per-iteration codes and kernels (ikc)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: beside each input)")
    parser.add_argument("--name", default=DEFAULT_PATTERN,
                        help="output name pattern with {stem}, {scale}, {method}, {ext} (default %(default)s)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="same",
                        help="output format; 'same' keeps the input's (BMP becomes PNG)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    exists = parser.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    exists.add_argument("--skip-existing", action="store_true", help="skip inputs whose output exists")
    parser.add_argument("--recursive", action="store_true", help="look for images in sub-folders too")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def expand_inputs(items: list[str], recursive: bool = False) -> tuple[list[Path], list[str]]:
    """Files from paths, folders and globs (sorted, de-duplicated) and the items that matched nothing."""
    from engine.imageio import READ_SUFFIXES

    found: list[Path] = []
    missing: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
            found.extend(files)
        elif path.exists():
            found.append(path)  # a file named explicitly is tried whatever its suffix
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=recursive) if Path(p).is_file())
            if matches:
                found.extend(matches)
            else:
                missing.append(item)
        else:
            missing.append(item)
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, missing


def output_path(src: Path, args: argparse.Namespace) -> Path:
    ext = src.suffix.lower().lstrip(".") if args.format == "same" else args.format
    if ext in ("bmp", "dib", ""):
        ext = "png"
    if ext == "jpeg":
        ext = "jpg"
    if ext == "tif":
        ext = "tiff"
    name = args.name.format(stem=src.stem, scale=args.scale, method=args.method, ext=ext)
    folder = args.out if args.out is not None else src.parent
    return folder / name


def _parse_tile(text: str) -> int | None:
    if text == "auto":
        return None
    tile = int(text)
    if tile < 16:
        raise ValueError("--tile must be 'auto' or at least 16")
    return tile


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.errors import DeviceUnavailable, ModelError
    from engine.imageio import ImageIOError, read_image, write_image
    from engine.pipeline.models import load_for_method
    from engine.progress import Cancelled
    from engine.service import Worker
    from engine.upscale import UpscaleOptions, upscale

    try:
        tile = _parse_tile(args.tile)
        options = UpscaleOptions(method=args.method, scale=args.scale, tile=tile, ikc_steps=args.ikc_steps,
                                 nonblind_sigmas=tuple(args.kernel_sigmas))
    except ValueError as exc:
        print(f"kernelscope-cli upscale: error: {exc}", file=sys.stderr)
        return 2
    files, missing = expand_inputs(args.inputs, args.recursive)
    failures: list[tuple[str, str]] = [(m, "no such file, folder or matching glob") for m in missing]
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)

    models = None
    if args.method != "bicubic" and files:
        try:
            models = load_for_method(args.method, args.scale, device=args.provider, backend=args.backend,
                                     threads=args.threads)
        except DeviceUnavailable as exc:  # --provider cuda where CUDA cannot run: a bad argument here
            print(f"kernelscope-cli upscale: error: --provider {exc.device}: {exc.reason}", file=sys.stderr)
            return 2
        except ModelError as exc:
            print(f"kernelscope-cli upscale: error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.method} ×{args.scale} on {models.execution}", file=sys.stderr)

    worker = Worker()
    written = skipped = 0
    overall = tqdm(total=len(files), unit="img", desc="images", disable=args.no_progress or len(files) < 2,
                   position=0)
    try:
        for src in files:
            dst = output_path(src, args)
            if dst.exists() and not args.overwrite:
                if args.skip_existing:
                    skipped += 1
                    overall.update(1)
                    continue
                failures.append((str(src), f"output {dst} exists (use --overwrite or --skip-existing)"))
                overall.update(1)
                continue
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
            try:
                write_image(dst, result.image, quality=args.quality, overwrite=args.overwrite)
                if args.save_kernels:
                    _save_kernels(result, dst)
            except ImageIOError as exc:
                failures.append((str(src), exc.reason))
            else:
                written += 1
                log.info("%s → %s (%.1f s, %s)", src, dst, result.seconds, result.provider)
            overall.update(1)
    except KeyboardInterrupt:
        overall.close()
        worker.shutdown(wait=False)
        print(f"\ninterrupted: {written} written; nothing partial was left on disk", file=sys.stderr)
        return 130
    overall.close()
    worker.shutdown()
    summary = f"{written} written, {skipped} skipped, {len(failures)} failed"
    if failures:
        print("failed:", file=sys.stderr)
        for name, reason in failures:
            print(f"  {name}: {reason}", file=sys.stderr)
        print(summary, file=sys.stderr)
        return 1
    print(summary, file=sys.stderr)
    return 0


def _save_kernels(result, dst: Path) -> None:
    """``<stem>_kernels.npz`` beside ``dst``: MANet's kernel map or IKC's per-iteration kernels."""
    target = dst.with_name(dst.stem + "_kernels.npz")
    if result.kernel_map is not None:
        result.kernel_map.save_npz(target)
    elif result.ikc is not None:
        result.ikc.save_npz(target)
