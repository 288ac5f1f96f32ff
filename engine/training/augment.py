"""Photo-like LR corruptions drawn per training patch: Gaussian noise, then JPEG (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class CorruptionSettings:
    """The corruption settings (also fields of ``TrainConfig``; see its docstring): noise σ on the
    8-bit scale, JPEG qualities in 0..100, probabilities in [0, 1]."""

    noise_prob: float = 0.0
    noise_max_255: float = 15.0
    jpeg_prob: float = 0.0
    jpeg_min: int = 70
    jpeg_max: int = 100
    noise_per_channel_prob: float = 0.5

    def augment(self) -> Augment:
        """These settings as an :class:`Augment` (a copy that draws)."""
        return Augment(**{f.name: getattr(self, f.name) for f in fields(CorruptionSettings)})


@dataclass
class Augment(CorruptionSettings):
    """Optional LR corruptions (MANet robustness training): noise then JPEG, each with a probability."""

    def draw(self, rng: np.random.Generator) -> tuple[float, int | None, bool]:
        """``(noise_sigma_255, jpeg_quality or None, noise_per_channel)`` for one patch.

        The first draws are always the same four (so a run without noise or JPEG keeps the stream
        it had before these options existed); the channel mode is drawn only for a noisy patch.
        """
        u_noise, u_jpeg = rng.random(2)
        sigma = float(rng.uniform(0.0, self.noise_max_255))
        quality = int(rng.integers(self.jpeg_min, self.jpeg_max + 1))
        sigma = sigma if u_noise < self.noise_prob else 0.0
        per_channel = bool(rng.random() < self.noise_per_channel_prob) if sigma > 0 else True
        return sigma, (quality if u_jpeg < self.jpeg_prob else None), per_channel
