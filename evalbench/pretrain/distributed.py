"""Scale-out under ``torchrun``: process group, ranks, and what each rank does.

``torchrun --nproc_per_node=N -m evalbench pretrain METHOD ...`` starts N copies
of the same command; each finds its rank in the environment torchrun sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and
joins the process group (NCCL on CUDA, Gloo on CPU).  Multi-node runs use
torchrun's standard rendezvous (``--nnodes``, ``--rdzv-backend c10d``,
``--rdzv-endpoint HOST:PORT``); nothing here depends on the node count.

Division of labour (see :mod:`evalbench.pretrain.run`):

- data: every rank reads the same seeded order and takes its slice of each
  global batch, so the ranks of one step together see exactly the
  single-process batch (per-rank batch = global batch / world size);
- gradients: averaged across ranks by ``DistributedDataParallel``; EMA targets
  then stay identical on every rank because every rank applies the same
  averaged step to the same online weights;
- batch-wide losses: contrastive negatives (NT-Xent of CLAR and CLMR) and
  MSN's Sinkhorn and mean-entropy terms are computed over the global batch:
  :func:`all_gather_with_grad` concatenates every rank's rows in rank order,
  so the loss equals the single-process one and the gradient flows back to
  each rank's own rows (SimCLR gathers negatives across devices the same way,
  Chen et al., ICML 2020, §2);
- BatchNorm: on CUDA the method's BatchNorm layers become ``SyncBatchNorm``, so
  batch statistics are over the global batch as in the papers (one GPU, one
  batch of 256).  NOTE: ``SyncBatchNorm`` has no CPU implementation, so under
  Gloo on CPU each rank normalises with its own slice's statistics (running
  statistics are broadcast from rank 0 at every step, so the exported network
  is the same on every rank);
- checkpoints, logs, the loss curve and registration: rank 0 only; every rank's
  RNG states are gathered into the checkpoint so a resumed run restores each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job.

    Attributes:
        rank: Global rank.
        world: Number of processes.
        local_rank: Rank on this node (the CUDA device index).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """True on rank 0 (logs, checkpoints, registration)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when running under torchrun with more than one process."""
        return self.world > 1


def init_from_env(device: torch.device, timeout: timedelta | None = None) -> DistEnv:
    """Join the process group if torchrun started this process (else a single-process :class:`DistEnv`).

    Args:
        device: The training device type decides the backend: NCCL for CUDA, Gloo for CPU.
        timeout: How long a collective (a barrier) may wait (None: torch's default, 30 min for Gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if timeout is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, timeout=timeout)
    return env


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` under torchrun on CUDA, else ``device``."""
    if env.active and device.type == "cuda":
        torch.cuda.set_device(env.local_rank)
        return torch.device("cuda", env.local_rank)
    return device


def wrap(method: nn.Module, env: DistEnv, device: torch.device) -> nn.Module:
    """The module to call for each step: ``method`` itself, or ``DistributedDataParallel(method)`` under torchrun.

    On CUDA, BatchNorm layers are converted to ``SyncBatchNorm`` first (same
    parameters and buffers, so checkpoints are unchanged).
    """
    if not env.active:
        return method
    if device.type == "cuda":
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    ids = [env.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(method, device_ids=ids, broadcast_buffers=True)


def mean_over_ranks(value: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """The mean of a scalar over ranks (the logged loss is the global batch's)."""
    if not env.active:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / env.world


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` concatenated along dim 0 in rank order, differentiable; ``x`` itself outside torchrun.

    The backward of ``torch.distributed.nn.functional.all_gather`` sums the
    gradients of all ranks for each rank's slice.  Every rank computes the same
    global loss, so each slice receives ``world ×`` its share; the
    ``DistributedDataParallel`` average over ranks then gives exactly the
    single-process gradient of the global batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import warnings

    from torch.distributed.nn.functional import all_gather

    # NOTE: torch 2.14 marks this autograd all_gather deprecated in favour of the private
    # torch.distributed._functional_collectives; it stays the public one, and its gradient is tested.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        return torch.cat(all_gather(x.contiguous()))


def gather(obj: Any, env: DistEnv) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` without torchrun)."""
    if not env.active:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def barrier(env: DistEnv) -> None:
    """Wait for every rank (no-op without torchrun)."""
    if env.active:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    """Leave the process group."""
    if env.active and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistEnv", "barrier", "gather", "init_from_env", "mean_over_ranks", "rank_device", "shutdown", "wrap"]
