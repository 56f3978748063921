"""Helpers shared by the reliability tests: comparing the numbers of two run records."""

from __future__ import annotations


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
