"""Fitting an encoder's input statistics on a task's training audio, separately or fused with extraction.

BYOL-A (Niizumi et al., IJCNN 2021; TASLP 2023) and the MSN-audio port
normalise their log-mel input with a scalar mean and standard deviation fitted
on the downstream task's training clips; EVAR fits them on at most 5,000 clips
(docs/protocol.md §2.1 item 3, docs/methods.md §1.2).  The rows, their crop and the
cache key of the fitted state are chosen by :func:`plan_fit`, before any audio
is read.

Two ways to compute a state that is not cached:

- **separate** (:func:`fit_encoder`): decode the fit clips and compute each
  one's log-mel alone; the embedding pass then decodes them and computes
  their log-mel again.
- **fused** (:func:`fused_fit`, used by :func:`~evalbench.embed.extract.embed_views`
  for adapters with a front-end split, :mod:`evalbench.adapters.base`): the
  pass that embeds the parts holding the fit clips computes each batch's front
  end once, for the statistics and for the embeddings, so each clip is decoded
  and framed once per run.

The two states agree to float summation order and the float32 rounding of a
batched against a one-clip STFT (relative ~1e-7, far inside the cache's
:data:`~evalbench.embed.cache.FIT_RTOL`); the fused embeddings are those of the
normal path for that state (same batches, same front end).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.encoder import LoadedEncoder, static_identity
from evalbench.embed.loader import ClipDataset, clip_batches
from evalbench.errors import DiskFullError, EvalbenchError
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_json
from evalbench.utils.io import CACHE_ADVICE, disk_full_error, is_disk_full
from evalbench.utils.memory import scratch_array

FIT_MAX_CLIPS = 5000  # EVAR computes input statistics on <= 5,000 training clips (docs/protocol.md §2.1)
FEATURE_BUDGET_BYTES = 2 * 1024**3
"""Front-end features the fused pass keeps on disk, summed over kept parts.

The features wait for the statistics in an anonymous temporary file under the
cache folder (:class:`_Spill`), written and read back batch by batch, so the
process's memory does not grow with the task (``evalbench bench scaling``).
A 5 s clip's BYOL-A log-mel is 64 × 501 float32 ≈ 128 KiB, so 2 GiB holds
~16,000 such clips.  A part whose features would exceed the budget is dropped
(its fit rows still count towards the statistics) and recomputed afterwards by
the normal path, so the scratch space stays bounded whatever the task's size.
"""


def fitted_on(enc: LoadedEncoder, data: TaskData) -> str | None:
    """What the encoder's input statistics were fitted on, in words, for the record (None: nothing fitted)."""
    if not enc.model.needs_fit:
        return None
    if data.split is not None:
        return f"the train split (at most {FIT_MAX_CLIPS} clips)"
    return (
        f"every fold, test folds included (at most {FIT_MAX_CLIPS} clips; label-free scalars, fitted once so no clip "
        "is extracted more than once)"
    )


def _cache_payload(*args: Any, **kwargs: Any) -> dict[str, Any]:
    # NOTE: imported at call time: evalbench.embed.extract imports this module to re-export fit_encoder.
    from evalbench.embed.extract import cache_payload

    return cache_payload(*args, **kwargs)


@dataclass
class FitPlan:
    """A fit still to do: its rows, crop and state cache key inputs.

    Attributes:
        rows: Fit rows, sorted (metadata indices).
        crop: Crop policy of the training clips (None: the task's).
        payload: Cache key inputs of the fitted state.
    """

    rows: np.ndarray
    crop: str | None
    payload: dict[str, Any]


def plan_fit(enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, crop: str | None = None) -> FitPlan | None:
    """Choose the fit rows, set :attr:`LoadedEncoder.fit_key`, and load the state if it is cached.

    Fixed splits use the train split.  k-fold tasks use every fold: the
    statistics are label-free scalars, and per-rotation fitting would multiply
    extraction by k.  At most :data:`FIT_MAX_CLIPS` clips, the first ones of a
    seeded permutation.  The state is keyed by what it is fitted from
    (encoder, clips and their content, audio settings, recipe), which also
    becomes the encoder's ``fit_key``.

    Returns:
        The fit to do, or None (nothing to fit, or the cached state was loaded).
    """
    enc.fit_key = None
    if not enc.model.needs_fit:
        return None
    rows = np.flatnonzero(data.split == "train") if data.split is not None else np.arange(data.n)
    rows = np.sort(np.random.default_rng(0).permutation(rows)[:FIT_MAX_CLIPS])
    static = sha256_json(static_identity(enc.spec, enc.checkpoint_sha256))
    payload = {
        **_cache_payload(enc, data, "fit", rows, crop),
        "encoder": static,
        "recipe": {"max_clips": FIT_MAX_CLIPS},
    }
    enc.fit_key = cache.key(payload)
    state = cache.load_state(enc.spec.name, data.task.name, payload)
    if state is not None:
        enc.model.load_fitted_state(state)
        return None
    return FitPlan(rows, crop, payload)


def _store_state(enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, plan: FitPlan) -> dict[str, Any]:
    """Check the fitted state is finite and cache it; returns it."""
    state = enc.model.fitted_state()
    if not all(np.isfinite(v) for v in state.values() if isinstance(v, float)):
        raise EvalbenchError(
            f"fitting encoder '{enc.spec.name}' on the training audio of task '{data.task.name}' gave non-finite "
            f"input statistics {state}; `evalbench data verify {data.task.name}` lists damaged files"
        )
    cache.store_state(enc.spec.name, data.task.name, plan.payload, state)
    return state


def fit_encoder(
    enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, batch_size: int, workers: int, crop: str | None = None
) -> None:
    """Fit an encoder's input statistics on the task's training audio in a pass of its own, if it needs to.

    Rows and cache key as :func:`plan_fit`; warm runs do not re-read the
    audio.  Each clip is framed alone (the adapter's ``fit``).  ``crop`` is
    the training clips' crop policy (None: the task's).

    Raises:
        EvalbenchError: The fit gave non-finite statistics (never cached).
    """
    plan = plan_fit(enc, data, cache, crop)
    if plan is None:
        return
    loader = clip_batches(
        ClipDataset(data, plan.rows, enc.model.sample_rate, cache.root / "audio", crop), batch_size, workers
    )
    enc.model.fit(wav[:n] for batch, lengths in loader for wav, n in zip(batch, lengths.tolist(), strict=True))
    _store_state(enc, data, cache, plan)


@dataclass
class _Part:
    """A part the fused pass embeds: name, rows, crop and cache key inputs (those of ``_embed_parts``)."""

    name: str
    rows: np.ndarray
    crop: str
    payload: dict[str, Any]


def _fit_parts(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    views: list[dict[str, str]],
    mask_padding: bool,
    plan: FitPlan,
) -> list[_Part] | None:
    """The uncached parts cropped as training clips that hold fit rows; None if they miss a fit row."""
    task_crop = data.task.audio.crop
    fit_crop = plan.crop or task_crop
    parts, seen = [], set()
    for crops in views:
        for name, rows in data.parts().items():
            crop = crops[name]
            if (name, crop) in seen or (crop or task_crop) != fit_crop or not np.isin(rows, plan.rows).any():
                continue
            seen.add((name, crop))
            payload = _cache_payload(enc, data, name, rows, crop, mask_padding)
            if cache.load(enc.spec.name, data.task.name, name, payload) is None:
                parts.append(_Part(name, rows, crop, payload))
    covered = np.concatenate([p.rows for p in parts]) if parts else np.empty(0, dtype=np.int64)
    return parts if np.isin(plan.rows, covered).all() else None


class _Spill:
    """A part's front-end features, batch by batch, in an anonymous temporary file (deleted on close or crash).

    Kept out of memory so that peak RSS does not grow with the task; read back
    once, in order, after the statistics are known.  Values are stored as their
    exact bytes, so the embeddings are those of features kept in memory.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.file = tempfile.TemporaryFile(dir=folder, prefix="fused-features-")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            if is_disk_full(exc):
                raise self._full(exc) from None
            raise
        self.batches: list[tuple[tuple[int, ...], np.dtype, torch.Tensor]] = []
        self.nbytes = 0

    def _full(self, exc: OSError) -> DiskFullError:
        """A full disk while spilling: named by the folder (the file itself is anonymous and already gone)."""
        return disk_full_error(self.folder / "fused-features-*", exc, CACHE_ADVICE)

    def append(self, feats: torch.Tensor, lengths: torch.Tensor) -> None:
        array = np.ascontiguousarray(feats.cpu().numpy())
        try:
            self.file.write(memoryview(array).cast("B"))
            self.file.flush()  # a full disk shows here, not at a later read
        except OSError as exc:
            if is_disk_full(exc):
                raise self._full(exc) from None
            raise
        self.batches.append((array.shape, array.dtype, lengths.cpu()))
        self.nbytes += array.nbytes

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.file.seek(0)
        for shape, dtype, lengths in self.batches:
            array = np.fromfile(self.file, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
            yield torch.from_numpy(array), lengths

    def close(self) -> None:
        self.file.close()
        self.batches.clear()


@dataclass
class _FusedPass:
    """The fused pass over one task's parts (:func:`fused_fit`): reading, fitting, encoding kept features."""

    enc: LoadedEncoder
    data: TaskData
    is_fit: np.ndarray  # (n,) bool: the plan's fit rows
    batch_size: int
    workers: int
    audio: Path
    scratch: Path  # folder of the spilled features (:class:`_Spill`)
    timings: dict[str, float] | None

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start

    def read(self, rows: np.ndarray, crop: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(features, lengths)`` per batch of ``rows`` (the batches ``embed_rows`` forms), fit rows added."""
        enc, pos = self.enc, 0
        dataset = ClipDataset(self.data, rows, enc.model.sample_rate, self.audio, crop)
        desc = f"{enc.spec.name}/{self.data.task.name} (fit + features)"
        with progress(total=-(-len(rows) // self.batch_size), desc=desc, unit="batch", leave=False) as bar:
            pin = enc.device.type == "cuda"
            for wav, lengths in clip_batches(dataset, self.batch_size, self.workers, self.timings, pin):
                wav, lengths = wav.to(enc.device, non_blocking=True), lengths.to(enc.device, non_blocking=True)
                with self.timed("encode"):  # the front end is part of encoding on the normal path
                    feats = enc.model.features(wav, lengths)
                take = self.is_fit[rows[pos : pos + len(lengths)]]
                if take.any():
                    with self.timed("fit"):
                        sel = torch.from_numpy(take).to(feats.device)
                        enc.model.fit_features(feats[sel], lengths[sel])
                pos += len(lengths)
                bar.update()
                yield feats, lengths

    def read_part(self, part: _Part, room: int) -> _Spill | None:
        """Add a part's fit rows to the statistics; its features (on disk) if they fit in ``room`` bytes, else None.

        With ``room < 0`` only the fit rows are read.  Features that outgrow
        ``room`` are dropped and the rest of the part is read for its fit rows only.
        """
        if room < 0:
            for _ in self.read(part.rows[self.is_fit[part.rows]], part.crop):
                pass
            return None
        spill, done = _Spill(self.scratch), 0
        stream = self.read(part.rows, part.crop)
        for feats, lengths in stream:
            done += len(lengths)
            if spill.nbytes + feats.nbytes > room:
                stream.close()  # stop decoding clips of no use to the fit
                spill.close()
                rest = part.rows[done:]
                for _ in self.read(rest[self.is_fit[rest]], part.crop):
                    pass
                return None
            with self.timed("cache_write"):
                spill.append(feats, lengths)
        return spill

    def encode(self, part: _Part, batches: _Spill, mask_padding: bool) -> np.ndarray:
        """Pooled float32 embeddings of a part from its kept features, pooled as ``embed_rows`` pools.

        A large part is written to a memory-mapped scratch file (:func:`~evalbench.utils.memory.scratch_array`).
        """
        enc = self.enc
        out = scratch_array((len(part.rows), enc.dim), self.scratch)
        pos = 0
        for feats, lengths in batches:
            with self.timed("encode"):
                feats, lengths = feats.to(enc.device, non_blocking=True), lengths.to(enc.device, non_blocking=True)
                frames = enc.model.encode_features(feats, lengths)
            pooled = enc.pool(frames, mask_padding, self.timings).cpu().numpy()
            enc.check_finite(pooled, [self.data.files[int(r)] for r in part.rows[pos : pos + len(pooled)]])
            out[pos : pos + len(pooled)] = pooled
            pos += len(pooled)
        return out


@torch.inference_mode()
def fused_fit(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    batch_size: int,
    workers: int,
    views: list[dict[str, str]],
    mask_padding: bool,
    crop: str | None = None,
    timings: dict[str, float] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Fit the encoder's input statistics (if needed) and embed, in the same pass, the parts that hold fit rows.

    The state is planned (and, if cached, loaded) by :func:`plan_fit`.  If it
    must be computed and the adapter has a front-end split, one pass over the
    uncached parts cropped as training clips that hold fit rows computes the
    front end of each batch once, adds the fit rows' features to the
    statistics, and keeps the features (on disk, :class:`_Spill`) within
    :data:`FEATURE_BUDGET_BYTES`: the first part that outgrows it is dropped,
    later parts are read for their fit rows only, and the normal path embeds
    them afterwards.  The finished state is checked and cached as by
    :func:`fit_encoder`, then each kept part is encoded and stored as
    ``_embed_parts`` stores it (same payload, same ``fitted`` state).  Without
    the split, or when a fit row lies in no uncached part (e.g. every part
    cached but the state not), the state is fitted by :func:`fit_encoder`.

    Args:
        enc: The encoder.
        data: Task data.
        cache: Embedding cache (also holds the resampled-clip cache).
        batch_size: Clips per batch.
        workers: Decoding worker processes.
        views: Crop policy per part of each set of parts ``embed_views`` computes.
        mask_padding: Whether pooling ignores padded frames (cache key input).
        crop: Crop policy of the training clips (None: the task's).
        timings: If given, accumulates seconds per stage: ``load_wait``, ``decode`` and ``resample``
            (:func:`~evalbench.embed.loader.clip_batches`), ``encode`` (front end included), ``fit``, ``pool``
            and ``cache_write``.

    Returns:
        ``{(part, crop): embeddings}`` of the parts embedded and cached here.

    Raises:
        EvalbenchError: Non-finite statistics or embeddings (never cached).
    """
    plan = plan_fit(enc, data, cache, crop)
    if plan is None:
        return {}
    # NOTE: at reduced precision the normal path runs the front end under autocast, the fit in float32; one
    # front end cannot serve both, so the fused pass is for float32 extraction only.
    fusable = enc.model.has_front_end and enc.precision == "fp32"
    parts = _fit_parts(enc, data, cache, views, mask_padding, plan) if fusable else None
    if parts is None:
        start = time.perf_counter()
        fit_encoder(enc, data, cache, batch_size, workers, crop)  # plans again: a cheap key, a state still missing
        if timings is not None:
            timings["fit"] = timings.get("fit", 0.0) + time.perf_counter() - start
        return {}
    is_fit = np.zeros(data.n, dtype=bool)
    is_fit[plan.rows] = True
    run = _FusedPass(enc, data, is_fit, batch_size, workers, cache.root / "audio", cache.root / "tmp", timings)
    room, kept = FEATURE_BUDGET_BYTES, []  # room < 0: a part overflowed, later ones are read for fit rows only
    enc.model.begin_fit()
    for part in parts:
        batches = run.read_part(part, room)
        if batches is None:
            room = -1
        else:
            kept.append((part, batches))
            room -= batches.nbytes
    with run.timed("fit"):
        enc.model.finish_fit()
        fitted = _store_state(enc, data, cache, plan)
    out = {}
    for part, batches in kept:
        array = run.encode(part, batches, mask_padding)
        batches.close()  # release the scratch space part by part
        with run.timed("cache_write"):
            cache.store(enc.spec.name, data.task.name, part.name, part.payload, array, fitted)
        out[(part.name, part.crop)] = array
    return out


__all__ = ["FEATURE_BUDGET_BYTES", "FIT_MAX_CLIPS", "FitPlan", "fit_encoder", "fitted_on", "fused_fit", "plan_fit"]
