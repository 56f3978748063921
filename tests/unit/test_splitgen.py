"""Seeded group split generation reproduces the reference group counts, without replacement."""

from __future__ import annotations

from collections import Counter

import pytest

from evalbench.data.splitgen import split_groups


@pytest.mark.parametrize(
    ("n", "train", "valid", "expected"),
    [(91, 0.7, 0.1, (63, 9, 19)), (13837, 0.7, 0.15, (9685, 2075, 2077)), (2084, 0.8, 0.1, (1667, 208, 209))],
)
def test_group_counts(n: int, train: float, valid: float, expected: tuple[int, int, int]) -> None:
    groups = [f"g{i:05d}" for i in range(n)]
    out = split_groups(groups * 2, train, valid, seed=0)  # duplicates do not matter
    counts = Counter(out.values())
    assert (counts["train"], counts["valid"], counts["test"]) == expected
    assert len(out) == n


def test_deterministic_and_seeded() -> None:
    groups = [str(i) for i in range(50)]
    assert split_groups(groups, 0.7, 0.1, 3) == split_groups(list(reversed(groups)), 0.7, 0.1, 3)
    assert split_groups(groups, 0.7, 0.1, 3) != split_groups(groups, 0.7, 0.1, 4)


def test_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="sum below 1"):
        split_groups(["a", "b", "c"], 0.8, 0.3, 0)
    with pytest.raises(ValueError, match="too few"):
        split_groups(["a", "b"], 0.5, 0.2, 0)
