"""Shared settings and helpers of the property-based fuzzing tests (``test_fuzz_*.py``).

Profiles are derandomised and database-less, so CI runs the same examples every
time on every machine.  Each ``test_fuzz_*`` module fuzzes one input surface a
user (or a damaged disk) controls against the one property issue 14 states:
a clear error or a correct result, never a traceback or a wrong number.
"""

from __future__ import annotations

from itertools import count
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis.control import currently_in_test_context

# Derandomised and without an example database: the same examples on every machine and run.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=30)

_serial = count()


def count_event(name: str) -> None:
    """Count an outcome in hypothesis's statistics (``--hypothesis-show-statistics``), inside a @given test only."""
    if currently_in_test_context():
        event(name)


def fresh(root: Path, name: str) -> Path:
    """A new, empty folder under ``root`` for one example."""
    path = root / f"{name}-{next(_serial)}"
    path.mkdir(parents=True)
    return path
