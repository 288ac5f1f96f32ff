"""Where an evaluation ran and with which networks: the environment and model entries of the results."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from engine.modelcards import ikc_correction_step_from_card


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(provider: str) -> dict[str, Any]:
    """An execution provider name → where the evaluation ran: provider, CPU, core count, library versions."""
    env: dict[str, Any] = {
        "provider": provider,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - a dependency
        pass
    if "cuda" in provider.lower():
        try:
            import torch

            if torch.cuda.is_available():
                env["gpu"] = torch.cuda.get_device_name(0)
        except ImportError:  # pragma: no cover
            pass
    return env


def describe_models(models: Any) -> list[dict[str, Any]]:
    """A loaded ModelSet → one entry per card: id, network, preset, parameters, training steps, wall time, device."""
    out = []
    for network, card in models.cards.items():
        tr = card.training or {}
        out.append({
            "id": card.id,
            "network": network,
            "preset": card.preset,
            "parameters": card.parameters,
            "training_steps": card.training_steps,
            "training_wall_time_s": tr.get("wall_time_s"),
            "training_device": tr.get("device"),
            "training_date": tr.get("date"),
            "graph_sha256": card.graph_sha256,
        })
        if network == "ikc_corrector":  # how the loop applies its corrections (the card says)
            out[-1]["ikc_correction_step"] = ikc_correction_step_from_card(card)
    return out
