"""Task spec validation: cross-field rules and lookup errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from evalbench.errors import SpecError, UnknownNameError
from evalbench.specs.task import load_task, parse_task_file, resolve_tasks

GOOD = {
    "name": "t",
    "version": 1,
    "description": "d",
    "dataset": {"builder": "manifest"},
    "audio": {"sample_rate": 16000, "clip_seconds": 1.0},
    "labels": {"type": "single", "classes": ["a", "b", "c"]},
    "splits": {"type": "fixed"},
    "metrics": ["accuracy"],
}


def write(tmp_path: Path, **changes) -> Path:
    data = {**GOOD, **changes}
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_good_spec_parses(tmp_path: Path) -> None:
    spec = parse_task_file(write(tmp_path))
    assert spec.primary_metric == "accuracy" and spec.dataset_name == "t"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics": ["acuracy"]}, "metrics: unknown metric 'acuracy'; did you mean 'accuracy'?"),
        ({"metrics": []}, "metrics: list at least one metric"),
        (
            {"labels": {"type": "multilabel"}, "metrics": ["accuracy"]},
            "metrics: accuracy is undefined for multilabel",
        ),
        (
            {"labels": {"type": "binary", "classes": ["a", "b", "c"]}},
            "labels.classes: a binary task has exactly 2",
        ),
        (
            {"labels": {"type": "single", "classes": ["a", "a"]}},
            "labels.classes: duplicate class names ['a']",
        ),
        ({"labels": {"type": "single", "classes": ["a,b", "c"]}}, "contain no comma"),
        (
            {"splits": {"type": "folds", "folds": 5, "validation": {"rule": "official"}}},
            "splits.validation.rule: 'official' is the valid split of a fixed split; a k-fold task validates on "
            "'holdout'",
        ),
        (
            {"splits": {"type": "folds", "folds": 1, "validation": {"rule": "holdout"}}},
            "splits.folds: need at least 2 folds, got 1; a k-fold task states k, e.g. "
            "'splits: {type: folds, folds: 5}'",
        ),
        ({"splits": {"type": "folds"}}, "splits.folds: need at least 2 folds, got none; a k-fold task states k"),
        ({"splits": {"type": "folds", "folds": 2, "validation": {"rule": "next_fold"}}}, "need at least 3 folds"),
        ({"splits": {"type": "fixed", "validation": {"rule": "holdout"}}}, "uses its 'official' valid split"),
        (
            {"dataset": {"builder": "synthetc"}},
            "dataset.builder: unknown dataset builder 'synthetc'; did you mean 'synthetic'?",
        ),
        ({"audio": {"sample_rate": 16000, "clip_seconds": 0}}, "audio.clip_seconds: must be in (0, 3600]"),
        (
            {"audio": {"sample_rate": 16000, "clip_seconds": 1, "crop": "middle"}},
            "audio.crop: 'middle' is not one of",
        ),
        ({"version": 0}, "version: must be a positive integer"),
    ],
)
def test_invalid_specs_are_rejected_with_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    path = write(tmp_path, **changes)
    with pytest.raises(SpecError) as err:
        parse_task_file(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_kfold_validation_defaults_to_the_grouped_stratified_holdout(tmp_path: Path) -> None:
    spec = parse_task_file(write(tmp_path, splits={"type": "folds", "folds": 5}))
    v = spec.splits.validation
    assert (v.rule, v.fraction, v.grouped, v.stratified) == ("holdout", 0.1, True, True)
    partial = parse_task_file(write(tmp_path, splits={"type": "folds", "folds": 5, "validation": {"fraction": 0.2}}))
    assert (partial.splits.validation.rule, partial.splits.validation.fraction) == ("holdout", 0.2)
    assert parse_task_file(write(tmp_path)).splits.validation.rule == "official"  # fixed: the official valid split


def test_name_must_match_file(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.rename(tmp_path / "other.yaml")
    with pytest.raises(SpecError, match="must equal the file name 'other'"):
        parse_task_file(tmp_path / "other.yaml")


def test_unknown_task_suggests_a_close_name(tmp_path: Path) -> None:
    write(tmp_path, name="speech")
    with pytest.raises(UnknownNameError, match="did you mean 'speech'"):
        load_task("speach", tmp_path)
    with pytest.raises(UnknownNameError, match="no task given"):
        resolve_tasks(" , ", tmp_path)


def test_suites_expand_in_order_without_duplicates(tmp_path: Path) -> None:
    for n in ("a", "b", "c"):
        write(tmp_path, name=n)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.yaml").write_text("name: s\ndescription: x\ntasks: [b, a]\n")
    assert [t.name for t in resolve_tasks("c,s,a", tmp_path)] == ["c", "b", "a"]
