"""``kernelscope-cli estimate IN``: MANet's kernel map of an image, and an overview picture of it.

Writes ``<stem>_kernels.npz`` (PCA codes per LR pixel + basis; see
:meth:`engine.pipeline.kernelmap.KernelMap.save_npz`) and ``<stem>_kernels.png`` (the image with
the local kernel drawn on a lattice, as in the MANet paper) into ``--out`` (default: beside IN).
It also estimates the image's noise level (:func:`engine.noise.estimate_noise`), prints it in σ/255
units and stores it in the ``.npz`` (``noise_sigma_255``, per-block ``noise_map_255``, ``noise_block_px``).
For a JPEG input it prints how strongly the file was compressed (:class:`engine.imageio.jpegquality.JpegQuality`)
and stores it too (``jpeg_quality``, ``jpeg_standard_tables``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "estimate"
HELP = "Estimate the blur kernel at every pixel (MANet); write the kernel map and an overview picture."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``estimate`` options on ``parser``."""
    from engine.backends import BACKENDS, DEVICES

    parser.add_argument("input", metavar="IN", type=Path, help="low-resolution image")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="SR factor the kernels are for")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: beside IN)")
    parser.add_argument("--step", type=int, default=None, help="lattice spacing in LR pixels (default: automatic)")
    parser.add_argument("--provider", choices=DEVICES, default="auto")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: automatic)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from engine.errors import DeviceUnavailable, ModelError
    from engine.imageio import Image, ImageIOError, read_image, write_image
    from engine.noise import estimate_noise
    from engine.pipeline.blind import estimate_kernel_map
    from engine.pipeline.models import load_for_method
    from engine.visualize import kernel_lattice_overview

    def fail(message: str) -> int:
        print(f"kernelscope-cli {NAME}: error: {message}", file=sys.stderr)
        return 1

    from engine.outputs import OutputPlan, OutputRefused, check_out_folder, make_out_folder

    if args.out is not None:
        problem = check_out_folder(args.out)
        if problem:
            print(f"kernelscope-cli {NAME}: error: {problem}", file=sys.stderr)
            return 2
    folder = args.out if args.out is not None else args.input.parent
    npz = folder / f"{args.input.stem}_kernels.npz"
    png = folder / f"{args.input.stem}_kernels.png"
    plan = OutputPlan([args.input], overwrite=args.overwrite)
    try:
        plan.claim_all([(npz, "kernel map"), (png, "overview")])
    except OutputRefused as exc:
        return fail(f"{exc.path}: already exists (use --overwrite)" if exc.exists else str(exc))
    try:
        image = read_image(args.input)
    except ImageIOError as exc:
        return fail(str(exc))
    problem = make_out_folder(folder)
    if problem:
        return fail(problem)
    try:
        models = load_for_method("estimate", args.scale, device=args.provider, backend=args.backend)
        kmap = estimate_kernel_map(image.rgb_f32, models, tile=args.tile)
    except DeviceUnavailable as exc:
        fail(f"--provider {exc.device}: {exc.reason}")
        return 2
    except ModelError as exc:
        return fail(str(exc))
    overview = kernel_lattice_overview(image.rgb_f32, kmap, step_lr=args.step)
    noise = estimate_noise(image.rgb_f32)
    extra = {"noise_sigma_255": np.float32(noise.sigma_255), "noise_map_255": noise.map_255,
             "noise_block_px": np.int32(noise.block_px)}
    if image.jpeg_quality is not None:
        extra.update(jpeg_quality=np.int32(image.jpeg_quality.quality),
                     jpeg_standard_tables=np.bool_(image.jpeg_quality.standard))
    try:
        kmap.save_npz(npz, overwrite=args.overwrite, extra=extra)
        write_image(png, Image(rgb_f32=overview.astype(np.float32) / 255.0), overwrite=args.overwrite)
    except ImageIOError as exc:
        return fail(str(exc))
    h, w = kmap.lr_hw
    print(f"kernel map of {w}×{h} LR px on {models.provider} → {npz}, overview → {png}")
    print(f"noise level ≈ {noise.sigma_255:.1f}/255 per channel (blocks of {noise.block_px} px: "
          f"{float(noise.map_255.min()):.1f}–{float(noise.map_255.max()):.1f}/255)")
    if image.jpeg_quality is not None:
        print(f"compression: {image.jpeg_quality.describe()} (read from the file's luma quantisation table)")
    return 0
