"""Leaderboard tables per declared suite, seed counts, --ci intervals and per-suite plots."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import pytest

from evalbench.cli import main
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
