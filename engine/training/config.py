"""Typed run configuration: one :class:`TrainConfig` from YAML (``yaml.safe_load``) and/or CLI flags.

A YAML file holds a flat mapping whose keys are the field names below (``batch_size: 16``);
unknown keys are rejected with a message that lists the known ones, so a typo never silently
falls back to a default. CLI flags override the file (see :func:`config_from_sources`).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, get_args, get_origin, get_type_hints

from engine.backends import DEVICES
from engine.modelcards import IKC_CORRECTION_STEPS
from engine.training.augment import CorruptionSettings
from engine.training.stage_table import STAGE_SPECS

STAGES: tuple[str, ...] = tuple(STAGE_SPECS)
"""Training stages; each trains one network (see :mod:`engine.training.stages`)."""

AMP_MODES: tuple[str, ...] = ("none", "bf16", "fp16")
TRAINABLE: tuple[str, ...] = ("all", "noise_channel")


class ConfigError(ValueError):
    """A run configuration is invalid (unknown key, wrong type, value out of range)."""


@dataclass
class TrainConfig(CorruptionSettings):
    """Everything that defines a training run.

    Attributes:
        name: run name; files go to ``<runs_dir>/<name>/``.
        stage: one of :data:`STAGES`.
        preset: network size (``paper``, ``small``, ``tiny``).
        scale: SR factor (2, 3, 4).
        steps: optimiser steps of this run (the run ends when its step counter reaches this).
        batch_size: patches per step (global; split over DDP replicas).
        patch_size: HR patch side in pixels (a multiple of ``8 * scale`` for MANet).
        lr: initial learning rate (``None``: the stage default).
        betas: Adam betas (``None``: the stage default).
        milestones: steps at which the learning rate is halved (``None``: at 50 %, 75 % and 90 %
            of ``steps``).
        lr_gamma: factor applied at each milestone.
        grad_clip: clip the gradient norm to this (0: off).
        seed: root of every random draw (weights, data workers, validation).
        workers: data-loader worker processes (0: make batches in the training process).
        threads: torch intra-op threads per process (0: leave torch's default).
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: mixed precision (``none``, ``bf16``, ``fp16``); on the CPU only ``bf16`` applies
            (``fp16`` is ignored there).
        trainable: ``all`` parameters, or ``noise_channel``: only the weights by which SFTMD's or
            RRDB-SFT's SFT layers read the noise input (``engine.archs.rrdb_sft.train_only_noise_channel``);
            the network then keeps its exact output on noise-free input (needs ``init_from_models``).
        train_sets: training-pool sets (see ``engine.data.TRAIN_SETS``).
        max_images: use only this many pool images (tests, quick runs).
        holdout_every: leave every k-th pool image out of training (``engine.data.holdout_split``),
            so that ``bench/ikc_step_curve.py --holdout-every k`` can check the network on
            photographs it never saw (0: train on all).
        noise_prob: probability that a patch gets Gaussian noise σ ~ U[0, noise_max_255] / 255.
        noise_max_255: largest noise σ on the 8-bit scale.
        jpeg_prob: probability that a patch is JPEG-compressed with q ~ U[jpeg_min, jpeg_max].
        jpeg_min: lowest JPEG quality.
        jpeg_max: highest JPEG quality.
        noise_per_channel_prob: probability that a noisy patch gets independent noise per colour
            channel (otherwise one noise plane shared by the three channels).
        ikc_convention_share: blind RRDB-SFT stage (``rrdb_sft_blind``): the share of patches made the
            IKC way instead of MANet's (isotropic σ over ``IKC_SIGMA_RANGE``, centred blur + MATLAB
            bicubic ↓, i.e. an anti-aliased downsampling as a camera's), so the network also learns
            MANet's codes of that kind of image; the photo corruptions apply to both (0: MANet's only).
        kernel_loss: MANet stage: ``l1`` (the paper's) or ``l2`` distance between estimated and true
            kernels (both summed over taps; ``l2`` gives error-proportional gradients that leave the
            constant mean-kernel solution faster on short runs).
        code_noise: corrector stage: σ of the Gaussian perturbation of the true code.
        predictor_prob: corrector stage: probability that the current code is the predictor's
            instead of a perturbed true code (needs a predictor card).
        corrector_unroll: corrector stage: before the step that is trained, move the current code
            by k steps of the corrector being trained (no gradients, its SR image re-made by the
            frozen SFTMD each time), k drawn per patch uniformly from 0..corrector_unroll; so the
            corrector also learns to correct its own iterates, as it meets them at inference (0: off).
        corrector_unroll_step: corrector stage: how much of each unrolled step moves the code, as the
            IKC loop's ``correction_step`` (``full``, or ``harmonic``: 1/k of the k-th step's change).
        corrector_image_loss: corrector stage: weight of a second loss term, the L1 distance between the
            HR patch and the frozen SFTMD's SR image made with the corrected code (gradients flow
            through SFTMD into the correction). The code L2 alone is blind to what a step does to the
            image; with this term a step is also judged by the image it leads to (0: off).
        log_every: steps between CSV rows.
        ckpt_every: steps between checkpoints (``ckpt_last.pt``, replaced atomically).
        val_every: steps between validations on Set5 (0: only at the end).
        val_images: Set5 images used for validation (1–5).
        max_minutes: stop (with a checkpoint) after this much wall time (0: no limit).
        init_from_models: start from the weights shipped in ``models/`` (card of this network,
            preset and scale); the card's step count keeps adding up when shipping.
        init_from_scale: with ``init_from_models``, start from the shipped weights of this other
            scale (e.g. 4 for a first ×2 run): every tensor whose name and shape match is copied,
            the rest (the upsampler) keeps its fresh initialisation; the step count starts at 0.
        init_from_preset: with ``init_from_models``, start from the shipped weights of this other
            (narrower) preset, widened so that the network computes the same image (RRDB-SFT:
            ``engine.archs.rrdb_sft.widen_state``); the step count starts at 0.
        ship: at the end, copy the weights into ``models/``, re-export the graph, update the card.
        runs_dir: folder of run folders.
        models_dir: models folder (``None``: ``engine.paths.models_dir()``).
        progress_bar: show a tqdm bar (rank 0 only).
        note: free text for the model card when shipping (``training.note``; empty: a continued
            run keeps the card's previous note).
    """

    name: str = "run"
    stage: str = "manet"
    preset: str = "small"
    scale: int = 4
    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 96
    lr: float | None = None
    betas: list[float] | None = None
    milestones: list[int] | None = None
    lr_gamma: float = 0.5
    grad_clip: float = 0.0
    seed: int = 0
    workers: int = 0
    threads: int = 1
    device: str = "auto"
    amp: str = "none"
    trainable: str = "all"
    train_sets: list[str] = field(default_factory=lambda: ["bsds400", "t91", "sunhays80"])
    max_images: int | None = None
    holdout_every: int = 0
    ikc_convention_share: float = 0.0
    kernel_loss: str = "l1"
    code_noise: float = 0.5
    predictor_prob: float = 0.5
    corrector_unroll: int = 0
    corrector_unroll_step: str = "full"
    corrector_image_loss: float = 0.0
    log_every: int = 10
    ckpt_every: int = 200
    val_every: int = 500
    val_images: int = 5
    max_minutes: float = 0.0
    init_from_models: bool = False
    init_from_scale: int | None = None
    init_from_preset: str | None = None
    ship: bool = False
    runs_dir: str = "runs"
    models_dir: str | None = None
    progress_bar: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` on values that cannot work."""
        if self.stage not in STAGES:
            raise ConfigError(f"unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        if self.scale not in (2, 3, 4):
            raise ConfigError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.kernel_loss not in ("l1", "l2"):
            raise ConfigError(f"kernel_loss must be 'l1' or 'l2', got {self.kernel_loss!r}")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.trainable == "noise_channel" and (self.stage not in ("sftmd", "rrdb_sft", "rrdb_sft_blind")
                                                  or not self.init_from_models):
            raise ConfigError("trainable noise_channel fine-tunes a shipped SFTMD or RRDB-SFT: it needs one of "
                              "those stages and init_from_models")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        for key in ("steps", "batch_size", "patch_size", "log_every", "ckpt_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.patch_size % self.scale:
            raise ConfigError(f"patch_size {self.patch_size} is not a multiple of the scale {self.scale}")
        if self.workers < 0 or self.threads < 0 or self.val_every < 0 or self.corrector_unroll < 0:
            raise ConfigError("workers, threads, val_every and corrector_unroll must be >= 0")
        if self.corrector_unroll_step not in IKC_CORRECTION_STEPS:
            raise ConfigError(f"corrector_unroll_step must be one of {', '.join(IKC_CORRECTION_STEPS)}, "
                              f"got {self.corrector_unroll_step!r}")
        if not 0.0 <= self.ikc_convention_share <= 1.0:
            raise ConfigError(f"ikc_convention_share is a share in [0, 1], got {self.ikc_convention_share!r}")
        if self.ikc_convention_share > 0 and self.stage != "rrdb_sft_blind":
            raise ConfigError("ikc_convention_share mixes IKC-convention patches into the blind RRDB-SFT stage "
                              "(rrdb_sft_blind) only: the other stages read each patch's true kernel")
        if not self.corrector_image_loss >= 0.0:
            raise ConfigError(f"corrector_image_loss must be >= 0, got {self.corrector_image_loss!r}")
        if self.holdout_every < 0 or self.holdout_every == 1:
            raise ConfigError(f"holdout_every must be 0 (none) or at least 2, got {self.holdout_every}")
        if not 1 <= self.val_images <= 5:
            raise ConfigError(f"val_images must be in 1..5 (Set5), got {self.val_images}")
        if self.betas is not None and len(self.betas) != 2:
            raise ConfigError(f"betas must be two numbers, got {self.betas}")
        probs = (self.noise_prob, self.jpeg_prob, self.predictor_prob, self.noise_per_channel_prob)
        if not all(0 <= p <= 1 for p in probs):
            raise ConfigError("noise_prob, jpeg_prob, predictor_prob and noise_per_channel_prob are probabilities in [0, 1]")
        if not 0 <= self.jpeg_min <= self.jpeg_max <= 100:
            raise ConfigError(f"need 0 <= jpeg_min <= jpeg_max <= 100, got {self.jpeg_min}, {self.jpeg_max}")
        if self.init_from_scale is not None and (self.init_from_scale not in (2, 3, 4) or not self.init_from_models):
            raise ConfigError(f"init_from_scale must be 2, 3 or 4 and needs init_from_models, got {self.init_from_scale}")
        if self.init_from_preset is not None and (not self.init_from_models or self.init_from_scale is not None):
            raise ConfigError("init_from_preset needs init_from_models and no init_from_scale")
        if not self.name or "/" in self.name or "\\" in self.name:
            raise ConfigError(f"run name must be a plain folder name, got {self.name!r}")

    @property
    def lr_patch_size(self) -> int:
        """LR patch side in pixels (``patch_size // scale``)."""
        return self.patch_size // self.scale

    def resolved_milestones(self) -> list[int]:
        """Halving steps: ``milestones`` or 50 %, 75 % and 90 % of ``steps``."""
        if self.milestones is not None:
            return sorted(int(m) for m in self.milestones)
        return sorted({max(1, int(self.steps * f)) for f in (0.5, 0.75, 0.9)})

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (for YAML/JSON dumps and checkpoints)."""
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    """Names of the :class:`TrainConfig` fields, in declaration order."""
    return [f.name for f in fields(TrainConfig)]


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Check/convert one value against the field's type hint; :class:`ConfigError` on mismatch."""
    origin = get_origin(hint)
    args = get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"config key {name!r} may not be null")
    if args and type(None) in args:  # Optional[X]
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0])
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {name!r} expects a list, got {value!r}")
        (item,) = args
        return [_coerce(f"{name}[]", v, item) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {name!r} expects true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"config key {name!r} expects an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {name!r} expects a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {name!r} expects a string, got {value!r}")
        return value
    return value


def config_from_dict(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """Build a :class:`TrainConfig` from a mapping; unknown keys and wrong types raise :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    known = field_names()
    unknown = [k for k in data if k not in known]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), known, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(hints)}; known keys: {', '.join(known)}"
        )
    types = get_type_hints(TrainConfig)
    values = {k: _coerce(k, v, types[k]) for k, v in data.items()}
    try:
        return TrainConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_yaml_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML run config (``yaml.safe_load``), apply ``overrides`` and validate."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {p} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from exc
    data = dict(data or {})
    data.update(overrides or {})
    return config_from_dict(data, where=f"config file {p}")


def config_from_sources(path: str | Path | None, overrides: Mapping[str, Any]) -> TrainConfig:
    """A config from an optional YAML file plus CLI overrides (``None`` values are ignored)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if path is None:
        return config_from_dict(given, where="command line")
    return load_yaml_config(path, given)
