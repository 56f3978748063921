"""Helpers for dataset tests: synthesized audio files and an end-to-end logmel run."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from evalbench.cli import main
from evalbench.specs.task import TaskSpec

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO / "tasks"
ENCODERS = REPO / "encoders"


def tone(seconds: float, sr: int, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A short harmonic tone with a little noise (float32, peak < 1), distinct per ``freq``/``seed``."""
    rng = np.random.default_rng(seed)
    t = np.arange(max(1, round(seconds * sr))) / sr
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 4)) + 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def write_audio(path: Path, seconds: float, sr: int, freq: float = 440.0, seed: int = 0, **kwargs) -> Path:
    """Write :func:`tone` to ``path`` (format from the suffix unless given in ``kwargs``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sr, freq, seed), sr, **kwargs)
    return path


def allow_absent_classes(path: Path, bounds: bool = False) -> Path:
    """Rewrite the spec file ``path`` as a miniature replica of a few classes needs it.

    Its declared classes may lack training clips and, with ``bounds``, any clip length passes.
    """
    spec = yaml.safe_load(path.read_text())
    if bounds:
        spec.setdefault("dataset", {}).update(min_seconds=0.0, max_seconds=None)
    classes = spec.get("labels", {}).get("classes")
    if classes:
        spec["labels"]["allow_missing_in_train"] = list(classes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def miniature_specs(tasks_dir: Path, task: str, dest: Path) -> Path:
    """A copy of ``tasks_dir`` whose spec ``task`` accepts a miniature replica (see :func:`lenient`)."""
    shutil.copytree(tasks_dir, dest, dirs_exist_ok=True)
    allow_absent_classes(dest / f"{task}.yaml", bounds=True)
    return dest


def run_logmel(task: str, data_root: Path, tmp_path: Path, tasks_dir: Path = TASKS) -> dict:
    """Run `evalbench run --encoder logmel --tasks TASK --seeds 1` on a prepared replica; return the record.

    The task's spec is relaxed for the replica's short clips and missing classes (:func:`miniature_specs`).
    """
    tasks_dir = miniature_specs(tasks_dir, task, tmp_path / "miniature-tasks")
    results = tmp_path / "results"
    code = main(
        [
            "run",
            "--encoder",
            "logmel",
            "--tasks",
            task,
            "--seeds",
            "1",
            "--tasks-dir",
            str(tasks_dir),
            "--encoders-dir",
            str(ENCODERS),
            "--data-root",
            str(data_root),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--results-dir",
            str(results),
        ]
    )
    assert code == 0, f"evalbench run failed for {task}"
    return json.loads((results / "logmel" / f"{task}.linear.json").read_text())


def sparse(task: TaskSpec) -> TaskSpec:
    """The task with every declared class allowed to lack training clips (a replica has only a few)."""
    labels = dataclasses.replace(task.labels, allow_missing_in_train=list(task.labels.classes or []))
    return dataclasses.replace(task, labels=labels)


def lenient(task: TaskSpec) -> TaskSpec:
    """The task as a miniature replica needs it: short clips accepted, and classes the replica lacks allowed.

    Replicas hold a few clips per class, often of a few classes only, while the
    specs declare the full vocabulary; a real dataset must satisfy the spec.
    """
    task = sparse(task)
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, min_seconds=0.0, max_seconds=None))


def with_options(task: TaskSpec, **options) -> TaskSpec:
    """The task with some ``dataset.options`` replaced (e.g. another split seed)."""
    merged = {**task.dataset.options, **options}
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, options=merged))
