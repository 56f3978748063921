"""Metrics against hand-computed values, for single-label, binary and multi-label tasks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError


def test_accuracy() -> None:
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    assert M.accuracy(np.array([0, 1, 1, 2]), scores) == 0.5
    with pytest.raises(MetricUndefinedError):
        M.accuracy(np.zeros((4, 3)), scores, "multilabel")


def test_binary_uses_the_positive_class() -> None:
    # positives score 0.8, 0.4; negatives 0.6, 0.2 -> pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2): AUC 3/4
    y = np.array([1, 0, 1, 0])
    p_pos = np.array([0.8, 0.6, 0.4, 0.2])
    scores = np.stack([1 - p_pos, p_pos], axis=1)
    assert M.roc_auc(y, scores, "binary") == 0.75
    # ranking 1,0,1,0: precision at the positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    assert M.map(y, scores, "binary") == pytest.approx(5 / 6)
    assert M.accuracy(y, scores, "binary") == 0.5  # argmax: 1, 1, 0, 0


def test_ties_get_half_credit() -> None:
    y = np.array([1, 0])
    scores = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert M.roc_auc(y, scores, "binary") == 0.5
    assert M.map(y, scores, "binary") == 0.5  # one threshold: precision 1/2 at recall 1


def test_multilabel_macro_skips_classes_without_positives() -> None:
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    s = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.2], [0.3, 0.7, 0.1]])
    # class 0: positives 0.9, 0.3 vs negative 0.2 -> AUC 1; AP 1
    # class 1: positives 0.8, 0.7 vs negative 0.1 -> AUC 1; AP 1; class 2 has no positive -> skipped
    assert M.roc_auc(y, s, "multilabel") == 1.0 and M.map(y, s, "multilabel") == 1.0
    assert M.skipped_classes(y, 3, "multilabel", "map") == 1
    s2 = s.copy()
    s2[2, 0] = 0.1  # class 0: positives 0.9, 0.1 vs negative 0.2 -> AUC 1/2; AP (1 + 2/3)/2
    assert M.roc_auc(y, s2, "multilabel") == pytest.approx((0.5 + 1.0) / 2)
    assert M.map(y, s2, "multilabel") == pytest.approx((5 / 6 + 1.0) / 2)


def test_single_label_one_vs_rest() -> None:
    y = np.array([0, 1, 2, 2])
    s = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.1, 0.8], [0.5, 0.1, 0.4]])
    expected_auc = np.mean([roc_auc_score(y == c, s[:, c]) for c in range(3)])
    expected_ap = np.mean([average_precision_score(y == c, s[:, c]) for c in range(3)])
    assert M.roc_auc(y, s) == pytest.approx(expected_auc)
    assert M.map(y, s) == pytest.approx(expected_ap)


def test_undefined_metrics_raise_clearly() -> None:
    s = np.array([[0.4, 0.6], [0.3, 0.7]])
    with pytest.raises(MetricUndefinedError, match="roc_auc is undefined"):
        M.roc_auc(np.array([1, 1]), s, "binary")
    with pytest.raises(MetricUndefinedError, match="map is undefined"):
        M.map(np.array([0, 0]), s, "binary")


def test_agrees_with_scikit_learn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n, c = rng.integers(6, 40), rng.integers(2, 6)
        y = (rng.random((n, c)) < 0.3).astype(int)
        y[0], y[1] = 1, 0
        s = np.round(rng.random((n, c)), 1)  # many ties
        assert M.map(y, s, "multilabel") == pytest.approx(
            np.mean([average_precision_score(y[:, k], s[:, k]) for k in range(c)]), abs=1e-12
        )
        assert M.roc_auc(y, s, "multilabel") == pytest.approx(roc_auc_score(y, s, average="macro"), abs=1e-12)
