"""Evaluation metrics for single-label, binary and multi-label tasks.

All metrics take integer labels ``(n,)`` (single, binary) or a multi-hot matrix
``(n, C)`` (multilabel), and scores ``(n, C)`` (class probabilities or any
monotone scores), and return a float in [0, 1], higher is better.

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

A metric with no class it can be computed on raises
:class:`~evalbench.errors.MetricUndefinedError`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from evalbench.errors import MetricUndefinedError

HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "map": True}


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
    return float(np.mean(np.argmax(scores, axis=1) == np.asarray(y_true)))


def _auc_columns(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    pos = y.sum(axis=0)
    neg = len(y) - pos
    ok = (pos > 0) & (neg > 0)
    ranks = rankdata(s[:, ok], axis=0)
    u = (ranks * y[:, ok]).sum(axis=0) - pos[ok] * (pos[ok] + 1) / 2.0
    return u / (pos[ok] * neg[ok])


def roc_auc(y_true: np.ndarray, scores: np.ndarray, label_type: str = "single") -> float:
    """Macro ROC-AUC over classes with both positives and negatives (binary: positive class)."""
    y, s = _targets(y_true, scores, label_type)
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
    y, s = _targets(y_true, scores, label_type)
    cols = np.flatnonzero(y.sum(axis=0) > 0)
    if len(cols) == 0:
        raise MetricUndefinedError("map is undefined: no class has a positive example in these labels")
    return float(_ap_columns(y[:, cols], s[:, cols]).mean())


def skipped_classes(y_true: np.ndarray, n_classes: int, label_type: str, metric: str) -> int:
    """How many classes ``metric`` skips on these labels (0 for accuracy)."""
    if metric == "accuracy":
        return 0
    dummy = np.zeros((len(y_true), n_classes))
    y, _ = _targets(y_true, dummy, label_type)
    pos = y.sum(axis=0)
    usable = (pos > 0) & (pos < len(y)) if metric == "roc_auc" else pos > 0
    return int((~usable).sum())


def compute(names: list[str], y_true: np.ndarray, scores: np.ndarray, label_type: str) -> dict[str, float]:
    """Compute several metrics by name."""
    table = {"accuracy": accuracy, "roc_auc": roc_auc, "map": map}
    return {name: table[name](y_true, scores, label_type) for name in names}
