"""GTZAN music genre classification on the fault-filtered split.

G. Tzanetakis and P. Cook, "Musical Genre Classification of Audio Signals",
IEEE TSAP 2002.  1,000 excerpts of 30 s (22,050 Hz mono), 100 per genre::

    genres/<genre>/<genre>.<5-digit id>.wav      (some copies ship .au)

Split.  GTZAN repeats artists and even recordings (B. L. Sturm, "An Analysis of
the GTZAN Music Genre Dataset", 2012), so random splits overestimate accuracy.
The reference harness uses the *fault-filtered* (artist-filtered) split of
Kereliuk et al., "Deep Learning and Music Adversaries", IEEE TMM 2015, as
published in jongpillee/music_dataset_split (``GTZAN_split/``):
``train_filtered.txt``, ``valid_filtered.txt``, ``test_filtered.txt`` with lines
such as ``blues/blues.00029.wav``, holding 443 / 197 / 290 clips; the other 70
clips are unused (their count is reported).  The builder finds the three lists
at the top of ``--source`` (beside ``genres/``) or in a ``GTZAN_split/``
subfolder.  A list line resolves to the file it names, or else to the same
stem with the other extension (``.au`` / ``.wav``).

Known-bad files.  ``jazz/jazz.00054.wav`` is truncated and undecodable in the
common copies; the task spec excludes it by rule (``dataset.exclude``), and the
exclusion is reported.  It is on the train list, so the train split then holds
442 clips.  Exclusion rules are matched without the audio suffix, so the rule
``jazz/jazz.00054.wav`` also drops ``jazz.00054.au`` from a copy in the
original ``.au`` form (and a rule written ``.au`` drops a ``.wav`` copy).
Every other listed clip must exist and have a readable audio header, or
preparation fails naming the file.  macOS ``._*`` resource forks are ignored.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import soundfile as sf

from evalbench.data.builders import BuildOutput, DatasetBuilder
from evalbench.data.datasets import _common as C
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec

# 2: exclusion rules match whatever the audio suffix (a prepared .au copy kept jazz.00054 under 1).
BUILDER_VERSION = 2
GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
AUDIO = "genres"
SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
SPLIT_DIRS = ("", "GTZAN_split")
PUBLISHED_COUNTS = {"train": 443, "valid": 197, "test": 290}
SAMPLE_RATE = 22050
_SUFFIXES = (".wav", ".au")
_WHAT = "the folder holding genres/<genre>/ and the fault-filtered split lists"


def _split_dir(root: Path) -> str:
    """The folder (relative to ``root``) holding the three split lists."""
    for sub in SPLIT_DIRS:
        if all((root / sub / name).is_file() for name in SPLIT_FILES.values()):
            return sub
    missing = next(name for name in SPLIT_FILES.values() if not (root / name).is_file())
    raise DataError(
        f"{root / missing}: not found (also looked in {root / 'GTZAN_split'}); download the fault-filtered split "
        "lists (the task spec's dataset.source.download) next to genres/"
    )


def _read_list(path: Path, split: str) -> list[dict[str, str]]:
    """Parse one split list: ``<genre>/<genre>.<id>.<ext>`` per line (blank lines ignored)."""
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split("/")
        if len(parts) != 2 or not parts[1].startswith(parts[0] + ".") or parts[0] not in GENRES:
            raise DataError(f"{path}: line {number}: '{line}' is not <genre>/<genre>.<id>.wav with a GTZAN genre")
        rows.append({"entry": line, "label": parts[0], "split": split})
    return rows


def _resolve(root: Path, entry: str) -> str:
    """Path (relative to ``root``) of the clip a list entry names: as written, else the other extension."""
    stem = Path(entry).with_suffix("").as_posix()
    candidates = [entry, *(stem + s for s in _SUFFIXES)]
    for rel in candidates:
        if (root / AUDIO / rel).is_file():
            return f"{AUDIO}/{rel}"
    return f"{AUDIO}/{entry}"


def _check_headers(root: Path, files: list[str], where: Path) -> None:
    """Open every header; a clip soundfile cannot open fails preparation now, not mid-extraction."""
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"{root / missing[0]}: on the split list {where.name} but missing ({len(missing)} missing file(s)); "
            "restore it, or exclude it in the task spec if it is known-bad"
        )
    for rel in files:
        try:
            sf.info(str(root / rel))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{root / rel}: unreadable audio ({first}); replace the file, or exclude it in the task spec "
                "if it is known-bad"
            ) from None


class GTZANBuilder(DatasetBuilder):
    """Reads GTZAN in place with the fault-filtered train / valid / test lists."""

    def _root(self, task: TaskSpec, source: Path | None) -> Path:
        src = C.require_source(task, source, _WHAT)
        return C.locate_root(src, AUDIO, (), _WHAT)

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the three split lists, the (path, size) list of ``genres/``, exclusions and classes."""
        root = self._root(task, source)
        sub = _split_dir(root)
        lists = [(Path(sub) / name).as_posix() for name in SPLIT_FILES.values()]
        audio = C.list_audio(root / AUDIO, root, _SUFFIXES)
        return C.fingerprint(task, root, lists, audio, version=BUILDER_VERSION)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Validate the layout and return the listed clips with their split.

        Raises:
            DataError: Missing ``genres/`` or split list, a malformed list line, a
                clip on two lists, a class list other than the ten genres, or a
                listed clip (not excluded by the spec) missing or unreadable.
        """
        if task.dataset.options:
            raise DataError(f"{task.source_path}: dataset.options: the gtzan builder takes no options")
        if task.labels.classes is not None and list(task.labels.classes) != GENRES:
            raise DataError(f"{task.source_path}: labels.classes: must be the ten GTZAN genres in order {GENRES}")
        root = self._root(task, source)
        sub = _split_dir(root)
        rows: list[dict[str, str]] = []
        for split, name in SPLIT_FILES.items():
            rows.extend(_read_list(root / sub / name, split))
        table = pd.DataFrame(rows)
        dupes = table["entry"][table["entry"].duplicated()]
        if len(dupes):
            raise DataError(f"{root / sub}: '{dupes.iloc[0]}' appears on more than one split list (or twice)")
        meta = pd.DataFrame(
            {
                "file_name": [_resolve(root, e) for e in table["entry"]],
                "label": table["label"],
                "split": table["split"],
                "list_entry": table["entry"],
            }
        )
        meta, excluded, removed = C.apply_exclusions_any_suffix(meta, task, _SUFFIXES)
        _check_headers(root, meta["file_name"].tolist(), root / sub / SPLIT_FILES["train"])
        used = set(meta["file_name"]) | set(removed)
        audio = C.list_audio(root / AUDIO, root, _SUFFIXES)
        extra = {
            "classes": GENRES,
            "split_lists": {s: (Path(sub) / n).as_posix() for s, n in SPLIT_FILES.items()},
            "split_rule": "fault-filtered lists of Kereliuk et al. 2015 (jongpillee/music_dataset_split)",
            "excluded": excluded,
            "counts": {s: int((meta["split"] == s).sum()) for s in SPLIT_FILES},
            "published_counts": PUBLISHED_COUNTS,
            "unused_clips": sum(1 for f in audio if f not in used),
            "formats": C.counts(Path(f).suffix.lower() for f in meta["file_name"]),
        }
        return BuildOutput(meta, str(root), SAMPLE_RATE, extra)
