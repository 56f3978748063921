"""Bootstrap confidence intervals: coverage, strata, pairing across seeds, undefined metrics, fast path."""

from __future__ import annotations

import numpy as np
import pytest

from evalbench import metrics as M
from evalbench import uncertainty as U
from evalbench.uncertainty import bootstrap_ci


def _onehot_predictions(y: np.ndarray, correct: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """One-hot scores predicting ``y`` where ``correct`` and another class elsewhere."""
    return np.eye(n_classes)[np.where(correct, y, (y + 1) % n_classes)]


def _binary_scores(y: np.ndarray, rng: np.random.Generator, shift: float = 1.0) -> np.ndarray:
    """Noisy binary scores, informative about ``y`` (positives shifted up)."""
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=len(y)) + shift * (2 * y - 1))))
    return np.stack([1 - p, p], axis=1)


def test_accuracy_interval_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    n_sim, n, p = 400, 200, 0.7
    rng = np.random.default_rng(123)
    covered = 0
    for sim in range(n_sim):
        y = rng.integers(0, 3, n)
        scores = _onehot_predictions(y, rng.random(n) < p)
        ci = bootstrap_ci(y, [(np.arange(n), scores)], "accuracy", "single", n_boot=400, seed=sim)
        assert ci is not None and ci["n_used"] == 400 and ci["low"] <= ci["high"]
        covered += ci["low"] <= p <= ci["high"]
    # Nominal 0.95; with 400 simulations the binomial sd of the estimated coverage is ~1.1 points, so
    # [0.92, 0.975] is about -2.7 / +2.3 sd.  A 90 % interval (coverage ~0.90) or one that is too wide
    # (~0.99) falls outside.  (The percentile interval is slightly liberal at n=200; seen: 0.94-0.96.)
    assert 0.92 <= covered / n_sim <= 0.975


def test_roc_auc_interval_is_deterministic_in_the_seed_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = _binary_scores(y, rng)
    runs = [(np.arange(200), scores)]
    estimate = M.roc_auc(y, scores, "binary")
    ci = bootstrap_ci(y, runs, "roc_auc", "binary", n_boot=300, seed=7)
    assert ci is not None
    assert ci["low"] < estimate < ci["high"]
    assert 0.02 < ci["high"] - ci["low"] < 0.3  # sd of an AUC near 0.85 on 200 clips is ~0.03
    assert ci == bootstrap_ci(y, runs, "roc_auc", "binary", n_boot=300, seed=7)
    other = bootstrap_ci(y, runs, "roc_auc", "binary", n_boot=300, seed=8)
    assert other is not None and (other["low"], other["high"]) != (ci["low"], ci["high"])
    assert abs(other["low"] - ci["low"]) < 0.03 and abs(other["high"] - ci["high"]) < 0.03
    assert (ci["level"], ci["n_boot"], ci["n_used"], ci["seed"]) == (0.95, 300, 300, 7)
    assert ci["method"] == U.METHOD


def test_multilabel_map_interval() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((120, 4)) < 0.3).astype(int)
    scores = y + rng.normal(scale=0.8, size=y.shape)
    ci = bootstrap_ci(y, [(np.arange(120), scores)], "map", "multilabel", n_boot=200)
    assert ci is not None and ci["low"] < M.map(y, scores, "multilabel") < ci["high"]


def test_folds_are_resampled_separately() -> None:
    y = np.zeros(100, dtype=int)
    all_right, all_wrong = np.eye(3)[np.zeros(50, dtype=int)], np.eye(3)[np.ones(50, dtype=int)]
    runs = [(np.arange(50), all_right), (np.arange(50, 100), all_wrong)]
    ci = bootstrap_ci(y, runs, "accuracy", "single", n_boot=200)
    # Fold 1 is always 1.0 and fold 2 always 0.0 on any resample of its own rows: every replicate is 0.5.
    assert ci is not None and ci["low"] == ci["high"] == 0.5
    # Complementary folds of equal size: only if both folds shared resampled positions (strata keyed by size,
    # say) would every replicate be 0.5.  Independent folds give a spread.
    correct = np.random.default_rng(2).random(50) < 0.5
    runs = [
        (np.arange(50), _onehot_predictions(y[:50], correct)),
        (np.arange(50, 100), _onehot_predictions(y[50:], ~correct)),
    ]
    ci = bootstrap_ci(y, runs, "accuracy", "single", n_boot=200)
    assert ci is not None and ci["low"] < 0.5 < ci["high"]


def test_seeds_on_one_test_set_share_the_resample() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 80)
    rows = np.arange(80)
    correct = rng.random(80) < 0.6
    # Two seeds wrong exactly where the other is right: paired, every replicate mean is 0.5.  The second run
    # lists its rows in another order, which must be mapped back onto the first run's rows.
    perm = rng.permutation(80)
    runs = [(rows, _onehot_predictions(y, correct)), (rows[perm], _onehot_predictions(y, ~correct)[perm])]
    ci = bootstrap_ci(y, runs, "accuracy", "single", n_boot=200)
    assert ci is not None and ci["low"] == ci["high"] == 0.5
    # Identical seeds add nothing: the interval is that of one run, for the fast and the generic path.
    for metric in ("accuracy", "roc_auc"):
        scores = rng.random((80, 3))
        one = bootstrap_ci(y, [(rows, scores)], metric, "single", n_boot=100, seed=5)
        two = bootstrap_ci(y, [(rows, scores), (rows[perm], scores[perm])], metric, "single", n_boot=100, seed=5)
        assert one is not None and one == two


def test_undefined_metric_gives_none() -> None:
    rng = np.random.default_rng(4)
    y = np.zeros(60, dtype=int)
    y[30:] = 1
    scores = _binary_scores(y, rng)
    fold_one_class = (np.arange(30), scores[:30])  # only negatives: ROC-AUC undefined on every resample
    assert bootstrap_ci(y, [fold_one_class, (np.arange(30, 60), scores[30:])], "roc_auc", "binary") is None
    assert bootstrap_ci(y, [], "accuracy", "single") is None
    assert bootstrap_ci(y, [(np.arange(60), scores)], "accuracy", "multilabel") is None
    # One positive in 10 clips: a resample misses it with probability 0.9**10 ~ 0.35 > 5 %.
    y_rare = np.zeros(10, dtype=int)
    y_rare[0] = 1
    assert bootstrap_ci(y_rare, [(np.arange(10), scores[:10])], "roc_auc", "binary", n_boot=200) is None
    # Five positives in 30 clips: missed with probability (25/30)**30 ~ 0.4 %, so a few replicates are dropped.
    y_few = np.zeros(30, dtype=int)
    y_few[:5] = 1
    ci = bootstrap_ci(y_few, [(np.arange(30), _binary_scores(y_few, rng))], "roc_auc", "binary", n_boot=2000)
    assert ci is not None and 1900 <= ci["n_used"] < 2000


@pytest.mark.parametrize("label_type, n_classes", [("single", 4), ("binary", 2)])
def test_fast_accuracy_path_equals_generic_path(label_type: str, n_classes: int) -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, n_classes, 90)
    folds = np.array_split(rng.permutation(90), 3)
    runs = [(rng.permutation(fold), rng.random((len(fold), n_classes))) for fold in folds for _ in range(2)]
    strata = U._strata(runs)
    assert [len(s) for _, s in strata] == [2, 2, 2]
    fast = U._replicates(y, strata, "accuracy", label_type, 150, np.random.default_rng(9))
    slow = U._replicates(y, strata, "accuracy", label_type, 150, np.random.default_rng(9), vectorised=False)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert fast.std() > 0
    # Independent check of the first replicate, redrawing its positions by the documented scheme.
    draw = np.random.default_rng(9)
    first = []
    for rows, run_scores in strata:
        idx = draw.integers(0, len(rows), size=(150, len(rows)))[0]
        first += [M.accuracy(y[rows][idx], s[idx], label_type) for s in run_scores]
    assert fast[0] == pytest.approx(np.mean(first), abs=1e-12)
    # The same draws give the interval bootstrap_ci reports.
    ci = bootstrap_ci(y, runs, "accuracy", label_type, n_boot=150, seed=9)
    assert ci is not None and ci["low"] == pytest.approx(np.quantile(slow, 0.025), abs=1e-12)
