"""Helpers for dataset tests: synthesized audio files and an end-to-end logmel run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import soundfile as sf

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


def run_logmel(task: str, data_root: Path, tmp_path: Path, tasks_dir: Path = TASKS) -> dict:
    """Run `evalbench run --encoder logmel --tasks TASK --seeds 1` on prepared data; return the record."""
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


def lenient(task: TaskSpec) -> TaskSpec:
    """The task with clip-length bounds relaxed to the replicas' short clips (for ``verify``)."""
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, min_seconds=0.0, max_seconds=None))


def with_options(task: TaskSpec, **options) -> TaskSpec:
    """The task with some ``dataset.options`` replaced (e.g. another split seed)."""
    merged = {**task.dataset.options, **options}
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, options=merged))
