"""The data layer of ``evalbench pretrain``: corpora, training crops, batches.

A pretraining run reads a :class:`~evalbench.pretrain.corpus.PretrainCorpus`
(re-exported here with its constructors), cuts each clip to the method's
training unit with :class:`CropDataset`, and draws batches with
:class:`EpochSampler`.  Every random choice is a pure function of the seed and
the position in training, so DataLoader workers, a resumed run and distributed
ranks need no RNG state and produce the same batches:

- batch membership: epoch ``e`` is ``default_rng([seed, e]).permutation(n)``,
  cut into global batches; global step ``s`` is computed arithmetically;
- crop offset: a SHA-256 of ``(seed, epoch, file index)``.

Recipes (``mode``) follow the reference BYOL-A code (nttcslab/byol-a):

- ``v1`` (Niizumi et al., "BYOL for Audio: Self-Supervised Learning for
  General-Purpose Audio Representation", IJCNN 2021, ``WaveInLMSOutDataset``):
  a clip shorter than the unit is zero-padded on both sides, ``adj // 2`` on
  the left and the rest on the right, so it sits centred; a longer clip gives a
  uniform random window, offsets ``0..slack`` inclusive (the code as fixed
  after the repository's issue #9, before which every crop started at 0).
- ``v2`` (Niizumi et al., "BYOL for Audio: Exploring Pre-Trained General-Purpose
  Audio Representations", TASLP 2023, ``BaseRawAudioDataset``): a short clip is
  zero-padded at the end; a long one gives a random window with offsets
  ``0..slack-1`` (``np.random.randint(slack)``, whose upper bound is exclusive).
- ``start``: the first window, right-padded; no randomness (supervised
  training, tests).

Both papers train on 0.95 s units at 16 kHz (``unit_sec: 0.95`` in the
reference configs), i.e. 15,200 samples and 96 log-mel frames at a 10 ms hop.
The reference code requires audio converted to 16 kHz mono beforehand
(``utils/convert_wav.py``); here a clip at another rate is decoded, mixed to
mono and resampled whole once, through the project's resampled-clip cache, and
then cropped at the training rate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from evalbench.data.audio import read_audio
from evalbench.data.metadata import MISSING
from evalbench.data.resample import ResampleCache, Resampler
from evalbench.errors import EvalbenchError
from evalbench.pretrain.corpus import (
    PretrainCorpus,
    check_disjoint,
    embedded_corpus,
    folder_corpus,
    task_corpus,
)

__all__ = [
    "UNIT_SECONDS",
    "CropDataset",
    "EpochSampler",
    "PretrainCorpus",
    "check_disjoint",
    "collate",
    "crop_offset",
    "embedded_corpus",
    "folder_corpus",
    "make_loader",
    "task_corpus",
]

UNIT_SECONDS = 0.95  # BYOL-A v1 and v2 training unit (unit_sec in the reference configs): 15,200 samples at 16 kHz
CropMode = Literal["v1", "v2", "start"]
Key = tuple[int, int]  # (epoch, file index)


def crop_offset(seed: int, epoch: int, index: int, choices: int) -> int:
    """A uniform offset in ``0..choices-1`` that is a pure function of ``(seed, epoch, index)``."""
    if choices <= 1:
        return 0
    digest = hashlib.sha256(f"pretrain-crop:{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % choices


class CropDataset(Dataset):
    """Training units of a corpus: item ``(epoch, file_index)`` is one waveform crop.

    Args:
        corpus: The clips.
        sample_rate: Training rate; clips at another rate are resampled whole.
        unit_seconds: Unit length (BYOL-A: ``UNIT_SECONDS`` = 0.95 s).
        mode: Crop/pad recipe, ``v1``, ``v2`` or ``start`` (see the module docstring).
        seed: Seed of the crop offsets.
        audio_cache: Folder of the resampled-clip cache (:class:`~evalbench.data.audio.ResampleCache`);
            a resampled clip is stored there once, named by its content hash, and
            every later crop of it reads the cached copy.  None: resample on every draw.
    """

    def __init__(
        self,
        corpus: PretrainCorpus,
        sample_rate: int,
        unit_seconds: float,
        mode: CropMode,
        seed: int,
        audio_cache: Path | None = None,
    ) -> None:
        if mode not in ("v1", "v2", "start"):
            raise ValueError(f"crop mode must be v1, v2 or start, got '{mode}'")
        self.corpus, self.sample_rate, self.mode, self.seed = corpus, int(sample_rate), mode, int(seed)
        self.unit = max(1, round(unit_seconds * sample_rate))
        self.cache = ResampleCache(audio_cache) if audio_cache is not None else None
        self.resampler = Resampler()

    def __len__(self) -> int:
        return len(self.corpus.files)

    def clip(self, index: int) -> np.ndarray:
        """The whole clip ``index`` as mono float32 at the training rate.

        Raises:
            AudioDecodeError: The file is missing, undecodable or damaged (the message names it).
        """
        name = self.corpus.files[index]
        content = self.corpus.content.get(name, "")
        # The whole resampled clip depends only on the file's bytes and the rate: the
        # entry is named by the content hash (no path, unit or crop, unlike evaluation's).
        entry = (content, "pretrain:whole-clip", None, self.sample_rate, "whole", 0)
        use_cache = self.cache is not None and content not in ("", MISSING)
        cached = self.cache.get(entry) if use_cache else None
        if cached is not None:
            return cached
        wav, sr = read_audio(self.corpus.root / name)
        if sr != self.sample_rate:
            wav = self.resampler(wav, sr, self.sample_rate, self.corpus.root / name)
            if use_cache:
                self.cache.put(entry, wav)
        return np.asarray(wav, dtype=np.float32)

    def crop(self, wav: np.ndarray, epoch: int, index: int) -> np.ndarray:
        """Cut or pad ``wav`` to exactly the unit by the dataset's recipe."""
        n, unit = len(wav), self.unit
        out = np.zeros(unit, dtype=np.float32)
        if n <= unit:
            left = (unit - n) // 2 if self.mode == "v1" else 0
            out[left : left + n] = wav
            return out
        slack = n - unit
        if self.mode == "v1":
            start = crop_offset(self.seed, epoch, index, slack + 1)
        elif self.mode == "v2":
            start = crop_offset(self.seed, epoch, index, slack)
        else:
            start = 0
        out[:] = wav[start : start + unit]
        return out

    def __getitem__(self, key: Key) -> torch.Tensor:
        """The float32 unit of file ``key[1]`` in epoch ``key[0]``: same key, same samples."""
        epoch, index = int(key[0]), int(key[1])
        return torch.from_numpy(self.crop(self.clip(index), epoch, index))


class EpochSampler:
    """Batches of ``(epoch, file_index)`` keys, epoch after epoch without end.

    Epoch ``e`` visits ``default_rng([seed, e]).permutation(n_items)`` in global
    batches of ``batch_size``; with ``drop_last`` the last partial batch of an
    epoch is skipped, so every step has the full batch (BYOL-A's reference
    loader keeps it, PyTorch's default; a short final batch would change the
    batch statistics of its BatchNorm heads and could not be split over ranks).
    With ``world_size`` > 1 each global batch is cut into equal contiguous
    slices and rank ``r`` yields slice ``r``, so the ranks of step ``s`` together
    see exactly the single-process batch of step ``s``.

    Args:
        n_items: Number of clips.
        batch_size: Global batch size (summed over ranks).
        seed: Seed of the permutations (≥ 0).
        rank: This process's rank.
        world_size: Number of ranks.
        drop_last: Skip each epoch's partial last batch.

    Raises:
        ValueError: The corpus is smaller than one batch (with ``drop_last``), the
            batch (or an epoch's last partial batch) does not divide by
            ``world_size``, or an argument is out of range.
    """

    def __init__(
        self, n_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, drop_last: bool = True
    ) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or seed < 0 or n_items < 1:
            raise ValueError(
                f"sampler: need n_items ≥ 1, batch_size ≥ 1, seed ≥ 0 and 0 ≤ rank < world_size, got "
                f"n_items={n_items}, batch_size={batch_size}, seed={seed}, rank={rank}, world_size={world_size}"
            )
        if drop_last and n_items < batch_size:
            raise EvalbenchError(
                f"the corpus has {n_items} clips, fewer than one batch of {batch_size}; lower --batch-size"
            )
        tail = 0 if drop_last else n_items % batch_size
        if batch_size % world_size or tail % world_size:
            raise ValueError(
                f"batch size {batch_size} (last batch of an epoch: {tail or batch_size}) must divide evenly "
                f"over {world_size} ranks"
            )
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last

    @property
    def steps_per_epoch(self) -> int:
        """Global steps in one epoch."""
        full, tail = divmod(self.n_items, self.batch_size)
        return full + (1 if tail and not self.drop_last else 0)

    def permutation(self, epoch: int) -> np.ndarray:
        """The visiting order of epoch ``epoch``."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_items)

    def iter_from(self, step: int) -> Iterator[list[Key]]:
        """This rank's batches from global step ``step`` on (0-based), computed directly, never replayed."""
        if step < 0:
            raise ValueError(f"step must be ≥ 0, got {step}")
        epoch, position = divmod(step, self.steps_per_epoch)
        while True:
            order = self.permutation(epoch)
            for p in range(position, self.steps_per_epoch):
                batch = order[p * self.batch_size : (p + 1) * self.batch_size]
                share = len(batch) // self.world_size
                mine = batch[self.rank * share : (self.rank + 1) * share]
                yield [(epoch, int(i)) for i in mine]
            epoch, position = epoch + 1, 0

    def __iter__(self) -> Iterator[list[Key]]:
        return self.iter_from(0)


class _FromStep:
    """A batch sampler for ``DataLoader``: the sampler's batches from ``start_step`` on (no ``__len__``: endless)."""

    def __init__(self, sampler: EpochSampler, start_step: int) -> None:
        self.sampler, self.start_step = sampler, start_step

    def __iter__(self) -> Iterator[list[Key]]:
        return self.sampler.iter_from(self.start_step)


def collate(items: list) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Stack equal-length waveforms into a ``(B, N)`` float32 batch (tuples, e.g. ``(wav, label)``, field-wise)."""
    if isinstance(items[0], tuple):
        return tuple(torch.utils.data.default_collate(list(field)) for field in zip(*items, strict=True))
    return torch.stack(items)


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, sampler: EpochSampler, start_step: int = 0, workers: int = 0) -> DataLoader:
    """An endless loader of ``(B, N)`` batches from global step ``start_step`` on.

    ``workers`` = 0 loads in-process; otherwise each worker runs one torch
    thread (decoding and cropping are NumPy work; more threads only contend on
    a small machine).  Batches are the same whatever the worker count.  A
    decode error in a worker reaches the caller as ``AudioDecodeError`` whose
    message is PyTorch's "Caught ... in DataLoader worker" text followed by the
    original message (which names the file).
    """
    return DataLoader(
        dataset,
        batch_sampler=_FromStep(sampler, start_step),
        num_workers=workers,
        collate_fn=collate,
        worker_init_fn=_single_thread if workers else None,
        persistent_workers=False,
        # Its own generator: creating an iterator draws a base seed, which would otherwise advance the global
        # torch RNG (dropout's) and break bit-identical resume.  Crops need no RNG (pure functions of the key).
        generator=torch.Generator().manual_seed(0),
    )
