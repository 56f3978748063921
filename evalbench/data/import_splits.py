"""Folds and splits for imported data (``evalbench data import``): grouped, stratified, seeded.

A folder of the user's audio rarely ships a split, so the importer makes one by
a rule that is written into the task's description and ``dataset.json``:

1. *Units*: clips are dealt out whole groups at a time (the ``group`` parsed
   from the path or read from the CSV: speaker, actor, source recording), or
   one clip at a time when there is no group.  Byte-identical files are merged
   into one unit, so the same audio can never sit on both sides of a split.
2. *Order*: the units are permuted with ``numpy.random.default_rng(seed)``,
   then stably sorted by size, largest first (large groups are the hard ones
   to balance, so they go while every slot is still empty).
3. *Greedy stratified deal*: each unit goes to the slot (fold) that holds the
   smallest share of the unit's classes so far, i.e. the slot minimising
   ``sum_c unit[c] * slot[c] / total[c]``; ties go to the slot with fewest clips,
   then by a seeded order of the slots.  Ungrouped single-label data thus gets
   per-class round robin: every fold holds ``n_c / k`` clips of class ``c``
   (±1), and the totals stay balanced across classes.

``--folds K`` uses K slots directly (metadata ``fold`` 1..K).  A fixed split
(the default, 70/10/20) uses ``100 / gcd(percentages)`` equal slots (10 for
70/10/20) and gives the train, valid and test split a seeded choice of 7, 1
and 2 of them, so the fixed split is stratified and grouped by the same rule
(with fewer groups than slots, each group is a slot: 6 speakers give 4/1/1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evalbench.errors import DataError
from evalbench.utils.hashing import sha256_file

DEFAULT_FRACTIONS = "70/10/20"
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}
"""Split names accepted from a path or a CSV column, and the canonical name of each."""


def parse_fractions(text: str) -> tuple[int, int, int]:
    """``--split-fractions`` as train/valid/test percentages (``70/10/20``, or ``0.7/0.1/0.2``).

    Raises:
        DataError: Not three positive numbers summing to 100 (or to 1), in whole percent.
    """
    hint = f"--split-fractions '{text}': give TRAIN/VALID/TEST percentages summing to 100, e.g. {DEFAULT_FRACTIONS}"
    try:
        values = [float(v) for v in text.split("/")]
    except ValueError:
        raise DataError(hint) from None
    if len(values) != 3 or min(values) <= 0:
        raise DataError(hint + " (each part above 0)")
    if math.isclose(sum(values), 1.0):
        values = [100 * v for v in values]
    percents = [round(v) for v in values]
    if sum(percents) != 100 or any(not math.isclose(p, v, abs_tol=1e-6) for p, v in zip(percents, values, strict=True)):
        raise DataError(hint + " (whole percent)")
    return percents[0], percents[1], percents[2]


def units(groups: Sequence[str], files: Sequence[str], root: Path) -> tuple[np.ndarray, list[list[int]]]:
    """The dealing unit of each clip: its group, with groups that share byte-identical audio merged.

    Only files whose size equals another file's are hashed (a cheap pre-filter).

    Returns:
        ``(n,)`` unit ids, and the sets (row indices) of byte-identical files.
    """
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of_group: dict[str, int] = {}
    for i, g in enumerate(groups):
        parent[find(i)] = find(first_of_group.setdefault(g, i))
    by_size: dict[int, list[int]] = {}
    for i, f in enumerate(files):
        by_size.setdefault((root / f).stat().st_size, []).append(i)
    by_hash: dict[str, list[int]] = {}
    for same in (idx for idx in by_size.values() if len(idx) > 1):
        for i in same:
            by_hash.setdefault(sha256_file(root / files[i]), []).append(i)
    copies = [idx for idx in by_hash.values() if len(idx) > 1]
    for idx in copies:
        for i in idx[1:]:
            parent[find(i)] = find(idx[0])
    _, ids = np.unique([find(i) for i in range(len(files))], return_inverse=True)
    return ids, copies


def check_class_sizes(labels: Sequence[str], unit_ids: np.ndarray, grouped: bool, need: int, what: str) -> None:
    """Every class must span at least ``need`` units, or some rotation could not train or test it.

    Raises:
        DataError: Naming each class that is too small and how many clips (groups) it has.
    """
    per_class: dict[str, set[int]] = {}
    for label, u in zip(labels, unit_ids, strict=True):
        per_class.setdefault(label, set()).add(int(u))
    small = {c: len(u) for c, u in sorted(per_class.items()) if len(u) < need}
    if small:
        unit = "group(s)" if grouped else "clip(s)"
        listed = ", ".join(f"'{c}' ({n} {unit})" for c, n in list(small.items())[:5])
        raise DataError(
            f"{len(small)} class(es) have too few {unit.removesuffix('(s)')}s for {what}: {listed}; every class needs "
            f"at least {need} {unit} in different {'folds' if 'fold' in what else 'splits'}. Add clips, leave the "
            "class out with --exclude REGEX, or use fewer folds"
        )


def deal(labels: Sequence[str], unit_ids: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Assign every clip to one of ``k`` slots (0..k-1) by the rule in the module docstring.

    Raises:
        DataError: Fewer units than slots.
    """
    classes, y = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    n_units = int(unit_ids.max()) + 1
    if n_units < k:
        raise DataError(f"only {n_units} groups of clips for {k} slots; need at least {k}")
    counts = np.zeros((n_units, len(classes)), dtype=np.int64)
    np.add.at(counts, (unit_ids, y), 1)
    weight = counts / counts.sum(axis=0)[None, :]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_units)
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    tie = rng.permutation(k)
    load = np.zeros((k, len(classes)), dtype=np.int64)
    size = np.zeros(k, dtype=np.int64)
    slot_of = np.empty(n_units, dtype=np.int64)
    for u in order:
        share = load @ weight[u]
        slot = int(np.lexsort((tie, size, share))[0])
        slot_of[u] = slot
        load[slot] += counts[u]
        size[slot] += counts[u].sum()
    return slot_of[unit_ids]


def make_folds(labels: Sequence[str], unit_ids: np.ndarray, k: int, seed: int, grouped: bool) -> np.ndarray:
    """Fold numbers 1..k, grouped and stratified.

    Raises:
        DataError: Fewer groups than folds, or a class in fewer than 2 groups (clips).
    """
    if k < 2:
        raise DataError(f"--folds {k}: need at least 2 folds")
    n_units = int(unit_ids.max()) + 1
    if n_units < k:
        unit = "groups" if grouped else "clips"
        raise DataError(f"--folds {k}: only {n_units} {unit} to deal into {k} folds; use --folds {max(2, n_units)}")
    check_class_sizes(labels, unit_ids, grouped, 2, f"{k} folds")
    return deal(labels, unit_ids, k, seed) + 1


def make_split(
    labels: Sequence[str], unit_ids: np.ndarray, fractions: tuple[int, int, int], seed: int, grouped: bool
) -> tuple[np.ndarray, str]:
    """Split names train/valid/test in the given percentages, grouped and stratified.

    With fewer units than the ``100 / gcd`` slots (few speakers), every unit is
    a slot of its own and valid and test get ``round(fraction * n)`` of them,
    at least one each.

    Returns:
        The split name of every clip, and how the slots were shared out (e.g. ``10 slots 7/1/2``).

    Raises:
        DataError: Fewer than 3 groups (clips), or a class in fewer than 2 of them.
    """
    k = 100 // math.gcd(*fractions)
    n_units = int(unit_ids.max()) + 1
    unit = "groups" if grouped else "clips"
    if n_units < 3:
        raise DataError(f"only {n_units} {unit}: a train/valid/test split needs at least 3; add clips")
    check_class_sizes(labels, unit_ids, grouped, 2, f"a {'/'.join(map(str, fractions))} split")
    if n_units >= k:
        n_train, n_valid = fractions[0] * k // 100, fractions[1] * k // 100
    else:
        k = n_units
        n_valid, n_test = max(1, round(fractions[1] * k / 100)), max(1, round(fractions[2] * k / 100))
        n_train = k - n_valid - n_test
    slots = deal(labels, unit_ids, k, seed)
    names = np.array(["train"] * n_train + ["valid"] * n_valid + ["test"] * (k - n_train - n_valid), dtype=object)
    split = names[np.random.default_rng([seed, k]).permutation(k)][slots]
    how = f"{k} {'slots' if k < n_units else unit} dealt {n_train}/{n_valid}/{k - n_train - n_valid}"
    return _train_every_class(labels, unit_ids, split), how


def _train_every_class(labels: Sequence[str], unit_ids: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Move the smallest unit of a class that has no training clip into train (a probe must see every class)."""
    label_arr = np.asarray(labels, dtype=object)
    for cls in sorted(set(labels)):
        rows = label_arr == cls
        if (split[rows] == "train").any():
            continue
        ids, sizes = np.unique(unit_ids[rows], return_counts=True)
        split = split.copy()
        split[unit_ids == ids[sizes.argmin()]] = "train"
    return split


def carve_valid(labels: Sequence[str], unit_ids: np.ndarray, split: np.ndarray, seed: int) -> np.ndarray:
    """A given train/test split without valid rows: a grouped, stratified 10 % of train becomes valid."""
    train = np.flatnonzero(split == "train")
    _, sub_units = np.unique(unit_ids[train], return_inverse=True)
    if sub_units.max() + 1 < 10:
        raise DataError(
            f"the given split has no valid rows and its train rows form only {sub_units.max() + 1} groups, too few "
            "to hold out 10 % of them; give valid rows in the split column or path"
        )
    slots = deal([labels[i] for i in train], sub_units, 10, seed)
    out = split.copy()
    out[train[slots == 0]] = "valid"
    return out


def normalise_split(values: Sequence[str], files: Sequence[str], flag: str) -> np.ndarray:
    """Given split names as train/valid/test (aliases in :data:`SPLIT_NAMES`, any case).

    Raises:
        DataError: A value that names no split (with its count and a file), or no train or test rows.
    """
    out, bad = [], {}
    for value, f in zip(values, files, strict=True):
        name = SPLIT_NAMES.get(str(value).strip().lower())
        if name is None:
            bad.setdefault(str(value), []).append(f)
        out.append(name or "")
    if bad:
        value, where = next(iter(bad.items()))
        raise DataError(
            f"{flag}: value '{value}' names no split ({len(where)} file(s), e.g. {where[0]}); "
            f"expected one of {', '.join(sorted(SPLIT_NAMES))}; {len(bad)} unknown value(s): {sorted(bad)[:5]}"
        )
    split = np.array(out, dtype=object)
    missing = [s for s in ("train", "test") if not (split == s).any()]
    if missing:
        raise DataError(f"{flag}: no file is in split(s) {missing}; a task needs train and test rows")
    return split


def normalise_folds(values: Sequence[str], flag: str) -> tuple[np.ndarray, dict[str, int]]:
    """Given fold ids renumbered 1..k in sorted order (numerically if all are integers).

    Returns:
        The fold numbers and the mapping from the given ids.

    Raises:
        DataError: Fewer than 2 distinct folds.
    """
    ids = sorted(
        {str(v).strip() for v in values}, key=lambda v: (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v)
    )
    if len(ids) < 2:
        raise DataError(f"{flag}: every file is in fold '{ids[0] if ids else ''}'; k-fold needs at least 2 folds")
    mapping = {v: i + 1 for i, v in enumerate(ids)}
    return np.array([mapping[str(v).strip()] for v in values], dtype=np.int64), mapping
