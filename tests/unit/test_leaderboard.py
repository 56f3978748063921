"""Leaderboard tables per declared suite, seed counts, --ci intervals and per-suite plots."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from evalbench.cli import main
from evalbench.results.store import write_predictions
from evalbench.results.tables import write_leaderboard
from tests.unit.test_results import record, write

PNG = b"\x89PNG\r\n\x1a\n"


def suites(root: Path, **tasks: list[str]) -> Path:
    """A tasks folder whose suites/<name>.yaml list the given tasks."""
    (root / "suites").mkdir(parents=True)
    for name, names in tasks.items():
        (root / "suites" / f"{name}.yaml").write_text(f"name: {name}\ndescription: test\ntasks: [{', '.join(names)}]\n")
    return root


def tables(md: str) -> dict[str, list[list[str]]]:
    """Markdown tables by their ### heading (without the seed count), as rows of stripped cells."""
    out: dict[str, list[list[str]]] = {}
    title = ""
    for line in md.splitlines():
        if line.startswith("### "):
            title = line[4:].rsplit(" (", 1)[0]
            out[title] = []
        elif line.startswith("| "):
            out[title].append([c.strip() for c in line.split("|")[1:-1]])
    return out


@pytest.fixture
def board(tmp_path: Path) -> tuple[Path, Path]:
    """Suite s = [t1, t2]; task x is in no suite and scores far from t1/t2 for every encoder."""
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1", "t2"])
    for enc, t1, t2, x in (("a", 0.50, 0.70, 0.05), ("b", 0.90, 0.80, 0.99)):
        write(results, record(enc, "t1", t1, 0.01))
        write(results, record(enc, "t2", t2, 0.02, metric="map"))
        write(results, record(enc, "x", x, 0.03))
    write(results, record("c", "t1", 0.99, 0.01))  # no t2: no suite average, however good t1 is
    return results, tasks


def test_suite_average_is_over_exactly_the_suite_tasks(board: tuple[Path, Path]) -> None:
    results, tasks = board
    write_leaderboard(results, tasks)
    parsed = tables((results / "leaderboard.md").read_text())
    assert list(parsed) == ["Suite `s`", "other tasks"]
    head, *rows = parsed["Suite `s`"]
    assert head == ["encoder", "t1 v1<br>accuracy", "t2 v1<br>map", "average"]
    average = {r[0]: r[-1] for r in rows}
    assert float(average["b"]) == pytest.approx(85.0, abs=0.1)  # (90 + 80) / 2; with x it would be 89.7
    assert float(average["a"]) == pytest.approx(60.0, abs=0.1)  # (50 + 70) / 2; with x it would be 41.7
    assert [r[0] for r in rows] == ["b", "a", "c"]  # sorted by suite average, incomplete rows last
    assert rows[2] == ["c", "99.0 ± 1.0", "—", "—"]
    other = parsed["other tasks"]
    assert other[0] == ["encoder", "x v1<br>accuracy"]  # no average column
    assert other[1:] == [["a", "5.0 ± 3.0"], ["b", "99.0 ± 3.0"]]


def test_task_in_two_suites_and_csv_suites_column(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1", "t2"], u=["t2", "t3"])
    write(results, record("a", "t1", 0.4, 0.0))
    write(results, record("a", "t2", 0.6, 0.0))
    write(results, record("a", "x", 0.6, 0.0))
    write_leaderboard(results, tasks)
    parsed = tables((results / "leaderboard.md").read_text())
    assert parsed["Suite `s`"][1] == ["a", "40.0 ± 0.0", "60.0 ± 0.0", "50.0"]
    assert parsed["Suite `u`"][0] == ["encoder", "t2 v1<br>accuracy", "t3", "average"]  # t3 has no record at all
    assert parsed["Suite `u`"][1] == ["a", "60.0 ± 0.0", "—", "—"]
    with (results / "leaderboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["task"]: r["suites"] for r in rows} == {"t1": "s", "t2": "s,u", "x": ""}
    assert len(rows) == 3 and {"ci95_low", "ci95_high", "n_seeds"} <= set(rows[0])


def test_one_seed_has_no_plus_minus_and_headings_state_seeds(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1", "t2"])
    write(results, record("a", "t1", 0.5, 0.0, seeds=1))
    write(results, record("a", "t2", 0.7, 0.0, seeds=1))
    write(results, record("b", "t1", 0.6, 0.02, seeds=5))
    write(results, record("b", "x", 0.6, 0.02, seeds=5))
    write_leaderboard(results, tasks)
    md = (results / "leaderboard.md").read_text()
    parsed = tables(md)
    assert parsed["Suite `s`"][1] == ["a", "50.0", "70.0", "60.0"]
    assert parsed["Suite `s`"][2] == ["b", "60.0 ± 2.0", "—", "—"]
    assert "### Suite `s` (1–5 seeds)" in md and "### other tasks (5 seeds)" in md
    assert "± 0.0" not in md


def test_older_task_version_leaves_the_suite_table(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1"])
    write(results, record("a", "t1", 0.5, 0.0, version=1))
    write(results, record("b", "t1", 0.6, 0.0, version=2))
    write_leaderboard(results, tasks)
    parsed = tables((results / "leaderboard.md").read_text())
    assert parsed["Suite `s`"] == [["encoder", "t1 v2<br>accuracy", "average"], ["b", "60.0 ± 0.0", "60.0"]]
    assert parsed["other tasks"] == [["encoder", "t1 v1<br>accuracy"], ["a", "50.0 ± 0.0"]]


def test_cli_ci_shows_the_bootstrap_interval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1"])
    rec = record("a", "t1", 0.5, 0.01)
    rec["scores"]["test"]["accuracy"]["ci95"] = {"low": 0.452, "high": 0.561, "level": 0.95}
    write(results, rec)
    rec = record("b", "t1", 0.6, 0.02)
    rec["scores"]["test"]["accuracy"]["ci95"] = None
    rec["contamination"] = {"test_clips": 10, "test_clips_seen_in_training": 3}
    write(results, rec)
    args = ["leaderboard", "--results-dir", str(results), "--tasks-dir", str(tasks)]
    assert main(args) == 0
    assert "[" not in (results / "leaderboard.md").read_text().split("### ")[1]
    assert main([*args, "--ci"]) == 0
    rows = tables((results / "leaderboard.md").read_text())["Suite `s`"]
    assert rows[1:] == [["b", "60.0 ± 2.0 †", "60.0"], ["a", "50.0 [45.2, 56.1]", "50.0"]]
    out = capsys.readouterr().out
    assert f"wrote {results / 'leaderboard.md'}" in out and f"wrote {results / 'leaderboard.png'}" in out


def _png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data.startswith(PNG)
    return struct.unpack(">I", data[16:20])[0]


def test_cli_plot_writes_one_png_per_suite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1", "t2"], u=["t3"])
    for i in range(10):
        write(results, record(f"encoder-{i}", "t1", 0.05 * i, 0.01))
        write(results, record(f"encoder-{i}", "t2", 0.5, 0.02, metric="map"))
    write(results, record("encoder-0", "t3", 0.5, 0.0, seeds=1))
    write(results, record("encoder-0", "x", 0.5, 0.0))  # in no suite: no plot of its own
    assert main(["leaderboard", "--results-dir", str(results), "--tasks-dir", str(tasks), "--plot"]) == 0
    out = capsys.readouterr().out
    pngs = sorted(p.name for p in results.glob("*.png"))
    assert pngs == ["leaderboard-s.png", "leaderboard-u.png", "leaderboard.png"]
    assert all(f"wrote {results / name}" in out for name in pngs)
    assert _png_width(results / "leaderboard-s.png") > _png_width(results / "leaderboard-u.png")  # grows with bars


def test_plot_names_carry_the_protocol_when_there_are_several(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1"])
    write(results, record("a", "t1", 0.5, 0.0))
    rec = record("a", "t1", 0.4, 0.0)
    rec["probe"]["protocol"] = "mlp v2"
    path = results / "a" / "t1.mlp.json"
    path.write_text(json.dumps(rec))
    written = write_leaderboard(results, tasks, plot=True)
    names = [p.name for p in written]
    assert names[3:] == ["leaderboard-evalbench-linear-v1-s.png", "leaderboard-mlp_v2-s.png"]
    assert all(p.read_bytes().startswith(PNG) for p in written[2:])


def _scored(results: Path, enc: str, task: str, y: np.ndarray, correct: np.ndarray, sidecar: bool = True) -> Path:
    """Write a one-seed record whose mean is the accuracy of one-hot predictions right where ``correct``.

    With ``sidecar``, its predictions sidecar too.  Returns the record's path.
    """
    rec = record(enc, task, float(correct.mean()), 0.0, seeds=1)
    rec["created"] = "2026-12-02T06:00:00+00:00"
    rec["task"].update(label_type="single", dataset_sha256="d" * 64, spec_sha256="s" * 64)
    rec["runs"] = [{**rec["runs"][0], "n": {"test": len(y)}}]
    write(results, rec)
    path = results / enc / f"{task}.linear.json"
    if sidecar:
        write_predictions(path, rec, [(np.arange(len(y)), np.eye(3)[np.where(correct, y, (y + 1) % 3)])], y)
    return path


@pytest.fixture
def contest(tmp_path: Path) -> tuple[Path, Path]:
    """Task t1 (suite s) on 300 clips: a best, b within noise of a, c far below, d and e not testable.

    Task x (no suite) has a single encoder: nothing to compare.
    """
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1"])
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    right = rng.random(300) < 0.9
    _scored(results, "a", "t1", y, right)
    _scored(results, "b", "t1", y, right & (np.arange(300) % 150 != 0))  # a's errors plus 2: not significant
    _scored(results, "c", "t1", y, rng.random(300) < 0.6)  # 60 % against 90 %: significant
    _scored(results, "d", "t1", y, rng.random(300) < 0.85, sidecar=False)  # no sidecar: not tested
    stale = _scored(results, "e", "t1", y, right & (np.arange(300) % 50 != 0))
    rec = json.loads(stale.read_text())
    rec["created"] = "2026-12-03T00:00:00+00:00"  # the record was rewritten, its sidecar was not
    stale.write_text(json.dumps(rec))
    _scored(results, "a", "x", y, right)
    return results, tasks


def test_significance_marks_the_best_and_the_cells_within_noise_of_it(
    contest: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    results, tasks = contest
    args = ["leaderboard", "--results-dir", str(results), "--tasks-dir", str(tasks)]
    assert main([*args, "--significance"]) == 0
    md = (results / "leaderboard.md").read_text()
    parsed = tables(md)
    cells = {row[0]: row[1] for row in parsed["Suite `s`"][1:]}
    mean = {
        e: json.loads((results / e / "t1.linear.json").read_text())["scores"]["test"]["accuracy"]["mean"] for e in cells
    }
    plain = {e: f"{100 * m:.1f}" for e, m in mean.items()}
    assert cells["a"] == f"**{plain['a']}**"  # the best
    assert cells["b"] == f"{plain['b']} ≈"  # 1 point below on the same clips: not significant
    assert cells["c"] == plain["c"]  # 60 % against 90 %: significantly below
    assert cells["d"] == plain["d"] and cells["e"] == plain["e"]  # not tested: unmarked
    assert parsed["other tasks"][1] == ["a", plain["a"]]  # alone in its column: nothing to mark
    legend = md.split("### Suite `s`")[1].split("###")[0]
    assert "paired bootstrap over the same test clips, 1,000 resamples" in legend
    assert "except 2 cells not tested (n/a" in legend
    assert "**Bold**" not in md.split("### other tasks")[1]  # no legend where nothing was compared
    with (results / "leaderboard.csv").open(newline="") as fh:
        status = {(r["encoder"], r["task"]): r["vs_best"] for r in csv.DictReader(fh)}
    assert status == {
        ("a", "t1"): "best",
        ("b", "t1"): "not significant",
        ("c", "t1"): "significant",
        ("d", "t1"): "n/a",
        ("e", "t1"): "n/a",
        ("a", "x"): "",
    }


def test_significance_is_off_by_default_and_keeps_the_ci_cells(contest: tuple[Path, Path]) -> None:
    results, tasks = contest
    args = ["leaderboard", "--results-dir", str(results), "--tasks-dir", str(tasks), "--ci"]
    assert main(args) == 0
    plain = (results / "leaderboard.md").read_text()
    assert "**" not in plain and "≈" not in plain
    with (results / "leaderboard.csv").open(newline="") as fh:
        assert "vs_best" not in next(csv.reader(fh))
    rec = json.loads((results / "a" / "t1.linear.json").read_text())
    rec["scores"]["test"]["accuracy"]["ci95"] = {"low": 0.85, "high": 0.93, "level": 0.95}
    (results / "a" / "t1.linear.json").write_text(json.dumps(rec))  # created unchanged: sidecar still valid
    assert main([*args, "--significance"]) == 0
    rows = {r[0]: r[1] for r in tables((results / "leaderboard.md").read_text())["Suite `s`"][1:]}
    assert rows["a"] == f"**{100 * rec['scores']['test']['accuracy']['mean']:.1f} [85.0, 93.0]**"


def test_records_of_another_dataset_spec_or_test_set_are_not_compared(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1"])
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    _scored(results, "a", "t1", y, rng.random(200) < 0.9)
    for enc, key in (("b", "dataset_sha256"), ("c", "spec_sha256")):
        path = _scored(results, enc, "t1", y, rng.random(200) < 0.5)
        rec = json.loads(path.read_text())
        rec["task"][key] = "0" * 64
        path.write_text(json.dumps(rec))
        scores = np.eye(3)[y]
        write_predictions(path, rec, [(np.arange(200), scores)], y)  # a valid sidecar of that other dataset
    _scored(results, "d", "t1", y, rng.random(200) < 0.5)
    _scored(results, "f", "t1", y[:100], rng.random(100) < 0.5)  # same dataset, other test clips
    write_leaderboard(results, tasks, significance=True)
    with (results / "leaderboard.csv").open(newline="") as fh:
        status = {r["encoder"]: r["vs_best"] for r in csv.DictReader(fh)}
    assert status == {"a": "best", "b": "n/a", "c": "n/a", "d": "significant", "f": "n/a"}
