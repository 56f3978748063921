"""Contract tests over every task, suite and encoder YAML in the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalbench.registry import BUILDERS, METRICS
from evalbench.specs.encoder import encoder_files, parse_encoder_file
from evalbench.specs.task import parse_suite_file, parse_task_file, suite_files, task_files

REPO = Path(__file__).resolve().parents[2]
TASK_FILES = task_files(REPO / "tasks")
SUITE_FILES = suite_files(REPO / "tasks")
ENCODER_FILES = encoder_files(REPO / "encoders")


def test_there_are_specs() -> None:
    assert len(TASK_FILES) >= 4 and SUITE_FILES and len(ENCODER_FILES) >= 2


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.stem)
def test_task_spec_is_valid(path: Path) -> None:
    spec = parse_task_file(path)
    assert spec.name == path.stem
    assert spec.version >= 1 and spec.description
    assert spec.dataset.builder in BUILDERS
    assert all(m in METRICS for m in spec.metrics)
    if spec.labels.type == "multilabel":
        assert "accuracy" not in spec.metrics
    if spec.dataset.builder == "synthetic":
        from evalbench.data.synthetic import CLASSES

        assert spec.labels.classes == CLASSES.get(spec.dataset.options["kind"])  # None for a regression kind
    assert len(spec.sha256) == 64


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: p.stem)
def test_suite_lists_existing_tasks(path: Path) -> None:
    suite = parse_suite_file(path)
    known = {p.stem for p in TASK_FILES}
    assert set(suite.tasks) <= known
    assert suite.name not in known


@pytest.mark.parametrize("path", ENCODER_FILES, ids=lambda p: p.stem)
def test_encoder_spec_is_valid(path: Path) -> None:
    spec = parse_encoder_file(path)
    assert spec.name == path.stem and spec.description
    spec.typed_options()


def test_synth_suite_covers_every_label_type() -> None:
    names = parse_suite_file(REPO / "tasks" / "suites" / "synth.yaml").tasks
    specs = [parse_task_file(REPO / "tasks" / f"{t}.yaml") for t in names]
    assert {s.labels.type for s in specs} == {"single", "binary", "multilabel", "regression"}
    assert any(s.splits.type == "folds" for s in specs)
