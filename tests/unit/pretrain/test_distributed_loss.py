"""Batch-wide losses under torchrun: NT-Xent over gathered rows gives the single-process gradient (2 Gloo ranks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from evalbench.pretrain.distributed import all_gather_with_grad
from evalbench.pretrain.losses import nt_xent

N, D = 8, 6  # global batch of 8 clips (two views each), 4 per rank


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(D, 4)


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        net = nn.parallel.DistributedDataParallel(_net())
        x1, x2 = _data()
        mine = slice(rank * N // 2, (rank + 1) * N // 2)
        z1, z2 = net(x1[mine]), net(x2[mine])
        loss = nt_xent(all_gather_with_grad(z1), all_gather_with_grad(z2), 0.5)
        loss.backward()
        if rank == 0:
            torch.save({"loss": loss.detach(), "grad": net.module.weight.grad.clone()}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_gathered_nt_xent_equals_the_single_process_loss_and_gradient(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    net = _net()
    x1, x2 = _data()
    loss = nt_xent(net(x1), net(x2), 0.5)
    loss.backward()
    torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-6, atol=1e-6)
    # DDP's average of the two ranks' gradients is the gradient of the global loss (float summation order only)
    torch.testing.assert_close(got["grad"], net.weight.grad, rtol=1e-5, atol=1e-6)


def test_outside_torchrun_gather_is_the_identity() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x
