"""The ``extract`` bench part: does the extraction pipeline keep the encoder busy?

``evalbench run`` turns a task's clips into embeddings by decoding each WAV,
resampling it to the encoder's rate, cropping, batching, fitting the input
statistics (BYOL-A, MSN), encoding, pooling and writing the embedding cache.
This part measures that whole pipeline against the encoder alone, side by side
on the same clips, for ``logmel``, ``byola`` (v2), ``byola-v1-512`` and ``msn``:

1. the **pipeline**: :func:`~evalbench.embed.extract.embed_views`, as ``run``
   calls it (whichever way it fits the input statistics, in a pass of their
   own or fused with the embedding pass), into a fresh, empty cache folder
   under ``ctx.cache_dir``, with ``run``'s defaults (batch 32, no decoding
   workers).  Cold: no embeddings, fitted statistics or 16 kHz audio copies
   (the resampled-clip cache under ``<cache>/audio``) exist, so every clip is
   decoded from its WAV and resampled, and BYOL-A/MSN fit their statistics on
   the training clips.  The WAV files themselves were just generated, so the
   operating system's page cache holds them: "decode from disk" reads memory.
2. the **bare forward**: ``enc.model.encode`` + the spec's pooling under
   ``torch.inference_mode`` over the very same batches (same rows, order and
   batch boundaries per part), decoded beforehand and held as tensors on the
   device.

The figure is the ratio of the two clip rates, target ≥ 0.9 for ``byola``,
``byola-v1-512`` and ``msn``; ``logmel`` is informational (its "encoder" is the
log-mel front end and two statistics, cheaper than decoding a 44.1 kHz clip,
so its ratio shows the pipeline's per-clip cost rather than whether it keeps
up).  Both loops must give the same embeddings (the note says how close).

Data: a generated binary task (the ``detect`` generator) of 5 s clips stored as
44.1 kHz 16-bit WAV, ESC-50's format, with a fixed 60/20/20 split (the
statistics are fitted on the 60 % training clips).  ``msn`` (ViT-B/32 on
0.96 s windows, ~0.4 s per 5 s clip on one CPU thread) gets fewer clips than
the others.  The official weights are not needed: each encoder is its YAML's
network with seeded random weights (speed does not depend on the weights).  Full mode runs
two rounds, the order of the two loops swapped in the second, so that a change
in the machine's load falls on both sides.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.encoder import LoadedEncoder, load_encoder_model
from evalbench.embed.extract import embed_views, fit_encoder
from evalbench.embed.loader import ClipDataset, clip_batches
from evalbench.paths import builtin_catalog
from evalbench.registry import POOLINGS
from evalbench.specs.encoder import parse_encoder_file
from evalbench.specs.task import TaskSpec, load_task
from evalbench.utils.device import resolve_device

ENCODERS = ("logmel", "byola", "byola-v1-512", "msn")
INFORMATIONAL = ("logmel",)  # no target: the encoder costs less than decoding (module docstring)
TARGET = 0.9  # pipeline ÷ bare forward, clips/s
BATCH, WORKERS = 32, 0  # `evalbench run`'s defaults (--batch-size, --workers)
RATE, SECONDS = 44_100, 5.0  # ESC-50's stored format
RTOL, ATOL = 1e-4, 1e-5  # the two loops' embeddings must agree to this


@dataclass(frozen=True)
class Sizes:
    """How much is measured.

    Attributes:
        clips: Clips of the task for ``logmel`` and the BYOL-A networks.
        vit_clips: Clips for ``msn`` (a ViT-B/32 per 0.96 s window).
        rounds: Rounds of (pipeline, bare) loops, the order swapped every other round.
    """

    clips: int
    vit_clips: int
    rounds: int


FULL = Sizes(2000, 250, 2)
QUICK = Sizes(20, 10, 1)


def bench_task(folder: Path, name: str, clips: int, seconds: float, sample_rate: int = RATE) -> TaskSpec:
    """Write and load a generated binary task of ``clips`` clips of ``seconds`` s stored at ``sample_rate`` Hz.

    Args:
        folder: Tasks folder to write ``<name>.yaml`` into (created if needed).
        name: Task (and dataset) name.
        clips: Number of clips, even and at least 10 (the ``detect`` generator's 5 per class).
        seconds: Clip length.
        sample_rate: Rate of the generated WAV files.

    Returns:
        The parsed task spec; ``open_task_data(task, data_root)`` generates its audio on first use.
    """
    spec = {
        "name": name,
        "version": 1,
        "description": f"{clips} generated clips of {seconds:g} s at {sample_rate} Hz for `evalbench bench`.",
        "dataset": {"builder": "synthetic", "options": {"kind": "detect", "per_class": clips // 2, "seed": 0}},
        "audio": {"sample_rate": sample_rate, "clip_seconds": float(seconds), "crop": "start"},
        "labels": {"type": "binary", "classes": ["absent", "present"]},
        "splits": {"type": "fixed"},
        "metrics": ["roc_auc"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_task(name, folder)


def random_weights(name: str, device: torch.device) -> LoadedEncoder:
    """``encoders/<name>.yaml``'s network with the seeded random weights of its options, not its checkpoint.

    The YAML is parsed directly: :func:`~evalbench.specs.encoder.load_encoder` would swap a family without
    official weights (``msn``, ``clmr``) for the newest checkpoint ``evalbench pretrain`` registered, which
    may be a smaller smoke-test network.
    """
    spec = parse_encoder_file(builtin_catalog() / "encoders" / f"{name}.yaml")
    return load_encoder_model(dataclasses.replace(spec, checkpoint=None), device)


Batch = tuple[np.ndarray, torch.Tensor, torch.Tensor]  # (rows, waveforms on the device, valid lengths)


def preload(enc: LoadedEncoder, data: TaskData, audio_cache: Path) -> list[Batch]:
    """The pipeline's batches (per part, :data:`BATCH` clips, in its order), decoded once and moved to the device."""
    out = []
    for rows in data.parts().values():
        loader = clip_batches(ClipDataset(data, rows, enc.model.sample_rate, audio_cache), BATCH, WORKERS)
        for i, (wav, lengths) in enumerate(loader):
            out.append((rows[i * BATCH : (i + 1) * BATCH], wav.to(enc.device), lengths.to(enc.device)))
    return out


@torch.inference_mode()
def bare_forward(enc: LoadedEncoder, batches: list[Batch], n: int) -> tuple[np.ndarray, float]:
    """Pooled embeddings ``(n, dim)`` of pre-loaded batches (metadata order) and the seconds they took."""
    pool = POOLINGS.get(enc.spec.pooling)
    out = np.zeros((n, enc.dim), dtype=np.float32)
    start = time.perf_counter()
    for rows, wav, lengths in batches:
        out[rows] = pool(enc.model.encode(wav, lengths)).float().cpu().numpy()
    return out, time.perf_counter() - start


def pipeline(enc: LoadedEncoder, data: TaskData, root: Path) -> tuple[np.ndarray, float]:
    """A cold ``embed_views`` into the cache folder ``root`` (fit included, as ``run`` does it): embeddings, seconds."""
    start = time.perf_counter()
    x, _, _ = embed_views(enc, data, EmbeddingCache(root), BATCH, WORKERS)
    return x, time.perf_counter() - start


@torch.inference_mode()
def _warm_up(enc: LoadedEncoder, batch: Batch) -> None:
    """One untimed forward of two clips: first-call allocations and kernel selection would fall on one side only."""
    enc.model.encode(batch[1][:2], batch[2][:2])


def compare(
    enc: LoadedEncoder, data: TaskData, scratch: Path, rounds: int, log: Callable[[str], None] = print
) -> Figure:
    """Pipeline against bare forward on ``data`` (module docstring); the throwaway caches go under ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-extract-", dir=scratch) as tmp:
        start = time.perf_counter()
        batches = preload(enc, data, Path(tmp) / "preload")
        decode_s = time.perf_counter() - start
        # the statistics the bare forward needs (every pipeline run refits them into its own cold cache)
        fit_encoder(enc, data, EmbeddingCache(Path(tmp) / "fit"), BATCH, WORKERS)
        _warm_up(enc, batches[0])
        seconds, ratios, agree = {"pipeline": 0.0, "bare": 0.0}, [], ""
        for r in range(rounds):
            run: dict[str, float] = {}
            for side in ("pipeline", "bare") if r % 2 == 0 else ("bare", "pipeline"):
                if side == "pipeline":
                    x, run[side] = pipeline(enc, data, Path(tmp) / f"cold-{r}")
                    shutil.rmtree(Path(tmp) / f"cold-{r}")
                else:
                    y, run[side] = bare_forward(enc, batches, data.n)
                seconds[side] += run[side]
            ratios.append(run["bare"] / run["pipeline"])
            if r == 0:
                same = np.allclose(x, y, rtol=RTOL, atol=ATOL)
                agree = f"embeddings {'agree' if same else 'DIFFER'} (max |Δ| {float(np.max(np.abs(x - y))):.2g})"
    rate = {side: rounds * data.n / s for side, s in seconds.items()}
    fit = " (input statistics fitted on the training clips included)" if enc.model.needs_fit else ""
    per_clip = 1000 * (seconds["pipeline"] - seconds["bare"]) / (rounds * data.n)
    note = (
        f"{data.n} clips of {data.task.audio.clip_seconds:g} s, {data.task.audio.sample_rate} Hz WAV → "
        f"{enc.model.sample_rate} Hz, batch {BATCH}, {WORKERS} workers, cold caches; random weights (speed does not "
        f"depend on them); pipeline {seconds['pipeline']:.1f} s, bare {seconds['bare']:.1f} s: {per_clip:.1f} ms/clip "
        f"outside the encoder{fit}; the untimed pre-load (decode, resample, store each clip) took "
        f"{1000 * decode_s / data.n:.1f} ms/clip; "
        f"ratio per round {', '.join(f'{q:.2f}' for q in ratios)}; {agree}"
    )
    name = enc.spec.name
    log(f"bench extract: {name}: pipeline {rate['pipeline']:.1f} clips/s, bare {rate['bare']:.1f} clips/s")
    figure_name = f"extract {name}: clips/s, pipeline (cold) vs bare forward"
    if name in INFORMATIONAL:
        return Figure(figure_name, rate["pipeline"], "clips/s", rate["bare"], "", None, note)
    return ratio_at_least(figure_name, rate["pipeline"], rate["bare"], "clips/s", TARGET, note)


def measure(ctx: BenchContext) -> list[Figure]:
    """Every figure of the part (module docstring)."""
    sizes = QUICK if ctx.quick else FULL
    device = resolve_device(ctx.device)
    figures = []
    for name in ENCODERS:
        n = sizes.vit_clips if name == "msn" else sizes.clips
        task = bench_task(ctx.cache_dir / "bench-tasks", f"bench_extract_{n}", n, SECONDS)
        ctx.log(f"bench extract: {name}: {n} clips of {SECONDS:g} s at {RATE} Hz")
        data = open_task_data(task, ctx.data_root)
        enc = random_weights(name, device)
        figures.append(compare(enc, data, ctx.cache_dir / "bench-extract", sizes.rounds, ctx.log))
    return figures


__all__ = [
    "FULL",
    "QUICK",
    "Sizes",
    "bare_forward",
    "bench_task",
    "compare",
    "measure",
    "pipeline",
    "preload",
    "random_weights",
]
