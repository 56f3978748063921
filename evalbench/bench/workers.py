"""The ``workers`` bench part: which ``--workers`` default keeps extraction fastest?

``evalbench run`` decodes and resamples clips either in its own process
(``--workers 0``) or in DataLoader worker processes that run torch on one
thread each (:func:`~evalbench.embed.loader.clip_batches`).  Workers overlap
decoding with the encoder, but on CPU they run on the cores the encoder's
threads use.  This part measures the cold extraction pipeline of ``byola`` (v2,
random weights; :func:`evalbench.bench.extract.pipeline`) on the same clips with
each worker count, the counts in a rotated order every round so that a change in
the machine's load falls on all of them, and compares the count ``--workers
auto`` picks for the device (:func:`~evalbench.embed.loader.auto_workers`)
with the fastest one.  Target: auto within 5 % of the best count.

The torch thread count is the process's (``evalbench bench --threads``); each
figure's note gives it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.bench.extract import SECONDS, bench_task, random_weights
from evalbench.data.prepare import open_task_data
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.extract import embed_views
from evalbench.embed.loader import auto_workers
from evalbench.utils.device import resolve_device

ENCODER = "byola"
BATCH = 32  # `evalbench run`'s default
TARGET = 0.95  # auto ÷ the fastest count, clips/s
FULL_CLIPS, FULL_COUNTS, FULL_ROUNDS = 400, (0, 1, 2), 2
QUICK_CLIPS, QUICK_COUNTS, QUICK_ROUNDS = 20, (0, 1), 1


def measure(ctx: BenchContext) -> list[Figure]:
    """Clips/s of the cold pipeline per worker count, and ``auto`` against the fastest (module docstring)."""
    clips, counts, rounds = (
        (QUICK_CLIPS, QUICK_COUNTS, QUICK_ROUNDS) if ctx.quick else (FULL_CLIPS, FULL_COUNTS, FULL_ROUNDS)
    )
    device = resolve_device(ctx.device)
    auto = auto_workers(device)
    counts = tuple(sorted({*counts, auto}))
    task = bench_task(ctx.cache_dir / "bench-tasks", f"bench_extract_{clips}", clips, SECONDS)
    data = open_task_data(task, ctx.data_root)
    enc = random_weights(ENCODER, device)
    seconds = dict.fromkeys(counts, 0.0)
    scratch = ctx.cache_dir / "bench-workers"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-workers-", dir=scratch) as tmp:
        embed_views(enc, data, EmbeddingCache(Path(tmp) / "warm-up"), BATCH, 0)  # first-call costs, untimed
        for r in range(rounds):
            order = counts[r % len(counts) :] + counts[: r % len(counts)]
            for w in order:
                start = time.perf_counter()
                embed_views(enc, data, EmbeddingCache(Path(tmp) / f"cold-{r}-{w}"), BATCH, w)
                seconds[w] += time.perf_counter() - start
    rate = {w: rounds * data.n / s for w, s in seconds.items()}
    best = max(rate, key=rate.__getitem__)
    common = (
        f"{ENCODER} (random weights), {data.n} clips of {SECONDS:g} s at 44.1 kHz → 16 kHz, batch {BATCH}, cold "
        f"caches, {torch.get_num_threads()} torch thread(s) in the main process, 1 per worker, device {device}, "
        f"{rounds} round(s)"
    )
    figures = [
        Figure(f"workers {ENCODER}: clips/s, --workers {w} vs 0", rate[w], "clips/s", rate[0], "", None, common)
        for w in counts
        if w != 0
    ]
    for w in counts:
        ctx.log(f"bench workers: --workers {w}: {rate[w]:.1f} clips/s")
    note = f"auto picks {auto} on {device}; fastest measured: {best}; " + common
    figures.append(
        ratio_at_least(
            f"workers {ENCODER}: clips/s, --workers auto vs fastest count",
            rate[auto],
            rate[best],
            "clips/s",
            TARGET,
            note,
        )
    )
    return figures


__all__ = ["measure"]
