"""The training loop shared by every stage.

Adam + MultiStepLR (halvings), checkpoints with everything needed to continue exactly
(``runs/<name>/ckpt_last.pt``, :mod:`engine.training.checkpoint`), a CSV log and a PNG curve
(:mod:`engine.training.runlog`), a tqdm bar and periodic Set5 validation. Runs single-process or
under ``torchrun`` with DistributedDataParallel. :func:`train` returns a :class:`TrainResult`;
shipping it to ``models/`` is the caller's step (:func:`engine.training.ship.ship`).

Exact resume: with ``workers=0`` the batches are made in this process from one
``numpy.random.Generator`` whose state is saved in the checkpoint together with the model,
optimiser, scheduler, step and torch RNG states, so a resumed run reaches the same weights as an
uninterrupted one (on CPU). With worker processes (or several replicas) every worker draws from
``default_rng([seed, rank, worker, start_step])``: a resumed run continues with fresh, but not
identical, batches.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import MultiStepLR
from torch.utils.data import DataLoader
from tqdm import tqdm

from engine.archs import build_network
from engine.archs.rrdb_sft import train_only_noise_channel
from engine.archs.weights import load_card_weights, read_card_weights
from engine.data import TrainPool, holdout_split, train_paths
from engine.modelcards import find_card
from engine.paths import models_dir as default_models_dir
from engine.progress import NULL_PROGRESS, Progress
from engine.training.batches import BatchDataset, batch_stream, make_batch_maker
from engine.training.checkpoint import CKPT_NAME, load_checkpoint, save_torch_atomic
from engine.training.config import TrainConfig
from engine.training.distributed import (
    DistInfo,
    broadcast_flag,
    gather_objects,
    init_distributed,
    mean_over_ranks,
    shutdown,
)
from engine.training.runlog import CURVE_NAME, LOG_NAME, CsvLog
from engine.training.stage_table import StageSpec, get_stage
from engine.training.stages import StageContext, build_context, compute_loss, validate

__all__ = ["CKPT_NAME", "CURVE_NAME", "LOG_NAME", "WEIGHTS_NAME", "TrainResult", "load_checkpoint", "train"]

WEIGHTS_NAME = "weights.pt"


@dataclass
class TrainResult:
    """What a finished (or time-limited) run produced.

    Attributes:
        run_dir: the run folder.
        step: the run's final step.
        base_steps: steps the starting weights already had (card, with ``init_from_models``).
        loss: mean training loss of the last logging window (NaN when no step ran in this call).
        val: last validation number (``None`` if none ran).
        val_metric: its name.
        seconds: wall time of the run (summed over resumes).
        device: the device, in words.
        weights_path: final state dict (rank 0; ``None`` on the other ranks).
        models_dir: the models folder the run read (and ships to).
        commands: the commands that made the run, first to last (one per resume).
        state: final weights (CPU copies; on every rank).
    """

    run_dir: Path
    step: int
    base_steps: int
    loss: float
    val: float | None
    val_metric: str
    seconds: float
    device: str
    weights_path: Path | None
    models_dir: Path
    commands: list[str]
    state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)


def select_device(kind: str, info: DistInfo) -> torch.device:
    """``auto`` → CUDA when available, else CPU; under DDP on CUDA, this process's GPU."""
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", info.local_rank if info.enabled else 0)
    return torch.device("cpu")


def describe_device(device: torch.device, threads: int) -> str:
    """The device in words: ``cuda (<name>)`` or ``cpu, <t> threads of <n>-core machine``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cores = os.cpu_count() or 0
    t = threads or torch.get_num_threads()
    return f"cpu, {t} thread{'s' if t != 1 else ''} of {cores}-core machine"


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _load_start_weights(model: nn.Module, cfg: TrainConfig, network: str, models_dir: Path) -> int:
    """Load the shipped weights of the card (``init_from_models``); returns the card's steps.

    With ``cfg.init_from_preset`` (a narrower preset's card), loads those weights widened to this
    preset (``adapt_state_from_preset``: same output) and returns 0. With ``cfg.init_from_scale``
    (another scale's card), copies every tensor whose name and shape
    match, leaves the rest (the upsampler) as initialised, drops the source's extra tensors (a
    second upsampling stage) and returns 0: a new network's count.
    """
    source_scale = cfg.init_from_scale if cfg.init_from_scale is not None else cfg.scale
    if cfg.init_from_preset is not None and cfg.init_from_preset != cfg.preset:
        widen = getattr(model, "adapt_state_from_preset", None)
        if widen is None:
            raise ValueError(f"{network} cannot start from another preset's weights")
        source = build_network(network, cfg.init_from_preset, cfg.scale)
        load_card_weights(find_card(network, cfg.scale, cfg.init_from_preset, models_dir), source)
        model.load_state_dict(widen(source.state_dict(), cfg.init_from_preset), strict=True)
        return 0
    card = find_card(network, source_scale, cfg.preset, models_dir)
    if source_scale == cfg.scale:
        load_card_weights(card, model)
        return card.training_steps
    state = read_card_weights(card)
    adapt = getattr(model, "adapt_state_from_scale", None)
    if adapt is not None:
        state = adapt(state, source_scale)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matching) < len(own) // 2:
        raise ValueError(f"{card.id} shares only {len(matching)} of {len(own)} tensors with a {network} at x{cfg.scale}")
    model.load_state_dict({**own, **matching}, strict=True)
    return 0


@dataclass
class _Run:
    """The live state of one run: everything a checkpoint saves, and what the loop reads."""

    cfg: TrainConfig
    spec: StageSpec
    info: DistInfo
    device: torch.device
    run_dir: Path
    models_dir: Path
    model: nn.Module
    ctx: StageContext
    optimizer: torch.optim.Optimizer
    scheduler: MultiStepLR
    scaler: torch.amp.GradScaler
    data_rng: np.random.Generator
    commands: list[str]
    base_steps: int = 0
    step: int = 0
    seconds_before: float = 0.0
    t_start: float = field(default_factory=time.monotonic)
    devices_before: list[str] = field(default_factory=list)
    step_at_start: int = 0

    @property
    def seconds(self) -> float:
        """Wall time of the run so far, summed over resumes."""
        return self.seconds_before + (time.monotonic() - self.t_start)

    @property
    def device_words(self) -> str:
        return describe_device(self.device, self.cfg.threads)

    @property
    def devices(self) -> list[str]:
        """Where the run's steps were taken, one entry per device (a session that only resumed to ship
        or re-plot adds none, so a GPU run shipped on a CPU machine still says where it trained)."""
        words = list(self.devices_before)
        if (self.step > self.step_at_start or not words) and self.device_words not in words:
            words.append(self.device_words)
        return words


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    command: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> TrainResult:
    """Run (or continue, with ``resume``) the training described by ``cfg``.

    Returns a :class:`TrainResult` on every rank. Raises ``FileExistsError`` when the run folder
    already holds a checkpoint and ``resume`` is false, ``FileNotFoundError`` when ``resume`` finds
    none.
    """
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    info = init_distributed(want_cuda)
    try:
        run = _start(cfg, info, resume, command or " ".join(shlex.quote(a) for a in sys.argv))
        return _loop(run, progress, resume)
    finally:
        shutdown(info)


def _run_dir(cfg: TrainConfig, info: DistInfo, resume: bool) -> Path:
    """The run folder (made on rank 0); raises when it holds a checkpoint without ``resume`` or none with."""
    run_dir = Path(cfg.runs_dir) / cfg.name
    ckpt_path = run_dir / CKPT_NAME
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_path.exists() and not resume:
            raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --name")
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
    return run_dir


def _initial_lr(cfg: TrainConfig, spec: StageSpec) -> float:
    return cfg.lr if cfg.lr is not None else spec.lr


def _start(cfg: TrainConfig, info: DistInfo, resume: bool, command: str) -> _Run:
    """Model, optimiser, schedule and data generator of a new run, or of a resumed one."""
    spec = get_stage(cfg.stage)
    device = select_device(cfg.device, info)
    run_dir = _run_dir(cfg, info, resume)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} replicas")
    models_dir = Path(cfg.models_dir) if cfg.models_dir else default_models_dir()
    model = build_network(spec.network, cfg.preset, cfg.scale, generator=torch.Generator().manual_seed(cfg.seed))
    if hasattr(model, "clamp_output"):
        model.clamp_output = False  # full gradients while training; graphs clamp
    base_steps = _load_start_weights(model, cfg, spec.network, models_dir) if cfg.init_from_models else 0
    model.to(device)
    ctx = build_context(spec, cfg.preset, cfg.scale, device, models_dir, code_noise=cfg.code_noise,
                        predictor_prob=cfg.predictor_prob, corrector_unroll=cfg.corrector_unroll,
                        corrector_unroll_step=cfg.corrector_unroll_step,
                        kernel_loss=cfg.kernel_loss, corrector_image_loss=cfg.corrector_image_loss)
    betas = tuple(cfg.betas) if cfg.betas is not None else spec.betas
    params = list(model.parameters())
    if cfg.trainable == "noise_channel":
        params = train_only_noise_channel(model)
    optimizer = torch.optim.Adam(params, lr=_initial_lr(cfg, spec), betas=betas)
    run = _Run(
        cfg=cfg, spec=spec, info=info, device=device, run_dir=run_dir, models_dir=models_dir, model=model, ctx=ctx,
        optimizer=optimizer,
        scheduler=MultiStepLR(optimizer, cfg.resolved_milestones(), gamma=cfg.lr_gamma),
        scaler=torch.amp.GradScaler("cuda", enabled=_amp_dtype(cfg, device) == torch.float16),
        data_rng=np.random.default_rng([cfg.seed, info.rank, 0, 0]),
        commands=[command], base_steps=base_steps,
    )
    if resume:
        _restore(run, load_checkpoint(run_dir / CKPT_NAME))
    if info.enabled:
        run.model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return run


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for full precision (bf16 also on the CPU, fp16 only on CUDA)."""
    if cfg.amp == "bf16":
        return torch.bfloat16
    if cfg.amp == "fp16" and device.type == "cuda":
        return torch.float16
    return None


def _resumed_scheduler(run: _Run, ckpt: dict[str, Any]) -> MultiStepLR:
    """The schedule at the checkpoint's step, with the config's milestones (a run can be extended).

    A new initial lr in the config restarts the schedule from it: the groups get that lr, halved
    for every milestone already passed, and a scheduler is built afresh at the checkpoint's step.
    """
    cfg, lr0, step = run.cfg, _initial_lr(run.cfg, run.spec), int(ckpt["step"])
    milestones = cfg.resolved_milestones()
    if lr0 in (ckpt["config"].get("lr"), ckpt["optimizer"]["param_groups"][0].get("initial_lr")):
        run.scheduler.load_state_dict(ckpt["scheduler"])
        run.scheduler.milestones = Counter(milestones)
        return run.scheduler
    before = sum(1 for m in milestones if m < step)  # the scheduler's first step applies a milestone at `step`
    for group in run.optimizer.param_groups:
        group["initial_lr"] = lr0
        group["lr"] = lr0 * cfg.lr_gamma**before
    return MultiStepLR(run.optimizer, milestones, gamma=cfg.lr_gamma, last_epoch=step - 1)


def _restore(run: _Run, ckpt: dict[str, Any]) -> None:
    """Put ``run`` back in the state the checkpoint ``ckpt`` saved."""
    run.model.load_state_dict(ckpt["model"], strict=True)
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler = _resumed_scheduler(run, ckpt)
    run.scaler.load_state_dict(ckpt["scaler"])
    run.step = int(ckpt["step"])
    run.seconds_before = float(ckpt["seconds"])
    run.base_steps = int(ckpt["base_steps"])
    run.step_at_start = run.step
    run.devices_before = list(ckpt.get("devices") or ([ckpt["device"]] if ckpt.get("device") else []))
    run.commands = list(ckpt.get("commands", [ckpt.get("command", "")])) + run.commands
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt.get("world_size", 1) == run.info.world_size and run.cfg.workers == 0:
        run.data_rng.bit_generator.state = ckpt["data_rng"][run.info.rank]


def _save_checkpoint(run: _Run) -> None:
    """Write ``ckpt_last.pt`` (rank 0; every rank must call it: the data generators are gathered)."""
    rng_states = gather_objects(run.data_rng.bit_generator.state, run.info)
    if not run.info.is_main:
        return
    save_torch_atomic(
        {
            "model": _unwrap(run.model).state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "step": run.step,
            "seconds": run.seconds,
            "base_steps": run.base_steps,
            "torch_rng": torch.get_rng_state(),
            "data_rng": rng_states,
            "world_size": run.info.world_size,
            "config": run.cfg.to_dict(),
            "command": run.commands[-1],
            "commands": run.commands,
            "device": run.device_words,
            "devices": run.devices,
        },
        run.run_dir / CKPT_NAME,
    )


def _batches(run: _Run) -> Iterator[dict[str, Any]]:
    """The run's batch stream: in-process from ``run.data_rng`` or from worker processes."""
    cfg = run.cfg
    if run.step >= cfg.steps:  # a finished run resumed only to ship or re-plot: no data needed
        return iter(())
    kept, _held_out = holdout_split(train_paths(cfg.train_sets), cfg.holdout_every)
    pool = TrainPool(kept, max_images=cfg.max_images, min_size=cfg.patch_size)
    code_len = run.ctx.codec.code_len if run.spec.name == "ikc_corrector" and run.ctx.codec is not None else None
    maker = make_batch_maker(cfg, run.spec.protocol, pool, cfg.batch_size // run.info.world_size,
                             with_hr=run.spec.with_hr or run.ctx.corrector_image_loss > 0, code_len=code_len)
    if cfg.workers == 0:
        return batch_stream(maker, run.data_rng)
    loader = DataLoader(
        BatchDataset(maker, cfg.seed, run.info.rank, run.step),
        batch_size=None,
        num_workers=cfg.workers,
        multiprocessing_context="fork",
        worker_init_fn=_worker_init,
        persistent_workers=True,
        prefetch_factor=4,
    )
    return iter(loader)


def _optimiser_step(run: _Run, batch_np: dict[str, Any]) -> torch.Tensor:
    """One optimiser and scheduler step on a batch; returns the (detached) loss."""
    cfg, device = run.cfg, run.device
    batch = {k: torch.as_tensor(v).to(device, non_blocking=True) for k, v in batch_np.items()}
    dtype = _amp_dtype(cfg, device)
    with torch.autocast(device_type=device.type, dtype=dtype or torch.float16, enabled=dtype is not None):
        loss = compute_loss(run.model, batch, run.ctx)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    if cfg.grad_clip > 0:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.step += 1
    return loss.detach().float()


def _validate(run: _Run) -> float | None:
    """The validation number on rank 0 (``None`` elsewhere); the model is left in training mode."""
    if not run.info.is_main:
        return None
    value = validate(_unwrap(run.model), run.ctx, run.cfg.val_images)
    run.model.train()
    return value


def _write_curve(run: _Run, log: CsvLog | None) -> None:
    if log is not None:
        log.write_curve(run.run_dir / CURVE_NAME, title=f"{run.cfg.name}: {run.spec.network} {run.cfg.preset} "
                        f"x{run.cfg.scale}", val_name=run.spec.val_metric)


def _loop(run: _Run, progress: Progress, resume: bool) -> TrainResult:
    """Train until ``cfg.steps`` (or ``max_minutes``), logging, validating and checkpointing."""
    cfg, info = run.cfg, run.info
    batches = _batches(run)
    log = CsvLog(run.run_dir / LOG_NAME, run.spec.val_metric, keep_until=run.step if resume else None) \
        if info.is_main else None
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not (info.is_main and cfg.progress_bar),
               dynamic_ncols=True, mininterval=5.0, desc=cfg.name)
    run.model.train()
    run.t_start = time.monotonic()
    loss_sum = torch.zeros((), device=run.device)
    loss_count = 0
    last_loss: float = math.nan
    last_val: float | None = None
    while run.step < cfg.steps:
        loss_sum += _optimiser_step(run, next(batches))
        loss_count += 1
        step = run.step
        progress.set_progress(step / cfg.steps, f"step {step}/{cfg.steps}")
        progress.check_cancelled()
        elapsed = run.seconds
        out_of_time = broadcast_flag(cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60.0, info, run.device)
        is_last = step >= cfg.steps or out_of_time
        do_val = is_last or (cfg.val_every > 0 and step % cfg.val_every == 0)
        if step % cfg.log_every == 0 or do_val:
            last_loss = float(mean_over_ranks(loss_sum / max(loss_count, 1), info))
            loss_sum.zero_()
            loss_count = 0
            val = _validate(run) if do_val else None
            last_val = val if val is not None else last_val
            if log is not None:
                log.append(step, last_loss, run.optimizer.param_groups[0]["lr"], elapsed, val)
                shown = {run.spec.val_metric: f"{val:.4g}"} if val is not None else {}
                bar.set_postfix(loss=f"{last_loss:.4g}", **shown)
        bar.update(1)
        if step % cfg.ckpt_every == 0 or is_last:
            _save_checkpoint(run)
            _write_curve(run, log)
        if out_of_time:
            break
    bar.close()
    return _finish(run, log, last_loss, last_val)


def _finish(run: _Run, log: CsvLog | None, loss: float, val: float | None) -> TrainResult:
    """Write ``weights.pt`` and the final curve (rank 0) and describe the run."""
    seconds = run.seconds
    state = {k: v.detach().cpu().clone() for k, v in _unwrap(run.model).state_dict().items()}
    weights_path = None
    if run.info.is_main:
        weights_path = run.run_dir / WEIGHTS_NAME
        save_torch_atomic(state, weights_path)
        _write_curve(run, log)
    return TrainResult(run.run_dir, run.step, run.base_steps, loss, val, run.spec.val_metric, seconds,
                       "; ".join(run.devices), weights_path, run.models_dir, run.commands, state)
