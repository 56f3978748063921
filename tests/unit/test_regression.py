"""Regression tasks end to end: metrics, spec and labels, the ridge probe, bootstrap, sidecar, leaderboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from evalbench import metrics as M
from evalbench.data.metadata import PreparedDataset
from evalbench.data.synthetic import SyntheticBuilder
from evalbench.data.task_data import build_task_data
from evalbench.errors import DataError, MetricUndefinedError, SpecError
from evalbench.probes.linear import LinearProbe
from evalbench.results.significance import vs_best
from evalbench.results.store import load_predictions, write_predictions
from evalbench.results.tables import collect, render_markdown
from evalbench.specs.task import SuiteSpec, parse_task_file
from evalbench.uncertainty import bootstrap_ci, paired_differences
from tests.conftest import TASKS
from tests.unit.test_results import record, write

SPEC = TASKS / "synth_pitch_reg.yaml"


def _linear(n: int, d: int, seed: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised features and targets in "semitones" (mean 60, a few informative directions)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, 60.0 + 3.0 * x[:, :5].sum(1) + noise * rng.standard_normal(n)


# --- metrics ---------------------------------------------------------------------------------------------------------


def test_metrics_equal_sklearn_and_scipy() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(60, 10, 300)
    p = y + rng.normal(0, 4, 300)
    p[:20] = np.round(p[:20])  # some ties in the ranks
    got = M.compute(["mae", "rmse", "r2", "spearman"], y, p, "regression")
    assert got["mae"] == pytest.approx(mean_absolute_error(y, p), abs=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, p)), abs=1e-12)
    assert got["r2"] == pytest.approx(r2_score(y, p), abs=1e-12)
    assert got["spearman"] == pytest.approx(spearmanr(y, p).statistic, abs=1e-12)
    assert M.compute(["mae", "rmse", "r2", "spearman"], y, p[:, None], "regression") == got  # (n, 1) predictions


def test_metric_direction_and_undefined_cases() -> None:
    assert not M.HIGHER_IS_BETTER["mae"] and not M.HIGHER_IS_BETTER["rmse"] and M.HIGHER_IS_BETTER["r2"]
    assert M.oriented("mae", 2.0) == -2.0 and M.oriented("r2", 0.5) == 0.5
    y = np.array([1.0, 2.0, 3.0])
    with pytest.raises(MetricUndefinedError, match="targets are constant"):
        M.r2(np.full(3, 5.0), y)
    with pytest.raises(MetricUndefinedError, match="constant"):
        M.spearman(y, np.full(3, 7.0))
    with pytest.raises(MetricUndefinedError, match="mae is undefined for single tasks"):
        M.compute(["mae"], np.array([0, 1]), np.eye(2), "single")
    with pytest.raises(MetricUndefinedError, match="accuracy is undefined for regression"):
        M.compute(["accuracy"], y, y, "regression")
    assert M.skipped_classes(y, 1, "regression", "r2") == 0


# --- spec and labels -------------------------------------------------------------------------------------------------


def test_spec_rejects_classes_and_metrics_of_the_other_kind(tmp_path: Path) -> None:
    spec = parse_task_file(SPEC)
    assert spec.labels.type == "regression" and spec.primary_metric == "r2" and spec.labels.classes is None
    shutil.copytree(TASKS / "_base", tmp_path / "_base")
    path = tmp_path / "synth_pitch_reg.yaml"
    for old, new, message in (
        ("[r2, spearman, mae, rmse]", "[r2, accuracy]", r"\['accuracy'\] undefined for regression tasks"),
        ("type: regression", "type: regression\n  classes: [a, b]", "a regression task has no classes"),
    ):
        path.write_text(SPEC.read_text().replace(old, new))
        with pytest.raises(SpecError, match=message):
            parse_task_file(path)
    path.write_text(SPEC.read_text().replace("type: regression", "type: single").replace("r2, spearman, ", ""))
    path.write_text(path.read_text().replace("[mae, rmse]", "[accuracy]"))
    with pytest.raises(SpecError, match="synthetic kind 'pitch_midi' needs regression"):
        SyntheticBuilder().source_fingerprint(parse_task_file(path), None)
    single = tmp_path / "synth_pitch.yaml"
    single.write_text((TASKS / "synth_pitch.yaml").read_text().replace("[accuracy, roc_auc]", "[accuracy, mae]"))
    with pytest.raises(SpecError, match=r"\['mae'\] undefined for single"):
        parse_task_file(single)


def _dataset(tmp_path: Path, labels: list[str]) -> PreparedDataset:
    splits = ["train"] * (len(labels) - 2) + ["valid", "test"]
    meta = pd.DataFrame({"file_name": [f"c{i}.wav" for i in range(len(labels))], "label": labels, "split": splits})
    return PreparedDataset(tmp_path, meta, tmp_path, {"metadata_sha256": "0" * 64})


def test_float_targets_and_a_bad_value_names_file_row_and_value(tmp_path: Path) -> None:
    spec = parse_task_file(SPEC)
    data = build_task_data(spec, _dataset(tmp_path, ["61.25", "40", "-3.5e1", "70.0"]))
    assert data.y.dtype == np.float64 and data.y.tolist() == [61.25, 40.0, -35.0, 70.0] and data.classes == []
    for bad in ("sixty", "nan", "inf", ""):
        with pytest.raises(DataError, match=rf"metadata.csv: row 4: label '{bad}' is not a finite number"):
            build_task_data(spec, _dataset(tmp_path, ["61.25", "40", bad, "70.0"]))


def test_validation_strata_are_target_deciles_of_the_given_rows(tmp_path: Path) -> None:
    spec = parse_task_file(SPEC)
    labels = [str(v) for v in np.arange(100.0)] + ["1000", "2000"]
    data = build_task_data(spec, _dataset(tmp_path, labels))
    rows = np.arange(100)  # the last two (huge) targets are not among the rows: they do not move the edges
    assert np.bincount(data.primary_labels(rows)).tolist() == [10] * 10
    assert data.primary_labels(rows)[[0, 9, 10, 99]].tolist() == [0, 0, 1, 9]


# --- the ridge probe -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(200, 30), (40, 100)])  # n >= d, and the training row space (n < d)
def test_ridge_probe_is_sklearn_ridge_on_standardised_targets(n: int, d: int) -> None:
    x, y = _linear(n, d, 0)
    xv, yv = _linear(80, d, 1)
    probe = LinearProbe(1, "regression", "r2", solver="newton").fit(x, y, xv, yv)
    mean, scale = y.mean(), y.std()
    assert (probe.target_mean_, probe.target_scale_) == (pytest.approx(mean), pytest.approx(scale))
    for point in probe.chosen_["grid"]:  # every strength on the path: sklearn's ridge and its validation R²
        ref = Ridge(alpha=n * point["l2"]).fit(x, (y - mean) / scale)
        assert point["valid"] == pytest.approx(r2_score(yv, mean + scale * ref.predict(xv)), abs=1e-6)
    ref = Ridge(alpha=n * probe.chosen_["l2"]).fit(x, (y - mean) / scale)
    np.testing.assert_allclose(probe.coef_[:, 0], scale * ref.coef_, atol=1e-6)
    np.testing.assert_allclose(probe.intercept_, mean + scale * ref.intercept_, atol=1e-6)
    np.testing.assert_allclose(probe.predict(xv), mean + scale * ref.predict(xv), atol=1e-6)
    best = max(probe.chosen_["grid"], key=lambda p: p["valid"])
    assert probe.chosen_["l2"] == best["l2"] and probe.predict(xv).shape == (80,)
    assert probe.chosen_["converged"] and probe.deterministic


def test_lower_is_better_primary_picks_the_smallest_validation_error() -> None:
    x, y = _linear(60, 40, 2, noise=6.0)
    xv, yv = _linear(60, 40, 3, noise=6.0)
    probe = LinearProbe(1, "regression", "mae", solver="newton", l2=(1.0, 0.1, 0.01, 0.001)).fit(x, y, xv, yv)
    grid = probe.chosen_["grid"]
    assert len({p["valid"] for p in grid}) == len(grid)  # distinct errors: the choice is not a tie
    assert probe.chosen_["l2"] == min(grid, key=lambda p: p["valid"])["l2"]
    assert probe.valid_score_ == min(p["valid"] for p in grid) > 0


def test_targets_are_standardised_with_training_statistics_only() -> None:
    """Validation targets far from the training ones (×7 + 300) choose a strength, but never scale the fit."""
    x, y = _linear(120, 20, 4)
    xv, yv = _linear(50, 20, 5)
    for y_valid in (yv, 7.0 * yv + 300.0):
        probe = LinearProbe(1, "regression", "spearman", solver="newton").fit(x, y, xv, y_valid)
        assert (probe.target_mean_, probe.target_scale_) == (y.mean(), y.std())
        ref = Ridge(alpha=len(y) * probe.chosen_["l2"]).fit(x, (y - y.mean()) / y.std())  # train statistics
        np.testing.assert_allclose(probe.coef_[:, 0], y.std() * ref.coef_, atol=1e-8)
        np.testing.assert_allclose(probe.intercept_, y.mean() + y.std() * ref.intercept_, atol=1e-8)


def test_adam_and_predict_proba_refuse_regression() -> None:
    x, y = _linear(30, 5, 6)
    with pytest.raises(ValueError, match="solver 'adam' does not fit regression tasks"):
        LinearProbe(1, "regression", "r2").fit(x, y, x, y)
    probe = LinearProbe(1, "regression", "r2", solver="newton").fit(x, y, x, y)
    with pytest.raises(ValueError, match="use predict"):
        probe.predict_proba(x)


# --- bootstrap, sidecar, leaderboard ---------------------------------------------------------------------------------


def test_bootstrap_and_paired_test_take_regression_predictions() -> None:
    rng = np.random.default_rng(7)
    y = rng.normal(60, 10, 200)
    good, bad = y + rng.normal(0, 2, 200), y + rng.normal(0, 6, 200)
    rows = np.arange(200)
    for metric in ("r2", "mae"):
        flat = bootstrap_ci(y, [(rows, good)], metric, "regression", n_boot=200)
        column = bootstrap_ci(y, [(rows, good[:, None])], metric, "regression", n_boot=200)
        assert flat == column and flat["low"] < M.compute([metric], y, good, "regression")[metric] < flat["high"]
    diff = paired_differences(y, [[(rows, good)], [(rows, bad)]], "mae", "regression", n_boot=200)[1]
    assert diff["significant"] and diff["difference"] < 0 and diff["high"] < 0  # a lower error: a negative gap


def _regression_record(results: Path, enc: str, y: np.ndarray, pred: np.ndarray, metric: str) -> None:
    value = M.compute([metric], y, pred, "regression")[metric]
    rec = record(enc, "t", value, 0.0, metric=metric, seeds=1)
    rec["created"] = "2026-12-02T06:00:00+00:00"
    rec["task"].update(label_type="regression", dataset_sha256="d" * 64, spec_sha256="s" * 64)
    rec["runs"] = [{**rec["runs"][0], "n": {"test": len(y)}}]
    write(results, rec)
    write_predictions(results / enc / "t.linear.json", rec, [(np.arange(len(y)), pred)], y)


def test_sidecar_round_trip_and_the_leaderboard_best_is_the_lowest_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(60, 10, 300)
    preds = {"a": y + rng.normal(0, 6, 300), "b": y + rng.normal(0, 1, 300)}
    preds["c"] = preds["b"] + np.where(np.arange(300) < 3, 1.0, 0.0)  # b but 3 clips 1 semitone off: within noise
    for enc, pred in preds.items():
        _regression_record(tmp_path, enc, y, pred, "mae")
    path = tmp_path / "b" / "t.linear.json"
    stored = load_predictions(path, json.loads(path.read_text()))
    [(rows, scores)] = stored.runs
    assert scores.shape == (300, 1) and scores.dtype == np.float32 and np.array_equal(stored.labels()[rows], y)
    assert M.mae(y, scores) == pytest.approx(M.mae(y, preds["b"]), rel=1e-6)  # float32 storage
    df = collect(tmp_path)
    df = df.assign(vs_best=vs_best(df, tmp_path))
    assert dict(zip(df.encoder, df.vs_best, strict=True)) == {"a": "significant", "b": "best", "c": "not significant"}
    md = render_markdown(df, [SuiteSpec("s", "", ["t"])])
    assert "MAE (↓) are lower-is-better" in md
    rows_md = [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| ")]
    assert rows_md[0] == ["encoder", "t v1<br>mae ↓", "average"]
    cells = {r[0]: r[1:] for r in rows_md[1:]}
    assert cells["b"] == [f"**{M.mae(y, preds['b']):.4g}**", "—"]  # as is, not ×100; no suite average
    assert cells["c"] == [f"{M.mae(y, preds['c']):.4g} ≈", "—"]
