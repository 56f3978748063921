"""CREMA-D builder: seeded or published speaker-disjoint actor split on replicas of ``AudioWAV``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalbench.cli import main
from evalbench.data.datasets._common import with_split_file
from evalbench.data.datasets.cremad import (
    EMOTIONS,
    REFERENCE_COUNTS,
    REFERENCE_GROUP_COUNTS,
    REFERENCE_LEFT_OUT,
)
from evalbench.data.prepare import prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel, with_options
from tests.data.replicas.cremad import FULL_SIDES, clip_name, write_cremad, write_cremad_full, write_split_file

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


# ---- split: reference (the published split, read from a file the user supplies) ----


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7,442 tiny clips named as the full release, with a synthetic actor table shaped like the published split."""
    return write_cremad_full(tmp_path_factory.mktemp("cremad_full") / "source")


@pytest.mark.parametrize("per_actor", [False, True], ids=["per-clip", "per-actor"])
def test_reference_split_reproduces_the_published_counts(full: Path, tmp_path: Path, per_actor: bool) -> None:
    split_file = write_split_file(tmp_path / "cremad.csv", full, FULL_SIDES, per_actor=per_actor)
    task = with_split_file(load_task("cremad", TASKS), split_file)
    dataset, built = prepare(task, tmp_path / "data", full)
    meta, info = dataset.metadata, dataset.info
    assert built and len(meta) == 7438 and dataset.info["n_clips"] == 7438
    assert info["counts"] == REFERENCE_COUNTS and info["group_counts"] == REFERENCE_GROUP_COUNTS
    assert info["split_rule"].startswith("reference") and info["split_file"] == str(split_file)
    assert info["options"]["split"] == "reference" and "split_seed" not in info
    left_out = [f"AudioWAV/{stem}.wav" for stem in REFERENCE_LEFT_OUT]
    assert [(e["file"], e["rows_removed"]) for e in info["excluded"]] == [(f, 1) for f in left_out]
    assert not meta["file_name"].isin(left_out).any()
    assert (meta["group"].map(FULL_SIDES) == meta["split"]).all()
    for split in ("train", "valid", "test"):
        listed = (tmp_path / "data" / "cremad" / f"actors_{split}.txt").read_text().split()
        assert listed == sorted(a for a, s in FULL_SIDES.items() if s == split)
    assert prepare(task, tmp_path / "data", full)[1] is False  # idempotent
    seeded, built = prepare(load_task("cremad", TASKS), tmp_path / "data", full)  # the default rule: rebuilt
    assert built and len(seeded.metadata) == 7442 and seeded.info["excluded"] == []
    assert seeded.fingerprint != dataset.fingerprint  # another split is another dataset identity


def test_reference_split_mismatch_names_the_counts(full: Path, tmp_path: Path) -> None:
    sides = {**FULL_SIDES, "1064": "test"}  # one valid actor moved to test
    split_file = write_split_file(tmp_path / "actors.csv", full, sides, per_actor=True)
    with pytest.raises(DataError) as exc:
        prepare(with_split_file(load_task("cremad", TASKS), split_file), tmp_path / "data", full)
    message = str(exc.value)
    assert message.startswith(f"{split_file}: not the published reference split: ") and "\n" not in message
    assert "valid clips 650 (published 732); valid actors 8 (published 9)" in message
    assert "test clips 1,633 (published 1,551); test actors 20 (published 19)" in message
    assert "train" not in message.split("published reference split:")[1].split("; the reference")[0]


def test_reference_split_lists_a_left_out_clip(full: Path, tmp_path: Path) -> None:
    split_file = write_split_file(tmp_path / "cremad.csv", full, FULL_SIDES)
    text = split_file.read_text()
    split_file.write_text(text + "1013_WSI_DIS_XX.wav,DIS,1013,train\n")
    with pytest.raises(DataError) as exc:
        prepare(with_split_file(load_task("cremad", TASKS), split_file), tmp_path / "data", full)
    assert f"row {text.count(chr(10)) + 1}: '1013_WSI_DIS_XX.wav' is one of the four clips" in str(exc.value)


def _fails(task, data: Path, source: Path) -> str:
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_reference_split_file_errors_on_a_miniature(cremad: tuple[Path, Path], tmp_path: Path) -> None:
    source, _ = cremad
    task = load_task("cremad", TASKS)
    sides = {str(a): "train" if a < 1009 else "valid" if a < 1010 else "test" for a in range(1001, 1001 + ACTORS)}
    path = write_split_file(tmp_path / "cremad.csv", source, sides)
    ref = with_split_file(task, path)
    lines = path.read_text().splitlines()
    # The file matches the copy but the miniature is not the published split: every count is named.
    message = _fails(ref, tmp_path / "data", source)
    assert "clips 144 (published 7,438); train clips 96 (published 5,155); train actors 8 (published 63)" in message

    def edited(row: int, line: str | None) -> str:
        out = list(lines)
        if line is None:
            del out[row - 1]
        else:
            out[row - 1] = line
        path.write_text("\n".join(out) + "\n")
        return _fails(ref, tmp_path / "data", source)

    first = lines[1].split(",")
    assert f"{path}: row 2: split 'training' for file_name '{first[0]}' is not one of train, valid, test" in edited(
        2, ",".join([*first[:3], "training"])
    )
    assert f"row 3: actor {first[2]} is in 'train' here but in 'test' on row 2" in edited(
        2, ",".join([*first[:3], "test"])
    )
    assert f"row 2: clip '1001_XYZ_ANG_XX.wav' is not in {source / 'AudioWAV'}" in edited(
        2, "1001_XYZ_ANG_XX.wav,ANG,1001,train"
    )
    assert f"AudioWAV/{first[0]}: not in the split file {path} (1 such clip(s))" in edited(2, None)

    actors = write_split_file(tmp_path / "actors.csv", source, sides, per_actor=True)
    ref = with_split_file(task, actors)
    actor_lines = actors.read_text().splitlines()
    actors.write_text("\n".join(actor_lines[:-1]) + "\n")
    assert f"{source / 'AudioWAV'}: actor 1012 is not in the split file {actors}" in _fails(ref, tmp_path / "d", source)
    actors.write_text("\n".join([*actor_lines, "1090,test"]) + "\n")
    assert f"{actors}: row 14: actor 1090 has no clip in" in _fails(ref, tmp_path / "d", source)
    actors.write_text("\n".join([*actor_lines, "A1090,test"]) + "\n")
    assert "row 14: actor 'A1090' is not a CREMA-D actor (1001-1091)" in _fails(ref, tmp_path / "d", source)
    actors.write_text("speaker,fold\n1001,1\n")
    assert "lacks a 'file_name or actor or speaker_id' column and a 'split' column" in _fails(
        ref, tmp_path / "d", source
    )
    with pytest.raises(SpecError, match="split_file: split 'reference' reads the published split"):
        prepare(with_options(task, split="reference"), tmp_path / "d", source)


def test_cli_prepare_cremad_with_split_file(full: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    split_file = write_split_file(tmp_path / "cremad.csv", full, FULL_SIDES)
    args = ["data", "prepare", "cremad", "--source", str(full), "--data-root", str(tmp_path / "data")]
    assert main([*args, "--split-file", str(split_file)]) == 0
    out = capsys.readouterr().out
    assert "cremad: dataset 'cremad' prepared: 7438 clips" in out
    assert "  AudioWAV/1006_TIE_NEU_XX.wav: left out of the reference split" in out
