"""``evalbench data import``: a folder of labelled audio becomes a runnable task in one command.

Where labels (and groups, and an existing split) come from, :mod:`evalbench.data.import_rows`:

- class-named subfolders, the default: ``DIR/<label>/.../*.wav``;
- a regex on each file's path relative to ``DIR`` (``--label-from``,
  ``--group-from``, ``--split-from``, ``--fold-from``; first capture group);
- columns of a CSV (``--csv FILE --file-col --label-col --group-col ...``).

How clips are split, :mod:`evalbench.data.import_splits`: a fixed train/valid/test
split of 70/10/20 % by default (``--split-fractions``), or ``--folds K`` for
k-fold cross-validation (better for small corpora, at k times the probe cost);
either way grouped by the group when there is one and stratified by label,
from a seeded rule.  A split or folds the data already has are kept.

What is written:

- ``<data_root>/<name>/``: the canonical prepared dataset
  (:mod:`evalbench.data.metadata`: ``metadata.csv``, ``content.tsv``, then
  ``dataset.json`` with the import's settings).  ``audio_root`` is ``DIR``
  itself, absolute: audio is read in place, never copied (no layout needs a
  copy, since ``file_name`` may be any path under ``DIR``), and edits to it are
  caught by the content index like those of any prepared dataset.
- ``<tasks_dir>/<name>.yaml``: a task spec with ``builder: manifest`` (the
  builder of datasets already in canonical form), the sorted class list, the
  split, ``accuracy`` and ``roc_auc``, and a header comment holding the import
  command; re-running it with ``--force`` re-imports after the folder changed
  (the version is bumped when anything changed).

The spec is then checked by ``evalbench tasks validate``'s own function
(:func:`evalbench.cli.tasks.validate_all`) against the prepared metadata.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evalbench.data import import_splits as S
from evalbench.data.datasets import _common as C
from evalbench.data.import_rows import Rows, read_rows
from evalbench.data.metadata import METADATA, PreparedDataset, write_prepared
from evalbench.data.task_data import build_task_data
from evalbench.errors import DataError, SpecError
from evalbench.paths import builtin_catalog
from evalbench.specs.fields import parse
from evalbench.specs.task import TaskSpec
from evalbench.utils.hashing import sha256_json
from evalbench.utils.io import atomic_write_text

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RESERVED = {"sources"}  # <data_root>/sources holds downloads
UNIT_QUANTILE = 0.95
METRICS = ["accuracy", "roc_auc"]


@dataclass(frozen=True)
class ImportOptions:
    """What ``evalbench data import`` was asked; every default is the CLI's.

    Attributes:
        source: The folder of audio (``DIR``).
        name: Task and dataset name.
        label_from / group_from / split_from / fold_from: Regexes on the path
            relative to ``source``; the first capture group is the value.
        csv: A table with one row per clip.
        file_col / label_col / group_col / split_col / fold_col: Its columns
            (file and label columns are found by common names if not given).
        folds: k for k-fold cross-validation; None: a fixed split.
        split_fractions: Train/valid/test percentages of a generated fixed split.
        seed: Seed of the generated split.
        exclude: Regex of paths (relative to ``source``) to leave out.
        clip_seconds: The task's unit; None: the 95th percentile of clip lengths.
        force: Replace an existing import, or override a built-in task of that name.
    """

    source: Path
    name: str
    label_from: str | None = None
    group_from: str | None = None
    split_from: str | None = None
    fold_from: str | None = None
    csv: Path | None = None
    file_col: str | None = None
    label_col: str | None = None
    group_col: str | None = None
    split_col: str | None = None
    fold_col: str | None = None
    folds: int | None = None
    split_fractions: str = S.DEFAULT_FRACTIONS
    seed: int = 0
    exclude: str | None = None
    clip_seconds: float | None = None
    force: bool = False


@dataclass(frozen=True)
class Imported:
    """What an import wrote, for the CLI's report."""

    name: str
    spec_path: Path
    dataset_dir: Path
    table: pd.DataFrame
    classes: list[str]
    split_rule: str
    clip_seconds: float
    unit_rule: str
    sample_rates: dict[int, int]
    version: int
    notes: list[str] = field(default_factory=list)


def command_line(opts: ImportOptions) -> str:
    """The ``evalbench data import`` command that reproduces ``opts`` (absolute paths, non-default flags only)."""
    parts = ["evalbench", "data", "import", str(Path(opts.source).resolve()), "--name", opts.name]
    for f in dataclasses.fields(ImportOptions):
        value = getattr(opts, f.name)
        if f.name in ("source", "name", "force") or value is None or value == f.default:
            continue
        parts += [f"--{f.name.replace('_', '-')}", str(Path(value).resolve()) if f.name == "csv" else str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _check_name(opts: ImportOptions) -> None:
    """Refuse a name that cannot be a file name or is reserved."""
    if not NAME.fullmatch(opts.name) or opts.name in RESERVED:
        raise DataError(
            f"--name '{opts.name}': use letters, digits, '_', '-' or '.', starting with a letter or digit"
            + (f" ('{opts.name}' is reserved)" if opts.name in RESERVED else "")
        )


def _check_free(opts: ImportOptions, spec_path: Path, dest: Path) -> None:
    """Without ``--force``, refuse a name already in use (a built-in task or suite, an earlier import)."""
    if opts.force:
        return
    builtin = builtin_catalog() / "tasks"
    for kind, path in (("task", builtin / f"{opts.name}.yaml"), ("suite", builtin / "suites" / f"{opts.name}.yaml")):
        if path.is_file():
            raise DataError(
                f"--name {opts.name}: a built-in {kind} has that name ({path}); choose another --name, or pass "
                f"--force to override it with this import (its prepared data in {dest} is replaced too)"
            )
    if spec_path.exists():
        raise DataError(f"{spec_path}: already exists; choose another --name, or pass --force to import again over it")
    if dest.exists() and any(dest.iterdir()):
        raise DataError(
            f"{dest}: a dataset '{opts.name}' is already prepared there; choose another --name, or pass --force "
            "to replace it"
        )


def _audio_facts(root: Path, files: list[str]) -> tuple[Counter, np.ndarray]:
    """Sample-rate counts and durations (s) from the file headers.

    Raises:
        DataError: Files that cannot be opened or hold no samples, named with their count.
    """
    import soundfile as sf

    rates: Counter = Counter()
    seconds = np.zeros(len(files))
    bad = []
    for i, f in enumerate(files):
        try:
            info = sf.info(str(root / f))
        except Exception as exc:  # libsndfile raises several types for non-audio input
            bad.append(f"{f} ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})")
            continue
        if info.frames <= 0 or info.samplerate <= 0:
            bad.append(f"{f} (no samples)")
            continue
        rates[int(info.samplerate)] += 1
        seconds[i] = info.frames / info.samplerate
    if bad:
        raise DataError(
            f"{len(bad)} of {len(files)} audio files under {root} cannot be read (e.g. {'; '.join(bad[:3])}); "
            "repair or convert them, or leave them out with --exclude REGEX"
        )
    return rates, seconds


def _unit(opts: ImportOptions, seconds: np.ndarray) -> tuple[float, str]:
    """The task's clip length and how it was chosen."""
    span = f"clips last {seconds.min():.2f}-{seconds.max():.2f} s, median {np.median(seconds):.2f} s"
    if opts.clip_seconds is not None:
        if not 0 < opts.clip_seconds <= 3600:
            raise DataError(f"--clip-seconds {opts.clip_seconds}: must be in (0, 3600]")
        return float(opts.clip_seconds), f"--clip-seconds ({span})"
    unit = min(3600.0, max(0.1, math.ceil(float(np.quantile(seconds, UNIT_QUANTILE)) * 10 - 1e-9) / 10))
    return unit, f"the 95th percentile of the lengths, rounded up; {span}; longer clips are cropped at the start"


def _given(rows: Rows, unit_ids: np.ndarray, copies: list[list[int]], seed: int, notes: list[str]):
    """The split or folds the data came with (a missing valid split carved out of train)."""
    column, values = ("fold", rows.fold) if rows.fold is not None else ("split", rows.split)
    files = rows.table["file_name"].tolist()
    for idx in copies:
        other = [i for i in idx if values[i] != values[idx[0]]]
        if other:
            a, b = idx[0], other[0]
            raise DataError(
                f"{rows.root / files[a]} ({column} {values[a]}) and {files[b]} ({column} {values[b]}) have identical "
                "audio; the same clip on both sides of a split leaks training data. Remove one, or --exclude it"
            )
    if "group" in rows.table.columns:
        across = C.groups_across(rows.table["group"], values)
        if across:
            raise DataError(
                f"{across} group(s) span several {column}s of the given {column} column ({rows.how_split}): a "
                f"speaker or recording on both sides of a {column} leaks into the score (docs/protocol.md §1.2). "
                f"Fix the given {column}s, drop --group-from/--group-col so groups are not checked, or leave out "
                "--split-*/--fold-* and let evalbench choose grouped splits"
            )
    if column == "fold":
        k = int(values.max())
        return {"type": "folds", "folds": k, **_holdout()}, values, f"{k} folds as given ({rows.how_split})"
    rule = f"split as given ({rows.how_split})"
    if not (values == "valid").any():
        values = S.carve_valid(rows.table["label"].tolist(), unit_ids, values, seed)
        by = "grouped, " if "group" in rows.table.columns else ""
        rule += f"; valid = a {by}stratified 10 % of train (seed {seed})"
    return {"type": "fixed"}, values, rule


def _splits(opts: ImportOptions, rows: Rows, unit_ids: np.ndarray, copies: list[list[int]], notes: list[str]):
    """The ``splits`` block of the spec, the ``split`` or ``fold`` column, and the rule in words."""
    if rows.fold is not None or rows.split is not None:
        return _given(rows, unit_ids, copies, opts.seed, notes)
    labels = rows.table["label"].tolist()
    grouped = "group" in rows.table.columns
    how = f"{'grouped by group, ' if grouped else ''}stratified by label (seed {opts.seed}"
    how += f"; {len(copies)} set(s) of byte-identical files kept together)" if copies else ")"
    if opts.folds is not None:
        folds = S.make_folds(labels, unit_ids, opts.folds, opts.seed, grouped)
        return {"type": "folds", "folds": opts.folds, **_holdout()}, folds, f"{opts.folds} folds {how}"
    fractions = S.parse_fractions(opts.split_fractions)
    split, dealt = S.make_split(labels, unit_ids, fractions, opts.seed, grouped)
    return {"type": "fixed"}, split, f"train/valid/test {'/'.join(map(str, fractions))} % ({dealt}) {how}"


def _holdout() -> dict[str, Any]:
    return {"validation": {"rule": "holdout", "fraction": 0.1, "grouped": True, "stratified": True}}


def _version(spec_path: Path, dest: Path, text_at: Any, metadata: str) -> int:
    """1 for a new task; an existing one keeps its version if nothing changed, else gets the next."""
    try:
        old = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        version = int(old["version"])
    except (OSError, ValueError, TypeError, KeyError, yaml.YAMLError):
        return 1
    try:
        same_meta = (dest / METADATA).read_text(encoding="utf-8") == metadata
    except OSError:
        same_meta = False
    return version if same_meta and spec_path.read_text(encoding="utf-8") == text_at(version) else version + 1


def import_folder(opts: ImportOptions, data_root: Path, tasks_dir: Path) -> Imported:
    """Import ``opts.source`` as task ``opts.name``: prepared metadata under ``data_root``, spec in ``tasks_dir``.

    Raises:
        DataError: Any problem with the folder, the flags or the data, naming the file, flag or value.
    """
    from evalbench.cli.tasks import validate_all

    data_root, tasks_dir = Path(data_root).expanduser().resolve(), Path(tasks_dir).expanduser().resolve()
    spec_path, dest = tasks_dir / f"{opts.name}.yaml", data_root / opts.name
    _check_name(opts)
    rows = read_rows(opts)
    _check_free(opts, spec_path, dest)
    root, table, notes = rows.root, rows.table, list(rows.notes)
    classes = sorted(set(table["label"]))
    rates, seconds = _audio_facts(root, table["file_name"].tolist())
    unit, unit_rule = _unit(opts, seconds)
    groups = table["group"].tolist() if "group" in table.columns else table["file_name"].tolist()
    unit_ids, copies = S.units(groups, table["file_name"].tolist(), root)
    splits, values, split_rule = _splits(opts, rows, unit_ids, copies, notes)
    column = "fold" if splits["type"] == "folds" else "split"
    table = table.assign(**{column: values})
    n_groups = f", {table['group'].nunique()} groups" if "group" in table.columns else ""
    data = {
        "name": opts.name,
        "version": 1,
        "description": f"{len(table)} clips imported from {root}, {len(classes)} classes{n_groups}; {split_rule}.",
        "dataset": {"builder": "manifest"},
        "audio": {"sample_rate": rates.most_common(1)[0][0], "clip_seconds": unit, "crop": "start"},
        "labels": {"type": "single", "classes": classes},
        "splits": splits,
        "metrics": METRICS,
    }
    _check_spec(data, spec_path, PreparedDataset(dest, table, root, {}, {}))  # before anything is written
    metadata = table.to_csv(index=False, lineterminator="\n")
    command = command_line(opts)

    sources = f"labels: {rows.how_label}" + (f"; groups: {rows.how_group}" if rows.how_group else "")

    def text_at(version: int) -> str:
        header = (
            f"# Made by `evalbench data import` from {root} (audio read in place); {sources}.\n"
            f"# Labels, groups and {column}s per clip: {dest / METADATA}. After changing the folder, import again:\n"
            f"#   {command} --force\n"
        )
        body = {**data, "version": version}
        return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None)

    version = _version(spec_path, dest, text_at, metadata) if opts.force else 1
    dest.mkdir(parents=True, exist_ok=True)
    extra = {
        "import": {"source": str(root), "command": command, "labels": rows.how_label, "split_rule": split_rule},
        "classes": classes,
        "counts": {str(k): int(v) for k, v in table[column].value_counts().sort_index().items()},
    }
    fingerprint = sha256_json({"command": command, "metadata": metadata})
    uniform = next(iter(rates)) if len(rates) == 1 else None
    write_prepared(dest, table, builder="manifest", options={}, audio_root=str(root), sample_rate=uniform,
                   source_fingerprint=fingerprint, extra=extra)  # fmt: skip
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(spec_path, text_at(version))
    errors = validate_all(spec_path.parent, [spec_path], Path(data_root))
    if errors:
        raise DataError(f"{spec_path}: the written task does not validate: {'; '.join(errors)}")
    notes += _coverage_notes(table, column, classes)
    if len(rates) > 1:
        notes.append(f"mixed sample rates {dict(sorted(rates.items()))} (Hz: clips); each clip is resampled on load")
    return Imported(
        opts.name, spec_path, dest, table, classes, split_rule, unit, unit_rule, dict(rates), version, notes
    )


def _check_spec(data: dict[str, Any], spec_path: Path, dataset: PreparedDataset) -> None:
    """Parse the spec and check the metadata against it in memory (what ``tasks validate`` checks on disk)."""
    try:
        build_task_data(parse(TaskSpec, data, str(spec_path)), dataset)
    except (SpecError, DataError) as exc:
        raise DataError(f"the task made from {dataset.audio_root} would not validate: {exc}") from None


def _coverage_notes(table: pd.DataFrame, column: str, classes: list[str]) -> list[str]:
    """Classes with no clip in some test fold (or in the test split): scored, but less reliably."""
    test = table[column] == "test" if column == "split" else None
    parts = ["test"] if test is not None else sorted(set(table[column]))
    lacking = []
    for cls in classes:
        have = set(table[column][table["label"] == cls])
        missing = [p for p in parts if p not in have]
        if missing:
            lacking.append(f"'{cls}' ({'no test clip' if test is not None else f'absent from fold(s) {missing}'})")
    if not lacking:
        return []
    return [f"{len(lacking)} class(es) are not in every test {column}: {', '.join(lacking[:5])}; more clips help"]
