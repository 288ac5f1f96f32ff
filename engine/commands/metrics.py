"""``kernelscope-cli metrics SR HR``: PSNR-Y and SSIM-Y of a super-resolved image against its HR original.

The published protocol: both images rounded to 8 bits, luma Y of BT.601 (MATLAB ``rgb2ycbcr``),
``scale`` pixels shaved from every border (see :mod:`engine.metrics`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

NAME = "metrics"
HELP = "PSNR-Y and SSIM-Y of a super-resolved image against the HR original (border shaved by the scale)."

_EPILOG = (
    "HR may be larger than SR by fewer than SCALE pixels in height and/or width: that happens when the "
    "HR size is not a multiple of the scale, since the LR image (and so the SR image) covers only "
    "the largest multiple. HR is then cropped, top-left anchored, to the SR size, as the evaluation "
    "protocol does before degrading. Any other size difference is an error. With --json the result is "
    "one JSON object; psnr_y is null when the images are identical (infinite PSNR)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``metrics`` options on ``parser``."""
    parser.epilog = _EPILOG
    parser.add_argument("sr", metavar="SR", type=Path, help="super-resolved image")
    parser.add_argument("hr", metavar="HR", type=Path, help="ground-truth HR image")
    parser.add_argument("--scale", type=int, default=4,
                        help="SR factor; also the border shaved before scoring (default 4)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _error(message: str) -> int:
    print(f"kernelscope-cli {NAME}: error: {message}", file=sys.stderr)
    return 1


def _describe(path: Path, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if str(path) not in text and path.name not in text:
        text = f"{path}: {text}"
    return text


def run(args: argparse.Namespace) -> int:
    """Score ``args.sr`` against ``args.hr``; 0 on success, 1 on unreadable files or size mismatch."""
    if args.scale < 1:
        print(f"kernelscope-cli {NAME}: error: --scale must be >= 1, got {args.scale}", file=sys.stderr)
        return 2

    from engine.imageio import ImageReadError, read_image
    from engine.metrics import psnr, ssim

    images = []
    for path in (args.sr, args.hr):
        try:
            images.append(read_image(path).rgb_f32)
        except (ImageReadError, OSError) as exc:
            return _error(_describe(path, exc))
    sr, hr = images
    (sh, sw), (hh, hw) = sr.shape[:2], hr.shape[:2]
    dh, dw = hh - sh, hw - sw
    if not (0 <= dh < args.scale and 0 <= dw < args.scale):
        return _error(
            f"size mismatch: SR {args.sr} is {sw}×{sh} px but HR {args.hr} is {hw}×{hh} px "
            f"(HR may only exceed SR by fewer than {args.scale} px per side)"
        )
    hr_cropped = bool(dh or dw)
    hr = hr[:sh, :sw]
    try:
        psnr_y = psnr(sr, hr, crop_border=args.scale, test_y_channel=True)
        ssim_y = ssim(sr, hr, crop_border=args.scale, test_y_channel=True)
    except ValueError as exc:
        return _error(f"{args.sr}: {exc}")

    if args.json:
        print(json.dumps({
            "sr": str(args.sr),
            "hr": str(args.hr),
            "scale": args.scale,
            "crop_border": args.scale,
            "hr_cropped": hr_cropped,
            "psnr_y": psnr_y if math.isfinite(psnr_y) else None,
            "ssim_y": ssim_y,
        }))
    else:
        if hr_cropped:
            print(f"note: HR cropped from {hw}×{hh} to {sw}×{sh} px")
        print(f"PSNR-Y: {psnr_y:.2f} dB" if math.isfinite(psnr_y) else "PSNR-Y: inf dB (identical)")
        print(f"SSIM-Y: {ssim_y:.4f}")
    return 0
