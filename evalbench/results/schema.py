"""The run-record schema: one JSON document per (encoder, task, probe).

A record carries everything needed to audit and reproduce a score: schema and
evalbench versions, git commit, encoder name, adapter and fingerprint
(checkpoint content hash included), task name, version and spec hash, dataset
fingerprint, class order, protocol id with the probe's fixed and chosen
hyperparameters, per-run (seed × fold) scores with sample counts and the hash
of each validation draw, mean ± std summaries, timings (extraction vs probe)
and the software environment.

Every record is validated on load and before it is written (:func:`validate`):
a non-finite or out-of-range score is refused, so a wrong number never
reaches the leaderboard.  Records of older schema versions are upgraded on load by :data:`MIGRATIONS`
(none yet: this is version 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalbench.errors import ResultsError
from evalbench.metric_info import RANGE

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "encoder", "task", "probe", "scores", "runs", "seeds")
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upgrade(record: dict[str, Any], where: str) -> dict[str, Any]:
    """Bring a record to :data:`SCHEMA_VERSION` or raise :class:`ResultsError`."""
    version = record.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ResultsError(f"{where}: schema_version: missing or invalid ({version!r})")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{where}: schema_version {version} is newer than this evalbench understands ({SCHEMA_VERSION}); "
            "upgrade evalbench"
        )
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version = record["schema_version"]
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"{where}: missing key(s) {missing}; delete the file or re-run that evaluation")
    validate(record, where)
    return record


def _score(value: Any, where: str, key: str, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """A score is null (undefined metric) or a finite number within the metric's range (``metric_info.RANGE``)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsError(f"{where}: {key}: {value!r} is not a finite number; delete the file or re-run")
    low, high = bounds
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ResultsError(f"{where}: {key}: {value!r} is outside [{low:g}, {high:g}]; delete the file or re-run")


def validate(record: dict[str, Any], where: str) -> None:
    """Check the parts of a record that the leaderboard reads: every score finite, every metric present.

    Raises:
        ResultsError: Naming the file and the key; such a record is never written or shown.
    """
    try:
        metrics = list(record["task"]["metrics"])
        primary = record["task"]["primary_metric"]
        for split in ("test", "valid"):
            table = record["scores"][split]
            for name in metrics:
                entry, bounds = table[name], RANGE.get(name, (0.0, 1.0))
                _score(entry["mean"], where, f"scores.{split}.{name}.mean", bounds)
                _score(entry["std"], where, f"scores.{split}.{name}.std", (0.0, bounds[1] - bounds[0]))
                for i, v in enumerate(entry.get("seed_means", [])):
                    _score(v, where, f"scores.{split}.{name}.seed_means[{i}]", bounds)
        for i, run in enumerate(record["runs"]):
            for split in ("test", "valid"):
                for name in metrics:
                    _score(run[split][name], where, f"runs[{i}].{split}.{name}", RANGE.get(name, (0.0, 1.0)))
        if primary not in metrics:
            raise ResultsError(f"{where}: task.primary_metric: '{primary}' is not among task.metrics")
        _present = (record["encoder"]["name"], record["encoder"]["embedding_dim"], record["probe"]["protocol"])
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{where}: malformed record (missing or wrong {exc}); delete the file or re-run") from None


def _no_constants(name: str) -> float:
    raise ValueError(f"bare {name} is not valid JSON")


def load_record(path: Path) -> dict[str, Any]:
    """Read, upgrade and validate one run record (bare ``NaN``/``Infinity`` are refused)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable JSON run record ({exc}); delete it or re-run") from None
    if not isinstance(record, dict):
        raise ResultsError(f"{path}: not a JSON object; delete it or re-run")
    return upgrade(record, str(path))
