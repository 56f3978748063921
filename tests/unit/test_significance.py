"""Paired bootstrap test of two encoders on the same test clips, and the predictions sidecar it reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalbench import uncertainty as U
from evalbench.results.store import iter_records, load_predictions, predictions_path, write_predictions
from evalbench.uncertainty import bootstrap_ci, paired_bootstrap, paired_differences


def _predict(y: np.ndarray, correct: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """One-hot scores predicting ``y`` where ``correct`` and another class elsewhere."""
    return np.eye(n_classes)[np.where(correct, y, (y + 1) % n_classes)]


def test_identical_predictions_differ_by_zero_and_a_clear_gap_is_significant() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y, rows = rng.integers(0, 3, n), np.arange(n)
    good, poor = _predict(y, rng.random(n) < 0.95), _predict(y, rng.random(n) < 0.60)
    same = paired_bootstrap(y, [(rows, good)], [(rows, good)], "accuracy", "single")
    assert same is not None and same["difference"] == same["low"] == same["high"] == 0.0
    assert not same["significant"] and same["n_boot"] == same["n_used"] == 1000
    gap = paired_bootstrap(y, [(rows, good)], [(rows, poor)], "accuracy", "single")
    assert gap is not None and gap["significant"] and 0.25 < gap["low"] < gap["difference"] < gap["high"] < 0.45
    assert gap["method"] == U.PAIRED_METHOD
    # The other way round: the same interval mirrored, still significant.
    back = paired_bootstrap(y, [(rows, poor)], [(rows, good)], "accuracy", "single")
    assert back is not None and back["significant"] and back["high"] == pytest.approx(-gap["low"])


def test_null_hypothesis_is_rejected_at_about_the_nominal_rate() -> None:
    """Two encoders right on independent clips with the same probability: the 95 % test rejects ~5 % of the time."""
    rng = np.random.default_rng(11)
    n_sim, n, p = 200, 200, 0.7
    rows = np.arange(n)
    rejected = 0
    for sim in range(n_sim):
        y = rng.integers(0, 3, n)
        a, b = _predict(y, rng.random(n) < p), _predict(y, rng.random(n) < p)
        result = paired_bootstrap(y, [(rows, a)], [(rows, b)], "accuracy", "single", seed=sim)
        assert result is not None
        rejected += result["significant"]
    # Binomial sd of the rate at 0.05 over 200 simulations is 1.5 points; a test at 80 % (rate ~0.2) or a
    # broken one that never rejects (0) falls outside [0.01, 0.10].
    assert 0.01 <= rejected / n_sim <= 0.10


def test_pairing_detects_a_small_consistent_gap_that_separate_intervals_miss() -> None:
    rng = np.random.default_rng(2)
    n = 400
    y, rows = rng.integers(0, 3, n), np.arange(n)
    right = rng.random(n) < 0.75
    worse = right & ~(np.arange(n) % 25 == 0)  # B: A's errors plus 4 % more, on the same clips
    a, b = [(rows, _predict(y, right))], [(rows, _predict(y, worse))]
    ci_a, ci_b = bootstrap_ci(y, a, "accuracy", "single"), bootstrap_ci(y, b, "accuracy", "single")
    assert ci_a is not None and ci_b is not None
    assert ci_a["low"] < ci_b["high"]  # the separate intervals overlap ...
    paired = paired_bootstrap(y, a, b, "accuracy", "single")
    assert paired is not None and paired["significant"] and paired["low"] > 0  # ... the paired test does not


def test_test_folds_are_strata_and_must_match() -> None:
    y = np.zeros(100, dtype=int)
    right, wrong = np.eye(3)[np.zeros(50, dtype=int)], np.eye(3)[np.ones(50, dtype=int)]
    first, second = np.arange(50), np.arange(50, 100)
    # A is right on every clip of fold 1, B on every clip of fold 2, on any resample of that fold: every
    # replicate's difference is the observed one, 1/2 - 1/3 (B has a second seed on fold 1).  Resampling the
    # folds together would spread it.
    a = [(first, right), (second, wrong)]
    b = [(second[::-1], right), (first, wrong), (first, wrong)]  # other order, more seeds on fold 1: fine
    result = paired_bootstrap(y, a, b, "accuracy", "single")
    assert result is not None and result["low"] == result["high"] == pytest.approx(result["difference"])
    assert result["difference"] == pytest.approx(1 / 6)
    # Other test folds over the same clips, or an extra fold: refused, naming the folds that differ.
    with pytest.raises(ValueError, match=r"only arm 0 has a fold of 50 rows \[0, 1, 2\]\.\.\..*fold of 100 rows"):
        paired_bootstrap(y, a, [(np.arange(100), np.eye(3)[np.zeros(100, dtype=int)])], "accuracy", "single")
    with pytest.raises(ValueError, match=r"2 vs 3 test fold\(s\).*only arm 1 a fold of 10 rows"):
        paired_bootstrap(y, a, [*a, (np.arange(10), right[:10])], "accuracy", "single")
    with pytest.raises(ValueError, match="two or more arms"):
        paired_differences(y, [a], "accuracy", "single")


def test_many_arms_share_the_draws_of_pairwise_tests_and_of_bootstrap_ci() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, 120)
    folds = np.array_split(rng.permutation(120), 3)
    arms = [[(rng.permutation(f), rng.random((len(f), 4))) for f in folds for _ in range(k)] for k in (1, 2, 3)]
    for metric in ("accuracy", "roc_auc"):
        together = paired_differences(y, arms, metric, "single", n_boot=120, seed=3)
        assert together[0] is None
        for i in (1, 2):
            assert together[i] == paired_bootstrap(y, arms[0], arms[i], metric, "single", n_boot=120, seed=3)
    # Each arm's replicates are bootstrap_ci's replicates of that arm alone.
    strata = U._paired_strata(arms)
    reps = U._resample(y, strata, "roc_auc", "single", 80, np.random.default_rng(5))
    for i, runs in enumerate(arms):
        alone = U._replicates(y, U._strata(runs), "roc_auc", "single", 80, np.random.default_rng(5))
        np.testing.assert_array_equal(reps[i], alone)


def test_generic_metrics_and_undefined_ones() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random((150, 4)) < 0.3).astype(int)
    rows = np.arange(150)
    good, noisy = y + rng.normal(scale=0.3, size=y.shape), y + rng.normal(scale=3.0, size=y.shape)
    result = paired_bootstrap(y, [(rows, good)], [(rows, noisy)], "map", "multilabel", n_boot=200)
    assert result is not None and result["significant"] and result["difference"] > 0.2
    one_class = np.zeros(150, dtype=int)
    binary = np.stack([1 - good[:, 0], good[:, 0]], axis=1)
    assert paired_bootstrap(one_class, [(rows, binary)], [(rows, binary)], "roc_auc", "binary") is None


# ---- the predictions sidecar ----


def _record(n_runs: int, created: str = "2026-12-02T06:00:00+00:00") -> dict:
    run = {"seed": 42, "fold": None, "n": {"test": 30}, "test": {"accuracy": 0.5}, "valid": {"accuracy": 0.5}}
    return {
        "schema_version": 1,
        "created": created,
        "encoder": {"name": "a", "embedding_dim": 4},
        "task": {
            "name": "t",
            "version": 1,
            "primary_metric": "accuracy",
            "metrics": ["accuracy"],
            "label_type": "single",
            "dataset_sha256": "d" * 64,
            "spec_sha256": "s" * 64,
        },
        "probe": {"protocol": "evalbench-linear-v3"},
        "seeds": [42 + i for i in range(n_runs)],
        "scores": {"test": {"accuracy": {"mean": 0.5, "std": 0.0}}, "valid": {"accuracy": {"mean": 0.5, "std": 0.0}}},
        "runs": [{**run, "seed": 42 + i} for i in range(n_runs)],
    }


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_sidecar_round_trip_keeps_every_run_and_the_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 100)
    rows = rng.permutation(100)[:30]
    shared = rng.random((30, 3))
    runs = [(rows, shared), (rows, rng.random((30, 3))), (rows, shared.copy())]  # runs 0 and 2 are identical
    path = tmp_path / "a" / "t.linear.json"
    record = _record(3)
    _write(path, record)
    written = write_predictions(path, record, runs, y)
    assert written == predictions_path(path) == tmp_path / "a" / "t.linear.predictions.npz"
    assert [p for p, _ in iter_records(tmp_path)] == [path]  # the sidecar is not a record
    loaded = load_predictions(path, json.loads(path.read_text()))
    assert loaded is not None and len(loaded.blocks) == 2 and loaded.run_block.tolist() == [0, 1, 0]
    for (r, s), (r0, s0) in zip(loaded.runs, runs, strict=True):
        assert r.dtype == np.int64 and s.dtype == np.float32
        np.testing.assert_array_equal(r, r0)
        np.testing.assert_allclose(s, s0, rtol=1e-7)  # float32: close, not identical
    assert loaded.distinct_runs() == loaded.runs  # blocks stand for 2 and 1 runs: all runs needed for the mean
    np.testing.assert_array_equal(loaded.y_rows, np.sort(rows))
    np.testing.assert_array_equal(loaded.labels()[rows], y[rows])
    with pytest.raises(ValueError, match="2 runs of predictions for 3"):
        write_predictions(path, record, runs[:2], y)
    with pytest.raises(ValueError, match="for 30 test clips"):
        write_predictions(path, record, [(rows[:20], shared[:20])] * 3, y)


def test_equal_repeats_collapse_to_the_distinct_predictions(tmp_path: Path) -> None:
    y = np.arange(30) % 3
    path = tmp_path / "t.json"
    record = _record(4)
    write_predictions(path, record, [(np.arange(30), np.eye(3)[y])] * 4, y)
    loaded = load_predictions(path, record)
    assert loaded is not None and len(loaded.runs) == 4 and len(loaded.distinct_runs()) == 1


def test_stale_or_broken_sidecars_are_ignored(tmp_path: Path) -> None:
    y = np.arange(30) % 3
    path = tmp_path / "a" / "t.linear.json"
    record = _record(2)
    assert load_predictions(path, record) is None  # none written yet
    write_predictions(path, record, [(np.arange(30), np.eye(3)[y])] * 2, y)
    assert load_predictions(path, record) is not None
    rewritten = {**record, "created": "2026-12-03T09:00:00+00:00"}  # record rewritten, sidecar not
    assert load_predictions(path, rewritten) is None
    for key in ("dataset_sha256", "spec_sha256"):
        assert load_predictions(path, {**record, "task": {**record["task"], key: "x" * 64}}) is None
    # Rewritten within the same second with other scores: the hash of the runs tells them apart.
    other_runs = [{**r, "test": {"accuracy": 0.6}} for r in record["runs"]]
    assert load_predictions(path, {**record, "runs": other_runs}) is None
    predictions_path(path).write_bytes(b"not an npz")
    assert load_predictions(path, record) is None
