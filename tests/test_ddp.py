"""Lightning DistributedDataParallel on CPU processes (gloo): sharded epochs, one writer."""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import run_cli


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shards(rank: int, world: int, port: int, n: int, queue: object) -> None:
    from mnistfw.backends.lightning_mlp.lightning_module import TensorBatches

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rows = torch.arange(n)
        batches = TensorBatches(rows.float().unsqueeze(1), rows, batch_size=8, shuffle=True, seed=3)
        epochs = [[int(i) for _, y in batches for i in y] for _ in range(2)]
        queue.put((rank, len(batches), epochs))  # type: ignore[attr-defined]
    finally:
        dist.destroy_process_group()


def test_each_rank_gets_its_own_shard_of_every_epoch() -> None:
    n, world = 101, 2  # odd: the shorter shard is padded by wrapping around, as DistributedSampler does
    queue = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_shards, args=(world, _free_port(), n, queue), nprocs=world, start_method="spawn")
    results = sorted(queue.get() for _ in range(world))
    lengths = {length for _, length, _ in results}
    per_rank = math.ceil(n / world)
    assert lengths == {math.ceil(per_rank / 8)}  # equal batch counts on every rank: DDP needs them
    for epoch in range(2):
        shards = [set(epochs[epoch]) for _, _, epochs in results]
        assert shards[0] | shards[1] == set(range(n))  # together they cover the training split
        assert len(shards[0] & shards[1]) <= 1  # disjoint but for the one padded row
        assert all(len(epochs[epoch]) == per_rank for _, _, epochs in results)
    assert results[0][2][0] != results[0][2][1]  # a new permutation every epoch


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """trainer=ddp with 2 CPU processes and half the batch each ~ one process with the whole batch."""
    common = ["data=mnist_sample", "trainer.max_epochs=3", "trainer.enable_progress_bar=false", "visualization=none"]
    ddp = run_cli("mnistfw-train", *common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
                  "trainer.batch_size=128", "hydra.run.dir=ddp", cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = run_cli("mnistfw-train", *common, "trainer.batch_size=256", "hydra.run.dir=one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    ddp_summary = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    one_summary = json.loads((tmp_path / "one" / "metrics.json").read_text())
    # Rank 0 alone wrote the run folder: one metrics.json, one model, the history once per epoch.
    assert [h["epoch"] for h in ddp_summary["history"]] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir() if not p.name.startswith(".")) == \
        ["checkpoints", "csv", "metrics.json", "model", "train.log"]
    # Same accuracy within 3 points after 3 epochs on 3,500 rows (the shards and dropout differ).
    assert abs(ddp_summary["metrics"]["test/accuracy"] - one_summary["metrics"]["test/accuracy"]) <= 0.03
    assert ddp_summary["metrics"]["test/accuracy"] > 0.8
    # The two ranks' training sums were added up: the epoch's loss is over all 3,500 rows.
    assert ddp_summary["history"][-1]["train/loss"] == pytest.approx(one_summary["history"][-1]["train/loss"], rel=0.2)
