"""UrbanSound8K builder on a miniature replica of the official layout (mixed rates, stereo, 24-bit)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.splits import rotations
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, lenient, run_logmel
from tests.data.replicas.us8k import CLASSES, RATES, fs_id, write_us8k


@pytest.fixture(scope="module")
def us8k(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A replica with 10 folds x 10 classes x 1 recording x 2 slices, prepared."""
    src = write_us8k(tmp_path_factory.mktemp("us8k_src"))
    data = tmp_path_factory.mktemp("us8k_data")
    assert prepare(load_task("us8k", TASKS), data, src)[1]
    return src, data


def test_official_folds_classes_groups_and_formats(us8k: tuple[Path, Path]) -> None:
    src, data = us8k
    td = open_task_data(load_task("us8k", TASKS), data)
    info = td.dataset.info
    assert td.n == 200 and td.classes == CLASSES and info["classes"] == CLASSES
    assert info["sample_rate"] is None and td.dataset.audio_root == src.resolve()
    assert info["counts"] == {f"fold{k}": 20 for k in range(1, 11)}
    assert info["sample_rates"] == {str(r): 34 if r in (44100, 48000) else 33 for r in RATES}
    assert info["channels"] == {"1": 199, "2": 1} and info["subtypes"] == {"PCM_16": 199, "PCM_24": 1}
    meta = td.dataset.metadata
    name = f"{fs_id(7, 3, 0)}-3-0-1.wav"
    row = meta[meta["file_name"] == f"audio/fold7/{name}"].iloc[0]
    assert (row["label"], row["fold"], row["group"], row["class_id"]) == ("dog_bark", 7, str(fs_id(7, 3, 0)), "3")
    # Folds are the published ones (fold k <-> audio/fold<k>), and every fsID sits in one fold.
    assert all(f.split("/")[1] == f"fold{k}" for f, k in zip(td.files, td.fold, strict=True))
    assert info["groups_across_folds"] == 0 and info["n_groups"] == 100
    for rot in rotations(td, seed=42):
        assert not set(td.groups[rot.train]) & set(td.groups[rot.valid])
        assert set(td.fold[rot.test]) == {rot.fold} and len(rot.test) == 20


def test_prepare_is_idempotent(us8k: tuple[Path, Path]) -> None:
    src, data = us8k
    task = load_task("us8k", TASKS)
    assert not prepare(task, data, src)[1]
    assert not prepare(task, data, src.parent)[1]


def test_verify_clean_then_names_a_corrupt_file(tmp_path: Path) -> None:
    src = write_us8k(tmp_path / "src", slices=1)
    task = lenient(load_task("us8k", TASKS))
    prepare(task, tmp_path / "data", src)
    report = verify_task(task, tmp_path / "data")
    assert report.ok and report.n_files == 100
    bad = src / "audio" / "fold4" / f"{fs_id(4, 9, 0)}-9-0-0.wav"
    bad.write_bytes(b"not audio at all")
    report = verify_task(task, tmp_path / "data")
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [(bad.name, "unreadable")]


def _edit_csv(src: Path, edit) -> None:
    path = src / "metadata" / "UrbanSound8K.csv"
    edit(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: (s / "metadata" / "UrbanSound8K.csv").unlink(), "metadata/UrbanSound8K.csv: not found"),
        (lambda s: _edit_csv(s, lambda t: t.drop(columns=["fsID"])), "missing column(s) ['fsID']"),
        (
            lambda s: (s / "audio" / "fold2" / f"{fs_id(2, 5, 0)}-5-0-0.wav").unlink(),
            f"fold2/{fs_id(2, 5, 0)}-5-0-0.wav: listed in UrbanSound8K.csv but missing",
        ),
        (lambda s: _edit_csv(s, lambda t: t.assign(fold=t["fold"].replace("10", "11"))), "'fold' is 11, outside"),
        (lambda s: _edit_csv(s, lambda t: t.assign(classID=t["classID"].replace("4", "x"))), "'classID' holds 'x'"),
        (lambda s: _edit_csv(s, lambda t: t.assign(fsID=t["fsID"].replace("11000", "1"))), "does not read {fsID}"),
        (
            lambda s: _edit_csv(s, lambda t: t.assign(**{"class": t["class"].replace("siren", "alarm")})),
            "classID 8 is 'alarm'",
        ),
        (lambda s: (s / "audio" / "fold1" / f"{fs_id(1, 0, 0)}-0-0-0.wav").write_bytes(b""), "unreadable audio header"),
    ],
)
def test_malformed_layout_gives_one_line_data_error(tmp_path: Path, damage, message: str) -> None:
    src = write_us8k(tmp_path / "src", slices=1, seconds=0.05)
    damage(src)
    with pytest.raises(DataError) as err:
        prepare(load_task("us8k", TASKS), tmp_path / "data", src)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_source_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs --source DIR pointing at UrbanSound8K"):
        prepare(load_task("us8k", TASKS), tmp_path / "data")
    with pytest.raises(DataError, match="not a folder"):
        prepare(load_task("us8k", TASKS), tmp_path / "data", tmp_path / "nowhere")


def test_end_to_end_logmel(us8k: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = us8k
    record = run_logmel("us8k", data, tmp_path)
    assert len(record["runs"]) == 10 and {r["fold"] for r in record["runs"]} == set(range(1, 11))
    assert record["task"]["classes"] == CLASSES and record["task"]["n_clips"] == 200
    accuracy = record["scores"]["test"]["accuracy"]["mean"]
    assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
