"""``kernelscope-cli degrade IN OUT``: make a synthetic LR image with a known blur kernel.

Kernels (``--kernel``):

- ``aniso`` — MANet convention: anisotropic Gaussian with variances ``--var1 --var2`` and angle
  ``--theta`` (radians; sampled from the scale's MANet ranges when not given), blur + direct
  subsampling, LR pixel ``i`` centred on HR ``s·i + (s−1)/2``.
- ``iso`` — IKC convention: centred isotropic Gaussian of std ``--sigma`` (sampled from the scale's
  IKC range when not given), blur + MATLAB bicubic downsampling.
- ``gaussian8`` — IKC convention with σ one of the eight Gaussian8 test widths of the scale (drawn
  with the seed unless ``--sigma`` names one).
- ``variant1`` … ``variant5`` — MANet spatially variant test fields (40×40 HR blocks); mode 5 draws
  random parameters per block from the seed.

One ``numpy.random.default_rng(--seed)`` draws the kernel parameters first, then the noise.
The input is cropped (top-left anchored) to a multiple of the scale; the output is 8-bit.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported inside run(), keeping `kernelscope-cli --help` fast
    import numpy as np

NAME = "degrade"
HELP = "Blur and downsample an image with a known kernel (synthetic LR for tests and demos)."

KERNEL_CHOICES = ("aniso", "iso", "gaussian8") + tuple(f"variant{m}" for m in range(1, 6))
SCALE_CHOICES = (2, 3, 4)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``degrade`` options on ``parser``."""
    parser.add_argument("input", metavar="IN", type=Path, help="HR image (PNG, JPEG, TIFF, BMP, WebP)")
    parser.add_argument("output", metavar="OUT", type=Path, help="LR image to write (format from the suffix)")
    parser.add_argument("--scale", type=int, default=4, choices=SCALE_CHOICES, help="downscaling factor (default 4)")
    parser.add_argument(
        "--kernel",
        default="aniso",
        choices=KERNEL_CHOICES,
        help="aniso: MANet convention (variances, direct subsampling); iso: IKC convention (σ, bicubic); "
        "gaussian8: one of the eight IKC test widths; variant1..variant5: MANet spatially variant fields "
        "(default aniso)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for sampled parameters and noise (default 0)")
    parser.add_argument("--sigma", type=float, help="std of the isotropic kernel in HR px (iso, gaussian8)")
    parser.add_argument("--var1", type=float, help="major-axis variance in HR px² (aniso; with --var2)")
    parser.add_argument("--var2", type=float, help="minor-axis variance in HR px² (aniso; with --var1)")
    parser.add_argument("--theta", type=float, help="angle of the major axis in radians (aniso; default 0)")
    parser.add_argument("--noise", type=float, default=0.0, metavar="SIGMA_255",
                        help="Gaussian noise std on the 0..255 scale, added before 8-bit rounding (default 0)")
    parser.add_argument("--jpeg", type=int, metavar="Q", help="JPEG-compress the LR image at quality Q (1..100)")
    parser.add_argument("--save-kernel", type=Path, metavar="K.npz",
                        help="also save the true kernel (21×21) or field (h×w×21×21) with its parameters")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT (and K.npz) if they exist")


def _error(message: str, code: int = 1) -> int:
    print(f"kernelscope-cli {NAME}: error: {message}", file=sys.stderr)
    return code


def _usage_problem(args: argparse.Namespace) -> str | None:
    """A message when options contradict each other or are out of range, else None."""
    if args.sigma is not None and args.kernel not in ("iso", "gaussian8"):
        return "--sigma applies to --kernel iso or gaussian8 only"
    given = [name for name in ("var1", "var2", "theta") if getattr(args, name) is not None]
    if given and args.kernel != "aniso":
        return f"--{given[0]} applies to --kernel aniso only"
    if (args.var1 is None) != (args.var2 is None) or (args.theta is not None and args.var1 is None):
        return "give --var1 and --var2 together (and optionally --theta)"
    for name in ("sigma", "var1", "var2"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            return f"--{name} must be a positive number, got {value}"
    if args.theta is not None and not math.isfinite(args.theta):
        return f"--theta must be a finite number, got {args.theta}"
    if not (math.isfinite(args.noise) and args.noise >= 0):
        return f"--noise must be >= 0, got {args.noise}"
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        return f"--jpeg must be in 1..100, got {args.jpeg}"
    return None


def _describe(path: Path, exc: BaseException) -> str:
    """One line naming ``path`` and the reason carried by ``exc``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if str(path) not in text and path.name not in text:
        text = f"{path}: {text}"
    return text


def _make_kernel(
    args: argparse.Namespace, lr_hw: tuple[int, int], rng: np.random.Generator
) -> tuple[str, np.ndarray, dict[str, Any], str]:
    """The blur for ``args``: ``(convention, kernel_or_field, params, printable summary)``.

    ``convention`` is "manet" or "ikc"; ``kernel_or_field`` is (21, 21) or (h, w, 21, 21) float32;
    ``params`` holds the parameters saved with ``--save-kernel``. Raises ValueError for a --sigma
    that is not a Gaussian8 width.
    """
    import numpy as np

    from engine import degradation as deg
    from engine.data import GAUSSIAN8_SIGMAS_BY_SCALE
    from engine.degradation.fields import expand_blocks, manet_mode_params

    s = args.scale
    if args.kernel == "aniso":
        if args.var1 is None:
            v1, v2, th = (float(np.asarray(x).item()) for x in deg.sample_anisotropic_params(rng, s))
            how = "sampled"
        else:
            v1, v2, th = args.var1, args.var2, (args.theta or 0.0)
            how = "given"
        kernel = deg.anisotropic_gaussian_kernels(v1, v2, th, s)
        params = {"var1": v1, "var2": v2, "theta": th}
        text = (f"aniso (MANet convention, ×{s}, {how}): var1={v1:.4f} var2={v2:.4f} "
                f"theta={th:.4f} rad ({math.degrees(th):.1f}°)")
        return "manet", kernel, params, text
    if args.kernel in ("iso", "gaussian8"):
        if args.kernel == "gaussian8":
            table = GAUSSIAN8_SIGMAS_BY_SCALE[s]
            if args.sigma is None:
                sigma = float(table[int(rng.integers(len(table)))])
            else:
                match = [t for t in table if abs(t - args.sigma) < 1e-6]
                if not match:
                    raise ValueError(f"--sigma {args.sigma} is not a Gaussian8 width at ×{s} "
                                     f"({', '.join(f'{t:g}' for t in table)})")
                sigma = float(match[0])
            how = "Gaussian8"
        elif args.sigma is None:
            sigma = float(np.asarray(deg.sample_isotropic_sigma(rng, s)).item())
            how = "sampled"
        else:
            sigma, how = args.sigma, "given"
        text = f"{args.kernel} (IKC convention, ×{s}, {how}): sigma={sigma:.4f}"
        return "ikc", deg.isotropic_gaussian_kernel(sigma), {"sigma": sigma}, text
    mode = int(args.kernel.removeprefix("variant"))
    var1, var2, theta, block = manet_mode_params(mode, lr_hw, s, rng)
    kfield = expand_blocks(deg.anisotropic_gaussian_kernels(var1, var2, theta, s), lr_hw, block)
    params = {"mode": mode, "block_lr": block, "block_var1": var1, "block_var2": var2,
              "block_theta": theta}
    text = (f"{args.kernel} (MANet spatially variant field, ×{s}): {var1.shape[0]}×{var1.shape[1]} blocks "
            f"of {block} LR px; var1 {var1.min():.3f}..{var1.max():.3f}, var2 {var2.min():.3f}..{var2.max():.3f}, "
            f"theta {theta.min():.3f}..{theta.max():.3f} rad")
    return "manet", kfield, params, text


def run(args: argparse.Namespace) -> int:
    """Degrade ``args.input`` and write ``args.output``; 0 on success, 1 on bad input, 2 on bad options."""
    problem = _usage_problem(args)
    if problem:
        return _error(problem, 2)
    src_path: Path = args.input
    out_path: Path = args.output

    from engine.outputs import OutputPlan, OutputRefused

    # the one output rule: never an input, never one file for two outputs, never replace without --overwrite
    plan = OutputPlan([src_path], overwrite=args.overwrite)
    targets = [(out_path, "OUT image")] + ([(args.save_kernel, "--save-kernel file")] if args.save_kernel else [])
    try:
        plan.claim_all(targets)
    except OutputRefused as exc:
        if exc.exists:
            return _error(f"{exc.path}: already exists (use --overwrite to replace it)")
        return _error(str(exc), 2)

    import dataclasses

    import numpy as np

    from engine import degradation as deg
    from engine.data import crop_to_multiple
    from engine.imageio import MIN_SIDE, ImageReadError, ImageWriteError, read_image, write_bytes_atomically, write_image

    try:
        src = read_image(src_path)
    except ImageReadError as exc:
        return _error(_describe(src_path, exc))
    except OSError as exc:
        return _error(_describe(src_path, exc))
    try:
        hr = np.ascontiguousarray(crop_to_multiple(src.rgb_f32, args.scale), dtype=np.float32)
    except ValueError as exc:
        return _error(f"{src_path}: {exc}")
    lr_hw = (hr.shape[0] // args.scale, hr.shape[1] // args.scale)
    if min(lr_hw) < MIN_SIDE:
        return _error(f"{src_path}: {src.width}×{src.height} px is too small for ×{args.scale}: the LR image "
                      f"would be {lr_hw[1]}×{lr_hw[0]} px, images need at least {MIN_SIDE}×{MIN_SIDE}")

    rng = np.random.default_rng(args.seed)
    try:
        convention, kernel, params, summary = _make_kernel(args, lr_hw, rng)
    except ValueError as exc:
        return _error(str(exc), 2)
    degrade = deg.degrade_manet if convention == "manet" else deg.degrade_ikc
    blur = kernel if convention == "manet" else params["sigma"]
    lr = degrade(hr, blur, args.scale, rng, deg.PhotoCorruption(noise_sigma_255=args.noise, jpeg_quality=args.jpeg))

    out_image = dataclasses.replace(src, rgb_f32=lr, alpha_f32=None)
    try:
        write_image(out_path, out_image, bit_depth=8, overwrite=args.overwrite)
    except (ImageWriteError, OSError, ValueError) as exc:
        return _error(_describe(out_path, exc))

    print(f"kernel: {summary}")
    if args.noise > 0 or args.jpeg is not None:
        print(f"noise: sigma={args.noise:g}/255" + (f", JPEG quality {args.jpeg}" if args.jpeg is not None else ""))
    if src.alpha_f32 is not None:
        print("note: the alpha channel was dropped", file=sys.stderr)
    print(f"wrote {out_path} ({lr.shape[1]}×{lr.shape[0]} px from {hr.shape[1]}×{hr.shape[0]} px HR, seed {args.seed})")

    if args.save_kernel:
        import io

        key = "field" if kernel.ndim == 4 else "kernel"
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer, **{key: kernel.astype(np.float32)}, scale=np.int64(args.scale),
            convention=np.str_(convention), kernel_type=np.str_(args.kernel), seed=np.int64(args.seed),
            **{k: np.asarray(v) for k, v in params.items()},
        )
        try:
            write_bytes_atomically(args.save_kernel, buffer.getvalue(), overwrite=args.overwrite)
        except ImageWriteError as exc:
            return _error(_describe(args.save_kernel, exc))
        print(f"saved {key} to {args.save_kernel}")
    return 0
