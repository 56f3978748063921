"""The contamination guard: never score an encoder on test clips it was trained on.

``evalbench pretrain`` records the SHA-256 of every training clip beside the
weights (``trained_on`` in the encoder YAML).  Before any work, ``run`` compares
it with the content hashes of each task's *evaluation* clips: the test split of
a fixed-split task, and every clip of a k-fold task (each is a test clip in its
fold's rotation).  An overlap refuses the run, naming the encoder, the task,
the count and an example file; ``--allow-contaminated`` scores anyway, records
the overlap in the run record and marks the leaderboard row.

Because the check is by content, it also catches a copy of an evaluation clip
under another name or in another folder, and a supervised baseline scored on
the folds it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evalbench.data.task_data import TaskData
from evalbench.errors import EvalbenchError
from evalbench.specs.encoder import EncoderSpec


@dataclass(frozen=True)
class Overlap:
    """Evaluation clips of one task that an encoder was trained on."""

    encoder: str
    task: str
    n_clips: int
    n_evaluated: int
    examples: list[str]

    def as_record(self) -> dict[str, object]:
        """The run record's ``contamination`` entry."""
        return {"test_clips_seen_in_training": self.n_clips, "test_clips": self.n_evaluated, "examples": self.examples}


def trained_hashes(spec: EncoderSpec) -> frozenset[str]:
    """Content hashes of the clips ``spec`` was pretrained on (empty when it records none).

    Raises:
        EvalbenchError: The YAML names a ``trained_on`` file that is missing.
    """
    path = spec.trained_on_path()
    if path is None:
        return frozenset()
    try:
        return frozenset(line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    except OSError:
        raise EvalbenchError(
            f"{spec.source_path}: pretrain.trained_on: {path} is missing; it lists the clips the encoder was trained "
            "on, which `run` needs to rule out contamination. Restore it or re-run the pretraining"
        ) from None


def evaluation_rows(data: TaskData) -> np.ndarray:
    """Rows whose clips are scored: the test split, or every clip of a k-fold task."""
    return np.arange(data.n) if data.fold is not None else np.flatnonzero(data.split == "test")


def find_overlap(spec: EncoderSpec, data: TaskData, seen: frozenset[str]) -> Overlap | None:
    """The evaluation clips of ``data`` whose content is in ``seen``, or None."""
    if not seen:
        return None
    rows = evaluation_rows(data)
    hits = [data.files[i] for i in rows if data.dataset.content.get(data.files[i]) in seen]
    if not hits:
        return None
    return Overlap(spec.name, data.task.name, len(hits), len(rows), hits[:5])


def check_contamination(
    spec: EncoderSpec, data: TaskData, allow: bool, seen: frozenset[str] | None = None
) -> Overlap | None:
    """Refuse (or, with ``allow``, report) an encoder trained on the task's evaluation clips.

    Args:
        spec: The encoder.
        data: The task.
        allow: Report instead of refusing.
        seen: The encoder's :func:`trained_hashes`, when already read (one read per encoder, not per task).

    Raises:
        EvalbenchError: An overlap and not ``allow``.
    """
    overlap = find_overlap(spec, data, trained_hashes(spec) if seen is None else seen)
    if overlap is not None and not allow:
        raise EvalbenchError(
            f"encoder '{spec.name}' was trained on {overlap.n_clips} of the {overlap.n_evaluated} evaluation clips of "
            f"task '{data.task.name}' (e.g. {overlap.examples[0]}); its score there would be inflated. Score it on "
            "other tasks, pretrain without them, or pass --allow-contaminated (the record and leaderboard mark it)"
        )
    return overlap
