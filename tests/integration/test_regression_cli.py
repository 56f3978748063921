"""A regression task through `evalbench run` and `evalbench leaderboard` on the tiny synthetic data."""

from __future__ import annotations

import json

import numpy as np

from evalbench import metrics as M
from evalbench.cli import main
from evalbench.results.store import load_predictions
from tests.conftest import Env


def test_regression_run_writes_four_metrics_a_ci_and_a_leaderboard(env: Env) -> None:
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "synth_pitch_reg", "--seeds", "2")) == 0
    path = env.results / "logmel" / "synth_pitch_reg.linear.json"
    rec = json.loads(path.read_text())
    assert rec["task"]["label_type"] == "regression" and rec["task"]["classes"] == []
    assert rec["task"]["primary_metric"] == "r2" and rec["probe"]["config"]["solver"] == "newton"
    test = rec["scores"]["test"]
    assert set(test) == {"r2", "spearman", "mae", "rmse"}
    assert 0.0 < test["mae"]["mean"] <= test["rmse"]["mean"]  # in semitones; MAE never exceeds RMSE
    assert test["r2"]["mean"] <= 1.0 and -1.0 <= test["spearman"]["mean"] <= 1.0  # 72 training clips: little skill
    ci = test["r2"]["ci95"]
    assert ci["low"] < test["r2"]["mean"] < ci["high"] and ci["n_boot"] == 1000
    assert all(r["n"] == {"train": 72, "valid": 24, "test": 24} for r in rec["runs"])
    assert all(r["chosen"]["converged"] and r["chosen"]["l2"] > 0 for r in rec["runs"])

    predictions = load_predictions(path, rec)  # the sidecar: (n, 1) predictions, float targets
    rows, scores = predictions.runs[0]
    y = predictions.labels()[rows]
    assert scores.shape == (24, 1) and y.dtype == np.float64 and 35.0 < y.min() < y.max() < 84.0
    assert abs(M.mae(y, scores) - rec["runs"][0]["test"]["mae"]) < 1e-4  # float32 storage of ~60 semitones

    assert main(["leaderboard", "--results-dir", str(env.results), "--tasks-dir", str(env.tasks), "--ci"]) == 0
    board = (env.results / "leaderboard.md").read_text()
    assert "synth_pitch_reg v1<br>r2" in board and "| logmel" in board
    assert f"{100 * test['r2']['mean']:.1f} [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]" in board
