"""Sharded extraction under ``torchrun``: every rank embeds a slice of each part, rank 0 merges.

``torchrun --nproc_per_node=N -m evalbench run ...`` (one node, N GPUs) or
``torchrun --nnodes=M --nproc_per_node=N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT -m evalbench run ...``
(M nodes sharing the cache folder) starts one process per device; each finds
its rank in torchrun's environment (:mod:`evalbench.pretrain.distributed`).
For every part (split or fold) of a task that is not in the cache:

1. rank ``r`` of ``W`` takes the ``r``-th of ``W`` contiguous slices of the
   part's rows (:func:`shard_rows`; contiguous, so each rank's clips keep the
   part's order and similar clips stay together), embeds them unless its shard
   is already cached, and stores the shard as a cache entry of its own
   (``<part>.shard<r>of<W>``, its key the part's key plus ``[r, W]``), written
   atomically like every entry;
2. all ranks meet at a barrier;
3. rank 0 loads every shard (checksummed, as every cache read), concatenates
   them in rank order into the part's normal cache entry (through a scratch
   matrix mapped on disk when large: :func:`~evalbench.utils.memory.scratch_array`),
   and removes the shards.  Only rank 0 then trains probes and writes records.

A rank that dies leaves its shard unwritten; torchrun stops the others, the
shards already written stay, and a rerun with the same ``W`` embeds only the
missing shards (a rerun with another ``W`` recomputes the unmerged parts).  The
merged entry is exactly what one process would store for the part up to the
encoder's batch invariance: a clip's embedding does not depend on which other
clips share its batch (the adapters' contract tests check it), so a sharded
run's embeddings equal a single-process run's within float tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from evalbench.embed.cache import EmbeddingCache
from evalbench.errors import EvalbenchError
from evalbench.pretrain.distributed import DistEnv, barrier
from evalbench.utils.memory import scratch_array


def shard_rows(rows: np.ndarray, env: DistEnv) -> np.ndarray:
    """This rank's contiguous slice of ``rows`` (``np.array_split``: sizes differ by at most one)."""
    return np.array_split(np.asarray(rows), env.world)[env.rank]


def shard_name(part: str, rank: int, world: int) -> str:
    """Cache part name of one shard."""
    return f"{part}.shard{rank}of{world}"


def embed_part_sharded(
    cache: EmbeddingCache,
    encoder: str,
    task: str,
    part: str,
    rows: np.ndarray,
    payload: dict[str, Any],
    fitted: dict[str, Any],
    dim: int,
    env: DistEnv,
    compute: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray | None:
    """Embed this rank's shard of one part, then (rank 0) merge all shards into the part's entry.

    Args:
        cache: The embedding cache shared by every rank.
        encoder: Encoder name (cache folder).
        task: Task name (cache folder).
        part: Split or fold.
        rows: The part's rows, in order.
        payload: The part's cache key inputs.
        fitted: The encoder's fitted state (stored beside each entry).
        dim: Embedding width (an empty shard has shape ``(0, dim)``).
        env: This process's rank and the world size.
        compute: ``rows -> (len(rows), dim)`` float32 embeddings (the single-process path).

    Returns:
        The merged part embeddings on rank 0; None on the other ranks.

    Raises:
        EvalbenchError: On rank 0, a shard missing or damaged after the barrier.
    """
    mine = shard_rows(rows, env)
    name = shard_name(part, env.rank, env.world)
    key = {**payload, "shard": [env.rank, env.world]}
    if cache.load(encoder, task, name, key, fitted) is None:
        array = compute(mine) if len(mine) else np.empty((0, dim), dtype=np.float32)
        cache.store(encoder, task, name, key, array, fitted)
    barrier(env)
    if not env.main:
        return None
    shards = []
    for rank in range(env.world):
        shard_key = {**payload, "shard": [rank, env.world]}
        shard = cache.load(encoder, task, shard_name(part, rank, env.world), shard_key, fitted)
        if shard is None:
            raise EvalbenchError(
                f"{encoder} × {task}: rank {rank}'s shard of part '{part}' is missing or damaged after every rank "
                "finished; run the same command again (cached shards are reused)"
            )
        shards.append(shard)  # memory-mapped: read as it is copied below
    merged = scratch_array((sum(len(sh) for sh in shards), dim), cache.root / ".scratch")  # on disk when large
    start = 0
    for shard in shards:
        merged[start : start + len(shard)] = shard
        start += len(shard)
    cache.store(encoder, task, part, payload, merged, fitted)
    for rank in range(env.world):
        cache.remove(encoder, task, shard_name(part, rank, env.world), {**payload, "shard": [rank, env.world]})
    return merged


__all__ = ["embed_part_sharded", "shard_name", "shard_rows"]
