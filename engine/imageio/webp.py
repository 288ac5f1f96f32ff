"""WebP: recognising an animation, and the encoder (Pillow decodes)."""

from __future__ import annotations

import numpy as np

from engine.imageio.pillow import encode_pillow


def webp_is_animated(data: bytes) -> bool:
    """WebP bytes → True if the VP8X header has the animation flag set."""
    return data[12:16] == b"VP8X" and len(data) > 20 and bool(data[20] & 0x02)


def encode_webp(
    values: np.ndarray, quality: int, icc: bytes | None, exif: bytes | None
) -> bytes:
    """uint8 pixels (H×W grey, H×W×3 RGB or H×W×4 RGBA), quality 1..100 → the WebP's bytes, with
    the ICC profile and EXIF; lossless at 100, exact RGB under transparent pixels."""
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    options: dict[str, object] = {"quality": quality, "lossless": quality >= 100, "exact": True}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    return encode_pillow(values, "WEBP", options)
