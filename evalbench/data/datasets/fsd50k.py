"""FSD50K: multi-label sound-event tagging with the 200-class AudioSet-ontology vocabulary.

FSD50K (Fonseca et al., "FSD50K: An Open Dataset of Human-Labeled Sound
Events", IEEE/ACM TASLP 2022; Zenodo record 4060432) ships 51,197 Freesound
clips of 0.3–30 s at 44.1 kHz.  Unpacked, the official layout is::

    FSD50K.dev_audio/<fname>.wav        FSD50K.eval_audio/<fname>.wav
    FSD50K.ground_truth/dev.csv         fname, labels, mids, split (train | val)
    FSD50K.ground_truth/eval.csv        fname, labels, mids
    FSD50K.ground_truth/vocabulary.csv  index, label, mid

``labels`` is a comma-joined list of vocabulary labels (quoted in the CSV).
Dev train → ``train``, dev val → ``valid`` (the official validation set, used
only for early stopping), eval → ``test``.  The class vocabulary is
``vocabulary.csv`` in index order, written to ``dataset.json`` as ``classes``
and used for every split (docs/protocol.md §4, flaw 2), so the task spec does not
list classes.  ``vocabulary.csv`` is documented without a header (unverified):
a first row whose index is not an integer is taken as a header.  Dev
train/val is 36,796 / 4,170 clips and eval 10,231 (unverified; reported in
``dataset.json`` against the actual counts).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import TaskSpec

BUILDER_VERSION = 1
TRUTH = "FSD50K.ground_truth"
AUDIO = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
CSV_COLUMNS = {"dev.csv": ["fname", "labels", "split"], "eval.csv": ["fname", "labels"]}
SPLIT_OF = {"train": "train", "val": "valid"}
SPLITS = ("train", "valid", "test")
SAMPLE_RATE = 44100  # every clip (Fonseca et al. 2022)
JOIN_HINT = "join the split zips first (zip -s 0 FSD50K.dev_audio.zip --out dev.zip; unzip dev.zip)"


def _root(task: TaskSpec, source: Path | None) -> Path:
    if task.dataset.options:
        raise SpecError(f"{task.source_path or task.name}: dataset.options: the fsd50k builder takes no options")
    root = require_source(task, source, f"the folder holding {TRUTH}/, {AUDIO['dev']}/ and {AUDIO['eval']}/")
    for name in ("vocabulary.csv", *CSV_COLUMNS):
        if not (root / TRUTH / name).is_file():
            raise DataError(f"{root / TRUTH / name}: not found; unzip FSD50K.ground_truth.zip into --source")
    for folder in AUDIO.values():
        if not (root / folder).is_dir():
            raise DataError(f"{root / folder}: not found; {JOIN_HINT}, likewise for eval, into --source")
    return root


def _audio(root: Path) -> list[str]:
    """``FSD50K.{dev,eval}_audio/<fname>.wav`` paths found, relative to ``root`` (``._*`` files skipped)."""
    return [p for folder in AUDIO.values() for p in list_audio(root / folder, root, (".wav",))]


def read_vocabulary(path: Path) -> tuple[list[str], bool]:
    """Class labels of ``vocabulary.csv`` in index order, and whether the file had a header row.

    Raises:
        DataError: Wrong column count, non-integer or non-contiguous indices,
            duplicate labels, or a label containing a comma.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    header = bool(rows) and not rows[0][0].strip().lstrip("-").isdigit()
    entries = []
    for line, row in enumerate(rows[1:] if header else rows, start=2 if header else 1):
        if len(row) != 3 or not row[0].strip().isdigit():
            raise DataError(f"{path}: line {line}: expected 'index,label,mid', got {row}")
        label = row[1].strip()
        if "," in label or not label:
            raise DataError(f"{path}: line {line}: label '{label}' is empty or contains a comma")
        entries.append((int(row[0]), label))
    entries.sort()
    if [i for i, _ in entries] != list(range(len(entries))) or not entries:
        raise DataError(f"{path}: indices must be 0..{len(entries) - 1} without gaps or repeats")
    labels = [label for _, label in entries]
    if len(set(labels)) != len(labels):
        raise DataError(f"{path}: duplicate labels {sorted({x for x in labels if labels.count(x) > 1})}")
    return labels, header


def _ground_truth(path: Path, vocabulary: set[str]) -> pd.DataFrame:
    """Read ``dev.csv`` or ``eval.csv`` and check its columns and labels."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from None
    missing = [c for c in CSV_COLUMNS[path.name] if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {CSV_COLUMNS[path.name]} (+ mids)")
    for row, cell in enumerate(table["labels"]):
        names = [x.strip() for x in cell.split(",")]
        unknown = [x for x in names if x not in vocabulary]
        if unknown:
            raise DataError(f"{path}: row {row + 2}: label '{unknown[0]}' is not in vocabulary.csv")
    return table


class FSD50KBuilder(DatasetBuilder):
    """Reads the unpacked FSD50K layout in place; multi-label with the ``vocabulary.csv`` order."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the three ground-truth CSVs and of the (path, size) list of the audio."""
        root = _root(task, source)
        tables = [f"{TRUTH}/{name}" for name in ("vocabulary.csv", *CSV_COLUMNS)]
        return fingerprint(task, root, tables, _audio(root), version=BUILDER_VERSION)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Map dev train/val and eval to train/valid/test with comma-joined vocabulary labels.

        Raises:
            DataError: A malformed CSV, an unknown label or split value, or a
                listed clip whose ``<fname>.wav`` is missing (and not excluded by the spec).
        """
        root = _root(task, source)
        vocab_path = root / TRUTH / "vocabulary.csv"
        classes, header = read_vocabulary(vocab_path)
        if task.labels.classes is not None and list(task.labels.classes) != classes:
            raise SpecError(f"{task.source_path}: labels.classes: omit it; FSD50K's order is {vocab_path}")
        vocabulary = set(classes)
        dev = _ground_truth(root / TRUTH / "dev.csv", vocabulary)
        bad = sorted(set(dev["split"]) - set(SPLIT_OF))
        if bad:
            raise DataError(f"{root / TRUTH / 'dev.csv'}: column 'split': value(s) {bad}; expected train or val")
        evaluation = _ground_truth(root / TRUTH / "eval.csv", vocabulary)
        parts = [
            (dev, AUDIO["dev"], dev["split"].map(SPLIT_OF)),
            (evaluation, AUDIO["eval"], pd.Series("test", index=evaluation.index)),
        ]
        frames = []
        for table, folder, split in parts:
            labels = table["labels"].map(lambda cell: ",".join(x.strip() for x in cell.split(",")))
            frames.append(pd.DataFrame({"file_name": folder + "/" + table["fname"] + ".wav", "label": labels,
                                        "split": split.to_numpy()}))  # fmt: skip
        meta, excluded = apply_exclusions(pd.concat(frames, ignore_index=True), task)
        found = set(_audio(root))
        missing = [f for f in meta["file_name"] if f not in found]
        if missing:
            listed = "eval.csv" if missing[0].startswith(AUDIO["eval"]) else "dev.csv"
            raise DataError(
                f"{root / missing[0]}: listed in {TRUTH}/{listed} but missing ({len(missing)} missing file(s)); "
                f"{JOIN_HINT}, or exclude the file in the task spec"
            )
        index = {c: i for i, c in enumerate(classes)}
        hot = np.zeros((len(meta), len(classes)), dtype=bool)
        for row, cell in enumerate(meta["label"]):
            hot[row, [index[c] for c in cell.split(",")]] = True
        positives = {s: hot[(meta["split"] == s).to_numpy()].sum(axis=0) for s in SPLITS}
        extra: dict[str, Any] = {
            "classes": classes,
            "vocabulary_header": header,
            "counts": {s: int((meta["split"] == s).sum()) for s in SPLITS},
            "documented_counts": {"train": 36_796, "valid": 4_170, "test": 10_231},
            "labels_per_clip": round(float(hot.sum(axis=1).mean()), 4) if len(meta) else 0.0,
            "classes_without_positive": {s: [classes[i] for i in np.flatnonzero(positives[s] == 0)] for s in SPLITS},
            "excluded": excluded,
        }
        return BuildOutput(meta, str(root), SAMPLE_RATE, extra)
