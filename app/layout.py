"""Dock sizes that stay sane at any window size (pure functions, no Qt).

Qt keeps dock widths in pixels: shrink the window and the side panels shrink to their minimum; enlarge
it again and all the new room goes to the central view, so the panels stay narrow (and that state is
saved and restored at the next launch). :func:`balanced_widths` says how wide each side dock should be
for a window width.
"""

from __future__ import annotations

PREFERRED_WIDTH_PX = {"queue": 215, "right": 360}
"""Width each side dock gets when the window has room for it."""
MIN_WIDTH_PX = {"queue": 150, "right": 290}
"""Below this a panel's controls are clipped or its names elided to nothing."""
MAX_SHARE = {"queue": 0.22, "right": 0.40}
"""At most this share of the window width per side dock (the image view keeps the rest)."""
MIN_WINDOW_PX = (1024, 640)
"""The smallest window size the layout is designed for (every control visible)."""


def balanced_widths(window_w: int, current: dict[str, int]) -> dict[str, int]:
    """New widths for the side docks named in ``current`` ({"queue": px, "right": px}).

    A dock narrower than it should be for this window grows back to its preferred width (as far as its
    share allows); a dock wider than its share shrinks to it; widths in between are the user's and stay.
    """
    out = {}
    for name, width in current.items():
        cap = max(MIN_WIDTH_PX[name], int(MAX_SHARE[name] * window_w))
        floor = min(PREFERRED_WIDTH_PX[name], cap)
        out[name] = int(min(max(width, floor), cap))
    return out
