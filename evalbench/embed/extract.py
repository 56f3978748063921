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
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from evalbench.adapters.base import Encoder, Frames
from evalbench.adapters.pooling import pooled_dim
from evalbench.data.audio import RESAMPLE_METHOD, ResampleCache, Resampler, load_clip
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.errors import AudioDecodeError, EvalbenchError
from evalbench.presets import EmbeddingRecipe
from evalbench.registry import ADAPTERS, POOLINGS
from evalbench.specs.encoder import EncoderSpec, pretrained_alternatives
from evalbench.utils.hashing import sha256_file, sha256_json

FIT_MAX_CLIPS = 5000  # EVAR computes input statistics on <= 5,000 training clips (PROTOCOL.md §2.1)


@dataclass
class LoadedEncoder:
    """An instantiated encoder with its spec and identity.

    Attributes:
        spec: The encoder spec.
        model: The adapter module (in eval mode, on its device).
        checkpoint_sha256: Content hash of the checkpoint file, if any.
        device: Torch device.
        fit_key: Key of what the input statistics were fitted from (data
            content, rows, recipe) for the current task; None if nothing is fitted.
    """

    spec: EncoderSpec
    model: Encoder
    checkpoint_sha256: str | None
    device: torch.device
    fit_key: str | None = None

    def identity(self) -> dict[str, Any]:
        """Everything about the encoder that can change embeddings.

        Fitted statistics enter by what they were fitted *from* (:attr:`fit_key`),
        not by their values: the last bits of a float sum differ between
        machines, and an identity that hung on them would miss every cache
        entry and record made elsewhere.  The values are recorded beside the
        cache entries and compared with a tolerance (:func:`~evalbench.embed.cache.states_agree`).
        """
        return {**static_identity(self.spec, self.checkpoint_sha256), "fit": self.fit_key}

    @property
    def fingerprint(self) -> str:
        """SHA-256 of :meth:`identity`."""
        return sha256_json(self.identity())

    @property
    def dim(self) -> int:
        """Width of the pooled clip embedding."""
        return pooled_dim(self.spec.pooling, self.model.embed_dim)


def static_identity(spec: EncoderSpec, checkpoint_sha256: str | None) -> dict[str, Any]:
    """Encoder identity known before any data is seen: config, adapter code version, weights hash."""
    return {
        **spec.config_for_fingerprint(),
        "adapter_version": ADAPTERS.get(spec.adapter).VERSION,
        "checkpoint_sha256": checkpoint_sha256,
    }


def verify_checkpoint(spec: EncoderSpec) -> str | None:
    """SHA-256 of the spec's checkpoint file (None without one), checked against the spec.

    Raises:
        EvalbenchError: The checkpoint is missing or its SHA-256 differs from the spec.
    """
    path = spec.checkpoint_path()
    digest = None
    if path is not None:
        if not path.is_file():
            hint = f" (obtain it from {spec.checkpoint.source})" if spec.checkpoint and spec.checkpoint.source else ""
            trained = [other.name for other in pretrained_alternatives(spec)]
            if trained:
                hint += f"; encoders of this family that `evalbench pretrain` produced: {', '.join(trained)}"
            raise EvalbenchError(f"{spec.source_path}: checkpoint.path: file {path} not found{hint}")
        digest = sha256_file(path)
        expected = spec.checkpoint.sha256 if spec.checkpoint else None
        if expected and expected != digest:
            raise EvalbenchError(
                f"{spec.source_path}: checkpoint.sha256: {path} has SHA-256 {digest}, expected {expected}; "
                "the file changed or is the wrong one"
            )
    return digest


def load_encoder_model(spec: EncoderSpec, device: torch.device, checkpoint_sha256: str | None = None) -> LoadedEncoder:
    """Instantiate ``spec``'s adapter on ``device`` after verifying its checkpoint."""
    digest = checkpoint_sha256 if checkpoint_sha256 is not None else verify_checkpoint(spec)
    path = spec.checkpoint_path()
    model = ADAPTERS.get(spec.adapter).from_options(spec.typed_options(), path)
    model.to(device).eval()
    return LoadedEncoder(spec, model, digest, device)


class ClipDataset(Dataset):
    """Preprocessed clips of some rows of a task, at the encoder's sample rate.

    Args:
        data: Task data.
        rows: Rows to load.
        sample_rate: Encoder sample rate.
        audio_cache: Folder of the resampled-clip cache (:class:`ResampleCache`).
        crop: Crop policy; None: the task's.
    """

    def __init__(
        self, data: TaskData, rows: np.ndarray, sample_rate: int, audio_cache: Path, crop: str | None = None
    ) -> None:
        self.data, self.rows, self.sample_rate = data, rows, sample_rate
        self.crop = crop or data.task.audio.crop
        self.resampler = Resampler()
        self.cache = ResampleCache(audio_cache)
        self.bounds = (data.task.dataset.min_seconds, data.task.dataset.max_seconds)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        """``(waveform, valid length, error)`` of clip ``i``.

        Decode errors travel as text so that they reach the main process as one
        clean message, even from DataLoader workers.
        """
        row = int(self.rows[i])
        audio = self.data.task.audio
        try:
            wav, valid = load_clip(
                self.data.path(row),
                self.data.files[row],
                audio.clip_seconds,
                self.sample_rate,
                self.crop,
                audio.crop_seed,
                self.resampler,
                self.cache,
                self.data.dataset.content.get(self.data.files[row], ""),
                self.bounds,
            )
        except AudioDecodeError as exc:
            n = max(1, round(audio.clip_seconds * self.sample_rate))
            return torch.zeros(n), 0, str(exc)
        return torch.from_numpy(wav), valid, ""


def _collate(items: list[tuple[torch.Tensor, int, str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    wav = torch.stack([w for w, _, _ in items])
    return wav, torch.tensor([v for _, v, _ in items], dtype=torch.int64), [e for _, _, e in items if e]


def _clean(loader: DataLoader, task: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a clip loader; the first decode error stops extraction with one clear message."""
    for wav, lengths, errors in loader:
        if errors:
            more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
            raise AudioDecodeError(f"{errors[0]}{more}; `evalbench data verify {task}` lists every bad file")
        yield wav, lengths


def _batches(dataset: ClipDataset, batch_size: int, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_single_thread,
        persistent_workers=False,
    )
    return _clean(loader, dataset.data.task.name)


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)


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
) -> np.ndarray:
    """Pooled float32 embeddings ``(len(rows), dim)`` of the given rows (``crop``: None for the task's policy)."""
    pool = POOLINGS.get(enc.spec.pooling)
    out = np.empty((len(rows), enc.dim), dtype=np.float32)
    pos = 0
    loader = _batches(ClipDataset(data, rows, enc.model.sample_rate, audio_cache, crop), batch_size, workers)
    total = -(-len(rows) // batch_size)
    for wav, lengths in tqdm(loader, total=total, desc=desc, unit="batch", leave=False, disable=None):
        frames = enc.model.encode(wav.to(enc.device), lengths.to(enc.device))
        if not mask_padding:  # the reference harness pools every output frame, padding included
            frames = Frames(frames.embeddings, torch.ones_like(frames.mask))
        pooled = pool(frames).float().cpu().numpy()
        if not np.isfinite(pooled).all():
            bad = data.files[int(rows[pos + int(np.flatnonzero(~np.isfinite(pooled).all(1))[0])])]
            raise EvalbenchError(f"encoder '{enc.spec.name}' produced non-finite embeddings for {bad}")
        out[pos : pos + len(pooled)] = pooled
        pos += len(pooled)
    return out


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


def fit_encoder(
    enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, batch_size: int, workers: int, crop: str | None = None
) -> None:
    """Fit an encoder's input statistics on the task's training audio, if it needs to.

    Fixed splits use the train split.  k-fold tasks use every fold: the
    statistics are label-free scalars, and per-rotation fitting would multiply
    extraction by k.  At most :data:`FIT_MAX_CLIPS` clips, the first ones of a
    seeded permutation.  The fitted state is cached under a key of what it is
    fitted from (encoder, clips and their content, audio settings, recipe),
    which also becomes :attr:`LoadedEncoder.fit_key`; warm runs do not re-read
    the audio.  ``crop`` is the training clips' crop policy (None: the task's).

    Raises:
        EvalbenchError: The fit gave non-finite statistics (never cached).
    """
    enc.fit_key = None
    if not enc.model.needs_fit:
        return
    rows = np.flatnonzero(data.split == "train") if data.split is not None else np.arange(data.n)
    rows = np.sort(np.random.default_rng(0).permutation(rows)[:FIT_MAX_CLIPS])
    static = sha256_json(static_identity(enc.spec, enc.checkpoint_sha256))
    payload = {
        **cache_payload(enc, data, "fit", rows, crop),
        "encoder": static,
        "recipe": {"max_clips": FIT_MAX_CLIPS},
    }
    enc.fit_key = cache.key(payload)
    state = cache.load_state(enc.spec.name, data.task.name, payload)
    if state is not None:
        enc.model.load_fitted_state(state)
        return
    loader = _batches(ClipDataset(data, rows, enc.model.sample_rate, cache.root / "audio", crop), batch_size, workers)
    enc.model.fit(wav[:n] for batch, lengths in loader for wav, n in zip(batch, lengths.tolist(), strict=True))
    state = enc.model.fitted_state()
    if not all(np.isfinite(v) for v in state.values() if isinstance(v, float)):
        raise EvalbenchError(
            f"fitting encoder '{enc.spec.name}' on the training audio of task '{data.task.name}' gave non-finite "
            f"input statistics {state}; `evalbench data verify {data.task.name}` lists damaged files"
        )
    cache.store_state(enc.spec.name, data.task.name, payload, state)


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
    """Timing and cache use of one task's extraction."""

    seconds: float
    parts_cached: int
    parts_computed: int
    clips_computed: int


def _embed_parts(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    batch_size: int,
    workers: int,
    crops: dict[str, str],
    mask_padding: bool,
    counts: list[int],
) -> np.ndarray:
    """Embeddings of every part, part ``p`` cropped by ``crops[p]``, from cache where possible."""
    full = np.empty((data.n, enc.dim), dtype=np.float32)
    fitted = enc.model.fitted_state()
    for part, rows in data.parts().items():
        payload = cache_payload(enc, data, part, rows, crops[part], mask_padding)
        array = cache.load(enc.spec.name, data.task.name, part, payload, fitted)
        if array is None:
            desc = f"{enc.spec.name}/{data.task.name}/{part}"
            array = embed_rows(
                enc, data, rows, batch_size, workers, desc, cache.root / "audio", crops[part], mask_padding
            )
            cache.store(enc.spec.name, data.task.name, part, payload, array, fitted)
            counts[1], counts[2] = counts[1] + 1, counts[2] + len(rows)
        else:
            counts[0] += 1
        full[rows] = array
    return full


def embed_views(
    enc: LoadedEncoder,
    data: TaskData,
    cache: EmbeddingCache,
    batch_size: int = 32,
    workers: int = 0,
    recipe: EmbeddingRecipe | None = None,
) -> tuple[np.ndarray, np.ndarray, EmbedStats]:
    """Embeddings of every clip as training/validation material and as test material, plus stats.

    Both arrays are in metadata order; they are the same array unless ``recipe`` crops test clips differently
    from training clips on a k-fold task (module docstring).  A fixed-split task needs one array: each part has
    one role.
    """
    recipe = recipe or EmbeddingRecipe()
    start = time.perf_counter()
    task_crop = data.task.audio.crop
    train_crop, test_crop = recipe.policy("train", task_crop), recipe.policy("test", task_crop)
    if recipe.policy("valid", task_crop) != train_crop:
        raise EvalbenchError("an embedding recipe must crop validation clips like training clips")
    fit_encoder(enc, data, cache, batch_size, workers, train_crop)
    counts = [0, 0, 0]  # parts cached, parts computed, clips computed
    parts = list(data.parts())
    if data.split is not None:  # fixed split: the part is the role
        crops = {p: recipe.policy(p, task_crop) for p in parts}
        x = x_test = _embed_parts(enc, data, cache, batch_size, workers, crops, recipe.mask_padding, counts)
    else:
        x = _embed_parts(enc, data, cache, batch_size, workers, dict.fromkeys(parts, train_crop),
                         recipe.mask_padding, counts)  # fmt: skip
        x_test = x
        if test_crop != train_crop:
            x_test = _embed_parts(enc, data, cache, batch_size, workers, dict.fromkeys(parts, test_crop),
                                  recipe.mask_padding, counts)  # fmt: skip
    return x, x_test, EmbedStats(time.perf_counter() - start, *counts)


def embed_task(
    enc: LoadedEncoder, data: TaskData, cache: EmbeddingCache, batch_size: int = 32, workers: int = 0
) -> tuple[np.ndarray, EmbedStats]:
    """Embeddings of every clip of ``data`` (metadata order) under the task's own crop, from cache where possible."""
    x, _, stats = embed_views(enc, data, cache, batch_size, workers)
    return x, stats


__all__ = ["EmbedStats", "LoadedEncoder", "embed_task", "embed_views", "load_encoder_model"]
