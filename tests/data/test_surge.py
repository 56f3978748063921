"""Surge builder on a miniature replica: stem labels in pitch order, seeded or published tone split, errors, e2e."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalbench.cli import main
from evalbench.data.datasets._common import with_split_file
from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, allow_absent_classes, run_logmel, with_options
from tests.data.replicas.surge import tone_name, write_surge


def short_spec(tasks_dir: Path, seed: int = 0) -> Path:
    """tasks/surge.yaml with bounds fitting the 0.25-s replica clips, a 0.5-s unit and the given split seed."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    text = (TASKS / "surge.yaml").read_text()
    text = re.sub(r"min_seconds: .*", "min_seconds: 0.1", text)
    text = re.sub(r"max_seconds: .*", "max_seconds: 1.0", text)
    text = re.sub(r"clip_seconds: .*", "clip_seconds: 0.5", text)
    text = text.replace("seed: 0}", f"seed: {seed}}}")
    (tasks_dir / "surge.yaml").write_text(text)
    allow_absent_classes(tasks_dir / "surge.yaml")  # the replica has 5 of the 88 notes
    return tasks_dir


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 tones × 5 notes (MIDI 48, 53, 58, 63, 68), written once per module."""
    return write_surge(tmp_path_factory.mktemp("replica") / "surge", tones=20, notes=range(48, 72, 5))


@pytest.fixture
def setup(tmp_path: Path, replica: Path) -> tuple:
    source = shutil.copytree(replica, tmp_path / "surge")
    task = load_task("surge", short_spec(tmp_path / "tasks"))
    return task, source, tmp_path / "data"


def _tone_splits(meta) -> dict[str, set[str]]:
    return {s: set(meta.loc[meta["split"] == s, "group"]) for s in ("train", "valid", "test")}


def test_tone_disjoint_seeded_split_and_pitch_order(setup: tuple) -> None:
    task, source, data = setup
    (source / tone_name(0) / "._note048.ogg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (source / ".DS_Store").write_bytes(b"junk")
    dataset, _ = prepare(task, data, source)
    meta = dataset.metadata
    assert len(meta) == 100 and not meta["file_name"].str.contains("/._").any()
    assert meta["split"].value_counts().to_dict() == {"train": 80, "valid": 10, "test": 10}
    tones = _tone_splits(meta)
    assert [len(tones[s]) for s in ("train", "valid", "test")] == [16, 2, 2]
    assert not (tones["train"] & tones["valid"] or tones["train"] & tones["test"] or tones["valid"] & tones["test"])
    assert (meta.groupby("group")["split"].nunique() == 1).all()
    for split, names in tones.items():  # published tone lists match the metadata
        assert set((dataset.root / f"tones_{split}.txt").read_text().split()) == names
    info = dataset.info
    assert info["tones"] == {"train": 16, "valid": 2, "test": 2}
    assert info["split_rule"]["seed"] == 0 and info["split_rule"]["replacement"] is False
    assert info["sample_rate"] == 22050 and info["labels_found"] == 5
    data_ = open_task_data(task, data)
    assert len(data_.classes) == 88 and data_.classes[0] == "note021" and data_.classes[-1] == "note108"
    row = meta.index[meta["file_name"] == f"{tone_name(3)}/note058.ogg"][0]
    assert data_.y[row] == 58 - 21


def test_same_seed_reproduces_other_seed_changes(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    first = _tone_splits(prepare(task, data, source)[0].metadata)
    again = _tone_splits(prepare(task, tmp_path / "data2", source, force=True)[0].metadata)
    assert again == first
    other_task = load_task("surge", short_spec(tmp_path / "tasks_seed1", seed=1))
    other, built = prepare(other_task, data, source)  # a new seed changes the fingerprint: rebuilt in place
    assert built and other.info["split_rule"]["seed"] == 1
    assert _tone_splits(other.metadata) != first
    assert prepare(other_task, data, source)[1] is False


def test_verify_clean_then_names_corrupt_file(setup: tuple) -> None:
    task, source, data = setup
    prepare(task, data, source)
    report = verify_task(task, data)
    assert report.ok and report.n_files == 100
    bad = source / tone_name(7) / "note063.ogg"
    bad.write_bytes(b"OggS" + bytes(50))
    report = verify_task(task, data)
    assert [(p.path, p.kind) for p in report.problems] == [(str(bad), "unreadable")]


def test_malformed_layouts_raise_one_line(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    with pytest.raises(DataError, match="--source"):
        prepare(task, data, None)
    with pytest.raises(DataError) as exc:  # pointed one level too high: no <tone>/<note>.ogg there
        prepare(task, data, tmp_path)
    assert "surge/ folder" in str(exc.value) and "\n" not in str(exc.value)
    odd = source / tone_name(2) / "C4.ogg"
    odd.write_bytes((source / tone_name(2) / "note048.ogg").read_bytes())
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert str(odd) in str(exc.value) and "'C4'" in str(exc.value) and "\n" not in str(exc.value)


def test_end_to_end_logmel(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    prepare(task, data, source)
    record = run_logmel("surge", data, tmp_path, tasks_dir=Path(task.source_path).parent)
    assert record["task"]["primary_metric"] == "accuracy" and len(record["task"]["classes"]) == 88
    score = record["scores"]["test"]["accuracy"]["mean"]
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    assert record["runs"][0]["n"] == {"train": 80, "valid": 10, "test": 10}


def write_tone_split(path: Path, rows: list[tuple[str, str]], header: str = "tone,split") -> Path:
    """A published tone split as the reference ships it: CSV ``tone,split``, one row per tone."""
    path.write_text(header + "\n" + "".join(f"{tone},{split}\n" for tone, split in rows))
    return path


def reference_rows(tones: int = 20) -> list[tuple[str, str]]:
    """Tones 0-13 train, 14-16 valid, 17-19 test: unlike any seeded draw of the replica."""
    return [(tone_name(i), "train" if i < 14 else "valid" if i < 17 else "test") for i in range(tones)]


def test_reference_split_file_gives_the_published_tones(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    seeded = prepare(task, data, source)[0]
    split_file = write_tone_split(tmp_path / "dataset_surge_tone_splits.csv", reference_rows())
    ref_task = with_split_file(task, split_file)
    assert ref_task.dataset.options == {**task.dataset.options, "split": "reference", "split_file": str(split_file)}
    dataset, built = prepare(ref_task, data, source)
    assert built  # the split is part of the source fingerprint: the seeded preparation is not reused
    meta, info = dataset.metadata, dataset.info
    tones = _tone_splits(meta)
    assert tones == {s: {t for t, v in reference_rows() if v == s} for s in ("train", "valid", "test")}
    assert info["tones"] == {"train": 14, "valid": 3, "test": 3}
    assert info["published_tones"] == {"train": 1692, "valid": 195, "test": 197}
    assert meta["split"].value_counts().to_dict() == {"train": 70, "valid": 15, "test": 15}
    rule = info["split_rule"]
    assert rule["split"] == "reference" and rule["split_file"] == str(split_file)
    assert len(rule["split_file_sha256"]) == 64
    for split, names in tones.items():
        assert set((dataset.root / f"tones_{split}.txt").read_text().split()) == names
    # Another split is another dataset: its fingerprint (in every cache key and run record) differs.
    assert dataset.fingerprint != seeded.fingerprint
    assert prepare(ref_task, data, source)[1] is False  # same file, same copy: idempotent
    split_file.write_text(split_file.read_text().replace(f"{tone_name(0)},train", f"{tone_name(0)},test"))
    changed, built = prepare(ref_task, data, source)  # the file's content is in the fingerprint too
    assert built and tone_name(0) in _tone_splits(changed.metadata)["test"]
    back, built = prepare(task, data, source)  # without --split-file: the seeded rule again
    assert built and back.metadata.equals(seeded.metadata) and back.info["split_rule"]["split"] == "seeded"


def test_split_file_relative_to_the_task_file(setup: tuple) -> None:
    task, source, data = setup
    write_tone_split(Path(task.source_path).parent / "tones.csv", reference_rows())
    dataset, _ = prepare(with_options(task, split="reference", split_file="tones.csv"), data, source)
    assert dataset.info["tones"] == {"train": 14, "valid": 3, "test": 3}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: [*rows, ("surge-patches-factory-Leads-Nope-velocity64", "train")],
         "row 22: tone 'surge-patches-factory-Leads-Nope-velocity64' is not a tone folder under"),
        (lambda rows: rows[:-1], f"{tone_name(19)}: tone folder not in the split file"),
        (lambda rows: [(t, "validation" if i == 3 else s) for i, (t, s) in enumerate(rows)],
         f"row 5: split 'validation' for tone '{tone_name(3)}' is not one of train, valid, test"),
        (lambda rows: [*rows, rows[4]], f"row 22: tone '{tone_name(4)}' is listed again (first on row 6)"),
        (lambda rows: [(t, "train" if s == "valid" else s) for t, s in rows], "no tone is assigned to 'valid'"),
    ],
    ids=["unknown-tone", "missing-tone", "bad-split-name", "repeated-tone", "empty-split"],
)  # fmt: skip
def test_bad_split_file_names_file_row_and_value(setup: tuple, tmp_path: Path, edit, message: str) -> None:
    task, source, data = setup
    split_file = write_tone_split(tmp_path / "tones.csv", edit(reference_rows()))
    with pytest.raises(DataError) as exc:
        prepare(with_split_file(task, split_file), data, source)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(split_file) in str(exc.value)


def test_split_file_header_and_option_errors(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    split_file = write_tone_split(tmp_path / "tones.csv", reference_rows(), header="preset,fold")
    with pytest.raises(DataError, match=r"header \['preset', 'fold'\] lacks a 'tone' column and a 'split' column"):
        prepare(with_split_file(task, split_file), data, source)
    with pytest.raises(DataError, match="--split-file not found"):
        with_split_file(task, tmp_path / "absent.csv")
    with pytest.raises(SpecError, match="split_file: split 'reference' reads the published tone split"):
        prepare(with_options(task, split="reference"), data, source)
    with pytest.raises(SpecError, match="split_file: only read with split 'reference'"):
        prepare(with_options(task, split_file=str(split_file)), data, source)
    with pytest.raises(DataError, match="the builders that take one are cremad, surge"):
        with_split_file(load_task("gtzan", TASKS), split_file)


def test_cli_prepare_with_split_file(setup: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    task, source, data = setup
    split_file = write_tone_split(tmp_path / "tones.csv", reference_rows())
    args = ["data", "prepare", "surge", "--source", str(source), "--tasks-dir", str(Path(task.source_path).parent)]
    args += ["--data-root", str(data)]
    assert main([*args, "--split-file", str(split_file)]) == 0
    assert "surge: dataset 'surge' prepared: 100 clips" in capsys.readouterr().out
    info = open_task_data(task, data).dataset.info
    assert info["tones"] == {"train": 14, "valid": 3, "test": 3} and info["options"]["split"] == "reference"
    assert main([*args, "--split-file", str(split_file)]) == 0
    assert "already prepared" in capsys.readouterr().out
    assert main(args) == 0  # the seeded rule again: rebuilt
    assert "surge: dataset 'surge' prepared" in capsys.readouterr().out
    assert open_task_data(task, data).dataset.info["tones"] == {"train": 16, "valid": 2, "test": 2}
    assert main([*args, "--split-file", str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err.strip() == f"evalbench: error: {tmp_path / 'nope.csv'}: --split-file not found"
