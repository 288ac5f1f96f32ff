"""The one strict loader of a model card's PyTorch weights (``weights_only``, sha256-checked)."""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import ModelError
from engine.modelcards import ModelCard, regenerate_hint, verify_weights


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_card_weights(card: ModelCard, module: nn.Module) -> nn.Module:
    """Load ``card``'s weights file into ``module`` strictly (every key, every shape); returns ``module``.

    The file is checked against the card's sha256 and read with ``weights_only=True`` (tensors and
    plain values only); a ``{"state_dict": ...}`` wrapper is unwrapped. Raises :class:`ModelError`
    naming the file when it is missing, altered, unreadable or does not fit the network.
    """
    state = read_card_weights(card)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"model weights {card.weights_path} do not fit {card.describe()}: {one_line(exc)}") from exc
    return module


def read_card_weights(card: ModelCard) -> dict[str, torch.Tensor]:
    """``card``'s weights file (sha256 checked, ``weights_only``) → its state dict; :class:`ModelError`
    naming the file when it is missing, altered or unreadable."""
    verify_weights(card)
    path = card.weights_path
    assert path is not None  # verify_weights checked it
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:  # a missing or broken torch installation, not a bad file: the caller names it
        raise
    except Exception as exc:
        raise ModelError(f"model weights {path} of model {card.id} cannot be read ({type(exc).__name__}: "
                         f"{one_line(exc, 200)}); regenerate them with {regenerate_hint(card.id)}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return state
