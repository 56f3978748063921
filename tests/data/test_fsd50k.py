"""FSD50K builder on a miniature replica: vocabulary order, multi-hot labels, official splits, errors, end to end."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.verify import verify_task
from evalbench.errors import DataError
from evalbench.specs.task import load_task
from tests.data.helpers import TASKS, run_logmel
from tests.data.replicas.fsd50k import VOCABULARY, clip_labels, write_fsd50k


def short_spec(tasks_dir: Path) -> Path:
    """tasks/fsd50k.yaml with bounds fitting the 0.3-s replica clips and a 0.5-s unit."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    text = (TASKS / "fsd50k.yaml").read_text()
    text = re.sub(r"min_seconds: .*", "min_seconds: 0.1", text)
    text = re.sub(r"max_seconds: .*", "max_seconds: 1.0", text)
    text = re.sub(r"clip_seconds: .*", "clip_seconds: 0.5", text)
    (tasks_dir / "fsd50k.yaml").write_text(text)
    return tasks_dir


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fsd50k(tmp_path_factory.mktemp("replica") / "fsd50k")


@pytest.fixture
def setup(tmp_path: Path, replica: Path) -> tuple:
    source = shutil.copytree(replica, tmp_path / "fsd50k")
    task = load_task("fsd50k", short_spec(tmp_path / "tasks"))
    return task, source, tmp_path / "data"


def test_splits_vocabulary_order_and_multi_hot(setup: tuple) -> None:
    task, source, data = setup
    dataset, built = prepare(task, data, source)
    meta = dataset.metadata
    assert built and meta["split"].value_counts().to_dict() == {"train": 48, "valid": 16, "test": 16}
    assert meta["file_name"].iloc[0] == "FSD50K.dev_audio/64000.wav"
    assert meta["file_name"].iloc[-1] == f"FSD50K.eval_audio/{64000 + 37 * 79}.wav"
    assert meta["label"].iloc[0] == "Bark,Dog,Animal"
    assert dataset.info["classes"] == VOCABULARY and dataset.info["vocabulary_header"] is False
    assert dataset.info["classes_without_positive"] == {"train": [], "valid": [], "test": []}
    assert dataset.info["sample_rate"] == 44100 and dataset.audio_root == source.resolve()
    data_ = open_task_data(task, data)
    assert data_.classes == VOCABULARY != sorted(VOCABULARY)  # index order, not alphabetical
    assert data_.y.shape == (80, 8)
    for row in (0, 7, 50, 79):
        assert [VOCABULARY[j] for j in np.flatnonzero(data_.y[row])] == [c for c in VOCABULARY if c in clip_labels(row)]
    dev = pd.read_csv(source / "FSD50K.ground_truth" / "dev.csv", dtype=str)
    val = dev.index[dev["split"] == "val"]
    assert set(data_.split[val]) == {"valid"}


def test_vocabulary_with_header_gives_same_classes(tmp_path: Path) -> None:
    source = write_fsd50k(tmp_path / "src", train=8, val=8, test=8, seconds=0.1, header=True)
    dataset, _ = prepare(load_task("fsd50k", short_spec(tmp_path / "tasks")), tmp_path / "data", source)
    assert dataset.info["classes"] == VOCABULARY and dataset.info["vocabulary_header"] is True


def test_idempotent_and_verify(setup: tuple) -> None:
    task, source, data = setup
    prepare(task, data, source)
    assert prepare(task, data, source)[1] is False
    report = verify_task(task, data)
    assert report.ok and report.n_files == 80
    assert report.counts.loc["Music", "total"] == 40
    bad = source / "FSD50K.eval_audio" / "66664.wav"
    bad.write_bytes(b"")
    report = verify_task(task, data)
    assert [(p.path, p.kind) for p in report.problems] == [(str(bad), "empty")]


def _raises(task, data, source, *fragments: str) -> None:
    with pytest.raises(DataError) as exc:
        prepare(task, data, source)
    message = str(exc.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_malformed_layouts_raise_one_line(setup: tuple) -> None:
    task, source, data = setup
    truth = source / "FSD50K.ground_truth"
    _raises(task, data, None, "--source")
    (source / "FSD50K.dev_audio" / "64074.wav").unlink()
    _raises(task, data, source, str(source / "FSD50K.dev_audio" / "64074.wav"), "missing")
    shutil.rmtree(source / "FSD50K.dev_audio")
    _raises(task, data, source, "FSD50K.dev_audio", "zip -s 0")
    (source / "FSD50K.dev_audio").mkdir()
    dev = (truth / "dev.csv").read_text()
    (truth / "dev.csv").write_text(dev.replace(",train\n", ",training\n", 1))
    _raises(task, data, source, "dev.csv", "'training'")
    (truth / "dev.csv").write_text(dev.replace('"Guitar,Music"', '"Guitar,Muzak"', 1))
    _raises(task, data, source, "dev.csv", "row 3", "'Muzak'")
    (truth / "dev.csv").write_text(dev.replace("labels", "tags", 1))
    _raises(task, data, source, "dev.csv", "['labels']")
    (truth / "dev.csv").write_text(dev)
    vocab = (truth / "vocabulary.csv").read_text()
    (truth / "vocabulary.csv").write_text(vocab.replace("Human_voice", '"Human, voice"'))
    _raises(task, data, source, "vocabulary.csv", "line 7", "comma")
    (truth / "vocabulary.csv").write_text(vocab.replace("7,", "9,"))
    _raises(task, data, source, "vocabulary.csv", "without gaps")


def test_end_to_end_logmel(setup: tuple, tmp_path: Path) -> None:
    task, source, data = setup
    prepare(task, data, source)
    record = run_logmel("fsd50k", data, tmp_path, tasks_dir=Path(task.source_path).parent)
    assert record["task"]["primary_metric"] == "map" and record["task"]["classes"] == VOCABULARY
    score = record["scores"]["test"]["map"]["mean"]
    assert np.isfinite(score) and 0.0 <= score <= 1.0
    assert record["runs"][0]["skipped_classes"] == {"map": 0, "roc_auc": 0}
