"""The embedded synthetic suite: deterministic, balanced, grouped, written in the canonical format."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.data.metadata import read_prepared
from evalbench.data.prepare import open_task_data, prepare
from evalbench.data.synthetic import CLASSES
from evalbench.specs.task import load_task
from tests.conftest import TINY_SIZES


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in ("dataset.json", "content.tsv"):  # they carry times
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(TINY_SIZES))
def test_generation_is_deterministic(name: str, tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    task = load_task(name, tiny_tasks)
    prepare(task, tmp_path)
    assert _digest(tmp_path / name) == _digest(tiny_data / name)


def test_seed_changes_the_audio(tiny_tasks: Path, tiny_data: Path, tmp_path: Path) -> None:
    spec = (tiny_tasks / "synth_pitch.yaml").read_text().replace("seed: 0", "seed: 1")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "synth_pitch.yaml").write_text(spec)
    (tmp_path / "tasks" / "_base").symlink_to(tiny_tasks / "_base")
    prepare(load_task("synth_pitch", tmp_path / "tasks"), tmp_path / "data")
    a, _ = sf.read(tmp_path / "data" / "synth_pitch" / "audio" / "pitch_00000.wav")
    b, _ = sf.read(tiny_data / "synth_pitch" / "audio" / "pitch_00000.wav")
    assert not np.allclose(a, b)


@pytest.mark.parametrize("name", sorted(TINY_SIZES))
def test_canonical_metadata_and_audio(name: str, tiny_tasks: Path, tiny_data: Path) -> None:
    task = load_task(name, tiny_tasks)
    data = open_task_data(task, tiny_data)
    assert data.classes == CLASSES.get(task.dataset.options["kind"], [])  # a regression kind has none
    info, meta = data.dataset.info, data.dataset.metadata
    assert info["n_clips"] == len(meta) == data.n and info["sample_rate"] == 16000
    audio, sr = sf.read(data.path(0))
    assert sr == 16000 and len(audio) == round(task.audio.clip_seconds * 16000)
    assert 0.1 < np.abs(audio).max() <= 1.0
    if task.labels.type == "multilabel":
        counts = data.y.sum(0)
        assert data.y.shape == (data.n, 8) and (counts > 0).all()
        assert data.y.sum(1).min() >= 1 and data.y.sum(1).max() <= 3
    elif task.labels.type == "regression":  # fractional MIDI notes, balanced over pitch classes
        assert data.y.dtype == np.float64 and data.y.min() >= 35.75 and data.y.max() <= 83.25
        assert len(np.unique(data.y)) == data.n and np.abs(data.y - np.round(data.y)).max() <= 0.25
        counts = np.bincount(np.round(data.y).astype(int) % 12, minlength=12)
        assert (counts == counts[0]).all()
    else:
        counts = np.bincount(data.y, minlength=len(data.classes))
        assert (counts == counts[0]).all(), "classes are balanced"
    parts = data.parts()
    assert sum(len(r) for r in parts.values()) == data.n


def test_timbre_takes_share_group_and_fold(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    assert data.fold is not None
    for group in set(data.groups):
        rows = np.flatnonzero(data.groups == group)
        assert len(rows) == 2 and len(set(data.fold[rows])) == 1 and len(set(data.y[rows])) == 1
    for k in range(1, 6):  # every fold holds every class
        assert set(data.y[data.fold == k]) == set(range(8))


def test_split_proportions(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data)
    sizes = {k: len(v) for k, v in data.parts().items()}
    assert sizes == {"train": 72, "valid": 24, "test": 24}


def test_prepare_is_idempotent(tiny_tasks: Path, tiny_data: Path) -> None:
    task = load_task("synth_detect", tiny_tasks)
    before = read_prepared(tiny_data / "synth_detect").info["created"]
    _, built = prepare(task, tiny_data)
    assert not built and read_prepared(tiny_data / "synth_detect").info["created"] == before
