"""How strongly a JPEG file was compressed: the IJG quality setting its luma quantisation table matches.

A value the reader attaches to an :class:`~engine.imageio.image.Image` read from a JPEG (the table
comes from the header Pillow parses, :mod:`engine.imageio.pillow`); shown in the studio's inspector
and printed by ``kernelscope-cli estimate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["JPEG_STD_LUMA_QTABLE", "JpegQuality", "ijg_luma_qtable"]

# The luminance quantisation table of the JPEG standard (ITU-T T.81, Annex K, Table K.1), natural
# order. The IJG library (libjpeg, and so Pillow, most software and many cameras) scales it by the
# quality setting q: factor 5000/q below 50, 200 − 2q from 50 on (integer arithmetic), each step
# (base · factor + 50) // 100, kept within 1…255 for baseline files.
JPEG_STD_LUMA_QTABLE: tuple[int, ...] = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


def ijg_luma_qtable(quality: int) -> np.ndarray:
    """The 64 luma quantisation steps (natural order) the IJG library writes at ``quality`` 1…100."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    factor = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.array(JPEG_STD_LUMA_QTABLE, np.int64) * factor + 50) // 100, 1, 255)


@dataclass(frozen=True)
class JpegQuality:
    """How strongly a JPEG file was compressed, read from its luma quantisation table.

    ``quality``: the IJG quality setting (1…100) whose table is closest to the file's (mean absolute
    log ratio of the 64 steps; ties go to the higher quality); ``standard``: the file's table is
    exactly that IJG table (Pillow, libjpeg and much software), not a camera's or editor's own, for
    which ``quality`` is only the nearest equivalent.
    """

    quality: int
    standard: bool

    @classmethod
    def from_qtable(cls, table: tuple[int, ...] | np.ndarray) -> "JpegQuality":
        """The estimate for a 64-step luma table in natural order."""
        steps = np.asarray(table, np.int64).reshape(-1)
        if steps.size != 64 or np.any(steps < 1):
            raise ValueError("a JPEG quantisation table has 64 steps of at least 1")
        best, best_cost = 100, np.inf
        for q in range(100, 0, -1):
            ijg = ijg_luma_qtable(q)
            if np.array_equal(ijg, steps):
                return cls(q, True)
            cost = float(np.mean(np.abs(np.log(steps / ijg))))
            if cost < best_cost:
                best, best_cost = q, cost
        return cls(best, False)

    def describe(self) -> str:
        """``"JPEG q 85"`` for standard tables, ``"JPEG ≈ q 85 (own tables)"`` otherwise."""
        return f"JPEG q {self.quality}" if self.standard else f"JPEG ≈ q {self.quality} (own tables)"
