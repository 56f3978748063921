"""Rotations: grouped, stratified, seeded validation holdout; HEAR's next-fold rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from evalbench.data.prepare import open_task_data
from evalbench.data.splits import grouped_holdout, rotations
from evalbench.specs.task import load_task


def test_grouped_holdout_keeps_groups_whole_and_covers_classes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    groups = np.array([f"g{i // 4}" for i in range(200)], dtype=object)  # 4 takes per group, 10 groups per class
    mask = grouped_holdout(labels, groups, 0.1, rng)
    assert set(groups[mask]).isdisjoint(set(groups[~mask]))
    assert set(labels[mask]) == set(range(5))
    assert 0.08 <= mask.mean() <= 0.15
    again = grouped_holdout(labels, groups, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(mask, again)
    other = grouped_holdout(labels, groups, 0.1, np.random.default_rng(1))
    assert not np.array_equal(mask, other)


def test_a_class_never_loses_all_training_groups() -> None:
    labels = np.array([0, 0, 1, 1, 1, 1])
    groups = np.array(["a", "a", "b", "c", "d", "e"], dtype=object)
    mask = grouped_holdout(labels, groups, 0.45, np.random.default_rng(0))
    assert not mask[:2].any()  # class 0 has a single group: it stays in training
    assert 1 <= mask[2:].sum() <= 3


def test_fold_rotations(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    rots = rotations(data, seed=42)
    assert [r.fold for r in rots] == [1, 2, 3, 4, 5]
    for rot in rots:
        assert set(data.fold[rot.test]) == {rot.fold}
        assert rot.fold not in set(data.fold[rot.train]) | set(data.fold[rot.valid])
        assert len(set(rot.train) | set(rot.valid) | set(rot.test)) == data.n
        assert set(data.groups[rot.train]).isdisjoint(data.groups[rot.valid])  # no take on both sides
    assert rots[0].valid_sha256(data.files) != rotations(data, seed=43)[0].valid_sha256(data.files)
    assert rots[0].valid_sha256(data.files) == rotations(data, seed=42)[0].valid_sha256(data.files)


def test_next_fold_rule(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_timbre", tiny_tasks), tiny_data)
    spec = dataclasses.replace(
        data.task.splits, validation=dataclasses.replace(data.task.splits.validation, rule="next_fold")
    )
    data = dataclasses.replace(data, task=dataclasses.replace(data.task, splits=spec))
    for rot in rotations(data, seed=42):
        assert set(data.fold[rot.valid]) == {rot.fold % 5 + 1}
        assert set(data.fold[rot.train]).isdisjoint({rot.fold, rot.fold % 5 + 1})


def test_fixed_split_uses_the_official_valid_split(tiny_tasks: Path, tiny_data: Path) -> None:
    data = open_task_data(load_task("synth_pitch", tiny_tasks), tiny_data)
    (rot,) = rotations(data, seed=1)
    assert rot.fold is None
    assert set(data.split[rot.valid]) == {"valid"} and set(data.split[rot.test]) == {"test"}
