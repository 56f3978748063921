"""The canonical prepared-dataset format every builder writes.

Under ``<data_root>/<dataset>/``:

- ``metadata.csv``: one row per clip with ``file_name`` (path relative to the
  audio root), ``label`` (multi-label: comma-joined), ``split`` (train / valid /
  test) and/or ``fold`` (1..k), optional ``group`` (source recording, speaker...)
  and any extra columns the builder keeps (docs/protocol.md §1.2 "flat form").
- ``content.tsv``: the content index, one row per listed file with its size,
  modification time (ns) and the SHA-256 of its bytes, hashed once at prepare.
- ``dataset.json``: written last, so its presence marks a complete preparation:
  builder and options, audio root, native sample rate, clip count, the SHA-256
  of ``metadata.csv`` and a fingerprint of the source the builder read (to make
  ``prepare`` idempotent).

The dataset *fingerprint* (in every cache key and run record) is the hash of
``metadata.csv`` together with the content hash of every clip, so editing
audio in place changes it.  Opening a prepared dataset re-checks the content
index cheaply: every file is ``stat``-ed, and a file whose size or modification
time differs from the index is hashed again (only that file); a changed hash
updates the index and the fingerprint, and a missing file is reported by name.
Paths in ``file_name`` are stored normalised (``./a.wav``, ``a//b.wav`` and
``x/../a.wav`` are written ``a.wav``, ``a/b.wav``, ``a.wav``) so one clip cannot
be listed twice under two spellings.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalbench import __version__
from evalbench.errors import DataError
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_file, sha256_json, sha256_lines
from evalbench.utils.io import atomic_write_json, atomic_write_text

FORMAT_VERSION = 1
METADATA = "metadata.csv"
INFO = "dataset.json"
CONTENT = "content.tsv"
MISSING = "missing"  # the content hash of a listed file that is not on disk
HASH_THREADS = 4  # hashlib releases the GIL: a few threads keep a disk busy
log = logging.getLogger(__name__)


def normalise_path(name: str) -> str:
    """The canonical spelling of a metadata path: POSIX-normalised, no ``./``, no doubled ``/``.

    Raises:
        ValueError: The path is empty, absolute, or leaves the audio root.
    """
    text = str(name).strip()
    norm = posixpath.normpath(text) if text else ""
    if not norm or norm == "." or norm.startswith("/") or norm == ".." or norm.startswith("../"):
        raise ValueError(f"file_name '{name}' must be a relative path inside the audio root")
    return norm


def _hash_one(path: Path) -> tuple[int, int, str]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns, sha256_file(path)
    except OSError:
        return -1, -1, MISSING


def hash_files(audio_root: Path, files: list[str], desc: str) -> pd.DataFrame:
    """The content index of ``files``: ``file_name, size, mtime_ns, sha256`` (``missing`` for absent files)."""
    paths = [Path(audio_root) / f for f in files]
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        jobs = pool.map(_hash_one, paths)
        rows = list(progress(jobs, total=len(paths), desc=desc, unit="file", leave=False))
    frame = pd.DataFrame(rows, columns=["size", "mtime_ns", "sha256"])
    frame.insert(0, "file_name", list(files))
    return frame


def _write_content(root: Path, content: pd.DataFrame) -> None:
    atomic_write_text(root / CONTENT, content.to_csv(sep="\t", index=False, lineterminator="\n"))


def _read_content(root: Path) -> pd.DataFrame | None:
    try:
        frame = pd.read_csv(root / CONTENT, sep="\t", dtype={"file_name": str, "sha256": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if list(frame.columns) != ["file_name", "size", "mtime_ns", "sha256"]:
        return None
    return frame


def refresh_content(root: Path, audio_root: Path, files: list[str]) -> pd.DataFrame:
    """The content index of a prepared dataset, re-checked against the files on disk.

    Files whose size and modification time match the index keep their hash;
    others are hashed again (an absent or unreadable index is rebuilt, e.g.
    for datasets prepared by an older evalbench).  The index is rewritten
    atomically when anything changed, and changed contents are logged.
    """
    index = _read_content(root)
    if index is None or index["file_name"].tolist() != list(files):
        content = hash_files(audio_root, files, f"hash {root.name}")
        _write_content(root, content)
        return content
    sizes, mtimes = np.full(len(files), -1, dtype=np.int64), np.full(len(files), -1, dtype=np.int64)
    for i, name in enumerate(files):
        try:
            st = os.stat(audio_root / name)
            sizes[i], mtimes[i] = st.st_size, st.st_mtime_ns
        except OSError:
            pass
    stale = np.flatnonzero((sizes != index["size"].to_numpy()) | (mtimes != index["mtime_ns"].to_numpy()))
    if len(stale) == 0:
        return index
    fresh = hash_files(audio_root, [files[i] for i in stale], f"re-hash {root.name}")
    changed = [
        files[i] for i, sha in zip(stale, fresh["sha256"], strict=True) if sha not in (index.at[i, "sha256"], MISSING)
    ]
    index.loc[stale, ["size", "mtime_ns", "sha256"]] = fresh[["size", "mtime_ns", "sha256"]].to_numpy()
    _write_content(root, index)
    if changed:
        log.warning(
            "%s: %d audio file(s) changed since they were prepared (e.g. %s); "
            "their cached audio, embeddings and records are recomputed",
            root,
            len(changed),
            audio_root / changed[0],
        )
    return index


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared dataset on disk.

    Attributes:
        root: The dataset folder under the data root.
        metadata: The metadata table (all columns as strings, ``fold`` as int).
        audio_root: Folder that ``file_name`` paths are relative to.
        info: Contents of ``dataset.json``.
    """

    root: Path
    metadata: pd.DataFrame
    audio_root: Path
    info: dict[str, Any]
    content: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of ``metadata.csv`` and of every clip's content hash."""
        return content_fingerprint(str(self.info["metadata_sha256"]), self.content)

    @property
    def missing(self) -> list[str]:
        """Listed files that are not on disk (in metadata order)."""
        return [f for f, sha in self.content.items() if sha == MISSING]


def content_fingerprint(metadata_sha256: str, content: dict[str, str]) -> str:
    """The dataset fingerprint: metadata hash plus each clip's ``name sha256`` line."""
    return sha256_json([metadata_sha256, sha256_lines([f"{k}\t{v}" for k, v in content.items()])])


def is_prepared(root: Path) -> bool:
    """True if ``root`` holds a complete preparation (``dataset.json`` present)."""
    return (Path(root) / INFO).is_file() and (Path(root) / METADATA).is_file()


def write_prepared(
    root: Path,
    metadata: pd.DataFrame,
    *,
    builder: str,
    options: dict[str, Any],
    audio_root: str,
    sample_rate: int | None,
    source_fingerprint: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Atomically write ``metadata.csv`` then ``dataset.json`` into ``root``.

    Args:
        root: Dataset folder.
        metadata: Canonical table (``file_name``, ``label``, ``split``/``fold``...).
        builder: Builder name.
        options: Builder options used.
        audio_root: Audio folder, relative to ``root`` or absolute.
        sample_rate: Native sample rate if uniform, else None.
        source_fingerprint: Fingerprint of what the builder read.
        extra: More fields for ``dataset.json`` (e.g. exclusions).

    Returns:
        The written ``dataset.json`` contents.
    """
    root = Path(root)
    where = _source_table(root, builder, audio_root)
    for col in ("file_name", "label"):
        if col not in metadata.columns:
            raise DataError(f"{where}: no '{col}' column; the canonical metadata needs file_name and label")
    if "fold" in metadata.columns:  # refuse before anything is written: a non-integer fold is unreadable later
        _integer_folds(metadata.assign(fold=metadata["fold"].astype(str)), where)
    names = _normalised_names(metadata["file_name"], where, _parts(metadata))
    metadata = metadata.assign(file_name=names)
    buf = io.StringIO()
    metadata.to_csv(buf, index=False, lineterminator="\n")
    (root / INFO).unlink(missing_ok=True)
    atomic_write_text(root / METADATA, buf.getvalue())
    audio = Path(audio_root) if Path(audio_root).is_absolute() else root / audio_root
    _write_content(root, hash_files(audio, metadata["file_name"].tolist(), f"hash {root.name}"))
    info = {
        "format": FORMAT_VERSION,
        "builder": builder,
        "options": options,
        "audio_root": audio_root,
        "sample_rate": sample_rate,
        "n_clips": len(metadata),
        "metadata_sha256": sha256_file(root / METADATA),
        "source_fingerprint": source_fingerprint,
        "evalbench": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    atomic_write_json(root / INFO, info)
    return info


def _source_table(root: Path, builder: str, audio_root: str) -> str:
    """Where a builder's rows came from, for errors found before ``metadata.csv`` is written.

    The ``manifest`` builder copies ``<source>/metadata.csv`` (its audio root) row for row, so a row number there
    is one the user can look up; other builders derive rows from an official layout, named with the
    destination file.
    """
    source = Path(audio_root) / METADATA
    if builder == "manifest" and Path(audio_root).is_absolute() and source.is_file():
        return str(source)
    return f"{root / METADATA} (rows made by the {builder} builder)"


def read_info(root: Path) -> dict[str, Any] | None:
    """``dataset.json`` of a prepared dataset, or None if absent or unreadable."""
    try:
        return json.loads((Path(root) / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _parts(metadata: pd.DataFrame) -> list[str] | None:
    """Each row's split or fold in words (``split 'train'``, ``fold 2``), or None without either column."""
    if "split" in metadata.columns:
        return [f"split '{v}'" for v in metadata["split"].astype(str)]
    if "fold" in metadata.columns:
        return [f"fold {v}" for v in metadata["fold"].astype(str)]
    return None


def _normalised_names(names: pd.Series, where: object, parts: list[str] | None = None) -> list[str]:
    """Normalised ``file_name`` values; a bad path or a clip listed twice raises :class:`DataError`.

    ``parts`` (each row's split or fold, :func:`_parts`) lets the message say
    when the two rows put one clip on both sides of a split, the leak that
    makes the duplicate dangerous rather than merely redundant.
    """
    out, seen = [], {}
    for row, name in enumerate(names.astype(str), start=2):
        try:
            norm = normalise_path(name)
        except ValueError as exc:
            raise DataError(f"{where}: row {row}: {exc}") from None
        if norm in seen:
            first = names.iloc[seen[norm] - 2]
            sides = ""
            if parts is not None and parts[seen[norm] - 2] != parts[row - 2]:
                sides = (
                    f", in {parts[seen[norm] - 2]} (row {seen[norm]}) and {parts[row - 2]} (row {row}): the same "
                    "clip on both sides of a split leaks it into evaluation"
                )
            raise DataError(
                f"{where}: row {row}: file_name '{name}' is the same file as '{first}' (row {seen[norm]}){sides}; "
                "each clip may be listed once: remove one of the rows"
            )
        seen[norm] = row
        out.append(norm)
    return out


def _integer_folds(table: pd.DataFrame, where: object) -> pd.Series:
    """The ``fold`` column as integers (what ``int()`` accepts); a value that is not one names its row."""
    values = table["fold"].astype(str).tolist()
    out, bad = [], []
    for row, value in enumerate(values):
        try:
            out.append(int(value))
        except ValueError:
            bad.append(row)
    if bad:
        raise DataError(
            f"{where}: row {bad[0] + 2}: fold '{values[bad[0]]}' is not an integer ({len(bad)} such row(s)); "
            "the column 'fold' holds fold numbers 1..k"
        )
    return pd.Series(out, index=table.index, dtype=np.int64)


def read_prepared(root: Path, check_content: bool = True) -> PreparedDataset:
    """Load a prepared dataset and check its fingerprint.

    Args:
        root: The dataset folder.
        check_content: Re-check the content index against the files on disk
            (``stat`` every file, re-hash changed ones); off for label-only uses
            such as ``tasks validate``.

    Raises:
        DataError: ``metadata.csv`` changed after preparation, is unreadable,
            or lists a path twice.
    """
    root = Path(root)
    info = read_info(root)
    if info is None:
        raise DataError(f"{root / INFO}: missing or unreadable; prepare the dataset again")
    meta_path = root / METADATA
    if sha256_file(meta_path) != info.get("metadata_sha256"):
        raise DataError(f"{meta_path}: changed since it was prepared; prepare the dataset again")
    try:
        table = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{meta_path}: unreadable ({exc}); prepare the dataset again") from None
    if "fold" in table.columns:
        table["fold"] = _integer_folds(table, meta_path)
    if "file_name" not in table.columns:
        raise DataError(f"{meta_path}: missing column 'file_name'; prepare the dataset again")
    table["file_name"] = _normalised_names(table["file_name"], meta_path, _parts(table))
    audio_root = Path(info["audio_root"])
    if not audio_root.is_absolute():
        audio_root = root / audio_root
    content = {}
    if check_content:
        index = refresh_content(root, audio_root, table["file_name"].tolist())
        content = dict(zip(index["file_name"], index["sha256"], strict=True))
    return PreparedDataset(root=root, metadata=table, audio_root=audio_root, info=info, content=content)
