"""VoxCeleb1 identification builder on a miniature replica of the official layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel
from tests.data.replicas.voxceleb import speaker, write_voxceleb1, youtube_id

SPEAKERS = 4


@pytest.fixture(scope="module")
def vc1(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A VoxCeleb1 replica and a data root where vc1 is prepared from it."""
    base = tmp_path_factory.mktemp("vc1")
    source = write_voxceleb1(base / "source", speakers=SPEAKERS)
    prepare(load_task("vc1", TASKS), base / "data", source)
    return source, base / "data"


def one_line_error(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_official_split_labels_and_vocabulary(vc1: tuple[Path, Path]) -> None:
    source, data = vc1
    task = load_task("vc1", TASKS)
    dataset, built = prepare(task, data, source)
    assert not built  # idempotent
    meta = dataset.metadata
    lines = dict(reversed(line.split()) for line in (source / "iden_split.txt").read_text().splitlines())
    assert len(meta) == len(lines) == SPEAKERS * 6
    code = {"train": "1", "valid": "2", "test": "3"}
    assert all(lines[f[len("wav/") :]] == code[s] for f, s in zip(meta["file_name"], meta["split"], strict=True))
    assert dataset.info["counts"] == {"train": 16, "valid": 4, "test": 4}
    # Label = first path component; vocabulary published by the builder, sorted.
    expected = [speaker(s) for s in range(SPEAKERS)]
    assert dataset.info["classes"] == expected and dataset.info["n_speakers"] == SPEAKERS
    assert (meta["label"] == meta["file_name"].str.split("/").str[1]).all()
    row = meta[meta["file_name"] == f"wav/{speaker(1)}/{youtube_id(5)}/00002.wav"].iloc[0]
    assert (row["label"], row["group"], row["split"]) == (speaker(1), f"{speaker(1)}/{youtube_id(5)}", "test")
    assert dataset.info["n_videos"] == SPEAKERS * 3
    assert dataset.info["unlisted_files"] == 1 and dataset.info["speakers_missing_from_train"] == 0
    data_view = open_task_data(task, data)
    assert data_view.classes == expected and data_view.y.max() == SPEAKERS - 1


def test_verify_is_clean_then_names_a_corrupted_file(vc1: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = vc1
    task = load_task("vc1", TASKS)
    report = verify_task(task, data)
    assert report.ok and report.n_files == SPEAKERS * 6
    copy = shutil.copytree(source, tmp_path / "copy")
    prepare(task, tmp_path / "data", copy)
    bad = copy / "wav" / speaker(2) / youtube_id(7) / "00002.wav"
    bad.write_bytes(bad.read_bytes()[:2000])  # truncated download
    problems = verify_task(task, tmp_path / "data").problems
    assert [(Path(p.path), p.kind) for p in problems] == [(bad.resolve(), "truncated")]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda r: (r / "iden_split.txt").unlink(), "iden_split.txt: not found"),
        (lambda r: shutil.rmtree(r / "wav"), "wav: not found; unzip the VoxCeleb1 dev and test audio"),
        (
            lambda r: (r / "iden_split.txt").write_text("1 id10001/abc/00001.wav\n4 id10001/abc/00002.wav\n"),
            "iden_split.txt: line 2: '4 id10001/abc/00002.wav' is not '<1|2|3> <speaker_id>/<youtube_id>/<nnnnn>.wav'",
        ),
        (
            lambda r: (r / "wav" / speaker(3) / youtube_id(10) / "00001.wav").unlink(),
            f"{speaker(3)}/{youtube_id(10)}/00001.wav: listed in",
        ),
    ],
    ids=["no-split-file", "no-wav", "bad-line", "listed-file-absent"],
)
def test_malformed_layouts_raise_one_line_errors(tmp_path: Path, damage, expected: str) -> None:
    source = write_voxceleb1(tmp_path / "src", speakers=SPEAKERS, per_video=1)
    damage(source)
    with pytest.raises(DataError) as exc:
        prepare(load_task("vc1", TASKS), tmp_path / "data", source)
    assert expected in one_line_error(exc)


def test_end_to_end_logmel_run(vc1: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = vc1
    record = run_logmel("vc1", data, tmp_path)
    assert 0.0 <= record["scores"]["test"]["accuracy"]["mean"] <= 1.0
    assert record["task"]["classes"] == [speaker(s) for s in range(SPEAKERS)]
