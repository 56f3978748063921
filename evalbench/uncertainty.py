"""Bootstrap confidence intervals of a test metric over test clips.

A run record holds several probe runs (seeds × folds).  Its statistic is the
mean over runs of each run's metric on its own test rows.  The uncertainty
quantified here is that of the finite test set: had other clips from the same
distribution been drawn, how much would the statistic move?  (Seed-to-seed
variation of the probe is not resampled; it is averaged inside the statistic.)

Runs that share a set of test rows form a stratum: a fixed-split task has one
stratum holding every seed, a k-fold task one stratum per test fold.  A
replicate resamples each stratum's rows with replacement, independently across
strata (each fold is its own sample, so rows never cross folds and every fold
keeps its size), and applies the *same* resampled positions to every run of the
stratum, so seeds stay paired on identical clips.  Each run's metric is
recomputed on the resampled rows and averaged over runs.

The interval is the percentile interval (Efron & Tibshirani, *An Introduction
to the Bootstrap*, Chapman & Hall, 1993, ch. 13): the ``(1 - level) / 2`` and
``(1 + level) / 2`` quantiles of the replicates (here with linear
interpolation between order statistics).  A replicate in which the metric is
undefined for some run (e.g. ROC-AUC on a resample holding one class) is
dropped; if more than :data:`MAX_DROPPED` of them are, the interval would be
conditioned on an unrepresentative subset and none is returned.
"""

from __future__ import annotations

import numpy as np

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError

METHOD = "percentile bootstrap over test clips, resampled within each test fold, paired across seeds"
MAX_DROPPED = 0.05
_VECTORISED = frozenset({"accuracy"})  # metrics with an all-replicates-at-once path
_BLOCK_ELEMENTS = 1 << 22  # resampled positions held in memory at once (bounds memory on large test sets)

Stratum = tuple[np.ndarray, list[np.ndarray]]


def _strata(runs: list[tuple[np.ndarray, np.ndarray]]) -> list[Stratum]:
    """Group runs by their set of test rows, in order of first appearance.

    Each stratum is ``(sorted_rows, [scores of each run, rows permuted to sorted_rows])``, so runs listing the
    same rows in different orders line up position by position.
    """
    groups: dict[bytes, Stratum] = {}
    for rows, scores in runs:
        rows, scores = np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64)
        if rows.ndim != 1 or len(rows) == 0 or scores.ndim != 2 or len(scores) != len(rows):
            raise ValueError(f"a run needs test rows (n,), n > 0, and scores (n, C); got {rows.shape}, {scores.shape}")
        order = np.argsort(rows, kind="stable")
        key = rows[order]
        groups.setdefault(key.tobytes(), (key, []))[1].append(scores[order])
    return list(groups.values())


def _replicates(
    y: np.ndarray,
    strata: list[Stratum],
    metric: str,
    label_type: str,
    n_boot: int,
    rng: np.random.Generator,
    vectorised: bool = True,
) -> np.ndarray:
    """Replicate statistics, shape ``(n_boot,)``; NaN where the metric is undefined for some run.

    Draws: replicates are taken in blocks; within a block, each stratum in turn draws ``(block, n_rows)``
    positions.  The vectorised accuracy path and the generic :func:`evalbench.metrics.compute` path consume the
    same draws and agree exactly.
    """
    n_runs = sum(len(run_scores) for _, run_scores in strata)
    fast = vectorised and metric in _VECTORISED and label_type in ("single", "binary")
    prepared = []
    for rows, run_scores in strata:
        y_s = np.asarray(y)[rows]
        per_run = [np.argmax(s, axis=1) == y_s for s in run_scores] if fast else run_scores
        prepared.append((len(rows), y_s, per_run))
    total = np.zeros(n_boot)
    block = max(1, _BLOCK_ELEMENTS // sum(n for n, _, _ in prepared))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        for n, y_s, per_run in prepared:
            idx = rng.integers(0, n, size=(b, n))
            for item in per_run:
                if fast:
                    total[start : start + b] += item[idx].mean(axis=1)
                    continue
                for i in range(b):
                    try:
                        total[start + i] += M.compute([metric], y_s[idx[i]], item[idx[i]], label_type)[metric]
                    except MetricUndefinedError:
                        total[start + i] = np.nan
    return total / n_runs


def bootstrap_ci(
    y: np.ndarray,
    runs: list[tuple[np.ndarray, np.ndarray]],
    metric: str,
    label_type: str,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict | None:
    """Percentile bootstrap confidence interval of the mean-over-runs test metric.

    Args:
        y: Labels of all rows of the task, ``(N,)`` integers or ``(N, C)`` multi-hot; global row ids index it.
        runs: Per probe run, ``(test_rows, scores)``: global row ids ``(n,)`` and scores ``(n, C)``.
        metric: A name known to :func:`evalbench.metrics.compute`.
        label_type: ``"single"``, ``"binary"`` or ``"multilabel"``.
        n_boot: Number of bootstrap replicates.
        level: Coverage of the interval, in (0, 1).
        seed: Seed of ``np.random.default_rng``; the same inputs and seed give the same interval.

    Returns:
        ``{"low", "high", "level", "n_boot", "n_used", "seed", "method"}``, or ``None`` when there is no run or
        more than 5 % of the replicates had an undefined metric.
    """
    if not 0.0 < level < 1.0 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
    if not runs:
        return None
    reps = _replicates(y, _strata(runs), metric, label_type, n_boot, np.random.default_rng(seed))
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0 or n_boot - len(reps) > MAX_DROPPED * n_boot:
        return None
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return {
        "low": float(low),
        "high": float(high),
        "level": level,
        "n_boot": n_boot,
        "n_used": len(reps),
        "seed": seed,
        "method": METHOD,
    }
