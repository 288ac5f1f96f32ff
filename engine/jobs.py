"""The studio's upscale jobs as plain functions (no Qt): what its engine worker runs for "Run" and for
"Upscale all". Outputs are named as the command line names them (:func:`engine.outputs.output_name`).

Models come from ``models_for(method, scale)``, a loader the caller owns (the studio caches one
:class:`~engine.pipeline.models.ModelSet` per method, scale and device); it returns None for bicubic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.imageio import Image, ImageWriteError, OutputExistsError, read_image, write_image
from engine.outputs import check_file_name, numbered_name, output_name
from engine.pipeline.models import ModelSet
from engine.progress import NULL_PROGRESS, Progress
from engine.upscale import UpscaleOptions, UpscaleResult, upscale

ModelsFor = Callable[[str, int], ModelSet | None]
"""``models_for(method, scale)``: the loaded models for a run (None for bicubic)."""

FREE_NAMES_TRIED = 10_000
"""How many names "Upscale all" tries for one result (``a_x4_manet.png``, ``a_x4_manet_1.png``, ...)."""


def upscale_job(image: Image, options: UpscaleOptions, models_for: ModelsFor, *,
                progress: Progress = NULL_PROGRESS) -> UpscaleResult:
    """Load the models (reported as the phases "loading models" and "models loaded", where an ETA
    clock may start) and upscale ``image``."""
    progress.set_progress(0.0, "loading models")
    models = models_for(options.method, options.scale)
    progress.set_progress(0.0, "models loaded")
    return upscale(image, options, models, progress=progress)


def batch_job(models_for: ModelsFor, path: Path | None, image: Image | None, name: str, options: UpscaleOptions,
              folder: Path, *, progress: Progress = NULL_PROGRESS) -> Path:
    """One image of "Upscale all": read ``path`` (when ``image`` is None), upscale, and write the PNG
    ``output_name(stem of name, scale, method, "png")`` into ``folder``, or the first numbered
    alternative that is free. Returns the path written."""
    if image is None:
        image = read_image(path)
    result = upscale(image, options, models_for(options.method, options.scale), progress=progress)
    first = output_name(Path(name).stem, options.scale, options.method, "png")
    problem = check_file_name(numbered_name(first, FREE_NAMES_TRIED - 1), "output name")
    if problem:
        raise ImageWriteError(folder / first, problem)
    # the first free name, claimed by the writer itself (no-replace publish): never an existing file,
    # so neither an input nor a result written meanwhile (another job, another program) is replaced
    for n in range(FREE_NAMES_TRIED):
        try:
            return write_image(folder / numbered_name(first, n), result.image, overwrite=False)
        except OutputExistsError:
            continue
    raise ImageWriteError(folder / first, f"no free name (tried {FREE_NAMES_TRIED})")
