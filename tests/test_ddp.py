"""DistributedDataParallel: two gloo processes on CPU train a tiny MANet for a few steps.

The replicas draw different batches (different seeds per rank) but DDP averages their gradients,
so after training their weights must be identical — and different from the initial weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from engine.archs import build_network

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replica(rank: int, port: int, out_dir: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD)})
    from engine.training.config import TrainConfig
    from engine.training.trainer import train

    cfg = TrainConfig(name="ddp", stage="manet", preset="tiny", scale=4, steps=3, batch_size=4, patch_size=32,
                      max_images=3, val_images=1, val_every=0, log_every=1, ckpt_every=2, threads=1,
                      progress_bar=False, device="cpu", seed=11, runs_dir=str(Path(out_dir) / "runs"))
    result = train(cfg)
    torch.save({"state": result.state, "step": result.step}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.timeout(240)
def test_two_gloo_replicas_end_with_identical_weights(tmp_path):
    mp.spawn(_replica, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert [s["step"] for s in states] == [3, 3]
    a, b = states[0]["state"], states[1]["state"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"replicas differ in {key}"
    initial = build_network("manet", "tiny", 4, generator=torch.Generator().manual_seed(11)).state_dict()
    assert any(not torch.equal(a[k], initial[k]) for k in a), "training did not change the weights"
    # rank 0 alone wrote the run folder: checkpoint, log and curve
    run = tmp_path / "runs" / "ddp"
    assert (run / "ckpt_last.pt").is_file() and (run / "curve.png").is_file()
    rows = (run / "log.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3
    ckpt = torch.load(run / "ckpt_last.pt", weights_only=False)
    assert ckpt["world_size"] == WORLD and len(ckpt["data_rng"]) == WORLD
    assert ckpt["data_rng"][0] != ckpt["data_rng"][1]  # each replica had its own data stream
