"""Helpers shared by the dataset builders that read an official layout in place.

Every such builder does the same few things: find the official root under
``--source``, read a metadata table with fixed columns, list the audio files
(skipping macOS ``._*`` resource forks and other hidden files), check that
every listed file exists, and fingerprint what it read cheaply (hashes of the
metadata and split files plus the sorted ``(relative path, size)`` list of the
audio, never the audio bytes).  Errors are :class:`~evalbench.errors.DataError`
with one line naming the file, row, column or value and what to do.

Builders whose reference split was drawn unseeded but later published as a
file (CREMA-D, Surge) also read that file when ``dataset.options`` says
``split: reference``; ``evalbench data prepare TASK --split-file FILE`` sets
it (:func:`with_split_file`), and :func:`read_split_file` parses it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec
from evalbench.utils.hashing import sha256_file, sha256_json

# Bump when the metadata a builder writes for an unchanged source changes, so
# `prepare` rebuilds instead of trusting an old fingerprint.
FORMAT = 1

AUDIO_SUFFIXES = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
SPLIT_NAMES = ("train", "valid", "test")
_JUNK_DIRS = {"__MACOSX"}


def require_source(task: TaskSpec, source: Path | None, what: str) -> Path:
    """The resolved ``--source`` folder.

    Args:
        task: Task being prepared (named in the message).
        source: Folder given with ``--source`` (None if omitted).
        what: What the folder must hold, e.g. ``"ESC-50-master (meta/ and audio/)"``.

    Raises:
        DataError: No source given, or it is not a folder.
    """
    if source is None:
        raise DataError(f"task '{task.name}': dataset '{task.dataset_name}' needs --source DIR pointing at {what}")
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; --source must point at {what}")
    return path.resolve()


def locate_root(source: Path, marker: str, wrappers: Iterable[str], what: str) -> Path:
    """The official root: ``source`` if it holds ``marker``, else ``source/<wrapper>`` that does.

    Lets ``--source`` point either at the official root or at the folder an
    archive was extracted into (e.g. the parent of ``ESC-50-master``).

    Raises:
        DataError: ``marker`` is found in none of the candidates.
    """
    for candidate in (source, *(source / w for w in wrappers)):
        if (candidate / marker).exists():
            return candidate
    raise DataError(f"{source / marker}: not found; point --source at {what}")


def is_junk(name: str) -> bool:
    """True for macOS resource forks (``._*``) and other hidden files (``.DS_Store``)."""
    return name.startswith(".")


def list_audio(folder: Path, root: Path, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> list[str]:
    """Sorted POSIX paths, relative to ``root``, of the audio files under ``folder`` (recursive).

    Hidden files and folders (``._*`` resource forks, ``.DS_Store``) and
    ``__MACOSX`` folders are skipped; the suffix match ignores case.
    """
    allowed = tuple(s.lower() for s in suffixes)
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not is_junk(d) and d not in _JUNK_DIRS]
        for name in filenames:
            if not is_junk(name) and name.lower().endswith(allowed):
                out.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(out)


def fingerprint(task: TaskSpec, root: Path, tables: Iterable[str], audio: Iterable[str], **facts: Any) -> str:
    """A cheap hash of everything a builder reads, plus the spec fields it applies.

    Args:
        task: The task (its builder options, exclusion rules and class list
            change the metadata, so they are part of the hash).
        root: Official root (absolute; the metadata points into it).
        tables: Metadata and split files, relative to ``root``: hashed by content.
        audio: Audio files, relative to ``root``: hashed by path and size.
        **facts: Anything else that changes the output.
    """
    return sha256_json(
        {
            "format": FORMAT,
            "builder": task.dataset.builder,
            "root": str(root),
            "tables": {rel: sha256_file(root / rel) for rel in tables},
            "audio": [[rel, (root / rel).stat().st_size] for rel in audio],
            "options": task.dataset.options,
            "exclude": [[e.file, e.reason] for e in task.dataset.exclude],
            "classes": task.labels.classes,
            **facts,
        }
    )


def _csv_strings(path: Path, missing: str, remedy: str) -> pd.DataFrame:
    """Read a CSV file with every cell as a string and the column names stripped.

    Raises:
        DataError: ``"<path>: <missing>"`` if there is no file, or naming the
            parser's complaint and ``remedy`` if it is not a readable CSV.
    """
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable as CSV ({first}); {remedy}") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def read_table(path: Path, columns: Iterable[str], hint: str = "") -> pd.DataFrame:
    """Read a CSV metadata file as strings and check it has the official columns.

    Raises:
        DataError: The file is missing, unreadable or lacks a column.
    """
    table = _csv_strings(path, f"not found{'; ' + hint if hint else ''}", "restore the original file")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected the official columns {list(columns)}")
    return table


def int_column(table: pd.DataFrame, column: str, path: Path) -> list[int]:
    """The values of ``column`` as integers.

    Raises:
        DataError: A value is not an integer (the message gives its row, counting the header as row 1).
    """
    out = []
    for row, value in enumerate(table[column].tolist()):
        try:
            out.append(int(str(value).strip()))
        except ValueError:
            raise DataError(f"{path}: row {row + 2}: column '{column}' holds '{value}', not an integer") from None
    return out


def check_range(values: list[int], low: int, high: int, column: str, path: Path) -> None:
    """Raise :class:`DataError` naming the first value of ``column`` outside ``low..high``."""
    for row, value in enumerate(values):
        if not low <= value <= high:
            raise DataError(f"{path}: row {row + 2}: column '{column}' is {value}, outside {low}..{high}")


def indexed_classes(task: TaskSpec, names: Mapping[int, set[str]], column: str, path: Path) -> list[str]:
    """Check a class vocabulary whose order is given by an integer id column (ESC-50 ``target``, US8K ``classID``).

    The class with id ``i`` must be the task's ``labels.classes[i]``; every id
    must map to exactly one name.

    Args:
        task: The task (its ``labels.classes``, if set, is checked).
        names: Class names found for each id.
        column: Name of the id column (for messages).
        path: Metadata file (for messages).

    Returns:
        The names in id order (the published vocabulary).

    Raises:
        DataError: An id maps to two names, or the spec's class list disagrees with the data.
    """
    for idx, found in sorted(names.items()):
        if len(found) != 1:
            raise DataError(f"{path}: {column} {idx} maps to several class names {sorted(found)}")
    derived = {idx: next(iter(found)) for idx, found in names.items()}
    declared = task.labels.classes
    if declared is not None:
        for idx, name in sorted(derived.items()):
            if idx >= len(declared) or declared[idx] != name:
                have = declared[idx] if 0 <= idx < len(declared) else "<none>"
                raise DataError(
                    f"{path}: {column} {idx} is '{name}' but {task.source_path or task.name} labels.classes[{idx}] "
                    f"is '{have}'; list the classes in {column} order"
                )
    return [derived[i] for i in sorted(derived)]


def check_exist(root: Path, files: Iterable[str], listed_in: Path) -> None:
    """Raise :class:`DataError` naming the first file (relative to ``root``) that is missing."""
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"{root / missing[0]}: listed in {listed_in.name} but missing ({len(missing)} missing file(s)); "
            "restore it or exclude it in the task spec"
        )


def counts(values: Iterable[Any], prefix: str = "") -> dict[str, int]:
    """Occurrences of each value, keyed ``f"{prefix}{value}"``, in sorted value order."""
    series = pd.Series(list(values))
    table = series.value_counts().sort_index()
    return {f"{prefix}{k}": int(v) for k, v in table.items()}


def groups_across(groups: Iterable[Any], parts: Iterable[Any]) -> int:
    """How many groups (source recordings, speakers) occur in more than one split or fold."""
    frame = pd.DataFrame({"g": list(groups), "p": list(parts)})
    return int((frame.groupby("g")["p"].nunique() > 1).sum())


def without_audio_suffix(name: str, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> str:
    """``name`` without a trailing audio suffix (case ignored): ``jazz/jazz.00054.au`` → ``jazz/jazz.00054``."""
    lower = name.lower()
    for suffix in suffixes:
        if lower.endswith(suffix.lower()):
            return name[: -len(suffix)]
    return name


def apply_exclusions_any_suffix(
    table: pd.DataFrame, task: TaskSpec, suffixes: Iterable[str] = AUDIO_SUFFIXES
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """Drop the spec's known-bad files whatever audio format this copy ships them in.

    Like :func:`evalbench.data.builders.apply_exclusions`, but a rule and a
    ``file_name`` are compared without their audio suffix, so the rule
    ``jazz/jazz.00054.wav`` also removes ``genres/jazz/jazz.00054.au`` (and a
    rule written ``.au`` removes a ``.wav`` copy).  A rule matches a row whose
    suffix-less ``file_name`` equals the rule's or ends with ``/<rule>``.

    Returns:
        The filtered table, the exclusion report (each rule as written, its
        reason and the rows it removed) and the removed ``file_name`` values.
    """
    suffixes = tuple(suffixes)
    names = table["file_name"].astype(str).map(lambda n: without_audio_suffix(n, suffixes))
    keep = pd.Series(True, index=table.index)
    report = []
    for rule in task.dataset.exclude:
        stem = without_audio_suffix(rule.file, suffixes)
        hit = (names == stem) | names.str.endswith("/" + stem)
        report.append({"file": rule.file, "reason": rule.reason, "rows_removed": int(hit.sum())})
        keep &= ~hit
    removed = table.loc[~keep, "file_name"].astype(str).tolist()
    return table[keep].reset_index(drop=True), report, removed


def option_path(task: TaskSpec, value: str) -> Path:
    """A file named in ``dataset.options``: absolute, or relative to the task file's folder."""
    path = Path(value).expanduser()
    if not path.is_absolute() and task.source_path:
        path = Path(task.source_path).parent / path
    return path.resolve()


def with_split_file(task: TaskSpec, split_file: Path) -> TaskSpec:
    """The task set to read the reference harness's published split from ``split_file``.

    This is what ``evalbench data prepare TASK --split-file FILE`` does:
    ``dataset.options`` gains ``split: reference`` and ``split_file: <absolute
    path>``.  The options, and the file's SHA-256, enter the builder's source
    fingerprint, so a dataset prepared with another split (or none) is rebuilt
    rather than reused, and the split column changes the dataset fingerprint
    that keys every embedding cache entry and run record.

    Args:
        task: Task whose builder reads a published split (its class sets
            ``SPLIT_FILE_FORMAT``).
        split_file: The published split file.

    Raises:
        DataError: The builder reads no split file, or the file does not exist.
    """
    from evalbench.registry import BUILDERS

    builder = task.dataset.builder
    if not getattr(BUILDERS.get(builder), "SPLIT_FILE_FORMAT", ""):
        able = [n for n in BUILDERS.names() if getattr(BUILDERS.get(n), "SPLIT_FILE_FORMAT", "")]
        raise DataError(
            f"--split-file: task '{task.name}' (builder '{builder}') has no published split to read; "
            f"the builders that take one are {', '.join(able)}"
        )
    path = Path(split_file).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"{path}: --split-file not found")
    options = {**task.dataset.options, "split": "reference", "split_file": str(path)}
    return dataclasses.replace(task, dataset=dataclasses.replace(task.dataset, options=options))


def read_split_file(path: Path, keys: Sequence[str], hint: str) -> tuple[str, list[tuple[int, str, str]]]:
    """Parse a published split: a CSV whose header names a key column and ``split``.

    Values are stripped; ``split`` must be ``train``, ``valid`` or ``test``;
    each key may appear once.  Other columns are ignored.

    Args:
        path: The split file.
        keys: Accepted key columns, in order of preference (the first present is used).
        hint: What the file should be, for the messages.

    Returns:
        The key column used and its rows as ``(row number, key, split)``,
        counting the header as row 1.

    Raises:
        DataError: Unreadable file, missing columns, an empty key, a bad split
            name or a repeated key (naming the file, row and value).
    """
    table = _csv_strings(path, f"split file not found; expected {hint}", f"expected {hint}")
    key = next((k for k in keys if k in table.columns), None)
    if key is None or "split" not in table.columns:
        raise DataError(
            f"{path}: header {list(table.columns)} lacks a '{' or '.join(keys)}' column and a 'split' column; "
            f"expected {hint}"
        )
    rows, seen = [], {}
    for row, (value, split) in enumerate(zip(table[key], table["split"], strict=True), start=2):
        value, split = str(value).strip(), str(split).strip()
        if not value:
            raise DataError(f"{path}: row {row}: empty '{key}'")
        if split not in SPLIT_NAMES:
            raise DataError(f"{path}: row {row}: split '{split}' for {key} '{value}' is not one of train, valid, test")
        if value in seen:
            raise DataError(f"{path}: row {row}: {key} '{value}' is listed again (first on row {seen[value]})")
        seen[value] = row
        rows.append((row, value, split))
    if not rows:
        raise DataError(f"{path}: no rows; expected {hint}")
    return key, rows
