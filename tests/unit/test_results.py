"""Run records: schema checks; leaderboard generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalbench.errors import ResultsError
from evalbench.results.schema import load_record
from evalbench.results.tables import collect, render_markdown
from evalbench.specs.task import SuiteSpec


def record(
    encoder: str, task: str, mean: float, std: float, version: int = 1, metric: str = "accuracy", seeds: int = 3
) -> dict:
    score = {"mean": mean, "std": std}
    run = {"fold": None, "n": {"test": 10}, "test": {metric: mean}, "valid": {metric: mean}}
    return {
        "schema_version": 1,
        "encoder": {"name": encoder, "embedding_dim": 4},
        "task": {"name": task, "version": version, "primary_metric": metric, "metrics": [metric]},
        "probe": {"protocol": "evalbench-linear-v1"},
        "seeds": list(range(42, 42 + seeds)),
        "scores": {"test": {metric: score}, "valid": {metric: score}},
        "runs": [run] * seeds,
    }


def write(root: Path, rec: dict) -> None:
    path = root / rec["encoder"]["name"] / f"{rec['task']['name']}.linear.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))


def test_leaderboard_pivots_and_averages(tmp_path: Path) -> None:
    write(tmp_path, record("a", "t1", 0.50, 0.01))
    write(tmp_path, record("a", "t2", 0.70, 0.02, metric="map"))
    write(tmp_path, record("b", "t1", 0.90, 0.03))
    md = render_markdown(collect(tmp_path), [SuiteSpec("s", "", ["t1", "t2"])])
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in md.splitlines() if line.startswith("| ")]
    assert rows[0] == ["encoder", "t1 v1<br>accuracy", "t2 v1<br>map", "average"]
    assert rows[1] == ["a", "50.0 ± 1.0", "70.0 ± 2.0", "60.0"]  # complete rows rank first
    assert rows[2] == ["b", "90.0 ± 3.0", "—", "—"]  # no record for t2: no average


def test_undefined_metric_is_shown_as_such(tmp_path: Path) -> None:
    rec = record("a", "t1", 0.5, 0.0)
    rec["scores"]["test"]["accuracy"] = {"mean": None, "std": None}
    rec["runs"] = [{**rec["runs"][0], "test": {"accuracy": None}}] * 3
    write(tmp_path, rec)
    md = render_markdown(collect(tmp_path), [SuiteSpec("s", "", ["t1"])])
    assert [c.strip() for c in md.splitlines()[-1].split("|")[1:-1]] == ["a", "undefined", "—"]


def test_task_versions_get_separate_columns(tmp_path: Path) -> None:
    write(tmp_path, record("a", "t1", 0.5, 0.0, version=1))
    write(tmp_path, record("b", "t1", 0.6, 0.0, version=2))
    md = render_markdown(collect(tmp_path))
    assert "t1 v1<br>accuracy" in md and "t1 v2<br>accuracy" in md


def test_schema_errors_are_actionable(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({**record("a", "t", 0.5, 0.0), "schema_version": 99}))
    with pytest.raises(ResultsError, match="newer than this evalbench"):
        load_record(path)
    path.write_text("{not json")
    with pytest.raises(ResultsError, match="not a readable JSON run record"):
        load_record(path)
    rec = record("a", "t", 0.5, 0.0)
    del rec["runs"]
    path.write_text(json.dumps(rec))
    with pytest.raises(ResultsError, match=r"missing key\(s\) \['runs'\]"):
        load_record(path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: r["scores"]["test"]["accuracy"].update(mean=float("nan")),
        lambda r: r["scores"]["test"]["accuracy"].update(std=float("inf")),
        lambda r: r["scores"]["test"]["accuracy"].update(mean=1.7),
        lambda r: r["runs"].__setitem__(1, {**r["runs"][1], "test": {"accuracy": float("nan")}}),
        lambda r: r["scores"]["test"].pop("accuracy"),
    ],
    ids=["nan-mean", "inf-std", "out-of-range", "nan-run", "missing-metric"],
)
def test_leaderboard_refuses_records_with_non_finite_or_missing_scores(tmp_path: Path, damage) -> None:
    rec = record("a", "t1", 0.5, 0.01)
    damage(rec)
    write(tmp_path, rec)  # json.dumps writes bare NaN / Infinity, as the foundation's records did
    with pytest.raises(ResultsError, match=r"a/t1\.linear\.json"):
        collect(tmp_path)


def test_write_record_never_writes_a_non_finite_score(tmp_path: Path) -> None:
    from evalbench.results.store import write_record

    rec = record("a", "t1", 0.5, 0.01)
    rec["scores"]["test"]["accuracy"]["mean"] = float("nan")
    path = tmp_path / "a" / "t1.linear.json"
    with pytest.raises(ResultsError, match="not a finite number"):
        write_record(path, rec)
    assert not path.exists()
