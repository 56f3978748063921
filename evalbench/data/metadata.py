"""The canonical prepared-dataset format every builder writes.

Under ``<data_root>/<dataset>/``:

- ``metadata.csv``: one row per clip with ``file_name`` (path relative to the
  audio root), ``label`` (multi-label: comma-joined), ``split`` (train / valid /
  test) and/or ``fold`` (1..k), optional ``group`` (source recording, speaker...)
  and any extra columns the builder keeps (PROTOCOL.md §1.2 "flat form").
- ``dataset.json``: written last, so its presence marks a complete preparation:
  builder and options, audio root, native sample rate, clip count, the SHA-256
  of ``metadata.csv`` (the dataset fingerprint used in cache keys) and a
  fingerprint of the source the builder read (to make ``prepare`` idempotent).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from evalbench import __version__
from evalbench.errors import DataError
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import atomic_write_json, atomic_write_text

FORMAT_VERSION = 1
METADATA = "metadata.csv"
INFO = "dataset.json"


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

    @property
    def fingerprint(self) -> str:
        """SHA-256 of ``metadata.csv``."""
        return str(self.info["metadata_sha256"])


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
    for col in ("file_name", "label"):
        if col not in metadata.columns:
            raise ValueError(f"metadata needs a '{col}' column")
    buf = io.StringIO()
    metadata.to_csv(buf, index=False, lineterminator="\n")
    (root / INFO).unlink(missing_ok=True)
    atomic_write_text(root / METADATA, buf.getvalue())
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


def read_info(root: Path) -> dict[str, Any] | None:
    """``dataset.json`` of a prepared dataset, or None if absent or unreadable."""
    try:
        return json.loads((Path(root) / INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_prepared(root: Path) -> PreparedDataset:
    """Load a prepared dataset and check its fingerprint.

    Raises:
        DataError: ``metadata.csv`` changed after preparation or is unreadable.
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
        try:
            table["fold"] = table["fold"].astype(int)
        except ValueError:
            raise DataError(f"{meta_path}: column 'fold' must hold integers") from None
    audio_root = Path(info["audio_root"])
    if not audio_root.is_absolute():
        audio_root = root / audio_root
    return PreparedDataset(root=root, metadata=table, audio_root=audio_root, info=info)
