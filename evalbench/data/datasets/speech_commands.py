"""Speech Commands v0.01 and v0.02 keyword recognition.

Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
arXiv:1804.03209, 2018.  One-second (16 kHz) recordings of single spoken words, one folder per word,
read in place from the extracted archive (it unpacks with no top folder)::

    <word>/<speaker>_nohash_<n>.wav     # speaker: hex id of the contributor
    validation_list.txt                 # lines "word/file.wav"
    testing_list.txt
    _background_noise_/*.wav            # long noise recordings: not a class

Split (docs/protocol.md §1.2): a file on ``validation_list.txt`` is valid, one on
``testing_list.txt`` is test, every other file is train.  The lists were drawn
by a hash of the speaker id, so each speaker sits in one split of the
*official* lists, but evalbench trusts the lists, not the hash: membership is
exactly what the lists say.  Only lower-case word folders count;
``_background_noise_`` and any other folder are ignored (and reported).

v0.01 has 30 words; v0.02 adds backward, follow, forward, learn and visual
(35).  The published split sizes are 51,088 / 6,798 / 6,835 (v0.01) and
84,843 / 9,981 / 11,005 (v0.02); the counts found are stored beside them in
``dataset.json``.  The 12-class "SPCV2/12" variant is a different task.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.errors import DataError, SpecError
from evalbench.specs.fields import parse
from evalbench.specs.task import TaskSpec

BUILDER_VERSION = 1
# The 30 words of v0.01, sorted; v0.02 adds backward, follow, forward, learn and visual (Warden 2018).
# fmt: off
WORDS_V1 = [
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
]
# fmt: on
WORDS = {1: WORDS_V1, 2: sorted([*WORDS_V1, "backward", "follow", "forward", "learn", "visual"])}
REFERENCE_COUNTS = {
    1: {"train": 51088, "valid": 6798, "test": 6835},
    2: {"train": 84843, "valid": 9981, "test": 11005},
}
LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
_WORD_DIR = re.compile(r"[a-z]+")
_FILE = re.compile(r"(?P<speaker>[0-9a-f]+)_nohash_(?P<n>\d+)\.wav")


@dataclass(frozen=True)
class SpeechCommandsOptions:
    """Options of the ``speech_commands`` builder (``dataset.options``).

    Attributes:
        version: Dataset release: 1 for v0.01 (30 words), 2 for v0.02 (35 words).
    """

    version: Literal[1, 2]


def _options(task: TaskSpec) -> SpeechCommandsOptions:
    opts = parse(SpeechCommandsOptions, task.dataset.options, task.source_path or task.name, "dataset.options")
    words = WORDS[opts.version]
    if task.labels.classes is None or list(task.labels.classes) != words:
        raise SpecError(
            f"{task.source_path or task.name}: labels.classes: must list the {len(words)} words of "
            f"Speech Commands v0.0{opts.version} in sorted order"
        )
    return opts


def _root(task: TaskSpec, source: Path | None) -> Path:
    """The extracted archive folder, checked for both list files."""
    root = require_source(task, source, "the extracted Speech Commands archive (word folders and the two lists)")
    for name in LISTS.values():
        if not (root / name).is_file():
            raise DataError(f"{root / name}: not found; --source must be the extracted Speech Commands archive")
    return root


def _word_dirs(root: Path) -> tuple[list[str], list[str]]:
    """(lower-case word folders, other top-level folders), both sorted."""
    dirs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    words = [d for d in dirs if _WORD_DIR.fullmatch(d)]
    return words, [d for d in dirs if d not in words]


def _clips(root: Path, words: list[str]) -> list[str]:
    """Sorted ``word/file.wav`` paths of the word folders (``._*`` and other hidden files skipped)."""
    return sorted(f for word in words for f in list_audio(root / word, root, (".wav",)))


def _read_list(path: Path, files: set[str]) -> set[str]:
    """Entries of one split list; every entry must be an existing file of a word folder."""
    entries = set()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        entry = raw.strip().removeprefix("./")
        if not entry:
            continue
        if entry not in files:
            raise DataError(
                f"{path}: line {number}: '{entry}' is not a file of a word folder; "
                "restore it or use an unmodified copy of the archive"
            )
        entries.add(entry)
    return entries


class SpeechCommandsBuilder(DatasetBuilder):
    """Builder of Speech Commands v0.01 / v0.02 (``options: {version: 1 | 2}``), read in place."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the spec fields applied, both lists and the (path, size) listing of the word folders."""
        _options(task)
        root = _root(task, source)
        words, others = _word_dirs(root)
        return fingerprint(
            task, root, LISTS.values(), _clips(root, words), version=BUILDER_VERSION, folders=[words, others]
        )

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Read the word folders and the two lists into canonical metadata (audio stays in place).

        Raises:
            DataError: Missing list file, word folders that differ from the
                version's words, a file name not of the form
                ``<speaker>_nohash_<n>.wav``, a list entry that is not an
                existing file, or a file on both lists.
        """
        opts, root = _options(task), _root(task, source)
        words, others = _word_dirs(root)
        expected = WORDS[opts.version]
        extra_dirs, missing = sorted(set(words) - set(expected)), sorted(set(expected) - set(words))
        if extra_dirs or missing:
            raise DataError(
                f"{root}: word folders differ from Speech Commands v0.0{opts.version}: "
                f"unexpected {extra_dirs}, missing {missing}; check the archive version against the task"
            )
        files = _clips(root, words)
        for rel in files:
            if not _FILE.fullmatch(rel.split("/", 1)[1]):
                raise DataError(f"{root / rel}: file name is not '<speaker>_nohash_<n>.wav'; remove or rename it")
        members = {split: _read_list(root / name, set(files)) for split, name in LISTS.items()}
        both = sorted(members["valid"] & members["test"])
        if both:
            raise DataError(f"{root / LISTS['test']}: '{both[0]}' is also on {LISTS['valid']} ({len(both)} such files)")
        rows = []
        for rel in files:
            word, name = rel.split("/", 1)
            split = "valid" if rel in members["valid"] else "test" if rel in members["test"] else "train"
            rows.append({"file_name": rel, "label": word, "split": split, "group": _FILE.fullmatch(name)["speaker"]})
        table = pd.DataFrame(rows, columns=["file_name", "label", "split", "group"])
        table, excluded = apply_exclusions(table, task)
        counts = {s: int((table["split"] == s).sum()) for s in ("train", "valid", "test")}
        extra = {
            "version": f"v0.0{opts.version}",
            "split_rule": "official lists: validation_list.txt, testing_list.txt; all other files are train",
            "counts": counts,
            "reference_counts": REFERENCE_COUNTS[opts.version],
            "n_speakers": int(table["group"].nunique()),
            "ignored_folders": others,
            "excluded": excluded,
        }
        return BuildOutput(table, str(root), task.audio.sample_rate, extra)
