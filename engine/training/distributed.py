"""DistributedDataParallel plumbing: one process per replica, started by ``torchrun`` (or spawn).

A process joins a group when the launcher set ``WORLD_SIZE`` > 1 (with ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``). The backend is NCCL on GPUs and gloo on CPU. Rank 0 alone
logs, validates, checkpoints and ships; the others only train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the group (``world_size == 1``: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Read ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment (defaults: single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank, world, local)


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group if the environment asks for one (NCCL on CUDA, else gloo)."""
    info = env_dist_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def shutdown(info: DistInfo) -> None:
    """Leave the process group (if this process joined one)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a tensor over all replicas (identity when not distributed)."""
    if not info.enabled:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's boolean, on every rank (used to stop all replicas at a time limit together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0.5)


def gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` in rank order (``[obj]`` when not distributed); a collective call."""
    if not info.enabled:
        return [obj]
    gathered: list[object] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
