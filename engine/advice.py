"""Advice for the user about how well a method's networks fit an input: one line, or nothing.

Today one case: networks trained on clean images only (their cards' ``training.noise``) run on a photo
that reads noisy or JPEG-compressed, where a method trained with noise and JPEG does better (measured:
``docs/RESULTS_PHOTO.md``). The studio shows the line as a notice after the run; ``kernelscope-cli
upscale`` lists it with the run's notices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from engine.errors import ModelError
from engine.imageio import Image
from engine.methods import METHOD_TABLE, networks_for
from engine.modelcards import ModelCard, find_card
from engine.noise import NoiseEstimate

__all__ = ["NOISY_READING_255", "LOSSY_JPEG_QUALITY", "PHOTO_METHOD", "CardsFor", "shipped_cards", "photo_input_hint"]

CardsFor = Callable[[str, int], Mapping[str, ModelCard] | None]


def shipped_cards(method: str, scale: int, models_dir: str | Path | None = None) -> dict[str, ModelCard] | None:
    """The cards of ``method``'s networks at ``scale`` in ``models_dir`` (default: the shipped
    models), read without loading any network; None for a method without networks."""
    networks = networks_for(method)
    return {n: find_card(n, scale, models_dir=models_dir) for n in networks} if networks else None


NOISY_READING_255 = 4.0
"""A whole-image noise estimate (:mod:`engine.noise`, σ/255) from which an input reads as a noisy photo:
clean 8-bit photos read about 0.5–3, sensor noise of σ 5/255 about 5."""

LOSSY_JPEG_QUALITY = 90
"""A JPEG saved at this quality or lower (:class:`engine.imageio.jpegquality.JpegQuality`) counts as compressed."""

PHOTO_METHOD = "manet"
"""The blind method to point to when another one's networks were trained on clean images only."""


def _trained_on_photos(cards: Mapping[str, ModelCard] | None, every: bool) -> bool:
    """Every (``every``) or any of these networks was trained with noise or JPEG (its card says so)."""
    flags = [card.trained_on_photo_degradations for card in cards.values()] if cards else []
    return bool(flags) and (all(flags) if every else any(flags))


def photo_input_hint(method: str, scale: int, image: Image, noise: NoiseEstimate | None,
                     cards_for: CardsFor = shipped_cards) -> str | None:
    """One line when ``method``'s networks at ``scale`` were trained on clean images only (their cards'
    ``training.noise``) and the input reads as noisy (:data:`NOISY_READING_255`) or compressed
    (:data:`LOSSY_JPEG_QUALITY`), naming :data:`PHOTO_METHOD` when its networks were trained with noise
    and JPEG; else None (also for that method itself and for methods without networks).

    ``cards_for(method, scale)``: the cards of the method's networks by network name (None: none);
    the cards of the models folder in use, e.g. a loaded ModelSet's. A failing lookup gives None."""
    reasons = []
    if noise is not None and noise.sigma_255 >= NOISY_READING_255:
        reasons.append(f"noise ≈ {noise.sigma_255:.1f}/255")
    if image.jpeg_quality is not None and image.jpeg_quality.quality <= LOSSY_JPEG_QUALITY:
        reasons.append(image.jpeg_quality.describe())
    if not reasons or method == PHOTO_METHOD:
        return None
    try:
        cards = cards_for(method, scale)
        if (not cards or _trained_on_photos(cards, every=False)
                or not _trained_on_photos(cards_for(PHOTO_METHOD, scale), every=True)):
            return None
    except (ModelError, OSError, RuntimeError):  # no photo-trained alternative to name; the result stands
        return None
    return (f"{METHOD_TABLE[method].short} ×{scale} was trained on clean images only, and this input reads as "
            f"{' and '.join(reasons)}: {METHOD_TABLE[PHOTO_METHOD].label}, trained with noise and JPEG, "
            "usually does better on such photos.")
