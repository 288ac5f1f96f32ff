"""Real-photo gallery: ``docs/REAL.md`` and its crops in ``docs/real/`` from the real low-resolution photos.

For each photo of the shared ``real/`` folder (Real-ESRGAN's test inputs, no ground truth) one
96×96 LR window is chosen deterministically — the one with the most gradient energy on the luma
channel, i.e. the most textured — and upscaled ×4 by bicubic, the previous models (MANet +
RRDB-SFT, IKC) and the new ones, each panel 384×384. The networks see the window plus a margin of
``--margin`` LR pixels (cropped off afterwards), not the whole photo, so IKC's single kernel is
estimated on that region. Each MANet's kernels on a lattice over that region (window outlined) and
the noise estimate of ``engine.noise`` complete each entry.

To keep the pictures small in git (nine photos < 5 MB), the nearest-enlarged input is a PNG and the
upscaled panels are JPEG at ``--quality`` (92, full chroma resolution: far below the artefacts
being compared, but not lossless; say so when judging fine grain), the kernel lattices JPEG q 80.

The script writes pictures and a table skeleton only: what the pictures show is written into
REAL.md by a person after looking, between the ``<!-- observations:STEM -->`` markers; a re-render
keeps that text. The photos themselves are never copied; only the rendered crops are written.

Run (about 1–3 min on a CPU for the nine photos):
``.venv/bin/python bench/real_gallery.py --previous-models /tmp/models_prev [--models-dir models]``
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.imageio import read_image, write_bytes_atomically
from engine.modelcards import ikc_steps_from_card
from engine.noise import estimate_noise
from engine.paths import shared_data_dir
from engine.pipeline.blind import run_bicubic, run_manet
from engine.pipeline.ikc import run_ikc
from engine.pipeline.models import load_for_method
from engine.visualize import kernel_lattice_overview

SCALE = 4
LATTICE_STEP_LR = 16  # one kernel per 16 LR px: 8×8 kernels over a 96-px window and its margin
LATTICE_JPEG_QUALITY = 80  # diagrams: 4:2:0 JPEG, about 60 kB each
GIT_BUDGET_BYTES = 5_000_000  # all pictures of the nine photos together
LUMA_BT601 = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Panel:
    """One column of the gallery: file suffix, header, and which models (None: no network)."""

    key: str
    title: str
    models: str | None  # "previous", "new" or None
    method: str  # "nearest", "bicubic", "manet" or "ikc"


PANELS: tuple[Panel, ...] = (
    Panel("input", "Input (nearest ×4)", None, "nearest"),
    Panel("bicubic", "Bicubic ×4", None, "bicubic"),
    Panel("prev_manet", "Previous: MANet + RRDB-SFT", "previous", "manet"),
    Panel("prev_ikc", "Previous: IKC", "previous", "ikc"),
    Panel("new_manet", "New: MANet + RRDB-SFT", "new", "manet"),
    Panel("new_ikc", "New: IKC", "new", "ikc"),
)
"""The panels of every photo, in display order (rows of three)."""

LATTICES: tuple[tuple[str, str], ...] = (
    ("prev_lattice", "Previous MANet: kernels on a lattice (window outlined)"),
    ("new_lattice", "New MANet: kernels on a lattice (window outlined)"),
)
"""The kernel pictures of every photo (from the MANet panels' kernel maps of the window's region)."""


def most_textured_window(rgb_f32: np.ndarray, size: int, stride: int = 4) -> tuple[int, int, int]:
    """Top-left (y, x) and side of the ``size``×``size`` window with the largest sum of squared luma
    gradients (first window on ties, scanning rows then columns); the side shrinks to fit small images."""
    h, w = rgb_f32.shape[:2]
    side = min(size, h, w)
    luma = rgb_f32 @ LUMA_BT601
    energy = np.zeros((h, w), np.float64)
    energy[:, 1:] += np.diff(luma, axis=1) ** 2
    energy[1:, :] += np.diff(luma, axis=0) ** 2
    integral = np.zeros((h + 1, w + 1), np.float64)
    integral[1:, 1:] = energy.cumsum(0).cumsum(1)
    ys = np.arange(0, h - side + 1, stride)
    xs = np.arange(0, w - side + 1, stride)
    sums = (integral[ys[:, None] + side, xs[None, :] + side] - integral[ys[:, None], xs[None, :] + side]
            - integral[ys[:, None] + side, xs[None, :]] + integral[ys[:, None], xs[None, :]])
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[i]), int(xs[j]), side


def nearest_up(rgb_f32: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(rgb_f32, scale, axis=0), scale, axis=1)


def context_box(shape_hw: tuple[int, int], window: tuple[int, int, int], margin: int) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the window plus ``margin`` LR px, clipped to the image."""
    y, x, side = window
    h, w = shape_hw
    return max(0, y - margin), max(0, x - margin), min(h, y + side + margin), min(w, x + side + margin)


def upscale_window(lr: np.ndarray, window: tuple[int, int, int], margin: int, panel: Panel,
                   models: dict, ikc_steps: dict[str, int]) -> tuple[np.ndarray, object]:
    """The panel's ×4 image of ``window`` (run on the window plus ``margin`` LR px, margin cropped off),
    and MANet's kernel map of that region (None for the other methods)."""
    y, x, side = window
    if panel.method == "nearest":
        return nearest_up(lr[y:y + side, x:x + side], SCALE), None
    y0, x0, y1, x1 = context_box(lr.shape[:2], window, margin)
    region = np.ascontiguousarray(lr[y0:y1, x0:x1])
    kmap = None
    if panel.method == "bicubic":
        sr = run_bicubic(region, SCALE)
    elif panel.method == "manet":
        result = run_manet(region, models[(panel.models, "manet")])
        sr, kmap = result.sr_rgb_f32, result.kernel_map
    else:
        sr = run_ikc(region, models[(panel.models, "ikc")], steps=ikc_steps[panel.models]).final.sr_rgb_f32
    oy, ox = (y - y0) * SCALE, (x - x0) * SCALE
    return sr[oy:oy + side * SCALE, ox:ox + side * SCALE], kmap


def save_panel(path: Path, rgb_f32: np.ndarray, quality: int, full_chroma: bool = True) -> Path:
    """PNG (smallest settings) for ``.png``, else JPEG at ``quality`` (4:4:4 when ``full_chroma``, else 4:2:0)."""
    from PIL import Image as PILImage

    u8 = np.clip(np.rint(np.asarray(rgb_f32) * 255.0), 0, 255).astype(np.uint8)
    pil = PILImage.fromarray(u8, "RGB")
    buf = io.BytesIO()
    if path.suffix == ".png":
        pil.save(buf, format="PNG", optimize=True)
    else:
        pil.save(buf, format="JPEG", quality=quality, subsampling=0 if full_chroma else 2)
    write_bytes_atomically(path, buf.getvalue(), overwrite=True)  # regenerated
    return path


def outline(canvas_u8: np.ndarray, box: tuple[int, int, int, int], colour=(0, 255, 255), width: int = 2) -> None:
    """Draw a rectangle (y0, x0, y1, x1) into an RGB uint8 canvas in place."""
    y0, x0, y1, x1 = (max(0, v) for v in box)
    y1, x1 = min(y1, canvas_u8.shape[0]), min(x1, canvas_u8.shape[1])
    canvas_u8[y0:y0 + width, x0:x1] = colour
    canvas_u8[max(y0, y1 - width):y1, x0:x1] = colour
    canvas_u8[y0:y1, x0:x0 + width] = colour
    canvas_u8[y0:y1, max(x0, x1 - width):x1] = colour


def _photos(folder: Path, names: list[str] | None) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if names:
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise SystemExit(f"real_gallery: error: not in {folder}: {', '.join(missing)}")
        paths = [folder / n for n in names]
    if not paths:
        raise SystemExit(f"real_gallery: error: no photos in {folder}")
    return paths


# --- Markdown ----------------------------------------------------------------------------------------
NOT_WRITTEN = "*Observations:* (not written yet — to be written after looking at the panels.)"
SUMMARY_NOT_WRITTEN = "**Summary:** (not written yet — to be written after looking at every photo.)"
_OBS = re.compile(r"<!-- observations:(?P<stem>[^ ]+) -->\n(?P<text>.*?)<!-- /observations:(?P=stem) -->", re.S)


_SUMMARY = re.compile(r"<!-- summary -->\n(?P<text>.*?)<!-- /summary -->", re.S)
SUMMARY_KEY = ":summary"
"""Key of the whole-gallery summary (written by a person, like the observations) in ``kept_observations``."""


def kept_observations(md_path: Path) -> dict[str, str]:
    """The human-written texts of an existing REAL.md: the observations by photo stem, and the summary
    under :data:`SUMMARY_KEY`; a re-render keeps them."""
    if not md_path.is_file():
        return {}
    text = md_path.read_text(encoding="utf-8")
    kept = {m["stem"]: m["text"].rstrip("\n") for m in _OBS.finditer(text)}
    summary = _SUMMARY.search(text)
    if summary is not None:
        kept[SUMMARY_KEY] = summary["text"].rstrip("\n")
    return kept


def _entry_md(info: dict, kept: str | None, rel: str) -> list[str]:
    stem = info["stem"]
    lines = [f"## {info['name']}", "",
             f"{info['width']}×{info['height']} px, {info['format']}{info['extra']}; window of {info['side']}×"
             f"{info['side']} LR px at x = {info['x']}, y = {info['y']} (most gradient energy); noise estimate "
             f"{info['noise']:.1f}/255 per channel (`engine.noise`, whole photo; fine texture reads as noise).", ""]
    for row in (PANELS[:3], PANELS[3:]):
        lines.append("| " + " | ".join(info["titles"][p.key] for p in row) + " |")
        lines.append("|---|---|---|")
        lines.append("| " + " | ".join(f"![{info['titles'][p.key]}]({rel}/{info['files'][p.key]})" for p in row) + " |")
        lines.append("")
    lattices = [(k, t) for k, t in LATTICES if k in info["files"]]
    lines.append("| " + " | ".join(t for _, t in lattices) + " |")
    lines.append("|" + "---|" * len(lattices))
    lines.append("| " + " | ".join(f"![{t}]({rel}/{info['files'][k]})" for k, t in lattices) + " |")
    lines += ["", f"<!-- observations:{stem} -->",
              kept if kept is not None else NOT_WRITTEN,
              f"<!-- /observations:{stem} -->", ""]
    return lines


def render_md(entries: list[dict], md_path: Path, out_dir: Path, command: str, notes: dict) -> str:
    kept = kept_observations(md_path)
    rel = Path(os.path.relpath(Path(out_dir).resolve(), md_path.resolve().parent))
    lines = ["# Real photographs", "",
             "Real low-resolution inputs with no ground truth (nine test inputs of the Real-ESRGAN repository, "
             "BSD 3-Clause, © 2021 Xintao Wang; only these crops are published here). They were made by no "
             "degradation this project knows, so there are no scores: judge by looking.", "",
             "Rendered by:", "", "```", command, "```", "",
             f"- Each row of panels shows the same {notes['window']}×{notes['window']} LR window ×4; the window is "
             "the one with the most luma gradient energy (chosen by the script, not by hand).",
             f"- The networks see the window plus {notes['margin']} LR px of margin (cropped off afterwards), so "
             "IKC's kernel is estimated on that region only; the kernel lattices cover that region.",
             f"- The input panel is a lossless PNG; the upscaled panels are JPEG q {notes['quality']} with full chroma "
             "resolution (to keep the repository small): far below the artefacts compared, but not lossless.",
             f"- Previous models: `{notes['previous']}` ({notes['previous_ids']}); new models: `{notes['new']}` "
             f"({notes['new_ids']}). IKC runs the step recorded in each corrector's card: previous t = "
             f"{notes['ikc_steps']['previous']}, new t = {notes['ikc_steps']['new']}.",
             "- Alpha is ignored (the RGB is shown); greyscale photos run as RGB with three equal channels.",
             f"- Wall time of the render: {notes['seconds']:.0f} s on {notes['provider']}.", "",
             "<!-- summary -->", kept.get(SUMMARY_KEY, SUMMARY_NOT_WRITTEN), "<!-- /summary -->", ""]
    for info in entries:
        lines += _entry_md(info, kept.get(info["stem"]), rel.as_posix())
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--previous-models", type=Path, required=True, metavar="DIR",
                   help="models folder of the previous (clean-trained) models")
    p.add_argument("--models-dir", type=Path, default=None, help="the new models (default: the shipped ones)")
    p.add_argument("--photos", nargs="+", default=None, metavar="NAME",
                   help="file names in the real folder (default: all)")
    p.add_argument("--real-dir", type=Path, default=None, help="folder of the photos (default: ../shared/data/real)")
    p.add_argument("--window", type=int, default=96, help="window side in LR px (default 96)")
    p.add_argument("--margin", type=int, default=16, help="context around the window in LR px (default 16)")
    p.add_argument("--md", type=Path, default=Path("docs/REAL.md"), help="Markdown output (default docs/REAL.md)")
    p.add_argument("--out-dir", type=Path, default=Path("docs/real"), help="pictures (default docs/real)")
    p.add_argument("--quality", type=int, default=92, help="JPEG quality of the upscaled panels (default 92)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    args = p.parse_args(argv)

    folder = args.real_dir or shared_data_dir() / "real"
    photos = _photos(folder, args.photos)
    orphans = sorted(stem for stem, text in kept_observations(args.md).items()
                     if stem != SUMMARY_KEY and text != NOT_WRITTEN and stem not in {p.stem for p in photos})
    if orphans:  # a render of fewer photos would drop what a person wrote about the others
        raise SystemExit(f"real_gallery: error: {args.md} holds observations of {', '.join(orphans)}, which this "
                         "render leaves out; include them (--photos) or write to another --md")
    for d in (args.previous_models, args.models_dir):
        if d is not None and not d.is_dir():
            raise SystemExit(f"real_gallery: error: models folder not found: {d}")
    t0 = time.perf_counter()
    sets = {"previous": args.previous_models, "new": args.models_dir}
    models = {(which, m): load_for_method(m, SCALE, device=args.device, models_dir=d)
              for which, d in sets.items() for m in ("manet", "ikc")}
    ikc_steps = {which: ikc_steps_from_card(models[(which, "ikc")].cards.get("ikc_corrector")) for which in sets}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for path in photos:
        t1 = time.perf_counter()
        image = read_image(path)
        lr = image.rgb_f32
        y, x, side = window = most_textured_window(lr, args.window)
        stem = path.stem
        files: dict[str, str] = {}
        y0, x0, y1, x1 = context_box(lr.shape[:2], window, args.margin)
        for panel in PANELS:
            sr, kmap = upscale_window(lr, window, args.margin, panel, models, ikc_steps)
            name = f"{stem}_{panel.key}." + ("png" if panel.method == "nearest" else "jpg")
            files[panel.key] = save_panel(args.out_dir / name, sr, args.quality).name
            if kmap is not None:
                lattice = kernel_lattice_overview(lr[y0:y1, x0:x1], kmap, step_lr=LATTICE_STEP_LR,
                                                  target_px=side * SCALE)
                zoom = lattice.shape[0] // (y1 - y0)
                outline(lattice, ((y - y0) * zoom, (x - x0) * zoom, (y - y0 + side) * zoom, (x - x0 + side) * zoom))
                key = "prev_lattice" if panel.models == "previous" else "new_lattice"
                name = f"{stem}_{key}.jpg"
                files[key] = save_panel(args.out_dir / name, lattice.astype(np.float32) / 255.0,
                                        LATTICE_JPEG_QUALITY, full_chroma=False).name
        noise = estimate_noise(lr)
        titles = {pn.key: pn.title + (f" (t = {ikc_steps[pn.models]})" if pn.method == "ikc" else "") for pn in PANELS}
        extra = (", alpha ignored" if image.alpha_f32 is not None else "") + (
            ", 16-bit" if image.bit_depth == 16 else "") + (", greyscale" if image.was_grey else "")
        entries.append({"stem": stem, "name": path.name, "width": image.width, "height": image.height,
                        "format": image.jpeg_quality.describe() if image.jpeg_quality else (image.source_format or "?").upper(),
                        "extra": extra, "x": x, "y": y, "side": side,
                        "noise": noise.sigma_255, "titles": titles,
                        "files": files})
        print(f"{path.name}: window {side} px at ({x}, {y}), {time.perf_counter() - t1:.1f} s", flush=True)
    notes = {"window": args.window, "margin": args.margin, "ikc_steps": ikc_steps, "quality": args.quality,
             "previous": args.previous_models, "new": args.models_dir or "models (shipped)",
             "previous_ids": ", ".join(c.id for c in models[("previous", "manet")].cards.values()) + ", "
             + ", ".join(c.id for c in models[("previous", "ikc")].cards.values()),
             "new_ids": ", ".join(c.id for c in models[("new", "manet")].cards.values()) + ", "
             + ", ".join(c.id for c in models[("new", "ikc")].cards.values()),
             "seconds": time.perf_counter() - t0, "provider": models[("new", "manet")].provider}
    command = shlex.join(["python", "bench/real_gallery.py", *(argv if argv is not None else sys.argv[1:])])
    text = render_md(entries, args.md, args.out_dir, command, notes)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(args.md, text.encode("utf-8"), overwrite=True)  # regenerated
    total = sum((args.out_dir / f).stat().st_size for e in entries for f in e["files"].values())
    print(f"wrote {args.md} and {sum(len(e['files']) for e in entries)} pictures ({total / 1e6:.2f} MB) "
          f"in {args.out_dir}, {notes['seconds']:.0f} s")
    if total > GIT_BUDGET_BYTES:
        print(f"warning: the pictures take {total / 1e6:.1f} MB, over the {GIT_BUDGET_BYTES / 1e6:.0f} MB meant "
              "for git; lower --quality or --window", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
