"""Speech Commands v0.01 / v0.02 builder on miniature replicas of the official layout."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from evalbench.data.datasets.speech_commands import REFERENCE_COUNTS, WORDS
from evalbench.data.prepare import prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel
from tests.data.replicas.speech_commands import clip_path, list_split, speaker_id, write_speech_commands

PER_WORD = 5


@pytest.fixture(scope="module")
def spc2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A v0.02 replica and a data root where spcv2 is prepared from it."""
    base = tmp_path_factory.mktemp("spc2")
    source = write_speech_commands(base / "source", version=2, per_word=PER_WORD)
    prepare(load_task("spcv2", TASKS), base / "data", source)
    return source, base / "data"


def one_line_error(exc: pytest.ExceptionInfo[DataError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_split_is_exactly_the_list_membership(spc2: tuple[Path, Path]) -> None:
    source, data = spc2
    task = load_task("spcv2", TASKS)
    dataset, built = prepare(task, data, source)
    assert not built  # idempotent: same source, same spec
    meta = dataset.metadata
    assert len(meta) == 35 * PER_WORD
    valid = set((source / "validation_list.txt").read_text().split())
    test = set((source / "testing_list.txt").read_text().split())
    assert set(meta.loc[meta["split"] == "valid", "file_name"]) == valid
    assert set(meta.loc[meta["split"] == "test", "file_name"]) == test
    assert dataset.info["counts"] == {"train": 35 * 3, "valid": 35, "test": 35}
    assert dataset.info["reference_counts"] == REFERENCE_COUNTS[2]
    # Labels are the word folders; _background_noise_, Junk and ._ files are not clips.
    assert sorted(set(meta["label"])) == WORDS[2] == task.labels.classes
    assert not meta["file_name"].str.contains("_background_noise_|Junk|/\\._").any()
    assert dataset.info["ignored_folders"] == ["Junk", "_background_noise_"]
    # Group is the speaker id; speakers cross splits here because the replica's lists say so.
    row = meta[meta["file_name"] == clip_path("bed", 3)].iloc[0]
    assert (row["group"], row["split"]) == (speaker_id(3), list_split(3)) == (speaker_id(3), "valid")
    assert dataset.info["n_speakers"] == PER_WORD
    assert dataset.audio_root == source.resolve()


def test_verify_is_clean_then_names_a_corrupted_file(spc2: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = spc2
    task = load_task("spcv2", TASKS)
    report = verify_task(task, data)
    assert report.ok and report.n_files == 35 * PER_WORD
    assert int(report.counts.loc["yes", "total"]) == PER_WORD
    copy = shutil.copytree(source, tmp_path / "copy")
    prepare(task, tmp_path / "data", copy)
    bad = copy / clip_path("zero", 2)
    bad.write_bytes(b"RIFF\x00\x00not really audio")
    problems = verify_task(task, tmp_path / "data").problems
    assert [(Path(p.path).name, p.kind) for p in problems] == [(bad.name, "unreadable")]


def test_v1_reads_30_words_and_rejects_a_v2_archive(spc2: tuple[Path, Path], tmp_path: Path) -> None:
    source_v2, _ = spc2
    task = load_task("spcv1", TASKS)
    v1 = write_speech_commands(tmp_path / "v1", version=1, per_word=PER_WORD)
    dataset, built = prepare(task, tmp_path / "data", v1)
    assert built and sorted(set(dataset.metadata["label"])) == WORDS[1] and len(WORDS[1]) == 30
    assert dataset.info["version"] == "v0.01" and dataset.info["counts"]["valid"] == 30
    with pytest.raises(DataError) as exc:
        prepare(task, tmp_path / "data2", source_v2)
    assert "unexpected ['backward', 'follow', 'forward', 'learn', 'visual'], missing []" in one_line_error(exc)


def test_spec_classes_must_be_the_version_words(spc2: tuple[Path, Path], tmp_path: Path) -> None:
    task = load_task("spcv2", TASKS)
    wrong = dataclasses.replace(task, labels=dataclasses.replace(task.labels, classes=WORDS[1]))
    with pytest.raises(SpecError, match=r"must list the 35 words of Speech Commands v0\.02 in sorted order"):
        prepare(wrong, tmp_path / "data", spc2[0])


def test_malformed_layouts_raise_one_line_errors(tmp_path: Path) -> None:
    task = load_task("spcv2", TASKS)
    source = write_speech_commands(tmp_path / "src", version=2, per_word=PER_WORD)

    def fails() -> str:
        with pytest.raises(DataError) as exc:
            prepare(task, tmp_path / "data", source)
        return one_line_error(exc)

    (source / "testing_list.txt").rename(source / "testing.bak")
    assert "testing_list.txt: not found" in fails()
    (source / "testing.bak").rename(source / "testing_list.txt")

    (source / "learn").rename(source / "Learn")  # upper-case folders are not words
    assert "unexpected [], missing ['learn']" in fails()
    (source / "Learn").rename(source / "learn")

    stray = source / "cat" / "recording.wav"
    shutil.copy(source / clip_path("cat", 0), stray)
    assert "cat/recording.wav: file name is not '<speaker>_nohash_<n>.wav'" in fails()
    stray.unlink()

    (source / clip_path("dog", 4)).unlink()
    message = fails()
    assert "testing_list.txt: line" in message and f"'{clip_path('dog', 4)}' is not a file" in message

    with pytest.raises(DataError, match="needs --source DIR"):
        prepare(task, tmp_path / "data", None)


def test_end_to_end_logmel_run(spc2: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = spc2
    record = run_logmel("spcv2", data, tmp_path)
    accuracy = record["scores"]["test"]["accuracy"]["mean"]
    assert 0.0 <= accuracy <= 1.0
