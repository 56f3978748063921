"""Shared fixtures: tiny copies of the real task specs, isolated data/cache/results folders."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tasks"
ENCODERS = REPO / "encoders"

# Clips per class of the shrunken synthetic tasks (the real specs, fewer clips).
TINY_SIZES = {"synth_pitch": 10, "synth_timbre": 10, "synth_events": 10, "synth_detect": 12, "synth_pitch_reg": 10}


@dataclass
class Env:
    """Isolated folders for one test."""

    tasks: Path
    encoders: Path
    data: Path
    cache: Path
    results: Path

    def cli(self, *args: str) -> list[str]:
        """Common folder flags for `evalbench run`."""
        return [
            *args,
            "--tasks-dir",
            str(self.tasks),
            "--encoders-dir",
            str(self.encoders),
            "--data-root",
            str(self.data),
            "--cache-dir",
            str(self.cache),
            "--results-dir",
            str(self.results),
        ]


def shrink_tasks(dest: Path) -> Path:
    """Copy tasks/ to ``dest`` with the synthetic tasks shrunk to TINY_SIZES clips per class."""
    shutil.copytree(TASKS, dest)
    for name, size in TINY_SIZES.items():
        path = dest / f"{name}.yaml"
        path.write_text(re.sub(r"per_class: \d+", f"per_class: {size}", path.read_text()))
    return dest


@pytest.fixture(scope="session")
def tiny_tasks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide tasks folder with shrunken synthetic tasks."""
    return shrink_tasks(tmp_path_factory.mktemp("spec") / "tasks")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, tiny_tasks: Path) -> Path:
    """A session-wide data root with the tiny synthetic datasets generated."""
    from evalbench.data.prepare import prepare
    from evalbench.specs.task import load_task

    root = tmp_path_factory.mktemp("data")
    for name in TINY_SIZES:
        prepare(load_task(name, tiny_tasks), root)
    return root


@pytest.fixture
def env(tmp_path: Path, tiny_tasks: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Per-test cache and results folders over the shared tiny specs and data."""
    e = Env(tiny_tasks, ENCODERS, tiny_data, tmp_path / "cache", tmp_path / "results")
    for var, value in (
        ("EVALBENCH_DATA", e.data),
        ("EVALBENCH_CACHE", e.cache),
        ("EVALBENCH_RESULTS", e.results),
        ("EVALBENCH_TASKS_DIR", e.tasks),
        ("EVALBENCH_ENCODERS_DIR", e.encoders),
    ):
        monkeypatch.setenv(var, str(value))
    return e
