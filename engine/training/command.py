"""``kernelscope-cli train`` and ``python -m engine.training``: train one stage (MANet, RRDB-SFT, SFTMD, IKC predictor/corrector).

Options come from an optional YAML file (``--config configs/x.yaml``, keys = the fields of
:class:`engine.training.config.TrainConfig`) and flags, flags winning. Examples::

    kernelscope-cli train --config configs/manet_small_x4.yaml
    kernelscope-cli train --config configs/manet_small_x4.yaml --resume
    torchrun --nproc_per_node 2 -m engine.training --config configs/manet_small_x4.yaml --device cuda

Runs write ``runs/<name>/`` (checkpoint, ``log.csv``, ``curve.png``, ``weights.pt``); ``--ship``
copies the result into ``models/`` (weights, re-exported graph, card).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from engine.modelcards import IKC_CORRECTION_STEPS
from engine.training.config import STAGES, TRAINABLE, ConfigError, config_from_sources

NAME = "train"
HELP = "Train a network stage on the training pool (checkpoints, CSV log, curve, --ship to models/)."



def _bool_flag(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    parser.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction,
                        default=None, help=help_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` options on ``parser`` (unset flags leave the YAML/default value)."""
    from engine.backends import DEVICES

    parser.add_argument("--config", type=Path, help="YAML run config (keys: TrainConfig fields)")
    parser.add_argument("--resume", action="store_true", help="continue runs/<name>/ckpt_last.pt exactly")
    parser.add_argument("--name", help="run name (folder under runs/)")
    parser.add_argument("--stage", choices=STAGES, help="what to train")
    parser.add_argument("--preset", help="network size: paper, medium (RRDB-SFT, SFTMD), small or tiny")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), help="SR factor")
    parser.add_argument("--steps", type=int, help="optimiser steps of this run")
    parser.add_argument("--batch-size", type=int, help="patches per step (global)")
    parser.add_argument("--patch-size", type=int, help="HR patch side in px")
    parser.add_argument("--lr", type=float, help="initial learning rate (default: the stage's)")
    parser.add_argument("--milestones", type=int, nargs="+", help="steps where the lr is halved")
    parser.add_argument("--seed", type=int, help="root seed")
    parser.add_argument("--kernel-loss", choices=("l1", "l2"), help="MANet kernel loss (default l1)")
    parser.add_argument("--workers", type=int, help="data worker processes (0: in-process, exact resume)")
    parser.add_argument("--threads", type=int, help="torch threads per process (0: torch default)")
    parser.add_argument("--device", choices=DEVICES, help="training device")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision (CUDA only)")
    parser.add_argument("--corrector-unroll", type=int,
                        help="corrector: up to N of its own steps before the trained one (default 0)")
    parser.add_argument("--trainable", choices=TRAINABLE,
                        help="all parameters (default), or only SFTMD's/RRDB-SFT's noise-channel weights")
    parser.add_argument("--corrector-unroll-step", choices=IKC_CORRECTION_STEPS,
                        help="corrector: how much of each unrolled step moves the code (default full)")
    parser.add_argument("--corrector-image-loss", type=float,
                        help="corrector: weight of L1(SFTMD SR with the corrected code, HR) added to the code loss (default 0)")
    parser.add_argument("--max-images", type=int, help="use only this many training images")
    parser.add_argument("--ckpt-every", type=int, help="steps between checkpoints")
    parser.add_argument("--val-every", type=int, help="steps between Set5 validations (0: end only)")
    parser.add_argument("--log-every", type=int, help="steps between CSV rows")
    parser.add_argument("--val-images", type=int, help="Set5 images used for validation (1-5)")
    parser.add_argument("--holdout-every", type=int, help="leave every k-th pool image out of training (0: none)")
    parser.add_argument("--max-minutes", type=float, help="stop with a checkpoint after this wall time")
    parser.add_argument("--runs-dir", help="folder of run folders (default runs)")
    parser.add_argument("--models-dir", help="models folder (default: the project's models/)")
    parser.add_argument("--note", help="text for the model card's training.note when shipping "
                        "(default: a continued run keeps the card's note)")
    _bool_flag(parser, "init-from-models", "start from the weights shipped in models/")
    parser.add_argument("--init-from-preset",
                        help="with --init-from-models: start from this narrower preset's weights, widened (same output)")
    parser.add_argument("--init-from-scale", type=int, choices=(2, 3, 4),
                        help="with --init-from-models: start from this other scale's weights (shapes that match)")
    _bool_flag(parser, "ship", "copy the final weights to models/, re-export the graph, update the card")
    _bool_flag(parser, "progress-bar", "show a tqdm progress bar")


_KEYS = (
    "name", "stage", "preset", "scale", "steps", "batch_size", "patch_size", "lr", "milestones", "seed", "kernel_loss",
    "workers", "threads", "device", "amp", "max_images", "holdout_every", "ckpt_every", "val_every", "log_every", "val_images",
    "trainable", "corrector_unroll", "corrector_unroll_step", "corrector_image_loss", "max_minutes", "runs_dir",
    "models_dir", "init_from_models", "init_from_scale", "init_from_preset", "ship", "progress_bar", "note",
)


def _command_line() -> str:
    """This process's command, as a user would type it again."""
    argv = [shlex.quote(a) for a in sys.argv]
    if sys.argv[0].replace("\\", "/").endswith("engine/training/__main__.py"):
        return " ".join(["python -m engine.training", *argv[1:]])
    if "train" in sys.argv[1:]:
        return " ".join(["kernelscope-cli", *argv[sys.argv.index("train"):]])
    return " ".join(argv)


def run(args: argparse.Namespace) -> int:
    """Build the config, train, ship with ``--ship``, print a summary; exit code 0, 1 on errors, 2 on a bad config."""
    # torch (the train extra) loads here, not at import: the CLI's other commands and ``--help``
    # work without it
    from engine.training.ship import ship
    from engine.training.trainer import train

    overrides = {k: getattr(args, k, None) for k in _KEYS}
    try:
        cfg = config_from_sources(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = train(cfg, resume=args.resume, command=_command_line())
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    val = "n/a" if result.val is None else f"{result.val:.5g}"
    print(f"{cfg.name}: step {result.step} (+{result.base_steps} before), loss {result.loss:.5g}, "
          f"Set5 {result.val_metric} {val}, {result.seconds / 60:.1f} min on {result.device}")
    if cfg.ship and result.weights_path is not None:  # rank 0 ships
        print(f"shipped: {ship(cfg, result)}")
    return 0
