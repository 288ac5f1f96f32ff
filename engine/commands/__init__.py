"""Sub-commands of ``kernelscope-cli``, one module each.

Each module exposes ``NAME`` (the sub-command), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code). Modules import heavy libraries (torch, onnxruntime) inside
``run`` only, so ``kernelscope-cli --help`` stays fast. ``engine.cli`` lists them explicitly;
``train`` lives with the training code, in :mod:`engine.training.command`.
"""

from __future__ import annotations


def auto_or_int(text: str, minimum: int, what: str) -> int | None:
    """``None`` for ``auto``, else ``text`` as a whole number ≥ ``minimum``; ValueError naming ``what`` otherwise."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what} {text!r}: give 'auto' or a whole number (at least {minimum})") from None
    if value < minimum:
        raise ValueError(f"{what} must be 'auto' or at least {minimum}, got {value}")
    return value
