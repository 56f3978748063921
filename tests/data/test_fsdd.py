"""FSDD builder on a miniature release: digit labels, index-based split (not speaker-disjoint), release check."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, lenient, run_logmel, with_options, write_audio
from tests.data.replicas.fsdd import INDICES, SPEAKERS, write_fsdd


@pytest.fixture(scope="module")
def fsdd(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A replica with 3 speakers x 10 digits x 8 indices (0, 4, 5, 9, 10, 11, 30, 49), prepared."""
    src = write_fsdd(tmp_path_factory.mktemp("fsdd_src"))
    data = tmp_path_factory.mktemp("fsdd_data")
    assert prepare(load_task("fsdd", TASKS), data, src)[1]
    return src, data


def test_index_rule_labels_and_speakers(fsdd: tuple[Path, Path]) -> None:
    src, data = fsdd
    td = open_task_data(load_task("fsdd", TASKS), data)
    info = td.dataset.info
    assert td.n == 240 and td.classes == [str(d) for d in range(10)] and info["sample_rate"] == 8000
    assert td.dataset.audio_root == src.resolve()
    assert info["counts"] == {"train": 120, "valid": 60, "test": 60}
    assert info["speakers"] == sorted(SPEAKERS) and info["n_speakers"] == 3 and info["n_files"] == 240
    assert info["release"] == "v1.0.10"
    assert info["release_check"] == {"speakers": {"pinned": 6, "found": 3}, "files": {"pinned": 3000, "found": 240}}
    meta = td.dataset.metadata
    expected = {0: "test", 4: "test", 5: "valid", 9: "valid", 10: "train", 11: "train", 30: "train", 49: "train"}
    assert set(meta["index"].astype(int)) == set(INDICES)
    assert all(expected[int(i)] == s for i, s in zip(meta["index"], meta["split"], strict=True))
    row = meta[meta["file_name"] == "recordings/7_lucas_9.wav"].iloc[0]
    assert (row["label"], row["split"], row["group"], row["speaker"]) == ("7", "valid", "lucas", "lucas")
    # Not speaker-disjoint by design: every speaker says every digit in every split.
    for split in ("train", "valid", "test"):
        part = meta[meta["split"] == split]
        assert set(part["speaker"]) == set(SPEAKERS) and set(part["label"]) == set(td.classes)


def test_prepare_is_idempotent_and_records_matching_release(fsdd: tuple[Path, Path], tmp_path: Path) -> None:
    src, data = fsdd
    task = load_task("fsdd", TASKS)
    assert not prepare(task, data, src)[1]
    matching = with_options(task, speakers=3, files=240)
    dataset, built = prepare(matching, tmp_path, src)
    assert built and dataset.info["release_check"] == "matches"


def test_verify_clean_then_names_a_corrupt_file(tmp_path: Path) -> None:
    src = write_fsdd(tmp_path / "src", speakers=("theo",), indices=(0, 5, 10))
    task = lenient(load_task("fsdd", TASKS))
    prepare(task, tmp_path / "data", src)
    report = verify_task(task, tmp_path / "data")
    assert report.ok and report.n_files == 30
    (src / "recordings" / "3_theo_10.wav").write_bytes(b"")
    report = verify_task(task, tmp_path / "data")
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [("3_theo_10.wav", "empty")]


def test_malformed_layout_gives_one_line_data_error(tmp_path: Path) -> None:
    task = load_task("fsdd", TASKS)
    with pytest.raises(DataError, match="needs --source DIR pointing at the extracted FSDD release"):
        prepare(task, tmp_path / "data")
    src = write_fsdd(tmp_path / "src", speakers=("theo",), indices=(0, 5, 10), seconds=0.05)
    with pytest.raises(DataError, match="recordings: not found; point --source at"):
        prepare(task, tmp_path / "data", src / "recordings")
    write_audio(src / "recordings" / "7-theo-3.wav", 0.05, 8000)
    with pytest.raises(DataError) as err:
        prepare(task, tmp_path / "data", src)
    assert "7-theo-3.wav: not named recordings/{digit}_{speaker}_{index}.wav" in str(err.value)
    assert "\n" not in str(err.value)
    (src / "recordings" / "7-theo-3.wav").unlink()
    with pytest.raises(SpecError, match="valid_max_index: must exceed test_max_index"):
        prepare(with_options(task, valid_max_index=4), tmp_path / "data", src)
    with pytest.raises(SpecError, match=r"dataset\.options\.speaker: unknown key; did you mean 'speakers'"):
        prepare(with_options(task, speaker=6), tmp_path / "data", src)


def test_end_to_end_logmel(fsdd: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = fsdd
    record = run_logmel("fsdd", data, tmp_path)
    assert len(record["runs"]) == 1 and record["runs"][0]["n"] == {"train": 120, "valid": 60, "test": 60}
    assert record["task"]["classes"] == [str(d) for d in range(10)]
    accuracy = record["scores"]["test"]["accuracy"]["mean"]
    assert isinstance(accuracy, float) and 0.0 <= accuracy <= 1.0
