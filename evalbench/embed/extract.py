"""Build encoders from specs and turn a task's clips into cached clip embeddings.

Extraction runs under ``torch.inference_mode`` in batches: decode and
preprocess (in DataLoader workers when ``workers > 0``), encode to frames, pool
with the encoder's named pooling (ignoring padded frames), and store one float32
array per part in the :class:`~evalbench.embed.cache.EmbeddingCache`.  Parts
already cached are memory-mapped instead of recomputed.

A protocol preset's :class:`~evalbench.presets.EmbeddingRecipe` can crop by
role and pool padded frames too (the ``evar`` preset: random crops for
training and validation clips, start crops for test clips, every frame
pooled).  On a k-fold task every fold is training material in some rotations
and test material in one, so a role-dependent crop gives two embeddings of
each fold (:func:`embed_views`); the cache key of a part holds its crop policy
and, when not the default, the pooling rule.

A task's embedding matrix is never required to fit in private memory: large
parts and the assembled matrix live in memory-mapped scratch files in the cache
folder (:func:`~evalbench.utils.memory.scratch_array`), cached parts are
memory-mapped, and the standardisation reads blocks of rows.  A 200 MiB matrix
was extracted, cached and probed (150 training rows) with 150 MiB of private
memory allowed (tests/reliability/test_memory_limits.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench.data.audio import RESAMPLE_METHOD
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.encoder import LoadedEncoder, load_encoder_model, static_identity, verify_checkpoint
from evalbench.embed.fit import FIT_MAX_CLIPS, fit_encoder, fitted_on, fused_fit
from evalbench.embed.loader import ClipDataset, auto_workers, clip_batches
from evalbench.embed.shard import embed_part_sharded
from evalbench.errors import EvalbenchError
from evalbench.presets import EmbeddingRecipe
from evalbench.pretrain.distributed import DistEnv, barrier
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_json
from evalbench.utils.memory import allocation_failed, fix_mmap_threshold, scratch_array


@torch.inference_mode()
def embed_rows(
    enc: LoadedEncoder,
    data: TaskData,
    rows: np.ndarray,
    batch_size: int,
    workers: int,
    desc: str,
    audio_cache: Path,
    crop: str | None = None,
    mask_padding: bool = True,
    timings: dict[str, float] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pooled float32 embeddings ``(len(rows), dim)`` of the given rows (``crop``: None for the task's policy).

    At reduced precision the first batch is first checked against fp32 (:meth:`LoadedEncoder.verify_precision`).
    ``timings`` accumulates seconds per stage (``load_wait``, ``decode``, ``resample``, ``encode``, ``pool``).
    ``out``, when given, receives the embeddings batch by batch and is returned (a memory-mapped
    :func:`~evalbench.utils.memory.scratch_array` for a matrix too large for RAM).
    """
    out = np.empty((len(rows), enc.dim), dtype=np.float32) if out is None else out
    pos = 0
    dataset = ClipDataset(data, rows, enc.model.sample_rate, audio_cache, crop)
    loader = clip_batches(dataset, batch_size, workers, timings, enc.device.type == "cuda")
    total = -(-len(rows) // batch_size)
    try:
        for wav, lengths in progress(loader, total=total, desc=desc, unit="batch", leave=False):
            wav, lengths = wav.to(enc.device, non_blocking=True), lengths.to(enc.device, non_blocking=True)
            enc.verify_precision(wav, lengths, data.task.name)
            pooled = enc.pooled(wav, lengths, mask_padding, timings).cpu().numpy()
            enc.check_finite(pooled, [data.files[int(r)] for r in rows[pos : pos + len(pooled)]])
            out[pos : pos + len(pooled)] = pooled
            pos += len(pooled)
    except (MemoryError, RuntimeError) as exc:  # the working memory of one batch did not fit: say what to change
        if not allocation_failed(exc):
            raise
        raise EvalbenchError(
            f"task '{data.task.name}': out of memory extracting {desc} in batches of {batch_size} clips of "
            f"{data.task.audio.clip_seconds} s ({enc.dim:,} dimensions); the embeddings themselves are memory-mapped, "
            "so a smaller --batch-size needs less, or rerun with more memory"
        ) from None
    return out


def cache_payload(
    enc: LoadedEncoder,
    data: TaskData,
    part: str,
    rows: np.ndarray,
    crop: str | None = None,
    mask_padding: bool = True,
) -> dict[str, Any]:
    """The cache key inputs of one part (see :mod:`evalbench.embed.cache`).

    The part's clips enter by name *and* content hash, so an audio file edited
    in place invalidates exactly the parts that hold it.  ``crop`` (None: the
    task's policy) and unmasked pooling enter too; the default pooling adds
    nothing, so keys made before presets could change it stay valid.
    """
    audio = data.task.audio
    content = data.dataset.content
    payload = {
        "encoder": enc.fingerprint,
        "task": data.task.name,
        "task_version": data.task.version,
        "part": part,
        "files": sha256_json([[data.files[i], content.get(data.files[i])] for i in rows]),
        "audio": {
            "resample": RESAMPLE_METHOD,
            "sample_rate": enc.model.sample_rate,
            "clip_seconds": audio.clip_seconds,
            "crop": crop or audio.crop,
            "crop_seed": audio.crop_seed,
        },
    }
    if not mask_padding:
        payload["pooling"] = {"mask_padding": False}
    return payload


@dataclass
class EmbedStats:
    """Timing and cache use of one task's extraction (``stages``: seconds per stage, see :func:`embed_rows`)."""

    seconds: float
    parts_cached: int
    parts_computed: int
    clips_computed: int
    stages: dict[str, float] = field(default_factory=dict)


def _embed_parts(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    batch_size: int,
    workers: int,
    crops: dict[str, str],
    mask_padding: bool,
    counts: list[int],
    fused: dict[tuple[str, str], np.ndarray] | None = None,
    timings: dict[str, float] | None = None,
    env: DistEnv | None = None,
) -> np.ndarray | None:
    """Embeddings of every part, part ``p`` cropped by ``crops[p]``, from cache where possible.

    ``fused`` holds the parts the fused fit pass already embedded and cached (:func:`~evalbench.embed.fit.fused_fit`).
    Under torchrun (``env`` active) each uncached part is embedded in shards and merged by rank 0
    (:mod:`evalbench.embed.shard`); the other ranks return None.

    A large part and the whole matrix are written to memory-mapped scratch files in the cache folder
    (:func:`~evalbench.utils.memory.scratch_array`), never held whole in private memory: a task whose
    embeddings exceed the memory allowed is still extracted and cached (cached parts are memory-mapped too).
    """
    env = env or DistEnv()
    scratch = cache.root / ".scratch"
    full = scratch_array((data.n, enc.dim), scratch)
    fitted = enc.model.fitted_state()
    for part, rows in data.parts().items():
        payload = cache_payload(enc, data, part, rows, crops[part], mask_padding)
        done = (fused or {}).get((part, crops[part]))
        array = done if done is not None else cache.load(enc.spec.name, data.task.name, part, payload, fitted)
        if done is not None:
            counts[1], counts[2] = counts[1] + 1, counts[2] + len(rows)
        elif array is None:
            desc = f"{enc.spec.name}/{data.task.name}/{part}"

            def compute(some: np.ndarray, desc: str = desc, crop: str = crops[part]) -> np.ndarray:
                audio, out = cache.root / "audio", scratch_array((len(some), enc.dim), scratch)
                return embed_rows(enc, data, some, batch_size, workers, desc, audio, crop, mask_padding, timings, out)

            mark = time.perf_counter()
            if env.active:
                array = embed_part_sharded(
                    cache, enc.spec.name, data.task.name, part, rows, payload, fitted, enc.dim, env, compute
                )
            else:
                try:
                    array = compute(rows)
                except BaseException:  # let a waiting process take over this entry now, not at our exit
                    cache.abandon(enc.spec.name, data.task.name, part, payload)
                    raise
                mark = time.perf_counter()
                cache.store(enc.spec.name, data.task.name, part, payload, array, fitted)
            if timings is not None and not env.active:
                timings["cache_write"] = timings.get("cache_write", 0.0) + time.perf_counter() - mark
            counts[1], counts[2] = counts[1] + 1, counts[2] + len(rows)
        else:
            counts[0] += 1
        if array is not None:
            full[rows] = array
    return full if env.main else None


def embed_views(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    batch_size: int = 32,
    workers: int | None = None,
    recipe: EmbeddingRecipe | None = None,
    env: DistEnv | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None, EmbedStats]:
    """Embeddings of every clip as training/validation material and as test material, plus stats.

    ``workers`` None decodes with :func:`~evalbench.embed.loader.auto_workers` workers for the encoder's device.

    Both arrays are in metadata order; they are the same array unless ``recipe`` crops test clips differently
    from training clips on a k-fold task (module docstring).  A fixed-split task needs one array: each part has
    one role.  An encoder fitted on the training audio is fitted in the same pass as the parts holding its
    training clips are embedded, when it can be (:func:`~evalbench.embed.fit.fused_fit`).

    Under torchrun (``env`` active) rank 0 fits the encoder alone while the others wait, then every rank
    embeds its shards; only rank 0 gets the arrays (the others get None).
    """
    env = env or DistEnv()
    fix_mmap_threshold()  # memory flat in the number of clips (evalbench.utils.memory)
    workers = auto_workers(enc.device) if workers is None else workers
    stages: dict[str, float] = {}
    recipe = recipe or EmbeddingRecipe()
    start = time.perf_counter()
    task_crop = data.task.audio.crop
    train_crop, test_crop = recipe.policy("train", task_crop), recipe.policy("test", task_crop)
    if recipe.policy("valid", task_crop) != train_crop:
        raise EvalbenchError("an embedding recipe must crop validation clips like training clips")
    counts = [0, 0, 0]  # parts cached, parts computed, clips computed
    parts = list(data.parts())
    if data.split is not None:  # fixed split: the part is the role
        views = [{p: recipe.policy(p, task_crop) for p in parts}]
    else:  # k-fold: every fold as training material, and as test material if cropped differently
        views = [dict.fromkeys(parts, train_crop)]
        if test_crop != train_crop:
            views.append(dict.fromkeys(parts, test_crop))
    if env.active:  # rank 0 fits and caches the state; the others then read it from the cache
        mark = time.perf_counter()
        if env.main:
            fit_encoder(enc, data, cache, batch_size, workers, train_crop)
        barrier(env)
        if not env.main:
            fit_encoder(enc, data, cache, batch_size, workers, train_crop)
        stages["fit"] = time.perf_counter() - mark
        fused = {}
    else:
        fused = fused_fit(enc, data, cache, batch_size, workers, views, recipe.mask_padding, train_crop, stages)
    args = (enc, data, cache, batch_size, workers)
    x = x_test = _embed_parts(*args, views[0], recipe.mask_padding, counts, fused, stages, env)
    if len(views) > 1:
        x_test = _embed_parts(*args, views[1], recipe.mask_padding, counts, fused, stages, env)
    return x, x_test, EmbedStats(time.perf_counter() - start, *counts, stages)


def embed_task(
    enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, batch_size: int = 32, workers: int | None = None
) -> tuple[np.ndarray, EmbedStats]:
    """Embeddings of every clip of ``data`` (metadata order) under the task's own crop, from cache where possible."""
    x, _, stats = embed_views(enc, data, cache, batch_size, workers)
    return x, stats


__all__ = [
    "FIT_MAX_CLIPS",
    "ClipDataset",
    "EmbedStats",
    "LoadedEncoder",
    "cache_payload",
    "embed_rows",
    "embed_task",
    "embed_views",
    "fit_encoder",
    "fitted_on",
    "load_encoder_model",
    "static_identity",
    "verify_checkpoint",
]
