"""ESC-50 and ESC-10 builders on a miniature replica of the official layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.splits import rotations
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, lenient, run_logmel, sparse
from tests.data.replicas.esc50 import CLASSES, ESC10, write_esc50


@pytest.fixture(scope="module")
def esc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A full replica (50 classes x 5 folds x 1 recording x 2 takes) prepared as esc50 and esc10."""
    src = write_esc50(tmp_path_factory.mktemp("esc_src"))
    data = tmp_path_factory.mktemp("esc_data")
    for name in ("esc50", "esc10"):
        _, built = prepare(load_task(name, TASKS), data, src)
        assert built
    return src, data


def test_esc50_folds_classes_and_groups(esc: tuple[Path, Path]) -> None:
    src, data = esc
    task = load_task("esc50", TASKS)
    td = open_task_data(task, data)
    assert td.n == 500 and td.classes == CLASSES
    assert td.dataset.audio_root == src.resolve()
    assert td.dataset.info["sample_rate"] == 44100 and td.dataset.info["classes"] == CLASSES
    assert td.dataset.info["counts"] == {f"fold{k}": 100 for k in range(1, 6)}
    meta = td.dataset.metadata
    row = meta[meta["file_name"] == "audio/3-130300-B-30.wav"].iloc[0]
    assert (row["label"], row["fold"], row["group"], row["take"]) == ("door_wood_knock", 3, "130300", "B")
    assert td.y[td.files.index("audio/3-130300-B-30.wav")] == 30
    # Takes of one recording share a fold; the holdout keeps them on one side of train/valid.
    assert (meta.groupby("group")["fold"].nunique() == 1).all()
    assert td.dataset.info["n_groups"] == 250 and td.dataset.info["groups_across_folds"] == 0
    for rot in rotations(td, seed=42):
        assert not set(td.groups[rot.train]) & set(td.groups[rot.valid])
        assert set(td.fold[rot.test]) == {rot.fold} and len(rot.test) == 100
        assert 0 < len(rot.valid) < len(rot.train)


def test_esc10_subset_is_reindexed_from_sorted_names(esc: tuple[Path, Path]) -> None:
    _, data = esc
    td = open_task_data(load_task("esc10", TASKS), data)
    assert td.classes == sorted(ESC10) and td.n == 100
    assert td.dataset.info["counts"] == {f"fold{k}": 20 for k in range(1, 6)}
    labels = dict(zip(td.dataset.metadata["label"], td.y, strict=True))
    assert labels["dog"] == 4 and labels["chainsaw"] == 0 and labels["sneezing"] == 9
    assert set(td.dataset.metadata["target"].astype(int)) == {CLASSES.index(c) for c in ESC10}


def test_prepare_is_idempotent_and_notices_changes(tmp_path: Path) -> None:
    src = write_esc50(tmp_path / "src", targets=[0, 1, 2], takes=1)
    task = load_task("esc50", TASKS)
    assert prepare(task, tmp_path / "data", src)[1]
    assert not prepare(task, tmp_path / "data", src)[1]
    assert not prepare(task, tmp_path / "data", src.parent)[1]  # the parent of ESC-50-master works too
    (src / "audio" / "1-100100-A-0.wav").unlink()
    csv = src / "meta" / "esc50.csv"
    csv.write_text("\n".join(line for line in csv.read_text().splitlines() if "1-100100-A-0" not in line) + "\n")
    dataset, built = prepare(task, tmp_path / "data", src)
    assert built and len(dataset.metadata) == 14


def test_verify_clean_then_names_a_corrupt_file(tmp_path: Path) -> None:
    src = write_esc50(tmp_path / "src", targets=[0, 5], takes=1)
    task = lenient(load_task("esc50", TASKS))
    prepare(task, tmp_path / "data", src)
    report = verify_task(task, tmp_path / "data")
    assert report.ok and report.n_files == 10 and report.excluded == []
    bad = src / "audio" / "2-105200-A-5.wav"
    bad.write_bytes(bad.read_bytes()[:100])
    report = verify_task(task, tmp_path / "data")
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [("2-105200-A-5.wav", "truncated")]
    # The real spec's 4.9-5.1 s bounds flag the replica's 0.25 s clips.
    assert {p.kind for p in verify_task(sparse(load_task("esc50", TASKS)), tmp_path / "data").problems} >= {"too_short"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: (s / "meta" / "esc50.csv").unlink(), "meta/esc50.csv: not found"),
        (lambda s: _edit_csv(s, lambda t: t.drop(columns=["src_file"])), "missing column(s) ['src_file']"),
        (lambda s: (s / "audio" / "4-100400-A-0.wav").unlink(), "4-100400-A-0.wav: listed in esc50.csv but missing"),
        (lambda s: _edit_csv(s, lambda t: t.assign(fold=t["fold"].where(t.index != 3, "x"))), "row 5: column 'fold'"),
        (lambda s: _edit_csv(s, lambda t: t.assign(fold=t["fold"].where(t.index != 0, "6"))), "fold' is 6, outside"),
        (lambda s: _edit_csv(s, lambda t: t.assign(category=t["category"].replace("pig", "hog"))), "target 2 is 'hog'"),
        (lambda s: _edit_csv(s, lambda t: t.assign(esc10="yes")), "column 'esc10' holds 'yes'"),
        (lambda s: _edit_csv(s, lambda t: t.assign(target=t["target"].replace("1", "7"))), "does not read {fold}"),
    ],
)
def test_malformed_layout_gives_one_line_data_error(tmp_path: Path, damage, message: str) -> None:
    src = write_esc50(tmp_path / "src", targets=[0, 1, 2], takes=1)
    damage(src)
    with pytest.raises(DataError) as err:
        prepare(load_task("esc50", TASKS), tmp_path / "data", src)
    assert message in str(err.value) and "\n" not in str(err.value)


def _edit_csv(src: Path, edit) -> None:
    path = src / "meta" / "esc50.csv"
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


def test_source_and_spec_errors(tmp_path: Path) -> None:
    task = load_task("esc50", TASKS)
    with pytest.raises(DataError, match="needs --source DIR"):
        prepare(task, tmp_path / "data")
    with pytest.raises(DataError, match=r"meta/esc50\.csv: not found; point --source at ESC-50-master"):
        prepare(task, tmp_path / "data", tmp_path)
    src = write_esc50(tmp_path / "src", targets=[0, 1], takes=1)
    swapped = dataclasses.replace(
        task, labels=dataclasses.replace(task.labels, classes=["rooster", "dog", *CLASSES[2:]])
    )
    with pytest.raises(DataError, match=r"target 0 is 'dog' but .* labels.classes\[0\] is 'rooster'"):
        prepare(swapped, tmp_path / "data", src)
    esc10 = load_task("esc10", TASKS)
    unsorted = dataclasses.replace(esc10, labels=dataclasses.replace(esc10.labels, classes=sorted(ESC10)[::-1]))
    with pytest.raises(DataError, match="must be sorted"):
        prepare(unsorted, tmp_path / "data", src)


def test_end_to_end_logmel(esc: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = esc
    for name, n_classes in (("esc50", 50), ("esc10", 10)):
        record = run_logmel(name, data, tmp_path / name)
        assert len(record["runs"]) == 5 and {r["fold"] for r in record["runs"]} == {1, 2, 3, 4, 5}
        assert len(record["task"]["classes"]) == n_classes
        accuracy = record["scores"]["test"]["accuracy"]["mean"]
        assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
