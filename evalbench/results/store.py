"""Where run records live and when an existing one is still valid.

Layout: ``<results>/<encoder>/<task>.<probe>[.<preset>[+<hash>]].json``
(:func:`evalbench.presets.record_file`), written atomically.  A record is *up to
date* when the evalbench version that computed it, its encoder identity, task
version and spec hash, dataset fingerprint, protocol id and probe configuration
and seeds all equal the current ones; ``run`` then skips the pair unless
``--overwrite`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalbench.errors import ResultsError
from evalbench.results.schema import load_record, validate
from evalbench.utils.hashing import canonical_json
from evalbench.utils.io import atomic_write_json


def staleness_key(record: dict[str, Any]) -> str:
    """The parts of a record that decide whether it is up to date, as canonical JSON."""
    return canonical_json(
        {
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
    )


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
    atomic_write_json(path, record, allow_nan=False)


def iter_records(results_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """All run records under ``results_dir`` (sorted by path); malformed ones raise."""
    return [(p, load_record(p)) for p in sorted(Path(results_dir).glob("*/*.json"))]
