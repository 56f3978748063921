"""End to end: `evalbench run` writes predictions sidecars, `evalbench leaderboard --significance` marks the cells."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import pytest

from evalbench import metrics as M
from evalbench.cli import main
from evalbench.results.store import iter_records, load_predictions, predictions_path
from evalbench.uncertainty import paired_bootstrap
from tests.conftest import ENCODERS, Env


def test_run_writes_sidecars_and_the_leaderboard_marks_ties(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    encoders = tmp_path / "encoders"
    encoders.mkdir()
    for name in ("logmel", "randproj"):
        shutil.copy(ENCODERS / f"{name}.yaml", encoders / f"{name}.yaml")
    twin = (ENCODERS / "logmel.yaml").read_text().replace("name: logmel", "name: logmel-twin")
    (encoders / "logmel-twin.yaml").write_text(twin)  # the same encoder under another name: identical predictions
    env = dataclasses.replace(env, encoders=encoders)
    args = ("--encoder", "logmel,logmel-twin,randproj", "--tasks", "synth_pitch,synth_timbre", "--seeds", "2")
    assert main(env.cli("run", *args)) == 0

    records = iter_records(env.results)
    assert len(records) == 6
    by_name = {}
    for path, rec in records:
        predictions = load_predictions(path, rec)
        assert predictions is not None and predictions_path(path).is_file()
        assert len(predictions.runs) == len(rec["runs"])
        y = predictions.labels()
        for (rows, scores), run in zip(predictions.runs, rec["runs"], strict=True):  # float32 keeps the metric
            assert M.accuracy(y[rows], scores) == pytest.approx(run["test"]["accuracy"], abs=1e-12)
        by_name[rec["encoder"]["name"], rec["task"]["name"]] = (rec, predictions)

    leaderboard = ["leaderboard", "--results-dir", str(env.results), "--tasks-dir", str(env.tasks)]
    assert main([*leaderboard, "--significance"]) == 0
    md = (env.results / "leaderboard.md").read_text()
    assert "**Bold**: the best mean of its column; ≈: not significantly different from it" in md
    assert "not tested" not in md  # every record has its sidecar
    cells = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| encoder"):
            name, *row = (c.strip() for c in line.split("|")[1:-1])
            cells[name] = row
    with (env.results / "leaderboard.csv").open(newline="") as fh:
        status = {(r["encoder"], r["task"]): r["vs_best"] for r in csv.DictReader(fh)}
    for column, task in enumerate(("synth_pitch", "synth_timbre")):  # the suite's first two columns
        # A tie goes to the first name: logmel is the best, its twin differs from it by exactly 0.
        assert status["logmel", task] == "best" and status["logmel-twin", task] == "not significant"
        assert cells["logmel"][column].startswith("**") and cells["logmel-twin"][column].endswith(" ≈")
        best, other = by_name["logmel", task][1], by_name["randproj", task][1]
        expected = paired_bootstrap(best.labels(), best.runs, other.runs, "accuracy", "single")
        assert expected is not None and expected["difference"] > 0
        assert status["randproj", task] == ("significant" if expected["significant"] else "not significant")
        assert cells["randproj"][column].endswith(" ≈") != expected["significant"]
