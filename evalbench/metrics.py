"""Evaluation metrics for single-label, binary, multi-label and regression tasks.

Classification metrics take integer labels ``(n,)`` (single, binary) or a
multi-hot matrix ``(n, C)`` (multilabel), and scores ``(n, C)`` (class
probabilities or any monotone scores), and return a float in [0, 1], higher is
better.  Regression metrics take float targets ``(n,)`` and predictions ``(n,)``
or ``(n, 1)`` in the targets' units.  Direction, admissible label types and
range of every metric are in :mod:`evalbench.metric_info`; compare scores
through :func:`oriented` wherever "the best" is picked.

- ``accuracy``: top-1 accuracy; undefined for multilabel tasks.
- ``roc_auc``: area under the ROC curve.  Binary: of the positive class (the
  second one).  Single-label: macro mean of one-vs-rest AUCs.  Multilabel:
  macro mean over classes.  Classes without both positives and negatives in
  ``y_true`` are skipped (counted by :func:`skipped_classes`).  Ties get half
  credit (Mann–Whitney U).
- ``map``: average precision (area under the precision–recall curve, step
  interpolation at each distinct score, as scikit-learn's
  ``average_precision_score``).  Binary: AP of the positive class.  Otherwise
  the macro mean over classes with at least one positive ("mAP", PR-AUC).

Regression (``label_type="regression"``):

- ``mae``: mean absolute error (lower is better).
- ``rmse``: root mean squared error (lower is better).
- ``r2``: coefficient of determination 1 − SS_res / SS_tot (1 is perfect, 0 is
  predicting the test mean, negative is worse than that); undefined for
  constant targets.
- ``spearman``: Spearman's rank correlation (Pearson correlation of the ranks,
  ties at their average rank, ``scipy.stats.rankdata``); undefined when targets
  or predictions are constant.

A metric with no class it can be computed on, or undefined on these targets,
raises :class:`~evalbench.errors.MetricUndefinedError`; so does a metric asked
for a label type it is not defined for (accuracy on a multilabel task, MAE on a
classification task), a metric of no clips, a classification metric of NaN
scores (NaN has no order: argmax and ranks would make up a number; ±inf are
ordered and allowed) and a regression metric of non-finite targets or
predictions.  Regression metrics are computed on values scaled by a power of
two (exact, so ordinary inputs give bit-identical results) so that targets
near the float range neither overflow nor underflow; as a last guard,
:func:`compute` never returns a non-finite value and clips rounding
excursions outside a metric's range (:data:`~evalbench.metric_info.RANGE`).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from evalbench.errors import MetricUndefinedError
from evalbench.metric_info import HIGHER_IS_BETTER, LABEL_TYPES, RANGE, oriented

__all__ = ["HIGHER_IS_BETTER", "compute", "oriented", "skipped_classes"]


def _scores(scores: np.ndarray, metric: str) -> np.ndarray:
    """``scores`` as float64, refusing NaN (which has no order) and an empty set of clips."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        raise MetricUndefinedError(f"{metric} is undefined: there are no clips to score")
    bad = int(np.isnan(scores).sum())
    if bad:
        raise MetricUndefinedError(f"{metric} is undefined: {bad} score(s) are NaN (check the embeddings or the probe)")
    return scores


def _targets(y_true: np.ndarray, scores: np.ndarray, label_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Binary target matrix and the matching score columns."""
    scores = np.asarray(scores, dtype=np.float64)
    if label_type == "multilabel":
        y = np.asarray(y_true) > 0
        if y.shape != scores.shape:
            raise ValueError(f"labels {y.shape} and scores {scores.shape} differ in shape")
        return y, scores
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or len(y_true) != len(scores):
        raise ValueError(f"expected labels of shape ({len(scores)},), got {y_true.shape}")
    if label_type == "binary":
        return (y_true == 1)[:, None], scores[:, 1:2]
    return y_true[:, None] == np.arange(scores.shape[1])[None, :], scores


def accuracy(y_true: np.ndarray, scores: np.ndarray, label_type: str = "single") -> float:
    """Top-1 accuracy of ``argmax(scores)``."""
    if label_type == "multilabel":
        raise MetricUndefinedError("accuracy is undefined for multilabel tasks; use map or roc_auc")
    scores = _scores(scores, "accuracy")
    y_true = np.asarray(y_true)
    if y_true.ndim != 1 or scores.ndim != 2 or len(y_true) != len(scores):
        raise ValueError(f"expected labels ({len(scores)},) and 2-D scores; got {y_true.shape} and {scores.shape}")
    return float(np.mean(np.argmax(scores, axis=1) == y_true))


def _auc_columns(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    pos = y.sum(axis=0)
    neg = len(y) - pos
    ok = (pos > 0) & (neg > 0)
    ranks = rankdata(s[:, ok], axis=0)
    u = (ranks * y[:, ok]).sum(axis=0) - pos[ok] * (pos[ok] + 1) / 2.0
    return u / (pos[ok] * neg[ok])


def roc_auc(y_true: np.ndarray, scores: np.ndarray, label_type: str = "single") -> float:
    """Macro ROC-AUC over classes with both positives and negatives (binary: positive class)."""
    y, s = _targets(y_true, _scores(scores, "roc_auc"), label_type)
    values = _auc_columns(y, s)
    if len(values) == 0:
        raise MetricUndefinedError(
            "roc_auc is undefined: no class has both positive and negative examples in these labels"
        )
    return float(values.mean())


def _ap_columns(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Average precision of each column of boolean targets ``y`` and scores ``s`` (all columns need a positive).

    Precision and recall are evaluated at every distinct score threshold (the
    last row of each run of tied scores) and AP = Σ (R_i − R_{i−1}) · P_i.
    """
    order = np.argsort(-s, axis=0, kind="mergesort")
    s_sorted = np.take_along_axis(s, order, axis=0)
    y_sorted = np.take_along_axis(y, order, axis=0).astype(np.float64)
    tp = np.cumsum(y_sorted, axis=0)
    rank = np.arange(1, len(s) + 1, dtype=np.float64)[:, None]
    last = np.ones_like(s_sorted, dtype=bool)
    last[:-1] = s_sorted[1:] != s_sorted[:-1]
    recall = tp / tp[-1]
    at_last = np.where(last, recall, 0.0)
    previous = np.maximum.accumulate(np.vstack([np.zeros((1, s.shape[1])), at_last[:-1]]), axis=0)
    return np.sum(np.where(last, (recall - previous) * (tp / rank), 0.0), axis=0)


def map(y_true: np.ndarray, scores: np.ndarray, label_type: str = "single") -> float:
    """Macro average precision over classes with at least one positive (binary: positive class)."""
    y, s = _targets(y_true, _scores(scores, "map"), label_type)
    cols = np.flatnonzero(y.sum(axis=0) > 0)
    if len(cols) == 0:
        raise MetricUndefinedError("map is undefined: no class has a positive example in these labels")
    return float(_ap_columns(y[:, cols], s[:, cols]).mean())


def _regression(y_true: np.ndarray, scores: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Targets and predictions as float64 ``(n,)`` divided by a power of two ``scale``, and ``scale``.

    Predictions may come as ``(n, 1)``.  Dividing by a power of two is exact, so
    ``scale * f(y, p)`` equals ``f`` of the unscaled values for every input whose
    intermediate results neither overflow nor underflow, and also holds for
    those that would (targets near ±1e308, or below 1e-154 when squared).

    Raises:
        MetricUndefinedError: No clips, or a NaN or infinite target or prediction.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"expected targets (n,) and predictions (n,) or (n, 1); got {y.shape} and {p.shape}")
    if len(y) == 0:
        raise MetricUndefinedError(f"{metric} is undefined: there are no clips to score")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise MetricUndefinedError(f"{metric} is undefined: the targets or predictions hold NaN or infinite values")
    peak = max(float(np.abs(y).max()), float(np.abs(p).max()))
    scale = float(np.ldexp(1.0, int(np.frexp(peak)[1]))) if peak > 0 else 1.0  # 2^e ≥ peak: |values| ≤ 1
    return y / scale, p / scale, scale


def mae(y_true: np.ndarray, scores: np.ndarray, label_type: str = "regression") -> float:
    """Mean absolute error, in the targets' units (lower is better)."""
    y, p, scale = _regression(y_true, scores, "mae")
    return float(scale * np.mean(np.abs(y - p)))


def rmse(y_true: np.ndarray, scores: np.ndarray, label_type: str = "regression") -> float:
    """Root mean squared error, in the targets' units (lower is better)."""
    y, p, scale = _regression(y_true, scores, "rmse")
    return float(scale * np.sqrt(np.mean((y - p) ** 2)))


def r2(y_true: np.ndarray, scores: np.ndarray, label_type: str = "regression") -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (undefined for constant targets)."""
    y, p, _ = _regression(y_true, scores, "r2")
    total = np.sum((y - y.mean()) ** 2)
    if np.all(y == y[0]) or not total > 0:  # not > 0: spread below the float range at the predictions' scale
        raise MetricUndefinedError("r2 is undefined: the targets are constant")
    return float(1.0 - np.sum((y - p) ** 2) / total)


def spearman(y_true: np.ndarray, scores: np.ndarray, label_type: str = "regression") -> float:
    """Spearman's rank correlation (ties at their average rank); undefined for constant targets or predictions."""
    y, p, _ = _regression(y_true, scores, "spearman")
    if np.all(y == y[0]) or np.all(p == p[0]):
        raise MetricUndefinedError("spearman is undefined: the targets or the predictions are constant")
    a, b = rankdata(y), rankdata(p)
    a -= a.mean()
    b -= b.mean()
    return float(np.clip(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)), -1.0, 1.0))


def skipped_classes(y_true: np.ndarray, n_classes: int, label_type: str, metric: str) -> int:
    """How many classes ``metric`` skips on these labels (0 for accuracy and every regression metric)."""
    if metric == "accuracy" or label_type == "regression":
        return 0
    dummy = np.zeros((len(y_true), n_classes))
    y, _ = _targets(y_true, dummy, label_type)
    pos = y.sum(axis=0)
    usable = (pos > 0) & (pos < len(y)) if metric == "roc_auc" else pos > 0
    return int((~usable).sum())


_TABLE = {"accuracy": accuracy, "roc_auc": roc_auc, "map": map}
_TABLE |= {"mae": mae, "rmse": rmse, "r2": r2, "spearman": spearman}


def compute(names: list[str], y_true: np.ndarray, scores: np.ndarray, label_type: str) -> dict[str, float]:
    """Compute several metrics by name.

    Raises:
        MetricUndefinedError: A metric is undefined on these labels, or for ``label_type``.
    """
    out = {}
    for name in names:
        if label_type not in LABEL_TYPES[name]:
            raise MetricUndefinedError(
                f"{name} is undefined for {label_type} tasks; it is defined for {', '.join(sorted(LABEL_TYPES[name]))}"
            )
        value = _TABLE[name](y_true, scores, label_type)
        if not np.isfinite(value):  # a guard: every path above is finite on finite input
            raise MetricUndefinedError(f"{name} is undefined on these labels and scores (it came out as {value})")
        low, high = RANGE[name]
        out[name] = min(max(value, low), high)  # rounding can step a last ulp past 1.0 (AP, AUC)
    return out
