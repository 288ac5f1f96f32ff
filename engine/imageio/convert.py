"""Value conversions between the float pixels of :class:`~engine.imageio.image.Image` ([0, 1]) and
the integers files store (uint8 [0, 255], uint16 [0, 65535]).

:func:`to_u8` is the one float → uint8 conversion of Kernelscope (files, display, degradation,
visualisations all use it), so NaN, inf and out-of-range values map the same way everywhere.
Large arrays are converted a block at a time: the float temporary stays about 16 MB.
"""

from __future__ import annotations

import numpy as np

CONVERT_ELEMENTS = 1 << 22
"""Values converted per step (float32 temporary of 16 MB)."""


def to_u8(values_01: np.ndarray, full_scale: float = 1.0) -> np.ndarray:
    """Float values in [0, 1] (any shape) → ``uint8`` in [0, 255], same shape.

    Computed in float32: ``rint(clip(v × 255 / full_scale, 0, 255))`` (round half to even); NaN → 0,
    −inf → 0, +inf → 255, values below 0 → 0, above 1 → 255. ``full_scale`` is the value that
    becomes 255 for values in [0, full_scale] (a heat map scaled to its maximum); the division is
    skipped at 1.
    """
    return _float_to_uint(values_01, 255.0, np.uint8, full_scale)


def to_u16(values_01: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] (any shape) → ``uint16`` in [0, 65535], same shape; as :func:`to_u8`
    with 65535 for 255."""
    return _float_to_uint(values_01, 65535.0, np.uint16)


# The names these had before :func:`to_u8` became the one conversion for every caller.
rgb_to_u8 = to_u8
rgb_to_u16 = to_u16


def _float_to_uint(
    values: np.ndarray, scale: float, dtype: type[np.unsignedinteger], full_scale: float = 1.0
) -> np.ndarray:
    values = np.asarray(values)
    out = np.empty(values.shape, dtype=dtype)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)  # a view unless ``values`` is strided
    for i in range(0, flat_in.size, CONVERT_ELEMENTS):
        scaled = np.multiply(flat_in[i : i + CONVERT_ELEMENTS], np.float32(scale), dtype=np.float32)
        if full_scale != 1.0:
            np.divide(scaled, np.float32(full_scale), out=scaled)
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=scale, neginf=0.0)
        np.clip(scaled, 0.0, scale, out=scaled)
        np.rint(scaled, out=scaled)
        flat_out[i : i + CONVERT_ELEMENTS] = scaled
    return out


def uint_to_float(values: np.ndarray) -> np.ndarray:
    """``uint8`` / ``uint16`` / ``bool`` / float array → a new float32 array in [0, 1] (floats are
    clipped to [0, 1], NaN → 0)."""
    if values.dtype == np.uint8:
        out = values.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
    elif values.dtype == np.uint16:
        out = values.astype(np.float32)
        out *= np.float32(1.0 / 65535.0)
    elif values.dtype == np.bool_:
        out = values.astype(np.float32)
    else:  # floating point, assumed to be in [0, 1]
        out = np.array(values, dtype=np.float32)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
    return out


def all_finite(values: np.ndarray, rows: int = 256) -> bool:
    """No NaN or inf in ``values`` (checked a strip of rows at a time: no full-size mask)."""
    return all(np.isfinite(values[i : i + rows]).all() for i in range(0, values.shape[0], rows))


def change_depth(pixels: np.ndarray, depth: int, *, keep_alpha: bool) -> np.ndarray:
    """Integer pixels H×W×3/4 (uint8 or uint16) at ``depth`` (8 or 16) bits, alpha kept or dropped;
    copied only when that changes them.

    16 → 8 bit is ``round(v / 257)``, what :func:`to_u8` gives for ``v / 65535``; 8 → 16 is
    ``v * 257``. Converted a strip of rows at a time.
    """
    values = pixels if keep_alpha or pixels.shape[2] == 3 else pixels[:, :, :3]
    have = 16 if values.dtype == np.uint16 else 8
    if have == depth:
        return values
    out = np.empty(values.shape, np.uint16 if depth == 16 else np.uint8)
    rows = max(1, CONVERT_ELEMENTS // max(1, values[0].size))
    for r0 in range(0, values.shape[0], rows):
        part = values[r0 : r0 + rows].astype(np.uint32)
        out[r0 : r0 + rows] = part * 257 if depth == 16 else (part + 128) // 257
    return out
