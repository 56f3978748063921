"""The evaluation protocol: rotations × seeds → standardise → probe → test once.

For every seed and every rotation of the task (one for fixed splits, k for
k-fold tasks, :mod:`evalbench.data.splits`):

1. fit a :class:`~evalbench.embed.standardize.Standardizer` on the training rows
   only and apply it to training, validation and test rows;
2. fit the probe on training rows, selecting hyperparameters and the stopping
   epoch on the validation rows with the task's primary metric;
3. score the selected probe on the test rows, once.  Test labels are held in a
   :class:`SealedLabels` that the probe never receives and that refuses a
   second read, so test data cannot leak into selection (docs/protocol.md §4, flaw 4).

Scores are summarised as the mean over all (seed, rotation) runs, the standard
deviation over seeds of each seed's rotation mean (docs/protocol.md §2.3; sample
std, ddof = 1) and, for k-fold tasks, the standard deviation over folds of each
fold's seed mean.  The primary metric also gets a 95 % bootstrap interval over
test clips (:func:`evalbench.uncertainty.bootstrap_ci`): seeds measure the
probe's randomness, the interval how much the number would move on another
draw of test clips of the same kind.

A deterministic probe (``probe.deterministic``, e.g. the converged linear head) is
fitted once per distinct (training rows, validation rows) and reused by every
seed that draws the same rows: on a fixed-split task all seeds then give one
number, and seeds matter only where they change the validation draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalbench import metrics as M
from evalbench.data.splits import rotations, write_rotation
from evalbench.data.task_data import TaskData
from evalbench.embed.standardize import Standardizer
from evalbench.errors import EvalbenchError, MetricUndefinedError
from evalbench.registry import PROBES
from evalbench.uncertainty import bootstrap_ci
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_lines
from evalbench.utils.memory import all_finite, allocation_failed, row_blocks

BOOTSTRAP = {"n_boot": 1000, "level": 0.95, "seed": 0}


class SealedLabels:
    """Test labels that can be used exactly once, to score final predictions.

    Args:
        y: Test labels.
        metrics: Metric names to compute.
        label_type: Task label type.
    """

    def __init__(self, y: np.ndarray, metrics: list[str], label_type: str) -> None:
        self._y, self._metrics, self._label_type = y, metrics, label_type
        self._used = False

    def score(self, scores: np.ndarray) -> dict[str, float | None]:
        """Metrics of ``scores`` against the sealed labels; a second call raises.

        A metric undefined on the test labels (e.g. ROC-AUC with one class)
        is reported as None.
        """
        if self._used:
            raise RuntimeError("test labels were already used once: selection must not see test scores")
        self._used = True
        return _all_metrics(self._metrics, self._y, scores, self._label_type)


def _all_metrics(names: list[str], y: np.ndarray, scores: np.ndarray, label_type: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if not np.isfinite(scores).all():
        raise EvalbenchError("the probe produced non-finite scores; no record is written (check the embeddings)")
    for name in names:
        try:
            out[name] = M.compute([name], y, scores, label_type)[name]
        except MetricUndefinedError:
            out[name] = None
    return out


def _scores(model: Any, x: np.ndarray, label_type: str) -> np.ndarray:
    """What the metrics score: ``predict_proba(x)`` ``(n, C)``, or for regression ``predict(x)`` ``(n,)``."""
    return model.predict(x) if label_type == "regression" else model.predict_proba(x)


PROBE_MEMORY_FACTOR = 4
"""A probe's private memory when it holds its training and validation rows in RAM, in float32 copies of those
rows: the standardised rows and a solver's float64 copies.  Measured (tests/reliability/test_memory_limits.py):
the ``newton`` linear probe on 2,800 rows × 16,384 dims (175 MiB as float32), whole in RAM, failed with 600 MiB
allowed and ran with 800; it now reads rows that do not fit block by block (:mod:`evalbench.probes.design`)."""


@contextmanager
def _memory_hint(task: str, probe: str, x: np.ndarray, train: np.ndarray, valid: np.ndarray) -> Iterator[None]:
    """Turn running out of memory in the probe into an error that says how much it needs and what to do.

    Extraction streams through memory-mapped files and the converged linear probe reads large rotations block
    by block, but the other probes (Adam, MLP, kNN) hold their rows in RAM, and the linear probe's row-space
    reduction needs a few (training clips)² float64 matrices; when those do not fit, a raw ``MemoryError``
    traceback would say neither how much nor what to do.
    """
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not allocation_failed(exc):
            raise
        rows, dim = len(train) + len(valid), x.shape[1]
        mib = rows * dim * 4 / 2**20
        raise EvalbenchError(
            f"task '{task}': out of memory in the {probe} probe on the standardised training and validation "
            f"embeddings: {len(train):,} + {len(valid):,} clips × {dim:,} dimensions are {mib:,.0f} MiB as "
            f"float32, up to about {PROBE_MEMORY_FACTOR * mib:,.0f} MiB with a probe's working copies (the whole "
            f"matrix, {x.shape[0]:,} × {dim:,}, is {x.shape[0] * dim * 4 / 2**20:,.0f} MiB on disk, memory-mapped). "
            "The embeddings are extracted and cached: rerun with more memory (ulimit -d, the container's limit) "
            "and they are read from the cache; or use an encoder with fewer dimensions"
        ) from None


SCORE_BLOCK_BYTES = 64 << 20
"""Rows standardised and scored at a time, as float64 bytes (32 MiB of float32 rows: 2,048 rows of 4,096 dims):
a large test set is never standardised whole in RAM."""


def _scores_by_block(model: Any, scaler: Standardizer, x: np.ndarray, rows: np.ndarray, label_type: str) -> np.ndarray:
    """:func:`_scores` of ``x[rows]`` standardised, in blocks of at most :data:`SCORE_BLOCK_BYTES`.

    Each clip's score depends on its own row only, so blocks give the same scores as one call up to the matrix
    product's rounding (measured: identical; tests/reliability/test_memory_limits.py); one block is one call.
    """
    blocks = [rows[b] for b in row_blocks(len(rows), x.shape[1], SCORE_BLOCK_BYTES)] or [rows]
    parts = [_scores(model, scaler.transform(x, block), label_type) for block in blocks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@dataclass
class RunScore:
    """Scores of one (seed, rotation) run."""

    seed: int
    fold: int | None
    test: dict[str, float | None]
    valid: dict[str, float | None]
    chosen: dict[str, Any]
    n: dict[str, int]
    valid_sha256: str
    skipped_classes: dict[str, int] = field(default_factory=dict)
    test_rows: np.ndarray | None = field(default=None, repr=False)  # kept for the bootstrap, not recorded
    test_scores: np.ndarray | None = field(default=None, repr=False)


def evaluate_probe(
    data: TaskData,
    x: np.ndarray,
    probe: str,
    seeds: list[int],
    device: str = "cpu",
    probe_options: dict[str, Any] | None = None,
    split_dir: Path | None = None,
    x_test: np.ndarray | None = None,
    rule: str | None = None,
    standardize: bool = True,
    search_rule: str = "per_rotation",
    scratch: Path | None = None,
) -> list[RunScore]:
    """Run the protocol for every seed and rotation.

    Args:
        data: Task data (labels, splits, groups).
        x: ``(n, D)`` raw (unstandardised) clip embeddings in metadata order.
        probe: Registered probe name.
        seeds: Seeds; each changes probe initialisation, batch order and, for
            k-fold holdout validation, the validation draw.
        device: Torch device string for the probe.
        probe_options: Extra probe hyperparameters.
        split_dir: If given, validation file lists are written there for audit.
        x_test: The clips' embeddings as test material, when a protocol preset
            crops test clips differently (:func:`evalbench.embed.extract.embed_views`); default ``x``.
        rule: k-fold validation rule overriding the task's (a protocol preset's, e.g. ``random``).
        standardize: z-score with training statistics (False: embeddings as the encoder returns them, HEAR).
        search_rule: For probes that search hyperparameters (``best_params_`` after ``fit``):
            ``per_rotation`` searches on every rotation's own validation rows; ``first_rotation`` searches
            on each seed's first rotation and retrains that configuration on the others (HEAR's rule,
            docs/protocol.md §3).  Either way no rotation's test rows take part.
        scratch: Folder on disk for a rotation's standardised training and validation rows when they are large
            (memory-mapped: the linear probe then reads them block by block, :mod:`evalbench.probes.design`);
            None keeps them in RAM.

    Returns:
        One :class:`RunScore` per (seed, rotation).
    """
    task = data.task
    x_test = x if x_test is None else x_test
    if not (all_finite(x) and (x_test is x or all_finite(x_test))):
        raise EvalbenchError(f"task '{task.name}': the embeddings hold NaN or infinite values; no record is written")
    probe_cls = PROBES.get(probe)
    runs = []
    fitted: dict[tuple[str, str], Any] = {}  # deterministic probes: one fit per distinct (train, valid) rows
    searched: dict[int, tuple[Any, int | None]] = {}  # per seed: the probe whose search chose, and its fold
    jobs = [(seed, rot) for seed in seeds for rot in rotations(data, seed, rule)]
    for seed, rot in progress(jobs, desc=f"probe {task.name}", unit="run", leave=False):
        with _memory_hint(task.name, probe, x, rot.train, rot.valid):
            if split_dir is not None and rot.fold is not None:
                write_rotation(split_dir, data, rot, seed)
            scaler = Standardizer(enabled=standardize).fit(x, rot.train)
            model = probe_cls(
                n_classes=len(data.classes) or 1,  # regression: one output
                label_type=task.labels.type,
                metric=task.primary_metric,
                random_state=seed,
                device=device,
                **(probe_options or {}),
            )
            reused = search_rule == "first_rotation" and seed in searched
            if reused:
                model.set_params(search="none", **searched[seed][0].best_params_)
            key = (sha256_lines(map(str, rot.train)), sha256_lines(map(str, rot.valid)))
            if getattr(model, "deterministic", False) and key in fitted:
                model = fitted[key]
            else:
                model.fit(
                    scaler.transform(x, rot.train, scratch),
                    data.y[rot.train],
                    scaler.transform(x, rot.valid, scratch),
                    data.y[rot.valid],
                )
                fitted[key] = model
                if hasattr(model, "best_params_"):
                    searched.setdefault(seed, (model, rot.fold))
            valid = _all_metrics(
                task.metrics,
                data.y[rot.valid],
                _scores_by_block(model, scaler, x, rot.valid, task.labels.type),
                task.labels.type,
            )
            sealed = SealedLabels(data.y[rot.test], task.metrics, task.labels.type)
            test_scores = _scores_by_block(model, scaler, x_test, rot.test, task.labels.type)
            test = sealed.score(test_scores)
            n_classes = len(data.classes)
            skipped = {m: M.skipped_classes(data.y[rot.test], n_classes, task.labels.type, m) for m in task.metrics}
            runs.append(
                RunScore(
                    seed=seed,
                    fold=rot.fold,
                    test=test,
                    valid=valid,
                    chosen={**model.chosen_, "searched_on_fold": searched[seed][1]} if reused else model.chosen_,
                    n={"train": len(rot.train), "valid": len(rot.valid), "test": len(rot.test)},
                    valid_sha256=rot.valid_sha256(data.files),
                    skipped_classes=skipped,
                    test_rows=rot.test,
                    test_scores=test_scores,
                )
            )
    return runs


def test_interval(summary: dict[str, Any], runs: list[RunScore], data: TaskData) -> dict[str, Any]:
    """Add the primary metric's bootstrap interval over test clips (``ci95``, None if undefined) to ``summary``.

    Computed after every probe is chosen and scored: selection never sees it.
    """
    primary = data.task.primary_metric
    if primary in summary and summary[primary]["mean"] is not None and all(r.test_rows is not None for r in runs):
        pairs = _distinct([(r.test_rows, r.test_scores) for r in runs])
        summary[primary]["ci95"] = bootstrap_ci(data.y, pairs, primary, data.task.labels.type, **BOOTSTRAP)
    return summary


def _distinct(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Drop repeated (rows, scores) pairs when every pair repeats equally often (the mean is then unchanged).

    A deterministic probe on a fixed split gives every seed the same predictions; resampling them once is the
    same statistic at a fraction of the cost.
    """
    groups: dict[bytes, list[tuple[np.ndarray, np.ndarray]]] = {}
    for rows, scores in pairs:
        groups.setdefault(rows.tobytes() + np.ascontiguousarray(scores).tobytes(), []).append((rows, scores))
    counts = {len(g) for g in groups.values()}
    return [g[0] for g in groups.values()] if len(counts) == 1 else pairs


def summarize(runs: list[RunScore], metrics: list[str], split: str = "test") -> dict[str, dict[str, Any]]:
    """Mean and spreads of each metric over runs (see module docstring)."""
    out: dict[str, dict[str, Any]] = {}
    seeds = sorted({r.seed for r in runs})
    folds = sorted({r.fold for r in runs if r.fold is not None})
    for name in metrics:
        values = [(r.seed, r.fold, getattr(r, split)[name]) for r in runs]
        if any(v is None for _, _, v in values):
            out[name] = {
                "mean": None,
                "std": None,
                "n_runs": len(values),
                "undefined_runs": sum(v is None for _, _, v in values),
            }
            continue
        seed_means = [float(np.mean([v for s, _, v in values if s == seed])) for seed in seeds]
        entry: dict[str, Any] = {
            "mean": float(np.mean([v for _, _, v in values])),
            "std": float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else 0.0,
            "seed_means": seed_means,
            "n_runs": len(values),
        }
        if folds:
            fold_means = [float(np.mean([v for _, f, v in values if f == fold])) for fold in folds]
            entry["fold_means"] = fold_means
            entry["fold_std"] = float(np.std(fold_means, ddof=1)) if len(fold_means) > 1 else 0.0
        out[name] = entry
    return out


def runs_as_dicts(runs: list[RunScore]) -> list[dict[str, Any]]:
    """Plain-data form of runs for the run record."""
    hidden = ("test_rows", "test_scores")
    return [{k: v for k, v in asdict(r).items() if k not in hidden} for r in runs]
