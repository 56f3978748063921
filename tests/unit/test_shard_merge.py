"""Rank 0 merges the shards of a torchrun extraction through a scratch matrix (on disk when large)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from evalbench.embed import shard as shard_mod
from evalbench.embed.cache import EmbeddingCache
from evalbench.pretrain.distributed import DistEnv
from evalbench.utils.memory import scratch_array


def _embed(rows: np.ndarray) -> np.ndarray:
    """A stand-in encoder: row ``r`` -> 5 numbers that depend on ``r`` only."""
    return (np.asarray(rows, dtype=np.float32)[:, None] * np.arange(1, 6, dtype=np.float32)) / 7


@pytest.mark.parametrize("min_bytes", [0, 1 << 30], ids=["mapped", "in-ram"])
def test_shards_merge_in_rank_order_into_the_part_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, min_bytes: int
) -> None:
    monkeypatch.setattr(shard_mod, "barrier", lambda env: None)  # the ranks run one after the other here
    monkeypatch.setattr(shard_mod, "scratch_array", functools.partial(scratch_array, min_bytes=min_bytes))
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: no entry locks
    cache, rows, payload = EmbeddingCache(tmp_path), np.arange(3, 40, 2), {"encoder": "e", "part": "test"}
    args = ("enc", "task", "test", rows, payload, None, 5)
    assert shard_mod.embed_part_sharded(cache, *args, DistEnv(rank=1, world=2), _embed) is None
    merged = shard_mod.embed_part_sharded(cache, *args, DistEnv(rank=0, world=2), _embed)
    assert isinstance(merged, np.memmap) == (min_bytes == 0)
    np.testing.assert_array_equal(merged, _embed(rows))  # the same float32 values, row for row
    np.testing.assert_array_equal(cache.load("enc", "task", "test", payload), _embed(rows))
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "enc" / "task").glob("*.json")) == ["test"]  # shards gone
    assert not list((tmp_path / ".scratch").glob("*"))  # the scratch file was unlinked at once
