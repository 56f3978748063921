"""Decoded, resampled and cropped clips of a task, in batches (in DataLoader workers when asked).

Decode errors travel from the workers as text and stop extraction with one
clear message naming the file (:func:`clip_batches`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from evalbench.data.audio import load_clip
from evalbench.data.resample import ResampleCache, Resampler
from evalbench.data.task_data import TaskData
from evalbench.errors import AudioDecodeError


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

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str, dict[str, float]]:
        """``(waveform, valid length, error, {"decode": s, "resample": s})`` of clip ``i``.

        Decode errors travel as text so that they reach the main process as one
        clean message, even from DataLoader workers; so do the stage timings.
        """
        row = int(self.rows[i])
        audio = self.data.task.audio
        timings: dict[str, float] = {}
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
                timings,
            )
        except AudioDecodeError as exc:
            n = max(1, round(audio.clip_seconds * self.sample_rate))
            return torch.zeros(n), 0, str(exc), timings
        return torch.from_numpy(wav), valid, "", timings


Item = tuple[torch.Tensor, int, str, dict[str, float]]
Batch = tuple[torch.Tensor, torch.Tensor, list[str], dict[str, float]]


def _collate(items: list[Item]) -> Batch:
    wav = torch.stack([it[0] for it in items])
    lengths = torch.tensor([it[1] for it in items], dtype=torch.int64)
    timings: dict[str, float] = {}
    for it in items:
        for stage, seconds in it[3].items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    return wav, lengths, [it[2] for it in items if it[2]], timings


def _clean(
    loader: DataLoader, task: str, timings: dict[str, float] | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a clip loader; the first decode error stops extraction with one clear message."""
    batches = iter(loader)
    while True:
        mark = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            return
        wav, lengths, errors, stages = batch
        if timings is not None:
            timings["load_wait"] = timings.get("load_wait", 0.0) + time.perf_counter() - mark
            for stage, seconds in stages.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
        if errors:
            more = f" (and {len(errors) - 1} more in this batch)" if len(errors) > 1 else ""
            raise AudioDecodeError(f"{errors[0]}{more}; `evalbench data verify {task}` lists every bad file")
        yield wav, lengths


def auto_workers(device: torch.device) -> int:
    """The default number of decoding workers (``--workers auto``) for extraction on ``device``.

    - **CPU: 0.**  Decoding and the encoder share the same cores, so a worker
      takes cores from the network.  Measured on 2 cores with 2 torch threads
      (``evalbench bench workers``: BYOL-A v2, 400 clips of 5 s at 44.1 kHz,
      cold caches, 2 rounds): 20.0 clips/s in-process, 19.2 with one worker,
      19.4 with two; docs/performance.md has the table.
    - **CUDA: one worker per free core, at most 4.**  The network runs on the
      GPU, so decoding in the main process would leave the GPU idle while the
      CPU decodes; the cores of the node are shared by the torchrun ranks on it
      (``LOCAL_WORLD_SIZE``), one kept for each rank's main process.  Reasoned,
      not measured here (no GPU): ``evalbench bench workers --device cuda``
      measures it.
    """
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    per_rank = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(4, per_rank - 1))


def clip_batches(
    dataset: ClipDataset,
    batch_size: int,
    workers: int,
    timings: dict[str, float] | None = None,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(waveforms (B, N), valid lengths (B,))`` batches in row order; ``workers`` > 0 decodes in subprocesses.

    Each worker runs torch on one thread, so that decoding workers and the encoder do not oversubscribe the cores.
    ``pin_memory`` (for a CUDA encoder) returns batches in page-locked memory, so that ``.to(device,
    non_blocking=True)`` copies overlap the GPU's work.
    ``timings``, when given, accumulates ``decode`` and ``resample`` (seconds summed over clips, in whichever
    process decoded them) and ``load_wait`` (seconds this process waited for batches: with workers, the part of
    decoding that did not overlap the encoder).
    """
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=_single_thread,
        persistent_workers=False,
        pin_memory=pin_memory,
    )
    return _clean(loader, dataset.data.task.name, timings)


def _single_thread(_: int) -> None:
    torch.set_num_threads(1)


__all__ = ["ClipDataset", "auto_workers", "clip_batches"]
