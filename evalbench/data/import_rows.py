r"""Where an import's clips and their labels, groups and splits come from (``evalbench data import``).

Each field (label, group, split, fold) is read from one place:

- a CSV column (``--label-col`` ...; needs ``--csv``; the file and label columns
  are found by common names such as ``filename`` and ``label`` when not given),
- or a regex searched in each file's path relative to ``DIR`` (``--label-from``
  ...), whose first capture group is the value, e.g. ``--group-from
  'Actor_(\\d+)/'``;
- or, for labels only and without ``--csv``, the first folder under ``DIR``
  (``DIR/<label>/.../*.wav``).

Audio files are found recursively by suffix (:data:`~evalbench.data.datasets._common.AUDIO_SUFFIXES`,
hidden files and ``__MACOSX`` skipped).  A CSV row names its file by a path relative
to ``DIR`` (or to the CSV's folder, or absolute inside ``DIR``), or by a base name
or stem that is unique under ``DIR``.  Every problem is a :class:`DataError`
naming the file, flag, column or value, with the count of rows or files affected.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evalbench.data import import_splits as S
from evalbench.data.datasets._common import AUDIO_SUFFIXES, list_audio
from evalbench.errors import DataError
from evalbench.registry import suggestion

if TYPE_CHECKING:
    from evalbench.data.importer import ImportOptions

FIELDS = ("label", "group", "split", "fold")
FILE_COLUMNS = ("file_name", "filename", "file", "path", "filepath", "file_path", "fname", "audio", "wav", "clip")
LABEL_COLUMNS = ("label", "class", "category", "class_name", "emotion", "genre", "target")
GROUP_HINTS = ("group", "speaker", "speaker_id", "actor", "actor_id", "src_file", "source", "recording", "session")


@dataclass(frozen=True)
class Rows:
    """The clips of an import before splitting.

    Attributes:
        root: ``DIR``, resolved.
        table: ``file_name`` (relative to ``root``), ``label`` and, if any, ``group``.
        split: Given split names (train/valid/test), or None.
        fold: Given fold numbers 1..k, or None.
        how_label / how_group / how_split: Where each came from, in words.
        notes: Things worth telling the user that are not errors.
    """

    root: Path
    table: pd.DataFrame
    split: np.ndarray | None = None
    fold: np.ndarray | None = None
    how_label: str = ""
    how_group: str = ""
    how_split: str = ""
    notes: list[str] = field(default_factory=list)


def _examples(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (", ..." if len(items) > n else "")


def compile_regex(flag: str, pattern: str, capture: bool = True) -> re.Pattern:
    """Compile a user regex; ``capture`` requires a capture group.

    Raises:
        DataError: Invalid, or without the capture group that holds the value.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise DataError(f"{flag} '{pattern}': not a valid regular expression ({exc})") from None
    if capture and rx.groups < 1:
        raise DataError(
            f"{flag} '{pattern}': the regex has no capture group; put the part of the path that is the value in "
            "parentheses, e.g. '^([^/]+)/' for the first folder or '_([A-Z]+)_' for a code between underscores"
        )
    return rx


def from_regex(flag: str, pattern: str, files: list[str], root: Path) -> list[str]:
    """The first capture group of ``pattern`` searched in each path.

    Raises:
        DataError: The regex is bad, or captures nothing in some files (how many, and which).
    """
    rx = compile_regex(flag, pattern)
    values, misses = [], []
    for f in files:
        m = rx.search(f)
        value = (m.group(1) or "").strip() if m else ""
        if not value:
            misses.append(f)
        values.append(value)
    if misses:
        raise DataError(
            f"{flag} '{pattern}' captures nothing in {len(misses)} of {len(files)} files (paths relative to {root}, "
            f"'/'-separated), e.g. {_examples(misses)}; fix the regex, or leave those files out with --exclude REGEX"
        )
    return values


def _subfolder_labels(files: list[str], root: Path, opts: ImportOptions) -> list[str]:
    """The first folder of each path: the class-named subfolder layout."""
    top = [f.split("/", 1)[0] if "/" in f else "" for f in files]
    loose = [f for f, t in zip(files, top, strict=True) if not t]
    if loose:
        raise DataError(
            f"{root}: {len(loose)} of {len(files)} audio files sit directly in the folder, not in a class-named "
            f"subfolder {root}/<label>/ (e.g. {_examples(loose)}); move them into subfolders, or take the labels "
            "from the file names with --label-from REGEX, or from a table with --csv FILE"
        )
    names = sorted(set(top))
    if all(n.lower() in S.SPLIT_NAMES for n in names) and opts.split_from is None and opts.fold_from is None:
        raise DataError(
            f"{root}: its subfolders {names} are split names, not classes; for {root}/<split>/<label>/... pass "
            "--split-from '^([^/]+)/' --label-from '^[^/]+/([^/]+)/'"
        )
    return top


def _resolver(root: Path, csv: Path, audio: list[str]):
    """A function from a CSV cell to a path relative to ``root`` (None: not found; a list: ambiguous)."""
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for f in audio:
        name = f.rsplit("/", 1)[-1]
        by_name.setdefault(name, []).append(f)
        by_stem.setdefault(name.rsplit(".", 1)[0], []).append(f)

    def inside(path: Path) -> str | None:
        rel = os.path.relpath(os.path.normpath(path), root)
        return None if rel == ".." or rel.startswith("../") or os.path.isabs(rel) else Path(rel).as_posix()

    def resolve(cell: str) -> str | list[str] | None:
        text = cell.strip().replace("\\", "/")
        if not text:
            return None
        tries = [inside(Path(text))] if os.path.isabs(text) else [posixpath.normpath(text), inside(csv.parent / text)]
        for rel in tries:
            if rel and not rel.startswith("../") and (root / rel).is_file():
                return rel
        name = text.rsplit("/", 1)[-1]
        stem_only = not name.lower().endswith(AUDIO_SUFFIXES)
        found = by_name.get(name) or (by_stem.get(name) if stem_only else None)
        return found[0] if found and len(found) == 1 else found or None

    return resolve


def _read_csv(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"--csv {path}: not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=None, engine="python")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable as CSV ({first})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _column(frame: pd.DataFrame, csv: Path, flag: str, given: str | None, common: tuple[str, ...] = ()) -> str:
    """The column named by ``flag``, or else the one column with a name in ``common``."""
    cols = list(frame.columns)
    if given is not None:
        if given not in cols:
            raise DataError(f"{csv}: no column '{given}' ({flag}); {suggestion(given, cols, f'its columns: {cols}')}")
        return given
    found = [c for c in cols if c.lower() in common]
    if len(found) != 1:
        what = "labels" if flag == "--label-col" else "audio file names"
        why = f"several could be: {found}" if found else f"none of {cols} has a usual name ({', '.join(common[:4])}...)"
        raise DataError(f"{csv}: which column holds the {what}? {why}; pass {flag} COLUMN")
    return found[0]


def _from_csv(opts: ImportOptions, root: Path, audio: list[str]) -> tuple[list[str], pd.DataFrame, list[str]]:
    """Files named by the CSV (resolved under ``root``) and its rows, in CSV order, without excluded files."""
    csv = Path(opts.csv)
    frame = _read_csv(csv)
    for f in FIELDS:
        if getattr(opts, f"{f}_col") is not None:
            _column(frame, csv, f"--{f}-col", getattr(opts, f"{f}_col"))
    if opts.label_col is None and opts.label_from is None:
        _column(frame, csv, "--label-col", None, LABEL_COLUMNS)  # columns first, then the files they name
    file_col = _column(frame, csv, "--file-col", opts.file_col, FILE_COLUMNS)
    resolve = _resolver(root, csv, audio)
    files, missing, ambiguous, first_row = [], [], [], {}
    exclude = compile_regex("--exclude", opts.exclude, capture=False) if opts.exclude else None
    keep = np.ones(len(frame), dtype=bool)
    for row, cell in enumerate(frame[file_col], start=2):
        rel = resolve(str(cell))
        if isinstance(rel, list):
            ambiguous.append(f"row {row}: '{cell}' matches {len(rel)} files ({_examples(rel, 2)})")
        elif rel is None:
            missing.append(f"row {row}: '{cell}'")
        elif rel in first_row:
            raise DataError(f"{csv}: rows {first_row[rel]} and {row} both name {root / rel}; list each clip once")
        else:
            first_row[rel] = row
            keep[row - 2] = not (exclude and exclude.search(rel))
        files.append(rel if isinstance(rel, str) else "")
    if missing or ambiguous:
        what = (
            f"{len(missing)} of {len(frame)} rows name files not found under {root} ({_examples(missing)})"
            if missing
            else f"{len(ambiguous)} rows name a file ambiguously ({_examples(ambiguous, 1)})"
        )
        raise DataError(
            f"{csv}: column '{file_col}': {what}; give paths relative to {root} (or unique base names), and delete "
            "the rows of files that are gone"
        )
    notes = []
    unlisted = len(set(audio) - set(files))
    if unlisted:
        notes.append(f"{unlisted} audio file(s) under {root} are not in {csv.name} and were left out")
    hints = [c for c in frame.columns if c.lower() in GROUP_HINTS]
    if opts.group_col is None and opts.group_from is None and hints:
        notes.append(f"{csv.name} has a column '{hints[0]}'; --group-col {hints[0]} keeps each one in one fold/split")
    return [f for f, k in zip(files, keep, strict=True) if k], frame[keep].reset_index(drop=True), notes


def _cells(frame: pd.DataFrame, col: str, csv: Path) -> list[str]:
    values = [str(v).strip() for v in frame[col]]
    empty = [i + 2 for i, v in enumerate(values) if not v]
    if empty:
        raise DataError(f"{csv}: column '{col}' is empty in {len(empty)} row(s) (e.g. row {empty[0]}); fill them in")
    return values


def _check_flags(opts: ImportOptions) -> None:
    for f in FIELDS:
        col, rx = getattr(opts, f"{f}_col"), getattr(opts, f"{f}_from")
        if col is not None and opts.csv is None:
            raise DataError(f"--{f}-col {col}: needs --csv FILE (or take the {f} from the path with --{f}-from REGEX)")
        if col is not None and rx is not None:
            raise DataError(f"--{f}-col and --{f}-from both give the {f}; keep one")
    given_split = opts.split_col or opts.split_from
    given_fold = opts.fold_col or opts.fold_from
    if given_split and given_fold:
        raise DataError("the data's split (--split-col/--split-from) and folds (--fold-col/--fold-from): give one")
    if opts.folds is not None and (given_split or given_fold):
        raise DataError(f"--folds {opts.folds} makes new folds, but the data's own split or folds are given; keep one")
    if opts.split_fractions != S.DEFAULT_FRACTIONS and (opts.folds is not None or given_split or given_fold):
        raise DataError(
            "--split-fractions is for a generated train/valid/test split; drop it with --folds or a given split"
        )


def read_rows(opts: ImportOptions) -> Rows:
    """Find the clips of ``opts.source`` and read each one's label, group and given split or fold.

    Raises:
        DataError: No audio, contradictory flags, a regex that misses files, a CSV problem, fewer than 2
            classes, or a class name with a comma.
    """
    root = Path(opts.source).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; give the folder that holds the audio")
    root = root.resolve()
    _check_flags(opts)
    exclude = compile_regex("--exclude", opts.exclude, capture=False) if opts.exclude else None
    found = list_audio(root, root)
    audio = [f for f in found if not (exclude and exclude.search(f))]
    if not found and opts.csv is None:
        raise DataError(
            f"{root}: no audio files found (searched every subfolder for {', '.join(AUDIO_SUFFIXES)}; hidden files "
            "skipped)"
        )
    frame, notes = None, []
    if opts.csv is not None:
        files, frame, notes = _from_csv(opts, root, found)
    else:
        files = audio
    if not files:
        raise DataError(f"{root}: every audio file is left out by --exclude '{opts.exclude}'")
    values, how = {}, {}
    for f in FIELDS:
        col, rx = getattr(opts, f"{f}_col"), getattr(opts, f"{f}_from")
        if f == "label" and frame is not None and col is None and rx is None:
            col = _column(frame, Path(opts.csv), "--label-col", None, LABEL_COLUMNS)
        if col is not None:
            values[f], how[f] = _cells(frame, col, Path(opts.csv)), f"column '{col}' of {Path(opts.csv).name}"
        elif rx is not None:
            values[f], how[f] = from_regex(f"--{f}-from", rx, files, root), f"regex '{rx}' on the path"
    if "label" not in values:
        values["label"], how["label"] = _subfolder_labels(files, root, opts), "subfolder names"
    _check_labels(values["label"], files, root, how["label"])
    table = pd.DataFrame({"file_name": files, "label": values["label"]})
    if "group" in values:
        table["group"] = values["group"]
    split = S.normalise_split(values["split"], files, how["split"]) if "split" in values else None
    fold = None
    if "fold" in values:
        fold, mapping = S.normalise_folds(values["fold"], how["fold"])
        if any(str(v) != k for k, v in mapping.items()):
            notes.append(f"fold ids {list(mapping)} renumbered 1..{len(mapping)}")
    how_split = how.get("split") or how.get("fold", "")
    return Rows(root, table, split, fold, how["label"], how.get("group", ""), how_split, notes)


def _check_labels(labels: list[str], files: list[str], root: Path, how: str) -> None:
    comma = sorted({v for v in labels if "," in v})
    if comma:
        raise DataError(f"label '{comma[0]}' (from {how}) contains a comma; class names cannot (it joins multi-labels)")
    classes = sorted(set(labels))
    if len(classes) < 2:
        hint = (
            f"; if the classes are the subfolders of {root / classes[0]}, import that folder"
            if how.startswith("subfolder")
            else ""
        )
        raise DataError(
            f"all {len(files)} files have the label '{classes[0]}' (from {how}); a task needs at least 2 classes{hint}"
        )
