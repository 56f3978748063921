"""The ``long`` bench part: are the windows of many long clips encoded together?

Two adapters cut a clip into pieces and encode each piece: ``msn`` runs its
ViT-B/32 on consecutive 0.96 s log-mel windows (96 frames; a 30 s clip has
3,001 frames, 31 windows, the 25-frame tail merged into the last) and
``clmr`` its SampleCNN on consecutive 59,049-sample chunks at 22,050 Hz
(2.68 s; a 30 s clip has 11, the tail dropped).  Whether ``evalbench run``
gets the throughput of a batch out of them depends on the adapter gathering
the pieces of every clip of a batch into shared forward passes.

On 30 s clips (generated ``detect`` audio stored at 22,050 Hz), the same
:func:`~evalbench.embed.extract.embed_rows` that ``run`` uses runs twice over
the same rows: with ``run``'s batch of 32 clips, and with a batch of 1, i.e.
one clip per ``encode`` call (the clip-by-clip loop).  Everything else is the
same work on both sides: the input statistics are fitted and the 16 kHz copies
``msn`` reads are written beforehand (untimed; ``clmr`` reads the 22,050 Hz
WAV files themselves on both sides), and one untimed 3 s forward warms the
network up.  A forward pre-hook on the network's first layer (the ViT's patch
embedding, the SampleCNN's stem) records the most windows one forward pass
took, on each side.  Both sides must give the same embeddings (batch
invariance; the note says how close).

The figure is the batched clip rate ÷ the clip-by-clip rate: batching clips
must never make extraction slower than encoding them one at a time.  The
target is ≥ 0.95, not ≥ 1: on a CPU the two sides do nearly the same
arithmetic (``clmr`` encodes one chunk per forward on both, by design; the
ViT-B/32's cost per window with 62–64 windows per forward was measured within
a few per cent of its cost with 31), so the expected ratio is about 1 and a
strict ≥ 1 would be met or missed by timing noise.  On a GPU, batching should
show as a ratio well above 1.

The networks have seeded random weights (``msn`` and ``clmr`` have no official
checkpoint; speed does not depend on the weights).  Full mode runs two rounds,
the order of the two loops swapped in the second.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.bench.extract import ATOL, BATCH, RTOL, WORKERS, bench_task, random_weights
from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.encoder import LoadedEncoder
from evalbench.embed.extract import embed_rows, fit_encoder
from evalbench.embed.loader import ClipDataset, clip_batches
from evalbench.utils.device import resolve_device

ENCODERS = ("msn", "clmr")
SECONDS, RATE = 30.0, 22_050
TARGET = 0.95  # batched ÷ clip-by-clip, clips/s: "at least as fast", less 5 % of timing noise (module docstring)
FIRST_LAYER: dict[str, Callable[[nn.Module], nn.Module]] = {  # its input's first dimension = windows per forward
    "msn": lambda model: model.backbone.conv_proj,
    "clmr": lambda model: model.net.sequential[0],
}


@dataclass(frozen=True)
class Sizes:
    """How much is measured.

    Attributes:
        clips: 30 s clips encoded by each loop (the task has at least 10, the generator's smallest).
        rounds: Rounds of (batched, clip-by-clip) loops, the order swapped every other round.
    """

    clips: int
    rounds: int


FULL = Sizes(16, 2)
QUICK = Sizes(2, 1)


def timed_rows(
    enc: LoadedEncoder, data: TaskData, rows: np.ndarray, batch: int, audio: Path
) -> tuple[np.ndarray, float, int]:
    """``(embeddings, seconds, most windows in one forward)`` of ``embed_rows``, ``batch`` clips per call."""
    peak = [0]

    def count(_: nn.Module, args: tuple) -> None:
        peak[0] = max(peak[0], int(args[0].shape[0]))

    hook = FIRST_LAYER[enc.spec.adapter](enc.model).register_forward_pre_hook(count)
    try:
        start = time.perf_counter()
        x = embed_rows(enc, data, rows, batch, WORKERS, f"bench long {enc.spec.name}", audio)
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    return x, seconds, peak[0]


@torch.inference_mode()
def _warm_up(enc: LoadedEncoder) -> None:
    """One untimed 3 s forward (a few ViT windows, one whole SampleCNN chunk): first-call costs on neither side."""
    n = 3 * enc.model.sample_rate
    wav = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
    enc.model.encode(wav.to(enc.device), torch.tensor([n], device=enc.device))


def compare(enc: LoadedEncoder, data: TaskData, rows: np.ndarray, scratch: Path, rounds: int) -> list[Figure]:
    """Batched against clip-by-clip extraction of ``rows`` (module docstring); throwaway caches under ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    seconds, peaks, ratios = {"batched": 0.0, "one": 0.0}, {}, []
    with tempfile.TemporaryDirectory(prefix="bench-long-", dir=scratch) as tmp:
        cache = EmbeddingCache(Path(tmp))
        fit_encoder(enc, data, cache, BATCH, WORKERS)
        for _ in clip_batches(ClipDataset(data, rows, enc.model.sample_rate, cache.root / "audio"), BATCH, WORKERS):
            pass  # the resampled copies both sides read
        _warm_up(enc)
        out = {}
        for r in range(rounds):
            run = {}
            for side in ("batched", "one") if r % 2 == 0 else ("one", "batched"):
                size = BATCH if side == "batched" else 1
                out[side], run[side], peaks[side] = timed_rows(enc, data, rows, size, cache.root / "audio")
                seconds[side] += run[side]
            ratios.append(run["one"] / run["batched"])
    rate = {side: rounds * len(rows) / s for side, s in seconds.items()}
    same = np.allclose(out["batched"], out["one"], rtol=RTOL, atol=ATOL)
    delta = float(np.max(np.abs(out["batched"] - out["one"])))
    name = enc.spec.name
    note = (
        f"{len(rows)} clips of {SECONDS:g} s; embed_rows with batch {BATCH} (run's default) vs batch 1, decoded audio "
        f"and fitted statistics prepared beforehand; random weights (speed does not depend on them); batched "
        f"{seconds['batched']:.1f} s, one at a time {seconds['one']:.1f} s; ratio per round "
        f"{', '.join(f'{q:.2f}' for q in ratios)}; embeddings {'agree' if same else 'DIFFER'} (max |Δ| {delta:.2g})"
    )
    if enc.device.type == "cpu":
        note += f"; target {TARGET:g}, not 1: on CPU both sides do about the same arithmetic, so the ratio is ≈ 1 "
        note += "up to timing noise"
        if name == "clmr":
            note += " (the clmr adapter encodes one chunk per forward on CPU, by design: its chunk_batch)"
    return [
        ratio_at_least(f"long {name}: clips/s, batch {BATCH} vs one clip per call", rate["batched"], rate["one"],
                       "clips/s", TARGET, note),
        Figure(f"long {name}: most windows in one forward, batch {BATCH} vs one clip", float(peaks["batched"]),
               "windows", float(peaks["one"]), "", None, "counted by a forward pre-hook on the network's first layer"),
    ]  # fmt: skip


def measure(ctx: BenchContext) -> list[Figure]:
    """Every figure of the part (module docstring)."""
    sizes = QUICK if ctx.quick else FULL
    generated = max(10, sizes.clips + sizes.clips % 2)  # the detect generator's smallest task is 10 clips
    task = bench_task(ctx.cache_dir / "bench-tasks", f"bench_long_{generated}", generated, SECONDS, RATE)
    ctx.log(f"bench long: {sizes.clips} clips of {SECONDS:g} s at {RATE} Hz")
    data = open_task_data(task, ctx.data_root)
    rows = np.arange(sizes.clips)
    figures = []
    for name in ENCODERS:
        enc = random_weights(name, resolve_device(ctx.device))
        figures += compare(enc, data, rows, ctx.cache_dir / "bench-long", sizes.rounds)
        ctx.log(f"bench long: {name}: batched ÷ one clip per call {figures[-2].ratio:.2f}")
    return figures


__all__ = ["FULL", "QUICK", "Sizes", "compare", "measure", "timed_rows"]
