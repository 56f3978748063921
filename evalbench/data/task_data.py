"""A task's view of its prepared dataset: files, encoded labels, splits, groups.

Labels are encoded once against the task's fixed class vocabulary (docs/protocol.md
§4, flaws 1 and 2): single-label and binary tasks give integer labels of shape
``(n,)`` (a binary task is two classes, the second positive); multi-label tasks
give a multi-hot ``(n, C)`` matrix; regression tasks give float64 targets
``(n,)`` and no classes.  The same encoding serves every split.
Metadata that contradicts the spec fails here with the file, row and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evalbench.data.metadata import MISSING, PreparedDataset
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec

SPLITS = ("train", "valid", "test")
QUANTILE_BINS = 10  # strata of a regression task's validation draw
GROUP_CHECKED = frozenset({"manifest", "synthetic"})
"""Builders whose splits evalbench or its user made: a group on two sides is a mistake (:func:`_check_group_overlap`).

The official distributions' builders keep the split as published (FSDD puts every speaker in every split by
design; their overlap is a property of the benchmark, counted in ``dataset.json``), so they are not refused.
"""


@dataclass(frozen=True)
class TaskData:
    """Everything about a task's clips except the audio itself.

    Attributes:
        task: The task spec.
        dataset: The prepared dataset.
        files: Clip paths relative to ``dataset.audio_root``, in metadata order.
        classes: The fixed class vocabulary (output order); empty for regression.
        y: ``(n,)`` int64 labels, ``(n, C)`` float32 multi-hot for multilabel, or
            ``(n,)`` float64 targets for regression.
        groups: ``(n,)`` group ids (source recording, speaker); the file name if
            the metadata has no ``group`` column.
        split: ``(n,)`` split names for fixed-split tasks, else None.
        fold: ``(n,)`` fold numbers 1..k for k-fold tasks, else None.
    """

    task: TaskSpec
    dataset: PreparedDataset
    files: list[str]
    classes: list[str]
    y: np.ndarray
    groups: np.ndarray
    split: np.ndarray | None
    fold: np.ndarray | None

    @property
    def n(self) -> int:
        """Number of clips."""
        return len(self.files)

    def path(self, i: int) -> Path:
        """Absolute path of clip ``i``."""
        return self.dataset.audio_root / self.files[i]

    def parts(self) -> dict[str, np.ndarray]:
        """Row indices of each cache part: ``train/valid/test`` or ``fold1..foldk``."""
        if self.fold is not None:
            return {f"fold{k}": np.flatnonzero(self.fold == k) for k in range(1, self.task.splits.folds + 1)}
        assert self.split is not None
        return {s: np.flatnonzero(self.split == s) for s in SPLITS}

    def primary_labels(self, rows: np.ndarray | None = None) -> np.ndarray:
        """One integer label per clip of ``rows`` (default: all), for stratifying a validation draw.

        Multi-label: the present class that is rarest *among ``rows``* (-1 if none).  Regression: the target's
        quantile bin (``QUANTILE_BINS`` = 10 bins, edges the deciles of the targets *of ``rows``*).  The protocol
        passes the training portion of a rotation, so the test fold's labels never influence which clips validate.
        """
        y = self.y if rows is None else self.y[rows]
        if self.task.labels.type == "regression":
            edges = np.quantile(y, np.linspace(0.0, 1.0, QUANTILE_BINS + 1)[1:-1]) if len(y) else []
            return np.searchsorted(edges, y, side="right").astype(np.int64)
        if y.ndim == 1:
            return y
        freq = y.sum(axis=0)
        ranked = np.where(y > 0, freq[None, :], np.inf)
        out = ranked.argmin(axis=1)
        out[~np.isfinite(ranked.min(axis=1))] = -1
        return out


def _vocabulary(task: TaskSpec, dataset: PreparedDataset, labels: pd.Series, where: Path) -> list[str]:
    """The class order: the spec's list, else the builder's published vocabulary, else sorted labels."""
    if task.labels.classes is not None:
        return list(task.labels.classes)
    if dataset.info.get("classes"):
        return list(dataset.info["classes"])
    found = {c for cell in labels for c in cell.split(",") if c} if task.labels.type == "multilabel" else set(labels)
    classes = sorted(found)
    if task.labels.type == "binary" and len(classes) != 2:
        raise DataError(f"{where}: a binary task needs exactly 2 labels, found {classes}; list 'labels.classes'")
    return classes


def build_task_data(task: TaskSpec, dataset: PreparedDataset) -> TaskData:
    """Validate a prepared dataset against ``task`` and encode its labels.

    Raises:
        DataError: Missing columns, unknown labels, bad split or fold values,
            duplicate files, or an empty split/fold; the message names the
            metadata file, row and value.
    """
    meta = dataset.metadata
    where = dataset.root / "metadata.csv"
    need = ["file_name", "label", "fold" if task.splits.type == "folds" else "split"]
    missing = [c for c in need if c not in meta.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} required by task '{task.name}'")
    dupes = meta["file_name"][meta["file_name"].duplicated()]
    if len(dupes):
        raise DataError(f"{where}: file_name '{dupes.iloc[0]}' appears more than once")
    regression = task.labels.type == "regression"
    classes = [] if regression else _vocabulary(task, dataset, meta["label"], where)
    index = {c: i for i, c in enumerate(classes)}
    labels = meta["label"].tolist()
    if regression:
        y = _float_targets(task, labels, where)
    elif task.labels.type == "multilabel":
        y = np.zeros((len(meta), len(classes)), dtype=np.float32)
        for row, cell in enumerate(labels):
            for name in (c for c in cell.split(",") if c):
                if name not in index:
                    raise DataError(f"{where}: row {row + 2}: label '{name}' is not in the task's classes")
                y[row, index[name]] = 1.0
    else:
        unknown = [(r, v) for r, v in enumerate(labels) if v not in index]
        if unknown:
            row, value = unknown[0]
            raise DataError(
                f"{where}: row {row + 2}: label '{value}' is not one of task '{task.name}' classes "
                f"({len(unknown)} such row(s)); fix the metadata or the spec's labels.classes"
            )
        y = np.array([index[v] for v in labels], dtype=np.int64)
    split = fold = None
    if task.splits.type == "folds":
        fold = meta["fold"].to_numpy(dtype=np.int64)
        k = task.splits.folds
        outside = np.flatnonzero((fold < 1) | (fold > k))
        if len(outside):
            row = int(outside[0])
            raise DataError(
                f"{where}: row {row + 2}: fold {fold[row]} is outside 1..{k} declared by task '{task.name}' "
                f"({len(outside)} such row(s), values {sorted(set(fold[outside].tolist()))}); fix the metadata or "
                "the spec's splits.folds"
            )
        empty = [f for f in range(1, k + 1) if not (fold == f).any()]
        if empty:
            raise DataError(
                f"{where}: fold(s) {empty} have no clips; task '{task.name}' declares splits.folds: {k}, and each "
                "fold is the test set once. Fix the metadata's fold column or the spec's splits.folds"
            )
    else:
        split = meta["split"].to_numpy(dtype=object)
        unknown = [r for r, v in enumerate(split) if v not in SPLITS]
        if unknown:
            row = unknown[0]
            raise DataError(
                f"{where}: row {row + 2}: split '{split[row]}' is not train, valid or test ({len(unknown)} such "
                f"row(s), values {sorted({str(split[r]) for r in unknown})}); fix the metadata's split column"
            )
        empty = [s for s in SPLITS if not (split == s).any()]
        if empty:
            raise DataError(
                f"{where}: split(s) {empty} have no clips; a fixed split needs train, valid (selection) and test "
                f"clips. Fix the metadata, or make task '{task.name}' k-fold (splits: {{type: folds, folds: K}})"
            )
    if not regression:
        _check_training_classes(task, classes, y, split, fold, where)
    if dataset.content and not task.dataset.allow_duplicate_audio:
        _check_duplicate_audio(meta["file_name"].tolist(), dataset.content, split, fold, where)
    groups = (meta["group"] if "group" in meta.columns else meta["file_name"]).to_numpy(dtype=object)
    if "group" in meta.columns and task.dataset.builder in GROUP_CHECKED and not task.dataset.allow_group_overlap:
        _check_group_overlap(meta["file_name"].tolist(), groups, split, fold, where)
    return TaskData(task, dataset, meta["file_name"].tolist(), classes, y, groups, split, fold)


def _float_targets(task: TaskSpec, labels: list[str], where: Path) -> np.ndarray:
    """A regression task's label column as float64 targets.

    Raises:
        DataError: A value that is not a number, or not finite; naming the file, row and value.
    """
    y = np.empty(len(labels), dtype=np.float64)
    for row, value in enumerate(labels):
        try:
            y[row] = float(value)
        except (TypeError, ValueError):
            y[row] = math.nan
        if not math.isfinite(y[row]):
            raise DataError(
                f"{where}: row {row + 2}: label '{value}' is not a finite number; task '{task.name}' is a regression "
                "task (labels.type: regression), whose label column holds one float target per clip"
            )
    return y


def _check_training_classes(
    task: TaskSpec, classes: list[str], y: np.ndarray, split: np.ndarray | None, fold: np.ndarray | None, where: Path
) -> None:
    """Every class must have training clips in every rotation, unless the spec allows it.

    A probe never trained on a class cannot predict it, and its test clips then
    only lower the score by an amount that depends on how many there are; the
    foundation accepted such tasks silently.  For fixed splits the training
    split must hold each class; for k-fold tasks each class needs clips outside
    every fold (the other folds train when that fold is tested).

    Raises:
        DataError: Naming the class, the split or fold, and where its clips are.
    """
    n_classes = len(classes)
    names = list(SPLITS) if split is not None else [f"fold {k}" for k in range(1, task.splits.folds + 1)]
    part = split if split is not None else np.array([f"fold {k}" for k in fold], dtype=object)
    # clips (multi-label: positives) per part and class, without a one-hot matrix: VoxCeleb1 is 153k × 1,251
    counts = np.zeros((len(names), n_classes), dtype=np.int64)
    for i, name in enumerate(names):
        rows = part == name
        counts[i] = y[rows].sum(axis=0) if y.ndim == 2 else np.bincount(y[rows], minlength=n_classes)
    if split is not None:
        train = counts[names.index("train")]
        lacking = [(int(c), "train") for c in np.flatnonzero(train == 0)]
    else:
        outside = counts.sum(axis=0)[None, :] - counts  # a fold's training clips: every other fold
        lacking = [(int(c), names[k]) for k, c in zip(*np.nonzero(outside == 0), strict=True)]
    allowed = set(task.labels.allow_missing_in_train)
    for c, where_missing in lacking:
        if classes[c] in allowed:
            continue
        present = ", ".join(f"{name} {int(counts[i, c])}" for i, name in enumerate(names) if counts[i, c])
        if split is not None:
            problem = f"class '{classes[c]}' has no clips in split 'train'"
        else:
            problem = f"class '{classes[c]}' has no training clips when {where_missing} is the test fold"
        raise DataError(
            f"{where}: {problem} (clips: {present or 'none at all'}); a probe cannot learn it. Fix the metadata, "
            f"drop the class from labels.classes, or list it in labels.allow_missing_in_train of task '{task.name}'"
        )


def _check_duplicate_audio(
    files: list[str], content: dict[str, str], split: np.ndarray | None, fold: np.ndarray | None, where: Path
) -> None:
    """Refuse byte-identical audio on both sides of a split (a leak from training into test).

    Raises:
        DataError: Naming both files and their splits or folds.
    """
    part = split if split is not None else np.array([f"fold {k}" for k in fold], dtype=object)
    first: dict[str, int] = {}
    for i, name in enumerate(files):
        sha = content.get(name)
        if sha is None or sha == MISSING:
            continue
        j = first.setdefault(sha, i)
        if j != i and part[j] != part[i]:
            raise DataError(
                f"{where}: '{files[j]}' ({part[j]}) and '{name}' ({part[i]}) have identical audio; the same clip on "
                "both sides of a split leaks training data into evaluation. Remove one, or set "
                "dataset.allow_duplicate_audio: true in the task spec if that is intended"
            )


def _check_group_overlap(
    files: list[str], groups: np.ndarray, split: np.ndarray | None, fold: np.ndarray | None, where: Path
) -> None:
    """Refuse a group (speaker, source recording) whose clips sit in two splits or folds.

    Takes of one recording or utterances of one speaker on both sides of a
    split let a probe score by recognising the source rather than the class:
    the same leak as duplicate audio, one step removed.  A spec that intends
    it (seen-speaker tasks) sets ``dataset.allow_group_overlap``.

    Raises:
        DataError: Naming the group, both rows, their files and splits or folds, and the count.
    """
    part = split if split is not None else np.array([f"fold {k}" for k in fold], dtype=object)
    first: dict[str, int] = {}
    clash: tuple[int, int] | None = None
    spanning: set[str] = set()
    for i, group in enumerate(groups):
        if not str(group).strip():  # no group given for this clip: nothing to keep together
            continue
        j = first.setdefault(str(group), i)
        if part[j] != part[i]:
            spanning.add(str(group))
            clash = clash or (j, i)
    if clash is None:
        return
    j, i = clash
    side = (lambda r: f"split '{part[r]}'") if split is not None else (lambda r: str(part[r]))
    raise DataError(
        f"{where}: group '{groups[j]}' is in {side(j)} (row {j + 2}, '{files[j]}') and {side(i)} (row {i + 2}, "
        f"'{files[i]}'); clips of one source on both sides of a split leak it into evaluation "
        f"({len(spanning)} such group(s)). Put each group's clips in one split or fold, or set "
        "dataset.allow_group_overlap: true in the task spec if the overlap is intended"
    )
