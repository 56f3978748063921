"""Where run records live and when an existing one is still valid.

Layout: ``<results>/<encoder>/<task>.<probe>[.<preset>[+<hash>]].json``
(:func:`evalbench.presets.record_file`), written atomically.  A record is *up to
date* when the evalbench version that computed it, its encoder identity, task
version and spec hash, dataset fingerprint, protocol id and probe configuration
and seeds all equal the current ones; ``run`` then skips the pair unless
``--overwrite`` is given.

Beside each record, ``<record>.predictions.npz`` (:func:`write_predictions`)
keeps what the record leaves out: every run's test rows and test scores, and the
labels of those rows, so that two encoders can be compared on the same test
clips (:func:`evalbench.uncertainty.paired_differences`) without the dataset.
It is written *after* the record, so the record (the result) never waits on it
and a failure leaves a valid record that is merely untested; the sidecar names
the record it belongs to (its ``created`` time, dataset and spec hashes, and a
hash of its runs), and :func:`load_predictions` ignores one that does not match:
a record rewritten without a new sidecar, or a sidecar left from a crash.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import ResultsError
from evalbench.results.schema import load_record, validate
from evalbench.utils.hashing import canonical_json, sha256_json
from evalbench.utils.io import RESULTS_ADVICE, atomic_savez, atomic_write_json

PREDICTIONS_FORMAT = 1


def staleness_key(record: dict[str, Any]) -> str:
    """The parts of a record that decide whether it is up to date, as canonical JSON.

    The files ``run --skip-bad`` excluded enter only when there are some, so the key of every record of the
    full task is what it was before the option existed: a run with another excluded set (or none) is never
    answered with this record.
    """
    key: dict[str, Any] = {
        "schema": record.get("schema_version"),
        "code": record.get("evalbench_version"),  # the code that computed the numbers
        "encoder": record["encoder"].get("identity_static"),
        "task": (
            record["task"].get("version"),
            record["task"].get("spec_sha256"),
            record["task"].get("dataset_sha256"),
        ),
        "probe": (record["probe"].get("protocol"), record["probe"].get("config")),
        "seeds": record.get("seeds"),
    }
    if record.get("excluded"):
        key["excluded"] = [f["file"] for f in record["excluded"]["files"]]
    return canonical_json(key)


def existing_is_current(path: Path, current: str) -> bool:
    """True if ``path`` holds a readable record whose :func:`staleness_key` equals ``current``."""
    if not path.is_file():
        return False
    try:
        return staleness_key(load_record(path)) == current
    except (ResultsError, KeyError, AttributeError):
        return False


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Validate a record and write it atomically (strict JSON: no bare NaN).

    Raises:
        ResultsError: The record fails :func:`~evalbench.results.schema.validate`; nothing is written.
    """
    validate(record, str(path))
    atomic_write_json(path, record, allow_nan=False, advice=RESULTS_ADVICE)


def iter_records(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """All run records under ``results_dir`` (sorted by path); malformed ones raise."""
    return [(p, load_record(p)) for p in sorted(Path(results_dir).glob("*/*.json"))]


@dataclass(frozen=True)
class Predictions:
    """Test predictions of one run record, as stored in its sidecar.

    Attributes:
        blocks: The distinct ``(test_rows, scores)`` of the record's runs: global row ids ``(n,)`` int64 and
            scores ``(n, C)`` float32 (regression: ``(n, 1)``).  Runs with identical rows and scores (e.g. every
            seed of a deterministic probe on a fixed split) share one block.
        run_block: Per run of the record, in record order, the index of its block.
        y_rows: Sorted global row ids of every test row of the record.
        y: Labels of ``y_rows``: ``(m,)`` integers, ``(m, C)`` multi-hot or ``(m,)`` float regression targets.
    """

    blocks: list[tuple[np.ndarray, np.ndarray]]
    run_block: np.ndarray
    y_rows: np.ndarray
    y: np.ndarray

    @property
    def runs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per run, ``(test_rows, scores)``, in the record's order."""
        return [self.blocks[i] for i in self.run_block]

    def distinct_runs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The blocks alone when every block stands for equally many runs (their mean is then the runs' mean).

        Otherwise every run: resampling repeated predictions once is the same statistic at a fraction of the cost.
        """
        counts = np.bincount(self.run_block, minlength=len(self.blocks))
        return list(self.blocks) if len(set(counts.tolist())) == 1 else self.runs

    def labels(self) -> np.ndarray:
        """Labels indexed by global row id (rows that are not test rows hold zeros and are never read)."""
        full = np.zeros((int(self.y_rows[-1]) + 1, *self.y.shape[1:]), dtype=self.y.dtype)
        full[self.y_rows] = self.y
        return full


def predictions_path(record_path: Path) -> Path:
    """``<dir>/<name>.json`` → ``<dir>/<name>.predictions.npz``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.name.removesuffix(".json") + ".predictions.npz")


def _link(record: dict[str, Any]) -> dict[str, Any]:
    """What ties a sidecar to its record; the runs are hashed as JSON reads them back."""
    return {
        "format": PREDICTIONS_FORMAT,
        "created": record.get("created"),
        "dataset_sha256": record["task"].get("dataset_sha256"),
        "spec_sha256": record["task"].get("spec_sha256"),
        "runs_sha256": sha256_json(json.loads(canonical_json(record["runs"]))),
    }


def write_predictions(
    record_path: Path, record: dict[str, Any], runs: Sequence[tuple[np.ndarray, np.ndarray]], y: np.ndarray
) -> Path:
    """Write the test predictions of ``record``'s runs next to it, atomically; call it after writing the record.

    File format: one uncompressed ``.npz`` holding ``meta`` (a JSON string: format version, and the record's
    ``created``, ``task.dataset_sha256``, ``task.spec_sha256`` and the SHA-256 of its ``runs``), ``rows``
    (int64) and ``scores`` (float32) with the distinct blocks of predictions concatenated, ``offsets`` (int64,
    block ``i`` is ``offsets[i]:offsets[i + 1]``), ``run_block`` (int64, the block of each run in record
    order), ``y_rows`` (int64, sorted union of the test rows) and ``y`` (their labels).

    NOTE: scores are stored as float32, half the size of the probe's float64.  A metric recomputed from them
    equals the record's except where two scores of a clip are closer than float32 resolution (~1e-7 relative),
    which can flip an argmax or a rank tie: negligible for significance, but not bit-identical.  Regression
    predictions ``(n,)`` are stored as ``(n, 1)``; their float32 rounding moves MAE or RMSE by about 1e-7 of the
    targets' magnitude (targets stay float64).

    Args:
        record_path: Path of the record (``.json``).
        record: The record as written.
        runs: Per run of ``record["runs"]``, in the same order, its ``(test_rows, test_scores)``.
        y: Labels of all rows of the task (global row ids index it).

    Returns:
        The sidecar's path.

    Raises:
        ValueError: ``runs`` is empty or does not match the record's runs (count or test sizes).
    """
    if not runs or len(runs) != len(record["runs"]):
        raise ValueError(f"{record_path}: {len(runs)} runs of predictions for {len(record['runs'])} recorded runs")
    index: dict[bytes, int] = {}
    blocks: list[tuple[np.ndarray, np.ndarray]] = []
    run_block = []
    for (rows, scores), run in zip(runs, record["runs"], strict=True):
        rows, scores = np.asarray(rows, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        scores = scores[:, None] if scores.ndim == 1 else scores  # regression predictions (n,) -> (n, 1)
        if scores.ndim != 2 or len(rows) != len(scores) or len(rows) != run["n"]["test"]:
            raise ValueError(f"{record_path}: predictions of shape {scores.shape} for {run['n']['test']} test clips")
        key = rows.tobytes() + scores.tobytes()
        run_block.append(index.setdefault(key, len(blocks)))
        if run_block[-1] == len(blocks):
            blocks.append((rows, scores))
    y_rows = np.unique(np.concatenate([rows for rows, _ in blocks]))
    path = predictions_path(record_path)
    atomic_savez(
        path,
        {
            "meta": np.array(json.dumps(_link(record))),
            "rows": np.concatenate([rows for rows, _ in blocks]),
            "scores": np.concatenate([scores for _, scores in blocks]),
            "offsets": np.cumsum([0, *(len(rows) for rows, _ in blocks)], dtype=np.int64),
            "run_block": np.asarray(run_block, dtype=np.int64),
            "y_rows": y_rows,
            "y": np.asarray(y)[y_rows],
        },
        RESULTS_ADVICE,
    )
    return path


def load_predictions(record_path: Path, record: dict[str, Any]) -> Predictions | None:
    """The predictions stored beside ``record_path``, or None if missing, unreadable or not ``record``'s."""
    path = predictions_path(record_path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if json.loads(str(npz["meta"])) != _link(record):
                return None
            rows, scores, offsets = npz["rows"], npz["scores"], npz["offsets"]
            run_block, y_rows, y = npz["run_block"], npz["y_rows"], npz["y"]
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None
    blocks = [(rows[a:b], scores[a:b]) for a, b in itertools.pairwise(offsets.tolist())]
    sizes = [run["n"]["test"] for run in record["runs"]]
    if len(run_block) != len(sizes) or any(not 0 <= i < len(blocks) for i in run_block):
        return None
    if [len(blocks[i][0]) for i in run_block] != sizes or len(y_rows) == 0 or len(y) != len(y_rows):
        return None
    return Predictions(blocks, run_block, y_rows, y)
