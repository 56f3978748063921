"""The ``scaling`` bench part: does extraction stay linear in time and flat in memory as a task grows?

A task ten times larger must take ten times as long to extract, not more (no
per-clip cost that grows with the task, no quadratic step), and must not need
much more memory (nothing held per clip beyond the embeddings themselves).

Two generated tasks of the same kind of clips (``detect`` audio stored as
44.1 kHz WAV) are extracted with ``byola`` (BYOL-A v2, 3,072-d embeddings, the
widest of the shipped encoders; seeded random weights) exactly as
``evalbench run`` does it: :func:`~evalbench.embed.extract.embed_views` into an
empty cache folder, batch 32, no workers; cold (decode, resample, fit the input
statistics on the training clips, encode, pool, write the cache).  The sizes
are 1× and 10× clips: 300 and 3,000 clips of 5 s; ``--quick``: 60 and 600 of
0.25 s, 60 being the fewest whose training part fills a batch, so that the 1×
run already has the activation memory of a full batch, as every larger run
has.  Each size runs in a fresh Python process (``sys.executable -c``), so that
its peak resident set size (read inside the child: :func:`peak_rss`) is its
own and not the parent's or a previous size's.  The timed region is
``embed_views`` alone: the child's imports, dataset opening and network
construction are not part of it (their memory is: the peak is the process's).

Figures: the 10× time ÷ ten times the 1× time, target ≤ 1.1 (within 10 % of
linear), and the 10× peak RSS ÷ the 1× peak RSS, target ≤ 1.1.  The notes give
each child's RSS before extraction and the part extraction added, next to the
size of the float32 embedding array (``clips × 3,072 × 4`` bytes), and (Linux
with glibc) how much more than before extraction the process still held after
it, and how much of that ``malloc_trim`` handed back: memory the pipeline freed
but the allocator kept.  In full mode the 1× child runs before and after the
10× one and its two runs are averaged, so that a change of the machine's load
during the part falls on both sides.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalbench.bench import BenchContext, Figure
from evalbench.bench.extract import BATCH, RATE, WORKERS, bench_task
from evalbench.data.prepare import open_task_data
from evalbench.errors import EvalbenchError
from evalbench.utils.memory import proc_status

ENCODER = "byola"
LIMIT = 1.1  # both figures: 10× ÷ (linear or 1×) at most this
CHILD = "import sys; from evalbench.bench.scaling import child; child(sys.argv[1])"
MB = 2**20


@dataclass(frozen=True)
class Sizes:
    """How much is measured.

    Attributes:
        clips: Clips of the 1× task (the 10× task has ten times as many).
        seconds: Clip length.
        twice: Run the 1× child before and after the 10× one (and average them).
    """

    clips: int
    seconds: float
    twice: bool


FULL = Sizes(300, 5.0, True)
QUICK = Sizes(60, 0.25, False)  # 60: the 1× training part (36 clips) fills a batch of 32, as every larger one does


def peak_rss() -> int:
    """This process's peak resident set size so far, in bytes.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this process's own memory map.  NOTE:
    not ``getrusage(RUSAGE_SELF).ru_maxrss``, which the kernel carries over ``execve`` from the process that
    forked: a child started by ``subprocess`` reports at least its parent's RSS (measured: 526 MiB in a
    10 MiB child of a 526 MiB parent).  Elsewhere ``ru_maxrss`` (KiB, bytes on macOS), with that caveat.
    """
    hwm = proc_status("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss() -> int | None:
    """This process's resident set size now, in bytes (Linux; None elsewhere)."""
    return proc_status("VmRSS")


def trimmed_rss() -> int | None:
    """The resident set size after glibc's ``malloc_trim(0)`` hands free heap memory back (None without glibc)."""
    from evalbench.utils.memory import malloc_trim

    return current_rss() if malloc_trim() else None


def child(arguments: str) -> None:
    """Entry point of a child process: extract one task cold and print one JSON line of measurements.

    Args:
        arguments: JSON with ``task``, ``tasks`` (folder), ``data_root``, ``cache`` (an empty folder),
            ``device`` and ``threads``.
    """
    import torch

    from evalbench.bench.extract import random_weights
    from evalbench.embed.cache import EmbeddingCache
    from evalbench.embed.extract import embed_views
    from evalbench.specs.task import load_task
    from evalbench.utils.device import resolve_device

    args = json.loads(arguments)
    torch.set_num_threads(args["threads"])
    data = open_task_data(load_task(args["task"], Path(args["tasks"])), Path(args["data_root"]))
    enc = random_weights(ENCODER, resolve_device(args["device"]))
    before, start_rss = peak_rss(), current_rss()
    start = time.perf_counter()
    x, _, _ = embed_views(enc, data, EmbeddingCache(Path(args["cache"])), BATCH, WORKERS)
    seconds = time.perf_counter() - start
    record = {"seconds": seconds, "rss_before": before, "rss_peak": peak_rss(), "clips": data.n, "dim": x.shape[1]}
    del x
    record |= {"rss_start": start_rss, "rss_end": current_rss(), "rss_trimmed": trimmed_rss()}
    print(json.dumps(record), flush=True)


def run_child(task: str, ctx: BenchContext, threads: int) -> dict[str, Any]:
    """Extract the task ``task`` (already generated) in a fresh process; its measurements plus its wall time.

    Raises:
        EvalbenchError: The child failed (the end of its error output is quoted).
    """
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=ctx.cache_dir) as cache:
        args = {
            "task": task,
            "tasks": str(ctx.cache_dir / "bench-tasks"),
            "data_root": str(ctx.data_root),
            "cache": cache,
            "device": ctx.device,
            "threads": threads,
        }
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
        wall = time.perf_counter() - start
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise EvalbenchError(f"bench scaling: the extraction of {task} failed (exit {proc.returncode}):\n{tail}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall": wall}


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] for r in runs) / len(runs)


def figures_of(small: list[dict[str, Any]], large: dict[str, Any], seconds: float) -> list[Figure]:
    """The time and memory figures from the 1× children's and the 10× child's measurements."""
    n, big = small[0]["clips"], large["clips"]
    t1, t10 = _mean(small, "seconds"), large["seconds"]
    r1, r10 = _mean(small, "rss_peak") / MB, large["rss_peak"] / MB
    time_ratio, rss_ratio = t10 / (10 * t1), r10 / r1
    runs = ", ".join(f"{r['seconds']:.1f}" for r in small)
    walls = ", ".join(f"{r['wall']:.1f}" for r in small)
    time_note = (
        f"{ENCODER} (random weights), {seconds:g} s clips at {RATE} Hz, cold; {n} clips in {runs} s "
        f"({1000 * t1 / n:.1f} ms/clip), {big} clips in {t10:.1f} s ({1000 * t10 / big:.1f} ms/clip); "
        f"child processes {walls} s and {large['wall']:.1f} s in all"
    )
    added = [(r["rss_peak"] - r["rss_before"]) / MB for r in (*small, large)]
    embeddings = [r["clips"] * r["dim"] * 4 / MB for r in (small[0], large)]
    rss_note = (
        f"peak RSS {r1:.0f} MiB ({n} clips) vs {r10:.0f} MiB ({big}), {r10 - r1:+.0f} MiB; before extraction "
        f"(imports, data, network) {_mean(small, 'rss_before') / MB:.0f} vs {large['rss_before'] / MB:.0f} MiB; "
        f"extraction added {', '.join(f'{a:.0f}' for a in added[:-1])} vs {added[-1]:.0f} MiB; the float32 "
        f"embeddings are {embeddings[0]:.1f} vs {embeddings[1]:.1f} MiB"
    )
    if all(None not in (r["rss_start"], r["rss_end"], r["rss_trimmed"]) for r in (small[0], large)):
        kept = [(r["rss_end"] - r["rss_start"]) / MB for r in (small[0], large)]
        freed = [(r["rss_end"] - r["rss_trimmed"]) / MB for r in (small[0], large)]
        rss_note += (
            f"; after extraction the process held {kept[0]:.0f} vs {kept[1]:.0f} MiB more than before it, of which "
            f"{freed[0]:.0f} vs {freed[1]:.0f} MiB ({freed[1] - freed[0]:+.0f} MiB) was memory the pipeline had freed "
            "but glibc's allocator kept (what malloc_trim hands back)"
        )
    return [
        Figure(f"scaling {ENCODER}: extraction time, 10× clips vs 10 × time of 1×", t10, "s", 10 * t1,
               f"ratio ≤ {LIMIT:g}", time_ratio <= LIMIT, time_note),
        Figure(f"scaling {ENCODER}: peak RSS, 10× clips vs 1×", r10, "MiB", r1, f"ratio ≤ {LIMIT:g}",
               rss_ratio <= LIMIT, rss_note),
    ]  # fmt: skip


def measure(ctx: BenchContext) -> list[Figure]:
    """Every figure of the part (module docstring)."""
    import torch

    sizes = QUICK if ctx.quick else FULL
    names = []
    for n in (sizes.clips, 10 * sizes.clips):
        task = bench_task(ctx.cache_dir / "bench-tasks", f"bench_scaling_{n}", n, sizes.seconds)
        ctx.log(f"bench scaling: {n} clips of {sizes.seconds:g} s at {RATE} Hz")
        open_task_data(task, ctx.data_root)  # generated here, not in the timed child
        names.append(task.name)
    threads = torch.get_num_threads()
    small = [run_child(names[0], ctx, threads)]
    large = run_child(names[1], ctx, threads)
    if sizes.twice:
        small.append(run_child(names[0], ctx, threads))
    ctx.log(
        f"bench scaling: {ENCODER}: {small[0]['seconds']:.1f} s ({names[0]}), {large['seconds']:.1f} s ({names[1]})"
    )
    return figures_of(small, large, sizes.seconds)


__all__ = ["FULL", "QUICK", "Sizes", "child", "figures_of", "measure", "peak_rss", "run_child"]
