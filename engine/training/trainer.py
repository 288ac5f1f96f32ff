"""The training loop shared by every stage.

Adam + MultiStepLR (halvings), checkpoints with everything needed to continue exactly
(``runs/<name>/ckpt_last.pt``, written to a temporary file and renamed), a CSV log
(``log.csv``: step, loss, lr, seconds, validation), a tqdm bar, periodic Set5 validation and a PNG
curve (``curve.png``). Runs single-process or under ``torchrun`` with DistributedDataParallel.

Exact resume: with ``workers=0`` the batches are made in this process from one
``numpy.random.Generator`` whose state is saved in the checkpoint together with the model,
optimiser, scheduler, step and torch RNG states, so a resumed run reaches the same weights as an
uninterrupted one (on CPU). With worker processes (or several replicas) every worker draws from
``default_rng([seed, rank, worker, start_step])``: a resumed run continues with fresh, but not
identical, batches.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from engine.atomic import write_atomic
from engine.progress import NULL_PROGRESS, Progress
from engine.training.batches import Augment, BatchDataset, IkcBatchMaker, ManetBatchMaker, batch_stream
from engine.training.config import TrainConfig
from engine.training.distributed import DistInfo, broadcast_flag, init_distributed, mean_over_ranks, shutdown
from engine.training.stages import StageContext, build_context, code_len, compute_loss, get_stage, validate

CKPT_NAME = "ckpt_last.pt"
LOG_NAME = "log.csv"
CURVE_NAME = "curve.png"
WEIGHTS_NAME = "weights.pt"


@dataclass
class TrainResult:
    """What a finished (or time-limited) run produced.

    Attributes:
        run_dir: the run folder.
        step: the run's final step.
        base_steps: steps the starting weights already had (card, with ``init_from_models``).
        loss: mean training loss of the last logging window.
        val: last validation number (``None`` if none ran).
        val_metric: its name.
        seconds: wall time of the run (summed over resumes).
        device: the device, in words.
        weights_path: final state dict (rank 0).
        state: final weights (CPU copies; on every rank).
        shipped_card: the updated card, when shipped.
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
    state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    shipped_card: Path | None = None


def select_device(kind: str, info: DistInfo) -> torch.device:
    """``auto`` → CUDA when available, else CPU; under DDP on CUDA, this process's GPU."""
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", info.local_rank if info.enabled else 0)
    return torch.device("cpu")


def describe_device(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cores = os.cpu_count() or 0
    t = threads or torch.get_num_threads()
    return f"cpu, {t} thread{'s' if t != 1 else ''} of {cores}-core machine"


def _atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through the one atomic writer (a checkpoint is replaced as a whole or not at all)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(path, buffer.getvalue(), overwrite=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`train`, loaded with ``weights_only=True``: tensors and plain
    values only, so a tampered file cannot run code. Raises ValueError naming the file otherwise."""
    import pickle

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path}: refusing to resume from it: it holds more than tensors and plain values "
                         f"({first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint of this program")
    return ckpt


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _state_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}


class CsvLog:
    """``log.csv`` with one row per logging step; rows past a resumed checkpoint are dropped."""

    def __init__(self, path: Path, val_metric: str, keep_until: int | None) -> None:
        self.path = path
        self.header = ["step", "loss", "lr", "seconds", f"val_{val_metric}"]
        rows: list[list[str]] = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= keep_until]
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(self.header)
        w.writerows(rows)
        write_atomic(path, text.getvalue().encode("utf-8"), overwrite=True)

    def append(self, step: int, loss: float | None, lr: float, seconds: float, val: float | None) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow([
                step,
                "" if loss is None else f"{loss:.6g}",
                f"{lr:.3g}",
                f"{seconds:.1f}",
                "" if val is None else f"{val:.6g}",
            ])

    def read(self) -> tuple[list[float], list[float], list[float], list[float]]:
        """(steps, losses, val steps, vals) from the file."""
        steps, losses, vsteps, vals = [], [], [], []
        with self.path.open(newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if not row:
                    continue
                if row[1]:
                    steps.append(float(row[0]))
                    losses.append(float(row[1]))
                if row[4]:
                    vsteps.append(float(row[0]))
                    vals.append(float(row[4]))
        return steps, losses, vsteps, vals


def _make_maker(cfg: TrainConfig, pool: Any, batch: int, ctx: StageContext) -> Any:
    augment = Augment(cfg.noise_prob, cfg.noise_max_255, cfg.jpeg_prob, cfg.jpeg_min, cfg.jpeg_max,
                      cfg.noise_per_channel_prob)
    cls = ManetBatchMaker if ctx.spec.protocol == "manet" else IkcBatchMaker
    extra = code_len(ctx) if ctx.spec.name == "ikc_corrector" else None
    return cls(pool, batch, cfg.patch_size, cfg.scale, with_hr=ctx.spec.with_hr, augment=augment, code_len=extra)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _load_start_weights(model: nn.Module, cfg: TrainConfig, network: str, models_dir: Path) -> int:
    """Load the shipped weights of the card (``init_from_models``); returns the card's steps.

    With ``cfg.init_from_scale`` (another scale's card), copies every tensor whose name and shape
    match, leaves the rest (the upsampler) as initialised, drops the source's extra tensors (a
    second upsampling stage) and returns 0: a new network's count.
    """
    from engine.modelcards import find_card, verify_weights

    source_scale = cfg.init_from_scale if cfg.init_from_scale is not None else cfg.scale
    card = find_card(network, source_scale, cfg.preset, models_dir)
    verify_weights(card)
    state = torch.load(card.weights_path, map_location="cpu", weights_only=True)
    if source_scale == cfg.scale:
        model.load_state_dict(state, strict=True)
        return card.training_steps
    adapt = getattr(model, "adapt_state_from_scale", None)
    if adapt is not None:
        state = adapt(state, source_scale)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matching) < len(own) // 2:
        raise ValueError(f"{card.id} shares only {len(matching)} of {len(own)} tensors with a {network} at x{cfg.scale}")
    model.load_state_dict({**own, **matching}, strict=True)
    return 0


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    command: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> TrainResult:
    """Run (or continue, with ``resume``) the training described by ``cfg``.

    Returns a :class:`TrainResult` on every rank. Raises ``FileExistsError`` when the run folder
    already holds a checkpoint and ``resume`` is false.
    """
    from engine.archs import build_network
    from engine.data import TrainPool, train_paths
    from engine.paths import models_dir as default_models_dir

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    want_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    info = init_distributed(want_cuda)
    try:
        return _train(cfg, info, resume, command, progress, build_network, TrainPool, train_paths,
                      Path(cfg.models_dir) if cfg.models_dir else default_models_dir())
    finally:
        shutdown(info)


def _train(cfg, info, resume, command, progress, build_network, TrainPool, train_paths, models_dir):  # noqa: ANN001, PLR0912, PLR0915
    spec = get_stage(cfg.stage)
    device = select_device(cfg.device, info)
    run_dir = Path(cfg.runs_dir) / cfg.name
    ckpt_path = run_dir / CKPT_NAME
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt_path.exists() and not resume:
            raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --name")
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(f"nothing to resume: {ckpt_path} does not exist")
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {info.world_size} replicas")
    local_batch = cfg.batch_size // info.world_size

    # model, optimiser, schedule -------------------------------------------------------------
    model = build_network(spec.network, cfg.preset, cfg.scale, generator=torch.Generator().manual_seed(cfg.seed))
    if hasattr(model, "clamp_output"):
        model.clamp_output = False  # full gradients while training; graphs clamp
    base_steps = 0
    if cfg.init_from_models:
        base_steps = _load_start_weights(model, cfg, spec.network, models_dir)
    model.to(device)
    ctx = build_context(spec, cfg.preset, cfg.scale, device, models_dir, cfg.code_noise, cfg.predictor_prob,
                        cfg.corrector_unroll)
    ctx.kernel_loss = cfg.kernel_loss
    lr0 = cfg.lr if cfg.lr is not None else spec.lr
    betas = tuple(cfg.betas) if cfg.betas is not None else spec.betas
    optimizer = torch.optim.Adam(model.parameters(), lr=lr0, betas=betas)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.resolved_milestones(), gamma=cfg.lr_gamma)
    # bf16 autocast also runs on the CPU (AVX-512 BF16); fp16 only on CUDA
    use_amp = cfg.amp == "bf16" or (device.type == "cuda" and cfg.amp == "fp16")
    amp_dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and cfg.amp == "fp16")

    data_rng = np.random.default_rng([cfg.seed, info.rank, 0, 0])
    step, seconds_before = 0, 0.0
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"], strict=True)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        # the config's schedule wins, so a run can be extended (more steps, later halvings)
        scheduler.milestones = Counter(cfg.resolved_milestones())
        if lr0 != ckpt["config"].get("lr") and lr0 != ckpt["optimizer"]["param_groups"][0].get("initial_lr"):
            # a new initial lr in the config: restart the schedule from it at the current step
            passed = sum(1 for m in cfg.resolved_milestones() if m <= int(ckpt["step"]))
            for group in optimizer.param_groups:
                group["initial_lr"] = lr0
                group["lr"] = lr0 * cfg.lr_gamma**passed
            scheduler.base_lrs = [lr0 for _ in optimizer.param_groups]
            scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
        scaler.load_state_dict(ckpt["scaler"])
        step = int(ckpt["step"])
        seconds_before = float(ckpt["seconds"])
        base_steps = int(ckpt["base_steps"])
        torch.set_rng_state(ckpt["torch_rng"])
        if ckpt.get("world_size", 1) == info.world_size and cfg.workers == 0:
            data_rng.bit_generator.state = ckpt["data_rng"][info.rank]

    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    # data -------------------------------------------------------------------------------------
    batches: Iterator[dict[str, Any]]
    if step >= cfg.steps:  # a finished run resumed only to ship or re-plot: no data needed
        batches = iter(())
    elif cfg.workers > 0:
        from torch.utils.data import DataLoader

        pool = TrainPool(train_paths(cfg.train_sets), max_images=cfg.max_images, min_size=cfg.patch_size)
        maker = _make_maker(cfg, pool, local_batch, ctx)
        loader = DataLoader(
            BatchDataset(maker, cfg.seed, info.rank, step),
            batch_size=None,
            num_workers=cfg.workers,
            multiprocessing_context="fork",
            worker_init_fn=_worker_init,
            persistent_workers=True,
            prefetch_factor=4,
        )
        batches = iter(loader)
    else:
        pool = TrainPool(train_paths(cfg.train_sets), max_images=cfg.max_images, min_size=cfg.patch_size)
        batches = batch_stream(_make_maker(cfg, pool, local_batch, ctx), data_rng)

    log = CsvLog(run_dir / LOG_NAME, spec.val_metric, keep_until=step if resume else None) if info.is_main else None
    cmd = command or " ".join(shlex.quote(a) for a in sys.argv)
    commands = (list(ckpt.get("commands", [ckpt.get("command", "")])) if resume else []) + [cmd]
    dev_words = describe_device(device, cfg.threads)

    def save_ckpt() -> None:
        rng_states = [data_rng.bit_generator.state]
        if info.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * info.world_size
            dist.all_gather_object(gathered, data_rng.bit_generator.state)
            rng_states = gathered
        if not info.is_main:
            return
        _atomic_save(
            {
                "model": _unwrap(model).state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "seconds": seconds_before + (time.monotonic() - t_start),
                "base_steps": base_steps,
                "torch_rng": torch.get_rng_state(),
                "data_rng": rng_states,
                "world_size": info.world_size,
                "config": cfg.to_dict(),
                "command": cmd,
                "commands": commands,
                "device": dev_words,
            },
            ckpt_path,
        )

    def run_val() -> float | None:
        if not info.is_main:
            return None
        value = validate(_unwrap(model), ctx, cfg.val_images)
        model.train()
        return value

    def write_curve() -> None:
        if log is None:
            return
        from engine.training.plot import plot_curves

        s, l, vs, v = log.read()
        plot_curves(run_dir / CURVE_NAME, s, l, vs, v,
                    title=f"{cfg.name}: {spec.network} {cfg.preset} x{cfg.scale}", val_name=spec.val_metric)

    from tqdm import tqdm

    bar = tqdm(total=cfg.steps, initial=step, disable=not (info.is_main and cfg.progress_bar),
               dynamic_ncols=True, mininterval=5.0, desc=cfg.name)
    model.train()
    t_start = time.monotonic()
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    last_loss: float = math.nan
    last_val: float | None = None
    while step < cfg.steps:
        batch = {k: torch.as_tensor(v).to(device, non_blocking=True) for k, v in next(batches).items()}
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp):
            loss = compute_loss(model, batch, ctx)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        loss_sum += loss.detach().float()
        loss_count += 1
        progress.set_progress(step / cfg.steps, f"step {step}/{cfg.steps}")
        progress.check_cancelled()

        elapsed = seconds_before + (time.monotonic() - t_start)
        out_of_time = cfg.max_minutes > 0 and elapsed >= cfg.max_minutes * 60.0
        out_of_time = broadcast_flag(out_of_time, info, device)
        is_last = step >= cfg.steps or out_of_time
        do_val = is_last or (cfg.val_every > 0 and step % cfg.val_every == 0)
        if step % cfg.log_every == 0 or do_val or is_last:
            mean_loss = float(mean_over_ranks(loss_sum / max(loss_count, 1), info))
            loss_sum.zero_()
            loss_count = 0
            last_loss = mean_loss
            val = run_val() if do_val else None
            if val is not None:
                last_val = val
            if log is not None:
                log.append(step, mean_loss, optimizer.param_groups[0]["lr"], elapsed, val)
                bar.set_postfix(loss=f"{mean_loss:.4g}", **({spec.val_metric: f"{val:.4g}"} if val is not None else {}))
        bar.update(1)
        if step % cfg.ckpt_every == 0 or is_last:
            save_ckpt()
            write_curve()
        if out_of_time:
            break
    bar.close()

    seconds = seconds_before + (time.monotonic() - t_start)
    state = _state_cpu(model)
    weights_path = None
    shipped = None
    if info.is_main:
        weights_path = run_dir / WEIGHTS_NAME
        _atomic_save(state, weights_path)
        write_curve()
    result = TrainResult(run_dir, step, base_steps, last_loss, last_val, spec.val_metric, seconds, dev_words,
                         weights_path, state)
    if cfg.ship and info.is_main:
        from engine.training.ship import ship

        shipped = ship(cfg, result, command=" && ".join(c for c in commands if c), models_dir=models_dir)
        result.shipped_card = shipped
    return result
