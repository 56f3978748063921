"""The ``manifest`` builder: a dataset already in evalbench's canonical format.

For private or custom datasets: put a ``metadata.csv`` with the canonical
columns (``file_name``, ``label``, ``split`` or ``fold``, optional ``group``) in
the dataset folder beside the audio, and prepare it with
``evalbench data prepare TASK --source DIR``.  Audio is read in place.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec
from evalbench.utils.hashing import sha256_file, sha256_json


def _source(task: TaskSpec, source: Path | None) -> Path:
    if source is None:
        raise DataError(f"task '{task.name}': the manifest builder needs --source DIR holding metadata.csv")
    if not (Path(source) / "metadata.csv").is_file():
        raise DataError(f"{Path(source) / 'metadata.csv'}: not found; the manifest builder reads it from --source")
    return Path(source).resolve()


class ManifestBuilder(DatasetBuilder):
    """Reads ``<source>/metadata.csv`` (canonical columns) and audio in place."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the metadata file and the source path."""
        src = _source(task, source)
        return sha256_json({"metadata": sha256_file(src / "metadata.csv"), "root": str(src)})

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Copy the metadata (validated later against the task) and point at the audio in place."""
        src = _source(task, source)
        try:
            table = pd.read_csv(src / "metadata.csv", dtype=str, keep_default_na=False)
        except UnicodeDecodeError:
            raise DataError(_not_utf8(src / "metadata.csv")) from None
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{src / 'metadata.csv'}: unreadable ({exc})") from None
        if "file_name" not in table.columns:
            raise DataError(f"{src / 'metadata.csv'}: missing column 'file_name'")
        table, excluded = apply_exclusions(table, task)
        missing = [f for f in table["file_name"] if not (src / f).is_file()]
        if missing:
            first = src / missing[0]
            why = "is a directory, not an audio file" if first.is_dir() else "listed in metadata.csv but missing"
            raise DataError(f"{first}: {why} ({len(missing)} missing file(s))")
        return BuildOutput(table, str(src), task.audio.sample_rate, {"excluded": excluded})

    def instructions(self, task: TaskSpec) -> str:
        """How to prepare a manifest dataset (the spec's download or manual source first, if any)."""
        if task.dataset.source.download or task.dataset.source.manual:
            return super().instructions(task)
        return f"evalbench data prepare {task.name} --source DIR  (DIR holds metadata.csv and the audio)"


def _not_utf8(path: Path) -> str:
    """Name the line and bytes of the first non-UTF-8 sequence in ``path`` (pandas' offsets are per chunk)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start : exc.end]
        return (
            f"{path}: line {line} (row {line - 1} after the header) is not UTF-8 (bytes {bad!r} at offset "
            f"{exc.start}); save the file as UTF-8"
        )
    return f"{path}: not UTF-8; save the file as UTF-8"
