"""Helpers shared by the reliability tests: evalbench as a child process, comparing the numbers of two records."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
"""One torch thread per child (several run at once on two cores), output unbuffered (lines read as they come)."""


def start_evalbench(args: list[str], new_session: bool = False) -> subprocess.Popen[str]:
    """``python -m evalbench ARGS`` from the checkout, stderr merged into stdout (a text pipe).

    ``new_session``: in a session of its own, so that ``os.killpg`` kills it with anything it started.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "evalbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=CHILD_ENV,
        start_new_session=new_session,
    )


def numbers(tree: object, prefix: str = "") -> dict[str, float | None]:
    """Every number of a nested JSON value by its path (strings, booleans dropped)."""
    if isinstance(tree, dict):
        return {k: v for key in tree for k, v in numbers(tree[key], f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, item in enumerate(tree) for k, v in numbers(item, f"{prefix}{i}.").items()}
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return {prefix.rstrip("."): float(tree)}
    return {prefix.rstrip("."): None} if tree is None else {}


def assert_same_numbers(got: object, want: object, tol: float) -> None:
    """The same numbers at the same paths, each within ``tol`` (absolute), None where the other is None."""
    a, b = numbers(got), numbers(want)
    assert a.keys() == b.keys() and a
    for k in a:
        assert (a[k] is None) == (b[k] is None), k
        assert a[k] is None or abs(a[k] - b[k]) <= tol, (k, a[k], b[k])
