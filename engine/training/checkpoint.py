"""Checkpoint files of a run: ``torch.save`` through the one atomic writer, and a safe load.

A checkpoint is a dict of tensors and plain values (see ``engine.training.trainer`` for its keys);
it is replaced as a whole or not at all, and loaded with ``weights_only=True`` so a tampered file
cannot run code.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from engine.atomic import write_atomic

CKPT_NAME = "ckpt_last.pt"


def save_torch_atomic(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` (parents created), replacing it atomically; returns nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue(), overwrite=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by the trainer (CPU tensors and plain values, ``weights_only=True``).

    Raises ValueError naming the file when it holds anything else or is not a training checkpoint.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: refusing to resume from it: it holds more than tensors and plain values "
                         f"({first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint of this program")
    return ckpt
