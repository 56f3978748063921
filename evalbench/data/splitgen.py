"""Seeded, documented split generation for datasets that ship without a split.

Used where a split must be generated (CREMA-D by actor, VoxForge by upload
folder, Surge by tone): never copied from another project's files
(docs/protocol.md preamble).  The rule, stated in each task spec:

1. take the *sorted* unique group ids (actors, folders, tones);
2. permute them with ``numpy.random.default_rng(seed)``;
3. the first ``floor(train * n)`` groups are train, the next
   ``floor(valid * n)`` are valid, the rest are test.

With 91 CREMA-D actors and fractions 0.7 / 0.1 this gives 63 / 9 / 19 actors,
and with 13,837 VoxForge folders and 0.7 / 0.15 it gives 9,685 / 2,075 / 2,077,
the group counts of the reference splits (docs/protocol.md §1.2), drawn without
replacement and reproducibly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def split_groups(groups: Iterable[str], train: float, valid: float, seed: int) -> dict[str, str]:
    """Assign each unique group to ``train``, ``valid`` or ``test`` (rule in the module docstring).

    Args:
        groups: Group ids (duplicates allowed).
        train: Fraction of groups for training.
        valid: Fraction of groups for validation; the rest is test.
        seed: Permutation seed.

    Returns:
        Mapping group id → split name.

    Raises:
        ValueError: Fractions outside [0, 1] or summing to more than 1, or too
            few groups for three non-empty splits.
    """
    if not (0 < train < 1 and 0 < valid < 1 and train + valid < 1):
        raise ValueError(f"split fractions must be in (0, 1) and sum below 1, got train={train}, valid={valid}")
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    n_train, n_valid = math.floor(train * len(order)), math.floor(valid * len(order))
    if n_train < 1 or n_valid < 1 or len(order) - n_train - n_valid < 1:
        raise ValueError(f"{len(order)} groups are too few for train/valid/test fractions {train}/{valid}")
    return {g: "train" if i < n_train else "valid" if i < n_train + n_valid else "test" for i, g in enumerate(order)}
