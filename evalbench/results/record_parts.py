"""Provenance and data-side parts of the run record: :mod:`evalbench.results.record` re-exports them.

Split from ``record.py`` to keep each module readable; the classes are described there
(the JSON Schema's ``$defs`` are named by class, not by module).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp32", "bf16", "fp16"]  # utils.precision.PRECISIONS (which imports torch)


@dataclass(frozen=True, kw_only=True)
class GitState:
    """The evalbench checkout that computed the record.

    Attributes:
        commit: Commit hash of the checkout (null outside a git checkout).
        dirty: Whether ``evalbench/`` had uncommitted changes (null outside a git checkout).
    """

    commit: str | None
    dirty: bool | None


@dataclass(frozen=True, kw_only=True)
class Environment:
    """Versions and device that can move a score.

    Attributes:
        evalbench: evalbench version.
        python: Python version.
        platform: Platform string.
        torch: PyTorch version.
        numpy: NumPy version.
        device: Device of the probe (``cpu``, ``cuda:0``...).
        torch_threads: PyTorch intra-op threads.
    """

    evalbench: str
    python: str
    platform: str
    torch: str
    numpy: str
    device: str
    torch_threads: int


@dataclass(frozen=True, kw_only=True)
class Compute:
    """How the embeddings were computed (:mod:`evalbench.utils.precision`).

    Attributes:
        device: Device type of the encoder (``cpu``, ``cuda``).
        precision: ``fp32``, or ``bf16``/``fp16`` autocast.
        tf32: Whether TF32 matmuls were allowed.
        check_deviation: Largest relative deviation from float32 on the check batch (null at fp32).
        processes: Processes that extracted (torchrun world size).
    """

    device: str
    precision: Precision
    tf32: bool
    check_deviation: float | None
    processes: int


@dataclass(frozen=True, kw_only=True)
class Contamination:
    """Test clips the encoder was trained on (only with ``--allow-contaminated``).

    Attributes:
        test_clips_seen_in_training: Scored clips whose audio is in the encoder's training set.
        test_clips: Scored clips.
        examples: A few of the seen clips.
    """

    test_clips_seen_in_training: int
    test_clips: int
    examples: list[str]


@dataclass(frozen=True, kw_only=True)
class ExcludedFile:
    """One clip ``run --skip-bad`` left out (:class:`evalbench.data.skip_bad.ExcludedClip`).

    Attributes:
        file: The clip's ``file_name`` in the dataset's ``metadata.csv`` (relative to the dataset's audio root).
        part: The split (``train``, ``valid``, ``test``) or fold (``fold<k>``) that held it.
        kind: The problem as ``data verify`` names it (``unreadable``, ``truncated``, ``nonfinite``, ``missing``...).
        detail: What the check found.
    """

    file: str
    part: str
    kind: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class Exclusions:
    """Clips left out of every split because they could not be used (only with ``run --skip-bad``).

    The scores are over the task's other clips; ``task.n_clips`` counts those.  The record's file name ends in
    ``.skip-bad.json`` and the leaderboard marks its cell.

    Attributes:
        option: The option that allowed it (``--skip-bad``).
        count: Number of excluded clips.
        by_part: Excluded clips per split or fold.
        files: Every excluded clip, in metadata order.
    """

    option: Literal["--skip-bad"]
    count: int
    by_part: dict[str, int]
    files: list[ExcludedFile]


__all__ = ["Compute", "Contamination", "Environment", "ExcludedFile", "Exclusions", "GitState", "Precision"]
