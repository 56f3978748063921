"""``evalbench data verify``: decode every file of a prepared dataset and report problems.

Each clip listed in the canonical metadata is opened and fully decoded (block by block).  A file
is a *problem* when it is missing (or a directory), undecodable, truncated (a
WAV whose data chunk is shorter than its header declares, an MP3 that decodes
to fewer frames than its header declares), empty, holds NaN or infinite
samples or implausibly large ones, is digitally silent (every sample zero), or
shorter/longer than the spec's ``dataset.min_seconds`` / ``max_seconds``.  The
report names every problem file, lists the spec's known-bad exclusions
(removed at prepare time, never silently) and counts clips per class and split
or fold.  Nothing is dropped: a problem must be fixed or excluded in the spec.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalbench.data.audio import scan, stats_problem
from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.errors import AudioDecodeError
from evalbench.specs.task import TaskSpec
from evalbench.utils.console import progress


@dataclass(frozen=True)
class Problem:
    """One bad file: path, kind and detail."""

    path: str
    kind: str  # missing | unreadable | truncated | empty | nonfinite | implausible | silent | too_short | too_long
    detail: str


@dataclass
class VerifyReport:
    """Result of verifying one task's dataset."""

    task: str
    n_files: int
    problems: list[Problem] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    counts: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """True when no file has a problem."""
        return not self.problems


def check_file(path: Path, min_seconds: float, max_seconds: float | None) -> Problem | None:
    """The problem with one audio file, or None if it is fine.

    The same decode and checks as every decode in ``run``
    (:func:`evalbench.data.audio.stats_problem`), plus digital silence, which
    ``run`` accepts (silence is valid audio) but is worth a look.  The file is
    decoded block by block (:func:`evalbench.data.audio.scan`), so an hour-long
    recording costs one block of memory, not the whole decoded file.
    """
    if path.is_file() and path.stat().st_size == 0:
        return Problem(str(path), "empty", "zero-length file")
    try:
        stats = scan(path)
    except AudioDecodeError as exc:
        kind = "missing" if not path.exists() else "unreadable"
        return Problem(str(path), kind, str(exc).split(": ", 1)[-1])
    found = stats_problem(path, stats, min_seconds, max_seconds)
    if found is not None:
        return Problem(str(path), *found)
    if not stats.nonzero:
        return Problem(str(path), "silent", "every sample is zero")
    return None


def class_counts(data: TaskData) -> pd.DataFrame:
    """Clips per class (rows) and split or fold (columns); multilabel counts positives; regression: target deciles."""
    part = [f"fold{f}" for f in data.fold] if data.fold is not None else list(data.split)
    if data.task.labels.type == "regression":  # no classes: clips per decile bin of the targets
        bins = data.primary_labels()
        names, y = [f"decile {b + 1}" for b in range(int(bins.max()) + 1)], bins
    else:
        names, y = data.classes, data.y
    onehot = y if y.ndim == 2 else np.eye(len(names), dtype=np.int64)[y]
    frame = pd.DataFrame(onehot.astype(np.int64), columns=names)
    frame["part"] = part
    table = frame.groupby("part").sum().T
    table["total"] = table.sum(axis=1)
    return table


def check_clips(data: TaskData, threads: int = 4) -> list[Problem | None]:
    """:func:`check_file` of every clip of ``data`` under the spec's duration bounds, in metadata order.

    The one checker of ``data verify`` and of ``run --skip-bad`` (:mod:`evalbench.data.skip_bad`), so that
    the two can never disagree on which files are bad.
    """
    paths = [data.path(i) for i in range(data.n)]
    lo, hi = data.task.dataset.min_seconds, data.task.dataset.max_seconds
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(
            progress(
                pool.map(lambda p: check_file(p, lo, hi), paths),
                total=len(paths),
                desc=f"verify {data.task.name}",
                unit="file",
                leave=False,
            )
        )


def verify_task(task: TaskSpec, data_root: Path, threads: int = 4) -> VerifyReport:
    """Decode every clip of a prepared task and report problems, exclusions and class counts.

    Raises:
        DatasetNotReadyError: The dataset is not prepared.
    """
    data = open_task_data(task, data_root, require_files=False)
    results = check_clips(data, threads)
    return VerifyReport(
        task=task.name,
        n_files=data.n,
        problems=[p for p in results if p is not None],
        excluded=list(data.dataset.info.get("excluded", [])),
        counts=class_counts(data),
    )


__all__ = ["Problem", "VerifyReport", "check_clips", "check_file", "verify_task"]
