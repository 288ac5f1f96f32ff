"""What File ▸ Save writes, free of Qt: the result, its kernels, a side-by-side comparison, a region mask.

Every save refuses to replace one of the opened images (:class:`engine.outputs.OutputPlan`); an
existing other file is replaced (the file dialog asked). A save that does not happen raises
:class:`SaveRefused` whose text is the one line the studio shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.imageio import Image, ImageIOError, write_image
from engine.masks import write_mask
from engine.outputs import OutputPlan, OutputRefused, kernels_name, output_name

from app.analysis import comparison_picture
from app.session import QueueEntry, StudioSession


class SaveRefused(Exception):
    """A save that did not happen; the message says why, in one line."""


def suggested_names(entry: QueueEntry | None) -> dict[str, str]:
    """File names the save dialogs start with: ``result``, ``kernels``, ``comparison`` (named as the
    command line names an upscaled image, :func:`engine.outputs.output_name`)."""
    result = None if entry is None else entry.result
    image = "result.png" if result is None else output_name(Path(entry.name).stem, result.scale, result.method, "png")
    return {"result": image, "kernels": kernels_name(image), "comparison": Path(image).stem + "_compare.png"}


def check_not_an_input(path: Path, inputs: list[Path]) -> None:
    """Raise :class:`SaveRefused` when ``path`` is one of the opened images: a save never replaces an input."""
    try:
        OutputPlan(inputs, overwrite=True).check(path, "file")
    except OutputRefused as exc:
        raise SaveRefused(f"Not saved, refusing: {exc}") from None


def save_result(entry: QueueEntry | None, path: Path, inputs: list[Path], *, ikc_iteration: int, quality: int = 95,
                bit_depth: int | None = None) -> Path:
    """The SR image on show (for IKC: iteration ``ikc_iteration``) in the format of ``path``'s suffix;
    16-bit TIFF/PNG keep 16 bit (TIFF defaults to it); alpha, ICC and EXIF are kept."""
    if entry is None or entry.result is None:
        raise SaveRefused("Nothing to save yet: run an upscale first.")
    image = entry.result.image
    if entry.result.ikc is not None:  # save the iteration on show
        image = image.with_pixels(StudioSession.ikc_iteration(entry.result, ikc_iteration).sr_rgb_f32,
                                  image.alpha_f32)
    if bit_depth is None and Path(path).suffix.lower() in (".tif", ".tiff"):
        bit_depth = 16
    check_not_an_input(path, inputs)
    try:
        return write_image(path, image, bit_depth=bit_depth, quality=quality, overwrite=True)
    except ImageIOError as exc:
        raise SaveRefused(str(exc)) from None


def save_kernel_map(entry: QueueEntry | None, path: Path, inputs: list[Path]) -> Path:
    """MANet's kernel map, or every IKC iteration's kernel and code, as ``.npz``."""
    result = entry.result if entry is not None else None
    if result is None or (result.kernel_map is None and result.ikc is None):
        raise SaveRefused("No kernels to save: run MANet or IKC first.")
    check_not_an_input(path, inputs)
    try:
        saver = result.kernel_map if result.kernel_map is not None else result.ikc
        return saver.save_npz(path, overwrite=True)
    except (OSError, ImageIOError) as exc:
        raise SaveRefused(f"Could not save {Path(path).name}: {exc}") from None


def save_comparison(entry: QueueEntry | None, path: Path, inputs: list[Path], *, quality: int = 95) -> Path:
    """The input (nearest-enlarged) and the result side by side."""
    if entry is None or entry.result is None:
        raise SaveRefused("Nothing to compare yet: run an upscale first.")
    pic = comparison_picture(entry.image.rgb_f32, entry.result.image.rgb_f32)
    check_not_an_input(path, inputs)
    try:
        return write_image(path, Image(pic, icc_profile=entry.image.icc_profile), quality=quality, overwrite=True)
    except ImageIOError as exc:
        raise SaveRefused(str(exc)) from None


def save_mask(labels: np.ndarray, path: Path, inputs: list[Path]) -> Path:
    """The painted regions as a colour PNG (:func:`engine.masks.write_mask`)."""
    check_not_an_input(path, inputs)
    try:
        return write_mask(path, labels, overwrite=True)
    except ImageIOError as exc:
        raise SaveRefused(str(exc)) from None
