"""``run --skip-bad``: leave out the clips ``run`` would refuse, and say so everywhere the score goes.

Without the flag a bad clip stops ``run`` with its path and reason (exit 2): an
evaluation never proceeds with a silently dropped or damaged clip.  With it,
before anything is encoded:

1. every clip of the task is decoded once by the checker of ``data verify``
   (:func:`evalbench.data.verify.check_clips`), so the two can never disagree.
   The clips it reports as missing, unreadable, truncated, empty, non-finite,
   implausible or outside the spec's duration bounds are exactly those every
   decode in ``run`` refuses, and they are excluded from whichever split or fold
   holds them.  Digitally silent clips are valid audio (``run`` uses them as
   they are) and stay.
2. The task's checks run again on what remains
   (:func:`evalbench.data.task_data.build_task_data`): an emptied split or fold,
   or a class left without training clips, is the same clear error as in
   prepared metadata.  On top of those, a class that the exclusion leaves with
   no clip in a split or fold where it had clips is refused (:func:`without`).
   The score would otherwise be over another class set than the task's, and
   the only sign of it would be a smaller number.
3. The run record lists every excluded file under ``excluded``
   (:func:`exclusions_record`).  The list enters the record's staleness key, and
   the record goes to its own file (:func:`skip_bad_path`).  So a skipped run
   never overwrites the record of the full task, and a run without the flag is
   never answered with it.  ``run`` prints a warning with the count
   (:func:`warn`), and the leaderboard marks the row.

A ``--skip-bad`` run that finds no bad clip is a plain run: the same data, the
same cache entries and the same record file as without the flag.  The check
costs one decode of every clip per run, even when the embeddings are cached:
which clips are bad is a property of the files as they are now.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.data.task_data import TaskData, build_task_data
from evalbench.data.verify import check_clips
from evalbench.errors import DataError

log = logging.getLogger(__name__)

KEPT_KINDS = frozenset({"silent"})
"""Problems of ``data verify`` that ``run`` accepts, so ``--skip-bad`` keeps those clips (silence is valid audio)."""
SHOWN = 10  # excluded files named one per line in the warning; the record lists every one
SUFFIX = ".skip-bad.json"


@dataclass(frozen=True)
class ExcludedClip:
    """One clip left out by ``--skip-bad``.

    Attributes:
        file: The clip's ``file_name`` in the dataset's ``metadata.csv``, relative to the dataset's audio root.
            The audio root can be the user's own folder outside the data root (the ``manifest`` builder), so
            this is the one path that names the clip the same way on every machine.
        part: The split (``train``, ``valid``, ``test``) or fold (``fold3``) that held it.
        kind: The problem, as ``data verify`` names it (``unreadable``, ``nonfinite``, ``missing``...).
        detail: What the check found.
    """

    file: str
    part: str
    kind: str
    detail: str

    def as_record(self) -> dict[str, str]:
        """The clip as the run record's ``excluded.files`` lists it."""
        return dataclasses.asdict(self)


def _part_names(data: TaskData) -> list[str]:
    """Per row, its split or ``fold<k>``: the cache part names of :meth:`TaskData.parts`."""
    if data.fold is not None:
        return [f"fold{k}" for k in data.fold]
    assert data.split is not None
    return [str(s) for s in data.split]


def find_bad(data: TaskData, threads: int = 4) -> list[ExcludedClip]:
    """The clips of ``data`` that ``run`` would refuse, in metadata order (decodes every clip once).

    A decoder's message may quote the file's absolute path; the detail names the clip by its metadata path
    instead, so that a record holds no path of the machine that wrote it.
    """
    parts = _part_names(data)
    return [
        ExcludedClip(data.files[i], parts[i], problem.kind, problem.detail.replace(str(data.path(i)), data.files[i]))
        for i, problem in enumerate(check_clips(data, threads))
        if problem is not None and problem.kind not in KEPT_KINDS
    ]


def _class_counts(data: TaskData, rows: np.ndarray) -> np.ndarray:
    """Clips (multi-label: positives) per class among ``rows``."""
    y = data.y[rows]
    return y.sum(axis=0) if y.ndim == 2 else np.bincount(y, minlength=len(data.classes))


def _check_emptied(data: TaskData, keep: np.ndarray, excluded: Sequence[ExcludedClip]) -> None:
    """Refuse an exclusion that empties a split or fold, or a class within one.

    Raises:
        DataError: Naming the task, the part, the class, and the excluded files that emptied it.
    """
    task = data.task.name
    head = f"task '{task}': excluding {len(excluded)} bad clip(s) (--skip-bad) leaves"
    advice = "repair or replace those files (`evalbench data verify` lists every problem), or leave the flag out"
    for part, rows in data.parts().items():
        gone = rows[~keep[rows]]
        if not len(gone):
            continue
        names = ", ".join(f"'{data.files[i]}'" for i in gone[:5]) + (" ..." if len(gone) > 5 else "")
        if len(gone) == len(rows):
            raise DataError(f"{head} {part} with no clip (it had {len(rows)}: {names}); {advice}")
        if data.task.labels.type == "regression":
            continue
        before, after = _class_counts(data, rows), _class_counts(data, rows[keep[rows]])
        for c in np.flatnonzero((before > 0) & (after == 0)):
            raise DataError(
                f"{head} class '{data.classes[c]}' with no clip in {part} (it had {int(before[c])}; excluded there: "
                f"{names}); the score would be over another set of classes than the task's. {advice}"
            )


def without(data: TaskData, excluded: Sequence[ExcludedClip]) -> TaskData:
    """``data`` without the ``excluded`` clips, checked again as prepared metadata is.

    The metadata rows of the kept clips go through
    :func:`~evalbench.data.task_data.build_task_data` in their original order.
    The labels, groups, splits and folds that come out are then exactly those of
    a dataset whose metadata never listed the excluded clips, and so are the
    scores (``tests/reliability/test_skip_bad.py`` compares the two).  The
    prepared dataset itself, with its fingerprint, is unchanged: the record
    names the full dataset together with the list of excluded files.

    Raises:
        DataError: The exclusion empties a split, fold or class there (:func:`_check_emptied`), or what remains
            fails the task's own checks (e.g. a class without training clips in some rotation).
    """
    if not excluded:
        return data
    drop = {clip.file for clip in excluded}
    keep = np.array([f not in drop for f in data.files], dtype=bool)
    _check_emptied(data, keep, excluded)
    metadata = data.dataset.metadata[keep].reset_index(drop=True)
    try:
        kept = build_task_data(data.task, dataclasses.replace(data.dataset, metadata=metadata))
    except DataError as exc:
        raise DataError(f"after excluding {len(excluded)} bad clip(s) (--skip-bad): {exc}") from None
    if kept.classes != data.classes:  # a vocabulary read from the labels would shrink: the task would change
        raise DataError(
            f"task '{data.task.name}': excluding {len(excluded)} bad clip(s) (--skip-bad) changes its classes "
            f"from {data.classes} to {kept.classes}; repair or replace those files"
        )
    return kept


def exclusions_record(excluded: Sequence[ExcludedClip]) -> dict[str, Any]:
    """The run record's ``excluded`` entry (:class:`evalbench.results.record_parts.Exclusions`)."""
    return {
        "option": "--skip-bad",
        "count": len(excluded),
        "by_part": dict(sorted(Counter(clip.part for clip in excluded).items())),
        "files": [clip.as_record() for clip in excluded],
    }


def skip_bad_path(record_path: Path) -> Path:
    """``<dir>/<task>.<probe>[...].json`` → ``<dir>/<task>.<probe>[...].skip-bad.json``: the record with exclusions.

    One file per (encoder, task, protocol) whatever the excluded set: a later ``--skip-bad`` run replaces it
    (its staleness key holds the set), and the full task's record beside it is never touched.
    """
    return record_path.with_name(record_path.name.removesuffix(".json") + SUFFIX)


def warn(data: TaskData, excluded: Sequence[ExcludedClip]) -> None:
    """The warning ``run --skip-bad`` prints: the count per part, then the first :data:`SHOWN` files by path."""
    parts = ", ".join(f"{part} {n}" for part, n in sorted(Counter(c.part for c in excluded).items()))
    log.warning(
        "warning: %s: %d clip(s) excluded as unreadable or damaged (--skip-bad: %s); %d clip(s) remain; "
        "the run record lists every excluded file and the leaderboard marks the row",
        data.task.name,
        len(excluded),
        parts,
        data.n - len(excluded),
    )
    for clip in excluded[:SHOWN]:
        log.warning("  excluded (%s) %s %s: %s", clip.part, clip.kind, data.dataset.audio_root / clip.file, clip.detail)
    if len(excluded) > SHOWN:
        log.warning("  ... and %d more", len(excluded) - SHOWN)


__all__ = ["ExcludedClip", "exclusions_record", "find_bad", "skip_bad_path", "warn", "without"]
