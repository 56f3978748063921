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

Two encoders scored on the same test clips are compared by the paired
bootstrap (:func:`paired_differences`, :func:`paired_bootstrap`): the same
loop resamples both together, every replicate applying one set of positions per
fold to every run of both, and the percentile interval of the difference of
their statistics decides whether it is significant (it excludes 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError

METHOD = "percentile bootstrap over test clips, resampled within each test fold, paired across seeds"
PAIRED_METHOD = "paired percentile bootstrap of the difference over the same test clips, within each test fold"
MAX_DROPPED = 0.05
_VECTORISED = frozenset({"accuracy"})  # metrics with an all-replicates-at-once path
_BLOCK_ELEMENTS = 1 << 22  # resampled positions held in memory at once (bounds memory on large test sets)

Stratum = tuple[np.ndarray, list[np.ndarray]]
PairedStratum = tuple[np.ndarray, list[list[np.ndarray]]]  # sorted rows, then per arm the scores of its runs


def _strata(runs: list[tuple[np.ndarray, np.ndarray]]) -> list[Stratum]:
    """Group runs by their set of test rows, in order of first appearance.

    Each stratum is ``(sorted_rows, [scores of each run, rows permuted to sorted_rows])``, so runs listing the
    same rows in different orders line up position by position.  Regression predictions ``(n,)`` become
    ``(n, 1)``.
    """
    groups: dict[bytes, Stratum] = {}
    for rows, scores in runs:
        rows, scores = np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float64)
        scores = scores[:, None] if scores.ndim == 1 else scores
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
    """Replicate statistics of one set of runs, shape ``(n_boot,)``: :func:`_resample` with a single arm."""
    return _resample(
        y, [(rows, [run_scores]) for rows, run_scores in strata], metric, label_type, n_boot, rng, vectorised
    )[0]


def _resample(
    y: np.ndarray,
    strata: list[PairedStratum],
    metric: str,
    label_type: str,
    n_boot: int,
    rng: np.random.Generator,
    vectorised: bool = True,
) -> np.ndarray:
    """Replicate statistics of every arm under the same draws, shape ``(n_arms, n_boot)``.

    An arm is one set of runs (an encoder's); every arm has runs in every stratum.  NaN where the metric is
    undefined for some run of that arm.

    Draws: replicates are taken in blocks; within a block, each stratum in turn draws ``(block, n_rows)``
    positions, which every run of every arm then uses.  The draws do not depend on the number of arms or runs, so
    an arm's replicates are the same alone or beside others.  The vectorised accuracy path and the generic
    :func:`evalbench.metrics.compute` path consume the same draws and agree exactly.
    """
    n_arms = len(strata[0][1])
    n_runs = np.array([sum(len(arms[a]) for _, arms in strata) for a in range(n_arms)], dtype=float)
    fast = vectorised and metric in _VECTORISED and label_type in ("single", "binary")
    prepared = []
    for rows, arms in strata:
        y_s = np.asarray(y)[rows]
        per_arm = [[np.argmax(s, axis=1) == y_s for s in run_scores] if fast else run_scores for run_scores in arms]
        prepared.append((len(rows), y_s, per_arm))
    total = np.zeros((n_arms, n_boot))
    block = max(1, _BLOCK_ELEMENTS // sum(n for n, _, _ in prepared))
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        for n, y_s, per_arm in prepared:
            idx = rng.integers(0, n, size=(b, n))
            for arm, per_run in zip(total, per_arm, strict=True):
                for item in per_run:
                    if fast:
                        arm[start : start + b] += item[idx].mean(axis=1)
                        continue
                    for i in range(b):
                        try:
                            arm[start + i] += M.compute([metric], y_s[idx[i]], item[idx[i]], label_type)[metric]
                        except MetricUndefinedError:
                            arm[start + i] = np.nan
    return total / n_runs[:, None]


def _check(n_boot: int, level: float) -> None:
    if not 0.0 < level < 1.0 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")


def _percentile(reps: np.ndarray, n_boot: int, level: float, seed: int) -> dict | None:
    """Percentile interval of the defined replicates, or None past :data:`MAX_DROPPED` undefined ones."""
    reps = reps[~np.isnan(reps)]
    if len(reps) == 0 or n_boot - len(reps) > MAX_DROPPED * n_boot:
        return None
    low, high = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return {"low": float(low), "high": float(high), "level": level, "n_boot": n_boot, "n_used": len(reps),
            "seed": seed}  # fmt: skip


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
        y: Labels of all rows of the task, ``(N,)`` integers, ``(N, C)`` multi-hot or ``(N,)`` float regression
            targets; global row ids index it.
        runs: Per probe run, ``(test_rows, scores)``: global row ids ``(n,)`` and scores ``(n, C)`` (regression:
            predictions ``(n,)`` or ``(n, 1)``).
        metric: A name known to :func:`evalbench.metrics.compute`.
        label_type: ``"single"``, ``"binary"``, ``"multilabel"`` or ``"regression"``.
        n_boot: Number of bootstrap replicates.
        level: Coverage of the interval, in (0, 1).
        seed: Seed of ``np.random.default_rng``; the same inputs and seed give the same interval.

    Returns:
        ``{"low", "high", "level", "n_boot", "n_used", "seed", "method"}``, or ``None`` when there is no run or
        more than 5 % of the replicates had an undefined metric.
    """
    _check(n_boot, level)
    if not runs:
        return None
    reps = _replicates(y, _strata(runs), metric, label_type, n_boot, np.random.default_rng(seed))
    interval = _percentile(reps, n_boot, level, seed)
    return None if interval is None else {**interval, "method": METHOD}


def _paired_strata(arms: Sequence[list[tuple[np.ndarray, np.ndarray]]]) -> list[PairedStratum]:
    """Strata of several arms lined up by test rows, in the first arm's order.

    Raises:
        ValueError: An arm's strata (sets of test rows) are not exactly the first arm's.
    """
    per_arm = [{rows.tobytes(): (rows, run_scores) for rows, run_scores in _strata(runs)} for runs in arms]
    reference = per_arm[0]
    for a, strata in enumerate(per_arm[1:], start=1):
        if strata.keys() != reference.keys():
            only_ref = [_describe(reference[k][0]) for k in reference.keys() - strata.keys()]
            only_arm = [_describe(strata[k][0]) for k in strata.keys() - reference.keys()]
            raise ValueError(
                f"arms 0 and {a} are not scored on the same test clips ({len(reference)} vs {len(strata)} test "
                f"fold(s)): only arm 0 has {'; '.join(sorted(only_ref))}, only arm {a} {'; '.join(sorted(only_arm))}"
            )
    return [(rows, [strata[key][1] for strata in per_arm]) for key, (rows, _) in reference.items()]


def _describe(rows: np.ndarray) -> str:
    """A test fold in an error message: its size and first rows."""
    return f"a fold of {len(rows)} rows {rows[:3].tolist()}{'...' if len(rows) > 3 else ''}"


def _statistic(y: np.ndarray, runs: list[tuple[np.ndarray, np.ndarray]], metric: str, label_type: str) -> float:
    """Mean over runs of each run's metric on its own test rows (raises if undefined for a run)."""
    y = np.asarray(y)
    return float(np.mean([M.compute([metric], y[np.asarray(r)], s, label_type)[metric] for r, s in runs]))


def paired_differences(
    y: np.ndarray,
    arms: Sequence[list[tuple[np.ndarray, np.ndarray]]],
    metric: str,
    label_type: str,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict | None]:
    """Paired bootstrap test of the first arm against every other one, on the same resampled test clips.

    The statistic of an arm is :func:`bootstrap_ci`'s: the mean over its runs of each run's metric.  All arms
    are resampled together: each replicate draws, per test fold, one set of positions that every run of every
    arm uses (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13 and 16; Koehn,
    "Statistical significance tests for machine translation evaluation", EMNLP 2004, "paired bootstrap
    resampling").  Pairing removes the clip-to-clip difficulty both arms share from the difference, so a small
    but consistent gap can be significant although the two arms' own intervals overlap.

    Args:
        y: Labels of all rows of the task, indexed by global row id (as in :func:`bootstrap_ci`).
        arms: Per arm (encoder), its runs ``(test_rows, scores)``; every arm must have exactly the same sets of
            test rows (one per fold), though not necessarily the same number of runs.
        metric: A name known to :func:`evalbench.metrics.compute`.
        label_type: ``"single"``, ``"binary"``, ``"multilabel"`` or ``"regression"``.
        n_boot: Number of bootstrap replicates.
        level: Coverage of the percentile interval of the difference, in (0, 1).
        seed: Seed of ``np.random.default_rng``; the draws do not depend on the number of arms.

    Returns:
        Per arm, ``None`` for the first and otherwise ``{"difference", "low", "high", "significant", "level",
        "n_boot", "n_used", "seed", "method"}``: the observed statistic of the first arm minus this arm's, the
        percentile interval of that difference over replicates and whether it excludes 0.  An entry is None too
        when the metric is undefined for a run on the full test set or on more than 5 % of the replicates.

    Raises:
        ValueError: Fewer than two arms, an arm without runs, or arms not on the same test rows (the message
            names the folds that differ).
    """
    _check(n_boot, level)
    if len(arms) < 2 or not all(arms):
        raise ValueError(f"need two or more arms, each with runs; got {[len(runs) for runs in arms]} runs")
    strata = _paired_strata(arms)
    reps = _resample(y, strata, metric, label_type, n_boot, np.random.default_rng(seed))
    try:
        observed = [_statistic(y, runs, metric, label_type) for runs in arms]
    except MetricUndefinedError:
        return [None] * len(arms)
    out: list[dict | None] = [None]
    for a in range(1, len(arms)):
        interval = _percentile(reps[0] - reps[a], n_boot, level, seed)
        if interval is not None:
            significant = interval["low"] > 0.0 or interval["high"] < 0.0
            interval = {"difference": observed[0] - observed[a], **interval, "significant": bool(significant),
                        "method": PAIRED_METHOD}  # fmt: skip
        out.append(interval)
    return out


def paired_bootstrap(
    y: np.ndarray,
    runs_a: list[tuple[np.ndarray, np.ndarray]],
    runs_b: list[tuple[np.ndarray, np.ndarray]],
    metric: str,
    label_type: str,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict | None:
    """Paired bootstrap test of ``statistic(a) - statistic(b)`` on the same test clips.

    :func:`paired_differences` with the two arms ``a`` and ``b``; see there for the arguments, the result and
    the errors.  ``"significant"`` is True when the ``level`` percentile interval of the difference excludes 0.
    """
    return paired_differences(y, [runs_a, runs_b], metric, label_type, n_boot=n_boot, level=level, seed=seed)[1]
