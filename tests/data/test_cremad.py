"""CREMA-D builder: seeded speaker-disjoint actor split on a miniature replica of ``AudioWAV``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.data.datasets.cremad import EMOTIONS
from evalbench.data.prepare import prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel, with_options
from tests.data.replicas.cremad import clip_name, write_cremad

ACTORS, SENTENCES = 12, 2  # 12 actors -> floor(8.4) = 8 / floor(1.2) = 1 / 3; 12 clips per actor


@pytest.fixture(scope="module")
def cremad(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A CREMA-D replica and a data root where the task is prepared from it."""
    base = tmp_path_factory.mktemp("cremad")
    source = write_cremad(base / "source", actors=ACTORS, sentences=SENTENCES)
    prepare(load_task("cremad", TASKS), base / "data", source)
    return source, base / "data"


def test_actor_split_counts_lists_and_disjointness(cremad: tuple[Path, Path]) -> None:
    source, data = cremad
    task = load_task("cremad", TASKS)
    dataset, built = prepare(task, data, source)
    assert not built  # idempotent
    meta, info = dataset.metadata, dataset.info
    assert info["group_counts"] == {"train": 8, "valid": 1, "test": 3}
    assert info["counts"] == {"train": 8 * 12, "valid": 12, "test": 3 * 12}
    assert info["reference_group_counts"] == {"train": 63, "valid": 9, "test": 19}
    assert sorted(set(meta["label"])) == EMOTIONS == task.labels.classes
    # Actor lists: written, pairwise disjoint, covering all actors, and equal to the metadata.
    lists = {s: (data / "cremad" / f"actors_{s}.txt").read_text().split() for s in ("train", "valid", "test")}
    assert sorted(a for actors in lists.values() for a in actors) == [str(a) for a in range(1001, 1001 + ACTORS)]
    for split, actors in lists.items():
        assert sorted(set(meta.loc[meta["split"] == split, "group"])) == actors
    assert (meta.groupby("group")["split"].nunique() == 1).all()
    row = meta[meta["file_name"] == "AudioWAV/" + clip_name(1004, "IEO", "FEA", take=3 + 2)].iloc[0]
    assert (row["label"], row["group"], row["sentence"], row["level"]) == ("FEA", "1004", "IEO", "HI")
    assert not meta["file_name"].str.contains("/\\._").any() and len(meta) == ACTORS * 12


def test_seed_reproduces_and_changes_the_split(cremad: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = cremad
    task = load_task("cremad", TASKS)
    reference = prepare(task, data, source)[0].metadata
    again, built = prepare(task, tmp_path / "again", source)
    assert built and again.metadata.equals(reference)
    other, built = prepare(with_options(task, seed=7), tmp_path / "again", source)  # options are in the fingerprint
    assert built and other.info["split_seed"] == 7
    assert other.info["group_counts"] == {"train": 8, "valid": 1, "test": 3}
    assert not other.metadata["split"].equals(reference["split"])


def test_verify_is_clean_then_names_a_corrupted_file(cremad: tuple[Path, Path], tmp_path: Path) -> None:
    source, data = cremad
    task = load_task("cremad", TASKS)
    report = verify_task(task, data)
    assert report.ok and report.n_files == ACTORS * 12
    assert report.counts.loc["SAD", "total"] == ACTORS * SENTENCES
    copy = shutil.copytree(source, tmp_path / "copy")
    prepare(task, tmp_path / "data", copy)
    bad = copy / "AudioWAV" / clip_name(1010, "DFA", "NEU")
    bad.write_bytes(b"RIFF garbage, not a WAVE file")
    problems = verify_task(task, tmp_path / "data").problems
    assert [(Path(p.path), p.kind) for p in problems] == [(bad.resolve(), "unreadable")]


def test_malformed_layouts_raise_one_line_errors(tmp_path: Path) -> None:
    task = load_task("cremad", TASKS)
    source = write_cremad(tmp_path / "src", actors=ACTORS, sentences=1)

    def fails() -> str:
        with pytest.raises(DataError) as exc:
            prepare(task, tmp_path / "data", source)
        assert "\n" not in str(exc.value)
        return str(exc.value)

    (source / "AudioWAV").rename(source / "Audio")
    assert fails().endswith("AudioWAV: not found; pass the CREMA-D repository clone (with Git LFS audio)")
    (source / "Audio").rename(source / "AudioWAV")

    odd = source / "AudioWAV" / "1001_IEO_ANG_XL.wav"
    odd.write_bytes(b"")
    assert "1001_IEO_ANG_XL.wav: file name is not '<actor>_<sentence>_<emotion>_<LO|MD|HI|XX>.wav'" in fails()
    odd.unlink()

    pointer = source / "AudioWAV" / clip_name(1003, "IEO", "DIS", take=2 + 1)
    text = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1234\n"
    pointer.write_text(text)
    assert f"{pointer.name}: a Git LFS pointer, not audio (1 such file(s)); run 'git lfs pull'" in fails()

    with pytest.raises(DataError, match="needs --source DIR"):
        prepare(task, tmp_path / "data", None)


def test_too_few_actors(tmp_path: Path) -> None:
    source = write_cremad(tmp_path / "src", actors=5, sentences=1)  # floor(0.5) = 0 valid actors
    with pytest.raises(DataError, match=r"5 groups are too few for train/valid/test fractions 0\.7/0\.1"):
        prepare(load_task("cremad", TASKS), tmp_path / "data", source)


def test_end_to_end_logmel_run(cremad: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = cremad
    record = run_logmel("cremad", data, tmp_path)
    assert 0.0 <= record["scores"]["test"]["accuracy"]["mean"] <= 1.0
    assert record["task"]["classes"] == EMOTIONS
