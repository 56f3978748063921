"""Published numbers (results/published.yaml): validation, their own leaderboard sections, never in our averages."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from evalbench import paths
from evalbench.cli import main
from evalbench.errors import ResultsError
from evalbench.results.published import leaderboard_rows, load_published
from evalbench.results.tables import collect
from evalbench.specs.task import task_files
from tests.unit.test_leaderboard import suites, tables
from tests.unit.test_results import record, write

COMMITTED = paths.project_root() / "results" / "published.yaml"

HEAD = """unit: percent
protocols: {evar-linear: "EVAR linear (test)"}
models: {byola: "BYOL-A v2 (test)", m2d: "M2D (test)"}
entries:
"""
GOOD = HEAD + (
    "  - {model: byola, task: t1, metric: accuracy, score: 83.2, std: 0.6, n_runs: 3, protocol: evar-linear,\n"
    '     source: "S"}\n'
    '  - {model: m2d, task: t1, metric: accuracy, score: 91.3, protocol: evar-linear, source: "S"}\n'
    '  - {model: m2d, task: t2, metric: map, score: 72.51, protocol: evar-linear, source: "S", source_task: "T-2"}\n'
)


def test_committed_file_loads_and_names_known_tasks() -> None:
    df = load_published(COMMITTED)
    known = {p.stem for p in task_files(paths.project_root() / "tasks")}
    assert len(df) > 100 and df.protocol.isin(["evar-linear", "clmr-linear"]).all()
    assert (df.task.isin(known) | df.source_task.notna()).all(), df[~df.task.isin(known)].task.unique()
    assert ((df.score >= 0) & (df.score <= 100)).all() and df.model.str.endswith(" (published)").sum() == 0
    byola = df[(df.model == "byola") & (df.task == "esc50")].iloc[0]
    assert (byola.score, byola["std"], byola.n_runs) == (83.2, 0.6, 3)  # docs/protocol.md §6, first cell


def test_leaderboard_rows_have_collects_columns(tmp_path: Path) -> None:
    write(tmp_path, record("a", "t1", 0.5, 0.01))
    ours = collect(tmp_path)
    (tmp_path / "published.yaml").write_text(GOOD)
    rows = leaderboard_rows(load_published(tmp_path / "published.yaml"))
    assert set(ours.columns) <= set(rows.columns) and "source" in rows.columns
    assert rows.encoder.tolist() == ["byola (published)", "m2d (published)", "m2d (published)"]
    assert set(rows.protocol) == {"published: evar-linear"}
    assert rows["mean"].tolist() == [0.832, 0.913, 0.7251] and rows.n_seeds.tolist()[0] == 3


def test_with_published_is_a_separate_section_and_leaves_our_averages_alone(tmp_path: Path) -> None:
    results, tasks = tmp_path / "results", suites(tmp_path / "tasks", s=["t1", "t2"])
    write(results, record("byola", "t1", 0.50, 0.01))
    write(results, record("byola", "t2", 0.70, 0.02, metric="map"))
    args = ["leaderboard", "--results-dir", str(results), "--tasks-dir", str(tasks)]
    assert main(args) == 0
    plain = (results / "leaderboard.md").read_text()
    with (results / "leaderboard.csv").open(newline="") as fh:
        assert "source" not in next(csv.reader(fh))
    (results / "published.yaml").write_text(GOOD)
    assert main([*args, "--with-published"]) == 0
    md = (results / "leaderboard.md").read_text()

    ours, published = md.split("\n## Published numbers — protocol `evar-linear`: EVAR linear (test)\n")
    assert ours == plain  # our sections, suite average included, are byte-identical with and without
    assert tables(plain)["Suite `s`"][1] == ["byola", "50.0 ± 1.0", "70.0 ± 2.0", "60.0"]
    parsed = tables("### " + published.split("\n### ", 1)[1])
    assert parsed["Published `evar-linear`"] == [
        ["model", "t1<br>accuracy", "t2<br>map"],  # no average column
        ["byola (published)", "83.2 ± 0.6", "—"],
        ["m2d (published)", "91.3", "72.51"],  # no ± where the source gives no std; the source's digits kept
    ]
    assert "| average" not in published
    with (results / "leaderboard.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["source"] for r in rows] == ["", "", "S", "S", "S"]
    assert rows[2]["protocol"] == "published: evar-linear" and rows[2]["suites"] == ""
    assert {r["encoder"]: r["mean"] for r in rows if r["task"] == "t1"} == {
        "byola": "0.5",
        "byola (published)": "0.832",
        "m2d (published)": "0.913",
    }


def test_published_flag_points_elsewhere(tmp_path: Path) -> None:
    results, other = tmp_path / "results", tmp_path / "elsewhere.yaml"
    write(results, record("a", "t1", 0.5, 0.0))
    other.write_text(GOOD)
    assert main(["leaderboard", "--results-dir", str(results), "--published", str(other)]) == 0
    assert "## Published numbers — protocol `evar-linear`" in (results / "leaderboard.md").read_text()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{model: m2d, task: t1, metric: accuracy, protocol: evar-linear, source: S}", "score: missing"),
        ("{model: m2d, task: t1, metric: accuracy, score: 91.3%, protocol: evar-linear, source: S}", "is not a number"),
        ("{model: m2d, task: t1, metric: accuracy, score: 0.913, std: x, protocol: evar-linear, source: S}", "std: "),
        ("{model: m2d, task: t1, metric: acc, score: 91.3, protocol: evar-linear, source: S}", "source_metric"),
        ("{model: m2d, task: t1, metric: accuracy, score: 91.3, protocol: hear, source: S}", "'hear' is not a key"),
        (
            "{model: m2d, task: t1, metric: accuracy, score: 191.3, protocol: evar-linear, source: S}",
            "outside [0, 100]",
        ),
        ("{model: m2d, task: t1, metric: accuracy, scroe: 91.3, protocol: evar-linear, source: S}", "unknown field"),
        (
            "{model: byola, task: t1, metric: accuracy, score: 1, protocol: evar-linear, source: S}",
            "duplicates entries[0]",
        ),
    ],
)
def test_malformed_entry_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, entry: str, expected: str
) -> None:
    results = tmp_path / "results"
    write(results, record("a", "t1", 0.5, 0.0))
    bad = HEAD + '  - {model: byola, task: t1, metric: accuracy, score: 83.2, protocol: evar-linear, source: "S"}\n'
    (results / "published.yaml").write_text(bad + f"  - {entry}\n")
    assert main(["leaderboard", "--results-dir", str(results), "--with-published"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("evalbench: error: ") and expected in err
    assert f"{results / 'published.yaml'}: entries[1] (" in err
    assert not (results / "leaderboard.md").exists()  # nothing written on a bad file
    with pytest.raises(ResultsError, match=r"entries\[1\]"):
        load_published(results / "published.yaml")


def test_missing_default_file_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    write(results, record("a", "t1", 0.5, 0.0))
    assert main(["leaderboard", "--results-dir", str(results), "--with-published"]) == 2
    assert "published.yaml: file not found; pass --published FILE" in capsys.readouterr().err
