"""The online monitor of ``evalbench pretrain ... --monitor TASK``: a kNN probe of the encoder while it trains.

A training loss says how well the pretext task is solved, not whether the
representation is getting better for anything else.  Every
``train.monitor_every`` steps the monitor scores the *current* encoder with a
k-nearest-neighbour probe, the parameter-free monitor of self-supervised
training (Wu et al., CVPR 2018; Caron et al., DINO, ICCV 2021): nothing is
fitted, so it costs one forward pass over a few thousand clips and its curve
moves only when the embedding geometry does.

Rows (a task's test rows are never read):

- fixed splits: the ``train`` split is the kNN memory, ``valid`` the queries;
- k-fold tasks: fold 1 is held out entirely.  Of folds 2..k, the last fold k
  is the queries and folds 2..k-1 the memory.  Folds keep a task's groups
  (source recording, speaker) whole, and any memory row whose group also occurs
  among the queries is dropped anyway, so no group sits on both sides.  A
  2-fold task has only fold 2 left: a seeded, grouped, stratified holdout of it
  (:func:`~evalbench.data.splits.grouped_holdout`, the task's validation
  fraction) gives the queries.

Each side is capped at ``max_clips`` by a seeded subsample.  The clips are
decoded once, as ``evalbench run`` prepares them (crop/pad to the task unit,
resampled to the encoder's rate, through the resampled-audio cache), and kept
in memory: ``clips × unit × rate × 4`` bytes (2 × 2,000 clips of 5 s at 16 kHz
≈ 1.3 GB; lower ``max_clips`` for long units).

One evaluation: the method in eval mode under ``torch.inference_mode`` maps the
clips to pooled embeddings (:meth:`PretrainMethod.embed_for_monitor`, the
registered adapter's computation on the current weights); z-scores fitted on
the memory rows (as the linear protocol fits on its training rows); cosine
similarity; the k most similar memory rows vote (single-label and binary: the
majority class, vote ties broken by the voters' summed similarity, where
scikit-learn's ``KNeighborsClassifier`` takes the lowest class index;
multi-label: the mean of the neighbours' multi-hot labels as scores); the
task's primary metric (NaN where it is undefined).  No global RNG is touched,
so a run with ``--monitor`` trains exactly as one without, and resumes exactly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench import metrics as M
from evalbench.data.audio import load_clip
from evalbench.data.prepare import open_task_data
from evalbench.data.resample import ResampleCache, Resampler
from evalbench.data.splits import grouped_holdout
from evalbench.data.task_data import TaskData
from evalbench.embed.standardize import Standardizer
from evalbench.errors import AudioDecodeError, EvalbenchError, MetricUndefinedError
from evalbench.specs.task import TaskSpec
from evalbench.utils.io import PRETRAIN_ADVICE, atomic_write_text


def monitor_rows(data: TaskData, max_clips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The memory rows, the query rows and a description of both (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if data.split is not None:
        memory, queries = np.flatnonzero(data.split == "train"), np.flatnonzero(data.split == "valid")
        where = "the train split", "the valid split"
    else:
        assert data.fold is not None
        k = data.task.splits.folds
        if k >= 3:
            memory, queries = np.flatnonzero((data.fold > 1) & (data.fold < k)), np.flatnonzero(data.fold == k)
            where = f"folds 2-{k - 1}" if k > 3 else "fold 2", f"fold {k}"
        else:
            pool = np.flatnonzero(data.fold == 2)
            held = grouped_holdout(data.primary_labels(pool), data.groups[pool], data.task.splits.validation.fraction,
                                   rng)  # fmt: skip
            memory, queries = pool[~held], pool[held]
            where = "fold 2 (grouped draw)", "fold 2 (grouped holdout)"
        memory = memory[~np.isin(data.groups[memory], data.groups[queries])]
    memory, queries = (np.sort(rng.permutation(r)[:max_clips]) for r in (memory, queries))
    if not len(memory) or not len(queries):
        raise EvalbenchError(f"--monitor {data.task.name}: no {'memory' if not len(memory) else 'query'} clips")
    held_out = "the test split" if data.split is not None else "fold 1"
    text = f"{len(memory)} clips of {where[0]} as memory, {len(queries)} of {where[1]} as queries"
    return memory, queries, f"{text}; {held_out} is never used"


def knn_scores(
    memory: np.ndarray, memory_y: np.ndarray, queries: np.ndarray, k: int, label_type: str, n_classes: int
) -> np.ndarray:
    """Class scores ``(n_queries, C)`` of a cosine kNN vote (see the module docstring).

    Single-label and binary scores are ``votes + (summed similarity + k) / (2k + 1)``:
    the fraction lies in [0, 1), so the argmax is the majority class and a vote
    tie goes to the class whose voters are more similar.  Similarity ties
    between memory rows go to the lower row.
    """
    unit = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) for x in (memory, queries)]
    sim = unit[1].astype(np.float64) @ unit[0].astype(np.float64).T
    k = min(k, len(memory))
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    if label_type == "multilabel":
        return memory_y[nearest].astype(np.float64).mean(axis=1)
    rows, labels = np.repeat(np.arange(len(queries)), k), memory_y[nearest].ravel()
    votes, close = np.zeros((len(queries), n_classes)), np.zeros((len(queries), n_classes))
    np.add.at(votes, (rows, labels), 1.0)
    np.add.at(close, (rows, labels), np.take_along_axis(sim, nearest, axis=1).ravel())
    return votes + (close + k) / (2 * k + 1)


class Monitor:
    """kNN monitor of one task's train/valid rows (module docstring), with its curve beside the loss curve.

    Args:
        task: The monitored task.
        data_root: Prepared datasets.
        audio_cache: Resampled-audio cache folder.
        out_dir: Where ``monitor.csv`` and ``monitor.png`` go.
        k: Neighbours.
        max_clips: Cap on memory and on query clips (each).
        batch_size: Clips per forward pass.
        sample_rate: Encoder rate; decode now (else at the first evaluation, at the method's rate).
        seed: Seed of the subsample (and of a 2-fold task's holdout).
    """

    def __init__(
        self,
        task: TaskSpec,
        data_root: Path,
        audio_cache: Path,
        out_dir: Path,
        k: int = 10,
        max_clips: int = 2000,
        batch_size: int = 32,
        *,
        sample_rate: int | None = None,
        seed: int = 0,
    ) -> None:
        self.task, self.k, self.batch_size = task, k, batch_size
        self.out_dir, self.audio_cache = Path(out_dir), Path(audio_cache)
        self.metric = task.primary_metric
        self.data = open_task_data(task, data_root)
        self.memory_rows, self.query_rows, self.description = monitor_rows(self.data, max_clips, seed)
        self.history: list[dict[str, float]] = []
        self.sample_rate: int | None = None
        self.wav, self.lengths = np.empty((0, 0), np.float32), np.empty(0, np.int64)
        if sample_rate is not None:
            self.decode(sample_rate)

    def decode(self, sample_rate: int) -> None:
        """Load memory then query clips at ``sample_rate`` into :attr:`wav` / :attr:`lengths` (once)."""
        if self.sample_rate is not None:
            if sample_rate != self.sample_rate:
                raise ValueError(f"monitor clips are decoded at {self.sample_rate} Hz, not {sample_rate} Hz")
            return
        data, audio = self.data, self.task.audio
        resampler, cache = Resampler(), ResampleCache(self.audio_cache)
        bounds = (self.task.dataset.min_seconds, self.task.dataset.max_seconds)
        unit = (audio.clip_seconds, sample_rate, audio.crop, audio.crop_seed, resampler, cache)
        clips = []
        for row in np.concatenate([self.memory_rows, self.query_rows]):
            name = data.files[row]
            try:
                clips.append(load_clip(data.path(row), name, *unit, data.dataset.content.get(name, ""), bounds))
            except AudioDecodeError as exc:
                hint = f"`evalbench data verify {self.task.name}` lists every bad file"
                raise AudioDecodeError(f"{exc}; {hint}") from None
        self.wav = np.stack([w for w, _ in clips])
        self.lengths = np.array([n for _, n in clips], dtype=np.int64)
        self.sample_rate = sample_rate

    def embed(self, method: Any) -> np.ndarray:
        """Pooled embeddings ``(n_memory + n_queries, D)`` of the current weights (eval mode, no autograd)."""
        self.decode(method.sample_rate)
        device = next(method.parameters()).device
        modes = [(m, m.training) for m in method.modules()]
        method.eval()
        try:
            with torch.inference_mode():
                parts = [
                    method.embed_for_monitor(torch.from_numpy(self.wav[i : i + self.batch_size]).to(device),
                                             torch.from_numpy(self.lengths[i : i + self.batch_size]).to(device))
                    .float().cpu().numpy()
                    for i in range(0, len(self.wav), self.batch_size)
                ]  # fmt: skip
        except NotImplementedError as exc:
            raise EvalbenchError(f"--monitor: method '{method.NAME}' cannot be monitored ({exc})") from None
        finally:
            for module, mode in modes:
                module.training = mode
        return np.concatenate(parts)

    def score(self, emb: np.ndarray) -> float:
        """The primary metric of the kNN probe on embeddings from :meth:`embed` (NaN if undefined or non-finite)."""
        if not np.isfinite(emb).all():
            return float("nan")
        n = len(self.memory_rows)
        scaler = Standardizer().fit(emb[:n])
        y = self.data.y
        scores = knn_scores(scaler.transform(emb[:n]), y[self.memory_rows], scaler.transform(emb[n:]), self.k,
                            self.task.labels.type, len(self.data.classes))  # fmt: skip
        try:
            return float(M.compute([self.metric], y[self.query_rows], scores, self.task.labels.type)[self.metric])
        except MetricUndefinedError:
            return float("nan")

    def __call__(self, step: int, method: Any) -> dict[str, float]:
        """Score ``method``'s current encoder; record, write and return ``{"step", <metric>, "seconds"}``."""
        began = time.perf_counter()
        value = self.score(self.embed(method))
        row = {"step": int(step), self.metric: value, "seconds": time.perf_counter() - began}
        self.history = sorted([r for r in self.history if r["step"] != row["step"]] + [row], key=lambda r: r["step"])
        self.save()
        return row

    def has(self, step: int) -> bool:
        """Whether the history holds ``step``."""
        return any(r["step"] == step for r in self.history)

    def last(self) -> dict[str, float] | None:
        """The latest evaluation, or None."""
        return self.history[-1] if self.history else None

    def state(self) -> list[dict[str, Any]]:
        """The history for the run's checkpoint (each row names its task)."""
        return [{"task": self.task.name, **r} for r in self.history]

    def load_state(self, rows: list[dict[str, Any]]) -> None:
        """Restore :meth:`state`; rows of another task or metric (an earlier ``--monitor``) are dropped."""
        keep = [r for r in rows if r.get("task") == self.task.name and self.metric in r]
        self.history = sorted(({k: v for k, v in r.items() if k != "task"} for r in keep), key=lambda r: r["step"])

    def save(self) -> list[Path]:
        """Write ``monitor.csv`` and (with at least one row) ``monitor.png`` atomically."""
        paths = [self.out_dir / "monitor.csv", self.out_dir / "monitor.png"]
        lines = [f"step,{self.metric},seconds"]
        lines += [f"{r['step']},{r[self.metric]!r},{r['seconds']:.3f}" for r in self.history]
        atomic_write_text(paths[0], "\n".join(lines) + "\n", PRETRAIN_ADVICE)
        if not self.history:
            return paths[:1]
        from matplotlib.ticker import MaxNLocator

        from evalbench.utils.plots import pyplot, save_png

        fig, ax = pyplot().subplots(figsize=(7, 3.5))
        ax.plot([r["step"] for r in self.history], [r[self.metric] for r in self.history], marker="o")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel(f"{self.metric} (kNN, queries)")
        ax.set_title(f"{self.task.name}: {self.k}-NN cosine probe, {len(self.query_rows)} queries", fontsize=10)
        ax.grid(alpha=0.3)
        save_png(fig, paths[1])
        return paths


__all__ = ["Monitor", "knn_scores", "monitor_rows"]
