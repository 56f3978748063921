"""Fuzzing metrics and the record path: a right, finite, in-range value or "metric undefined".

:func:`evalbench.metrics.compute` and :class:`evalbench.protocol.SealedLabels`
get random labels and scores (empty input, ties, NaN, ±inf, ±1e300).  Either a
finite value in the metric's range that equals an independent implementation's,
or :class:`MetricUndefinedError`; the record path never yields NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from evalbench import metrics as M
from evalbench.errors import EvalbenchError, MetricUndefinedError
from evalbench.metric_info import LABEL_TYPES, RANGE
from evalbench.protocol import SealedLabels
from tests.reliability.fuzzing import FUZZ

score_values = st.floats(-1e6, 1e6) | st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e300, -1e300, 5e-324, math.nan, math.inf])


@st.composite
def metric_cases(draw: st.DrawFn) -> tuple[str, str, np.ndarray, np.ndarray]:
    """``(metric, label type, labels, scores)`` of random sizes, ties, NaN/Inf and extreme magnitudes."""
    label_type = draw(st.sampled_from(["single", "binary", "multilabel", "regression"]))
    metric = draw(st.sampled_from(sorted(m for m, types in LABEL_TYPES.items() if label_type in types)))
    n = draw(st.integers(0, 12))
    c = 2 if label_type == "binary" else draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    few = draw(st.booleans())  # few distinct values: ties everywhere
    pool = np.array(draw(st.lists(score_values, min_size=1, max_size=4 if few else 30)))
    if label_type == "regression":
        y = rng.choice(np.array(draw(st.lists(score_values, min_size=1, max_size=5))), size=n)
        scores = rng.choice(pool, size=n if draw(st.booleans()) else (n, 1))
        if draw(st.booleans()):  # finite, ordinary targets and predictions: the common case, with exact oracles
            y, scores = rng.normal(size=n) * 10, rng.normal(size=n) * 10
    elif label_type == "multilabel":
        y = rng.integers(0, 2, size=(n, c)).astype(np.float32)
        scores = rng.choice(pool, size=(n, c))
    else:
        y = rng.integers(0, c, size=n)
        scores = rng.choice(pool, size=(n, c))
    return metric, label_type, y, scores


def _auc_oracle(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC as the share of (positive, negative) pairs ranked right, ties half (Mann–Whitney, by counting)."""
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def _oracle(metric: str, label_type: str, y: np.ndarray, s: np.ndarray) -> float | None:
    """An independent implementation (None: undefined, or no cheap exact oracle for this case)."""
    s = np.asarray(s, dtype=np.float64)
    if metric == "accuracy":
        return float(np.mean([s[i, y[i]] == s[i].max() and s[i, : y[i]].max(initial=-np.inf) < s[i].max()
                              for i in range(len(y))]))  # fmt: skip
    if metric in ("roc_auc", "map"):
        if label_type == "binary":
            cols = [(y == 1, s[:, 1])]
        elif label_type == "multilabel":
            cols = [(y[:, k] > 0, s[:, k]) for k in range(y.shape[1])]
        else:
            cols = [(y == k, s[:, k]) for k in range(s.shape[1])]
        if metric == "roc_auc":
            vals = [_auc_oracle(sc[t], sc[~t]) for t, sc in cols if t.any() and (~t).any()]
        elif not np.isfinite(s).all():
            return None  # scikit-learn refuses infinite scores
        else:
            from sklearn.metrics import average_precision_score

            vals = [average_precision_score(t, sc) for t, sc in cols if t.any()]
        return float(np.mean(vals)) if vals else None
    p = s.reshape(-1)
    if max(np.abs(y).max(initial=0), np.abs(p).max(initial=0)) > 1e100:
        return None  # the oracle itself would overflow
    if metric == "mae":
        return math.fsum(abs(a - b) for a, b in zip(y, p, strict=True)) / len(y)
    if metric == "rmse":
        return math.sqrt(math.fsum((a - b) ** 2 for a, b in zip(y, p, strict=True)) / len(y))
    if metric == "r2":
        mean = math.fsum(y) / len(y)
        return 1 - math.fsum((a - b) ** 2 for a, b in zip(y, p, strict=True)) / math.fsum((a - mean) ** 2 for a in y)
    from scipy.stats import spearmanr

    return float(spearmanr(y, p).statistic)


@settings(FUZZ, max_examples=150)
@given(case=metric_cases())
def test_metrics_are_finite_in_range_and_right_or_undefined(case) -> None:
    metric, label_type, y, scores = case
    try:
        value = M.compute([metric], y, scores, label_type)[metric]
    except MetricUndefinedError as exc:
        assert metric in str(exc)
        event("metric undefined")
        return
    low, high = RANGE[metric]
    assert isinstance(value, float) and math.isfinite(value), f"{metric} = {value}"
    assert low <= value <= high, f"{metric} = {value} outside [{low}, {high}]"
    s64, y64 = np.asarray(scores, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if label_type == "regression":
        assert np.isfinite(s64).all() and np.isfinite(y64).all(), f"{metric} = {value} from non-finite input"
    else:  # ±inf scores are ordered (an argmax, a rank); NaN is not
        assert not np.isnan(s64).any(), f"{metric} = {value} from NaN scores"
    expected = _oracle(metric, label_type, y, scores)
    event("metric checked against an oracle" if expected is not None else "metric in range, no oracle")
    if expected is not None:
        assert value == pytest.approx(expected, rel=1e-9, abs=1e-12), f"{metric}: {value} vs oracle {expected}"


@FUZZ
@given(case=metric_cases())
def test_the_record_path_never_holds_nan_or_out_of_range_scores(case) -> None:
    """What :mod:`evalbench.protocol` puts in a record: every metric of the task, None, or a refusal."""
    _, label_type, y, scores = case
    names = sorted(m for m, types in LABEL_TYPES.items() if label_type in types)
    try:
        got = SealedLabels(y, names, label_type).score(scores)
    except MetricUndefinedError:
        pytest.fail("an undefined metric must be recorded as None, not stop the run")
    except EvalbenchError as exc:
        assert "non-finite" in str(exc)
        assert not np.isfinite(np.asarray(scores, dtype=np.float64)).all()
        return
    assert set(got) == set(names)
    for name, value in got.items():
        assert value is None or (math.isfinite(value) and RANGE[name][0] <= value <= RANGE[name][1]), (name, value)


def test_metric_shape_mistakes_are_value_errors_not_numbers() -> None:
    """A caller's shape mistake is a programming error: it must not come back as a plausible score."""
    with pytest.raises(ValueError, match="shape"):
        M.compute(["roc_auc"], np.array([0, 1, 1]), np.zeros((2, 2)), "single")
    with pytest.raises(ValueError, match="shape"):
        M.compute(["map"], np.zeros((3, 2)), np.zeros((3, 3)), "multilabel")
    with pytest.raises(ValueError, match="expected targets"):
        M.compute(["mae"], np.zeros(3), np.zeros((3, 2)), "regression")
