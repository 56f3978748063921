"""The up-to-date memo: a rerun with nothing to do answers in a fraction of a second.

``evalbench run`` decides that a record is up to date by comparing its
staleness key (:func:`evalbench.results.store.staleness_key`) with the key the
current inputs give: encoder spec, adapter code version and checkpoint hash,
task spec, dataset fingerprint, probe configuration and seeds.  Computing that
key needs the probe classes and the adapters, hence torch and scikit-learn,
whose import alone costs about a second — most of a rerun's time when
everything is current.

The memo records the *inputs* of one complete, successful run rather than its
conclusion's ingredients: after a run in which every pair ended up to date or
written, :func:`write` stores, under a key of the request (the command's
options, working folder, ``EVALBENCH_*`` variables and the resolved folders),

- a digest of evalbench's own source code (any code change invalidates it),
- the size and modification time (ns) of every file under the task and
  encoder spec folders (specs, suites, includes, checkpoints kept there: an
  added or removed spec changes name resolution, so the listing counts too),
  of each encoder's checkpoint and ``trained_on`` file, of each dataset's
  ``dataset.json``, ``metadata.csv`` and ``content.tsv``, and of every record
  the run wrote or found current;
- each dataset's content index, checked as :func:`evalbench.data.metadata.refresh_content`
  checks it: every listed audio file's size and modification time against its
  row (a mismatch would re-hash the file and may change the fingerprint).

:func:`check` repeats those observations with the standard library only — no
torch, scikit-learn, numpy or pandas — and answers with the memo's record
lines only when every one is unchanged; anything else (no memo, a changed
byte count or time stamp, a new file, a different evalbench) falls through
to the full check, which is always correct.  The inputs are observed twice
around the run (after the preflight opened every dataset, and at the end) and
the memo is only written when both observations agree, so a file edited
while the run read it is never vouched for.  ``--overwrite`` skips the memo
and writes a fresh one; HEAR modules (``hear:``) are installed code outside
evalbench and never use it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEMO_VERSION = 1
MEMO_DIR = "uptodate"
CONTENT = "content.tsv"  # evalbench.data.metadata.CONTENT, not imported: that module imports pandas
DATASET_FILES = ("dataset.json", "metadata.csv", CONTENT)
Signature = list[int] | None  # [size, mtime_ns], or None for an absent path


def signature(path: str | os.PathLike) -> Signature:
    """``[size, mtime_ns]`` of a file, or None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def tree_signature(root: str | os.PathLike) -> dict[str, Signature]:
    """Signature of every file under ``root`` by relative path (``{}`` for a missing folder)."""
    out: dict[str, Signature] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = signature(path)
    return out


def code_digest(package: str | os.PathLike | None = None) -> str:
    """SHA-256 over the relative paths and bytes of every ``.py`` file of the evalbench package."""
    root = Path(package) if package is not None else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def request_key(options: dict[str, Any], folders: dict[str, Any]) -> str:
    """Key of one request: options, resolved folders, working folder and ``EVALBENCH_*`` variables."""
    env = {k: v for k, v in os.environ.items() if k.startswith("EVALBENCH_")}
    text = json.dumps(
        {"options": options, "folders": folders, "cwd": os.getcwd(), "env": env}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_index_current(content_tsv: str | os.PathLike, audio_root: str | os.PathLike) -> bool:
    """Every file listed in a content index has the size and modification time of its row."""
    try:
        with open(content_tsv, encoding="utf-8", newline="") as fh:
            rows = csv.reader(fh, delimiter="\t")
            if next(rows, None) != ["file_name", "size", "mtime_ns", "sha256"]:
                return False
            for row in rows:
                sig = signature(os.path.join(audio_root, row[0])) or [-1, -1]
                if sig != [int(row[1]), int(row[2])]:
                    return False
    except (OSError, ValueError, IndexError, csv.Error):
        return False
    return True


@dataclass
class Inputs:
    """What a run's verdicts depend on, as paths (observed by :meth:`observe`).

    Attributes:
        trees: Spec folders, observed recursively.
        files: Single files (checkpoints, ``trained_on`` lists, dataset files).
        datasets: Prepared dataset folders (their content index is checked).
    """

    trees: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)

    def add_dataset(self, root: str | os.PathLike) -> None:
        """A prepared dataset folder: its three files and its content index."""
        self.datasets.append(str(root))
        self.files += [os.path.join(root, name) for name in DATASET_FILES]

    def observe(self) -> dict[str, Any]:
        """Signatures of every input (the memo's comparison basis)."""
        return {
            "code": code_digest(),
            "trees": {t: tree_signature(t) for t in self.trees},
            "files": {f: signature(f) for f in self.files},
            "datasets": {d: dataset_audio_root(d) for d in self.datasets},
        }


def dataset_audio_root(root: str | os.PathLike) -> str | None:
    """The audio root recorded in a prepared dataset's ``dataset.json`` (absolute), or None."""
    try:
        with open(os.path.join(root, "dataset.json"), encoding="utf-8") as fh:
            audio = json.load(fh)["audio_root"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(audio) if os.path.isabs(audio) else os.path.join(root, audio)


def memo_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where the memo of request ``key`` lives."""
    return Path(cache_dir) / MEMO_DIR / f"{key}.json"


def check(path: str | os.PathLike) -> list[list[str]] | None:
    """The memo's ``[encoder, task, record path]`` lines if every observation is unchanged, else None."""
    try:
        with open(path, encoding="utf-8") as fh:
            memo = json.load(fh)
        if memo.get("version") != MEMO_VERSION:
            return None
        observed = memo["inputs"]
        if observed["code"] != code_digest():
            return None
        if any(tree_signature(t) != sig for t, sig in observed["trees"].items()):
            return None
        if any(signature(f) != sig for f, sig in {**observed["files"], **memo["outputs"]}.items()):
            return None
        for root, audio_root in observed["datasets"].items():
            if audio_root is None or not content_index_current(os.path.join(root, CONTENT), audio_root):
                return None
        return [list(map(str, line)) for line in memo["lines"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write(
    path: str | os.PathLike, before: dict[str, Any], inputs: Inputs, lines: Iterable[tuple[str, str, str]]
) -> bool:
    """Store the memo if the inputs observed ``before`` the run still hold; True when written.

    Args:
        path: The memo file (:func:`memo_path`).
        before: :meth:`Inputs.observe` taken after the preflight, before any record was written.
        inputs: The same inputs, observed again now.
        lines: ``(encoder, task, record path)`` of every pair of the run, in order.
    """
    from evalbench.errors import DiskFullError
    from evalbench.utils.io import atomic_write_json

    after = inputs.observe()
    if after != before:
        return False
    for root, audio_root in after["datasets"].items():
        if audio_root is None or not content_index_current(os.path.join(root, CONTENT), audio_root):
            return False
    lines = [list(map(str, line)) for line in lines]
    outputs = {record: signature(record) for _, _, record in lines}
    if any(sig is None for sig in outputs.values()):
        return False
    memo = {"version": MEMO_VERSION, "inputs": after, "outputs": outputs, "lines": lines}
    try:
        atomic_write_json(Path(path), memo)
    except DiskFullError:  # only a shortcut for the next run, which then checks the slow way: not worth failing for
        return False
    return True


__all__ = [
    "Inputs",
    "check",
    "code_digest",
    "content_index_current",
    "memo_path",
    "request_key",
    "signature",
    "tree_signature",
    "write",
]
