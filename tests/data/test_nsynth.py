"""NSynth builder on a miniature jsonwav replica: official splits, fixed family order, errors, end to end."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel
from tests.data.replicas.nsynth import FAMILIES, write_nsynth


def short_spec(tasks_dir: Path) -> Path:
    """tasks/nsynth.yaml with bounds fitting the 0.25-s replica clips and a 0.5-s unit."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    text = (TASKS / "nsynth.yaml").read_text()
    text = re.sub(r"min_seconds: .*", "min_seconds: 0.1", text)
    text = re.sub(r"max_seconds: .*", "max_seconds: 1.0", text)
    text = re.sub(r"clip_seconds: .*", "clip_seconds: 0.5", text)
    (tasks_dir / "nsynth.yaml").write_text(text)
    return tasks_dir


@pytest.fixture
def setup(tmp_path: Path) -> tuple:
    source = write_nsynth(tmp_path / "src")
    task = load_task("nsynth", short_spec(tmp_path / "tasks"))
    return task, source, tmp_path / "data"


def test_official_splits_and_fixed_family_order(setup: tuple) -> None:
    task, source, data = setup
    dataset, built = prepare(task, data, source)
    assert built
    meta = dataset.metadata
    assert meta["split"].value_counts().to_dict() == {"train": 66, "valid": 30, "test": 30}
    assert meta["file_name"].iloc[0] == "nsynth-train/audio/bass_acoustic_000-036-100.wav"
    assert dataset.audio_root == source.resolve()
    assert dataset.info["sample_rate"] == 16000
    assert dataset.info["classes_absent"] == {"train": [], "valid": ["synth_lead"], "test": ["synth_lead"]}
    assert dataset.info["counts"] == {"train": 66, "valid": 30, "test": 30}
    assert dataset.info["matches_official_counts"] is False
    data_ = open_task_data(task, data)
    assert data_.classes == FAMILIES
    # Labels are family indices in the spec's order, whatever split they come from.
    row = meta.index[meta["file_name"] == "nsynth-test/audio/vocal_synthetic_041-076-100.wav"][0]
    assert data_.y[row] == 10 and data_.split[row] == "test"
    assert set(data_.y[data_.split == "valid"].tolist()) == set(range(11)) - {9}
    # Group = instrument: no instrument sits in two splits of the replica (as in the release).
    by_group = meta.groupby("group")["split"].nunique()
    assert (by_group == 1).all() and len(by_group) == 42


def test_prepare_is_idempotent_and_sees_changes(setup: tuple) -> None:
    task, source, data = setup
    prepare(task, data, source)
    assert prepare(task, data, source)[1] is False
    path = source / "nsynth-valid" / "examples.json"
    examples = json.loads(path.read_text())
    examples.pop(next(iter(examples)))
    path.write_text(json.dumps(examples))
    dataset, built = prepare(task, data, source)
    assert built and (dataset.metadata["split"] == "valid").sum() == 29
    assert dataset.info["audio_without_metadata"] == {"train": 0, "valid": 1, "test": 0}


def test_verify_clean_then_names_corrupt_file(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    prepare(task, data, source)
    report = verify_task(task, data)
    assert report.ok and report.n_files == 126
    assert report.counts.loc["synth_lead"].to_dict() == {"test": 0, "train": 6, "valid": 0, "total": 6}
    bad = source / "nsynth-test" / "audio" / "flute_electronic_034-044-100.wav"
    bad.write_bytes(bad.read_bytes()[:60])
    report = verify_task(task, data)
    assert [(Path(p.path).name, p.kind) for p in report.problems] == [(bad.name, "truncated")]


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_malformed_layouts_raise_one_line(setup: tuple) -> None:
    task, source, data = setup
    with pytest.raises(DataError) as exc:
        prepare(task, data, None)
    assert "--source" in _one_line(exc)
    wav = source / "nsynth-valid" / "audio" / "brass_synthetic_023-041-100.wav"
    wav.unlink()
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert str(wav) in _one_line(exc) and "missing" in str(exc.value)
    # Excluding the file by a spec rule gets past it, and the exclusion is reported.
    spec = Path(task.source_path)
    rule = f"  exclude:\n    - file: {wav.name}\n      reason: lost in transfer\n  min_seconds:"
    spec.write_text(spec.read_text().replace("  min_seconds:", rule))
    dataset, _ = prepare(load_task("nsynth", spec.parent), data, source)
    assert (dataset.metadata["split"] == "valid").sum() == 29
    assert dataset.info["excluded"] == [{"file": wav.name, "reason": "lost in transfer", "rows_removed": 1}]
    shutil.rmtree(source / "nsynth-test")
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert "nsynth-test" in _one_line(exc)


def test_label_problems_name_file_and_note(setup: tuple) -> None:
    task, source, data = setup
    path = source / "nsynth-train" / "examples.json"
    examples = json.loads(path.read_text())
    first = next(iter(examples))
    examples[first]["instrument_family_str"] = "theremin"
    path.write_text(json.dumps(examples))
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    assert str(path) in _one_line(exc) and first in str(exc.value) and "theremin" in str(exc.value)
    del examples[first]["instrument_family_str"]
    path.write_text(json.dumps(examples))
    with pytest.raises(DataError, match="no 'instrument_family_str'"):
        prepare(task, data, source)


def test_end_to_end_logmel(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    prepare(task, data, source)
    record = run_logmel("nsynth", data, tmp_path, tasks_dir=Path(task.source_path).parent)
    assert record["task"]["primary_metric"] == "accuracy" and record["task"]["classes"] == FAMILIES
    score = record["scores"]["test"]["accuracy"]["mean"]
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    assert record["runs"][0]["n"] == {"train": 66, "valid": 30, "test": 30}
