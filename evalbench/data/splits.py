"""Train / validation / test rotations of a task, per seed.

Fixed-split tasks have one rotation: the official train, valid and test splits;
the valid split is used only for early stopping and selection, never merged
into training (docs/protocol.md §2.3).

k-fold tasks have k rotations: fold i is the test set.  Validation is either

- ``holdout`` (default, evalbench's fix of docs/protocol.md §4 flaw 3): a
  class-stratified ``fraction`` of the remaining folds drawn *by group*, so no
  source recording sits on both sides, from an RNG seeded by (seed, fold)
  (regression tasks stratify by target decile bins computed on the remaining
  folds only, :meth:`~evalbench.data.task_data.TaskData.primary_labels`); or
- ``next_fold``: HEAR's rule, validation = fold i+1 (mod k); or
- ``random`` (the ``evar`` protocol preset overrides the task's rule with it):
  the reference harness's draw, a random ungrouped, unstratified 10 % of the
  remaining folds, redrawn until every class of the pool is present
  (:func:`random_holdout`).

The drawn validation membership is hashed into every run and can be written to
disk for audit (:func:`write_rotation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalbench.data.task_data import TaskData
from evalbench.utils.hashing import sha256_lines
from evalbench.utils.io import atomic_write_text


@dataclass(frozen=True)
class Rotation:
    """Row indices of one train/valid/test assignment.

    Attributes:
        fold: Test fold (1..k) for k-fold tasks, None for fixed splits.
        train: Training rows.
        valid: Validation rows.
        test: Test rows.
    """

    fold: int | None
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def valid_sha256(self, files: list[str]) -> str:
        """SHA-256 of the sorted validation file list."""
        return sha256_lines(sorted(files[i] for i in self.valid))


def grouped_holdout(
    labels: np.ndarray,
    groups: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    *,
    stratified: bool = True,
    grouped: bool = True,
) -> np.ndarray:
    """Draw a validation mask from a pool of clips, whole groups at a time.

    Each group is assigned the most common label among its clips (ties: the
    smallest label).  With ``stratified``, for each class the groups of that
    class are shuffled and taken until at least ``fraction`` of the class's clips
    are held out; a class with two or more groups always contributes at least
    one group and always keeps at least one in training.  Without
    ``stratified`` the same is done over all groups at once.

    Args:
        labels: ``(n,)`` integer labels of the pool (-1 = none).
        groups: ``(n,)`` group ids of the pool.
        fraction: Target share of clips held out.
        rng: Random generator (seeded by the caller per seed and fold).
        stratified: Balance the holdout per class.
        grouped: Keep groups whole; if False every clip is its own group.

    Returns:
        ``(n,)`` boolean mask, True for validation clips.
    """
    n = len(labels)
    unit = groups if grouped else np.arange(n).astype(str).astype(object)
    keys, inverse = np.unique(unit.astype(str), return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(keys))
    group_label = np.empty(len(keys), dtype=np.int64)
    for g in range(len(keys)):
        values, counts = np.unique(labels[inverse == g], return_counts=True)
        group_label[g] = values[counts.argmax()]
    chosen = np.zeros(len(keys), dtype=bool)
    strata = np.unique(group_label) if stratified else np.array([0])
    for cls in strata:
        members = np.flatnonzero(group_label == cls) if stratified else np.arange(len(keys))
        members = members[rng.permutation(len(members))]
        target = fraction * sizes[members].sum()
        taken = 0
        for count, g in enumerate(members):
            if taken >= target or count >= len(members) - 1:
                break
            chosen[g] = True
            taken += sizes[g]
    return chosen[inverse]


RANDOM_TRIES = 100  # the reference harness's retry limit
RANDOM_FRACTION = 0.1  # and its validation share, whatever the task declares


def random_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The reference harness's validation draw from a pool (docs/protocol.md §2.3), as a boolean mask.

    ``round(fraction · n)`` clips drawn uniformly, ignoring groups and classes,
    redrawn up to :data:`RANDOM_TRIES` times until every class present in the
    pool is present in the draw; after that the last draw is kept (as the
    reference does).  Groups are not respected: clips of one source recording
    can sit on both sides, the leakage evalbench's default rule removes.

    Args:
        y: Labels of the pool, ``(n,)`` integers or ``(n, C)`` multi-hot.
        fraction: Share of the pool that validates.
        rng: Random generator (seeded by the caller per seed and fold).
    """
    n = len(y)
    size = max(1, round(fraction * n))
    wanted = (y.sum(axis=0) > 0) if y.ndim == 2 else np.unique(y)
    for _ in range(RANDOM_TRIES):
        mask = np.zeros(n, dtype=bool)
        mask[rng.choice(n, size=size, replace=False)] = True
        found = (y[mask].sum(axis=0) > 0) if y.ndim == 2 else np.unique(y[mask])
        if (found >= wanted).all() if y.ndim == 2 else len(found) == len(wanted):
            break
    return mask


def rotations(data: TaskData, seed: int, rule: str | None = None) -> list[Rotation]:
    """All rotations of ``data`` for one seed (see module docstring); ``rule`` overrides the task's k-fold rule."""
    spec = data.task.splits
    rule = rule or spec.validation.rule
    if spec.type == "fixed":
        assert data.split is not None
        train, valid, test = (np.flatnonzero(data.split == s) for s in ("train", "valid", "test"))
        return [Rotation(None, train, valid, test)]
    assert data.fold is not None
    k = spec.folds
    out = []
    for i in range(1, k + 1):
        test = np.flatnonzero(data.fold == i)
        if rule == "next_fold":
            valid = np.flatnonzero(data.fold == i % k + 1)
            train = np.flatnonzero((data.fold != i) & (data.fold != i % k + 1))
        elif rule == "random":
            pool = np.flatnonzero(data.fold != i)
            mask = random_holdout(data.y[pool], RANDOM_FRACTION, np.random.default_rng([seed, i]))
            valid, train = pool[mask], pool[~mask]
        else:
            pool = np.flatnonzero(data.fold != i)
            rng = np.random.default_rng([seed, i])
            mask = grouped_holdout(
                data.primary_labels(pool),  # label frequencies of the pool only: test labels stay out
                data.groups[pool],
                spec.validation.fraction,
                rng,
                stratified=spec.validation.stratified,
                grouped=spec.validation.grouped,
            )
            valid, train = pool[mask], pool[~mask]
        out.append(Rotation(i, train, valid, test))
    return out


def write_rotation(folder: Path, data: TaskData, rotation: Rotation, seed: int) -> Path:
    """Write the validation file list of a rotation (for audit); returns its path."""
    name = f"{data.task.name}-v{data.task.version}-fold{rotation.fold}-seed{seed}.txt"
    path = Path(folder) / name
    atomic_write_text(path, "\n".join(sorted(data.files[i] for i in rotation.valid)) + "\n")
    return path
