"""The run-record schema: one JSON document per (encoder, task, probe).

A record carries everything needed to audit and reproduce a score: schema and
evalbench versions, git commit, encoder name, adapter and fingerprint
(checkpoint content hash included), task name, version and spec hash, dataset
fingerprint, class order, protocol id with the probe's fixed and chosen
hyperparameters, per-run (seed × fold) scores with sample counts and the hash
of each validation draw, mean ± std summaries, timings (extraction vs probe)
and the software environment.

Records of older schema versions are upgraded on load by :data:`MIGRATIONS`
(none yet: this is version 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalbench.errors import ResultsError

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
    return record


def load_record(path: Path) -> dict[str, Any]:
    """Read and upgrade one run record."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable JSON run record ({exc}); delete it or re-run") from None
    if not isinstance(record, dict):
        raise ResultsError(f"{path}: not a JSON object; delete it or re-run")
    return upgrade(record, str(path))
