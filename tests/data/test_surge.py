"""Surge builder on a miniature replica: stem labels in pitch order, seeded tone-disjoint split, errors, end to end."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, allow_absent_classes, run_logmel
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
