"""Surge: pitch classification of Surge-synthesizer notes, split by tone (preset) with a seeded rule.

The "Pitch Audio Dataset (Surge synthesizer)" of Turian et al. ("One Billion
Audio Sounds from GPU-enabled Modular Synthesis", DAFx 2021, arXiv:2104.12922;
Zenodo record 4677097, archive ``surge-velocity64-2K.tar``) renders each of
about 2,000 Surge presets ("tones") at every key of an 88-key piano at
velocity 64.  The layout is one folder per tone::

    <tone_name>/<note>.ogg          e.g. surge-patches-<...>-velocity64/note060.ogg

The label is the file stem (the pitch), 88 classes; the clip count is tones ×
notes present (unverified).  The stem format ``note<MIDI:03d>`` (``note021`` …
``note108``) is taken from third-party code reading the archive and is
unverified: the spec lists it, and any other stem fails with the file named.

Split (docs/protocol.md §1.2): the reference harness drew 10% valid and 10% test
tones *with replacement*, unseeded, giving 1,692 / 195 / 197 tones.  Two rules,
chosen by ``dataset.options.split``:

- ``seeded`` (the default): evalbench draws by tone **without replacement**
  with :func:`evalbench.data.splitgen.split_groups` (fractions and seed in the
  spec: train 0.8, valid 0.1, rest test; 2,084 tones → 1,667 / 208 / 209), so
  no tone is on two sides.
- ``reference``: the reference harness's draw as it published it, read from
  ``split_file``: a CSV with the header ``tone,split`` and one row per tone
  folder (split ``train``, ``valid`` or ``test``), i.e. the file
  ``evar/predefined/dataset_surge_tone_splits.csv`` of the reference
  repository (nttcslab/eval-audio-repr), which evalbench does not ship.
  ``evalbench data prepare surge --split-file FILE`` selects it.  Every tone
  folder of the copy must be in the file and every tone in the file must be a
  folder of the copy; a bad split name, a repeated tone, an unknown or a
  missing tone fails with the file, row and value named.  The tone counts are
  recorded in ``dataset.json`` beside the published 1,692 / 195 / 197 but not
  enforced: the tone-for-tone match with the copy is the check.

The tone lists are written to ``tones_<split>.txt`` in the prepared dataset
folder and the counts to ``dataset.json``; the rule, and for ``reference`` the
file's path and SHA-256, are in its ``split_rule`` and in the source
fingerprint, so a dataset prepared under one rule is rebuilt, never reused,
under another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
import soundfile as sf

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, option_path, read_split_file, require_source
from evalbench.data.splitgen import split_groups
from evalbench.errors import DataError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import atomic_write_text

BUILDER_VERSION = 1
SPLITS = ("train", "valid", "test")
PUBLISHED_TONES = {"train": 1692, "valid": 195, "test": 197}
SPLIT_FILE_HINT = (
    "the reference tone split as published: a CSV with the header 'tone,split' and one row per tone folder "
    "(evar/predefined/dataset_surge_tone_splits.csv of the reference harness)"
)


@dataclass(frozen=True)
class SurgeOptions:
    """Options of the ``surge`` builder (``dataset.options``).

    Attributes:
        train: Fraction of tones for training (``seeded``).
        valid: Fraction of tones for validation; the rest is test (``seeded``).
        seed: Seed of the tone permutation (``seeded``).
        split: ``seeded`` (evalbench's rule) or ``reference`` (the published
            tone split read from ``split_file``).
        split_file: The published tone split (``reference`` only): absolute,
            or relative to the task file's folder.
    """

    train: float = 0.8
    valid: float = 0.1
    seed: int = 0
    split: Literal["seeded", "reference"] = "seeded"
    split_file: str | None = None

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 < self.valid < 1 and self.train + self.valid < 1):
            raise ValueError(f"train/valid: fractions in (0, 1) summing below 1, got {self.train}/{self.valid}")
        if self.split == "reference" and not self.split_file:
            raise ValueError("split_file: split 'reference' reads the published tone split; give its file")
        if self.split_file and self.split != "reference":
            raise ValueError("split_file: only read with split 'reference'")


def pitch_key(label: str) -> tuple[int, str]:
    """Sort key putting note stems in pitch order (trailing number, e.g. ``note021`` → 21), then by name."""
    match = re.search(r"(\d+)$", label)
    return (int(match.group(1)) if match else 10**6, label)


def _options(task: TaskSpec) -> SurgeOptions:
    return parse(SurgeOptions, task.dataset.options, task.source_path or task.name, "dataset.options")


def _listing(task: TaskSpec, source: Path | None) -> tuple[Path, list[str]]:
    """The source root and its ``<tone>/<note>.ogg`` files (hidden and macOS ``._*`` entries skipped).

    Raises:
        DataError: No source, or no ``.ogg`` file exactly one folder deep.
    """
    what = "the folder holding the <tone>/<note>.ogg folders (the archive's surge/ folder)"
    root = require_source(task, source, what)
    files = [f for f in list_audio(root, root, (".ogg",)) if f.count("/") == 1]
    if not files:
        raise DataError(f"{root}: no <tone>/<note>.ogg files; --source must be {what}")
    return root, files


def _reference_split(task: TaskSpec, opts: SurgeOptions, root: Path, tones: set[str]) -> dict[str, str]:
    """Tone → split from the published split file, checked against the tone folders of the copy.

    Raises:
        DataError: A bad row (see :func:`read_split_file`), a tone that is no
            folder of the copy, or a tone folder the file does not list.
    """
    path = option_path(task, str(opts.split_file))
    _, rows = read_split_file(path, ("tone",), SPLIT_FILE_HINT)
    unknown = [(row, tone) for row, tone, _ in rows if tone not in tones]
    if unknown:
        row, tone = unknown[0]
        raise DataError(
            f"{path}: row {row}: tone '{tone}' is not a tone folder under {root} ({len(unknown)} such tone(s)); "
            "use the split file of this copy of the dataset"
        )
    assign = {tone: split for _, tone, split in rows}
    missing = sorted(tones - set(assign))
    if missing:
        raise DataError(
            f"{root / missing[0]}: tone folder not in the split file {path} ({len(missing)} such tone(s)); "
            "use the split file of this copy of the dataset"
        )
    empty = [s for s in SPLITS if s not in assign.values()]
    if empty:
        raise DataError(f"{path}: no tone is assigned to '{empty[0]}'; the published split has train, valid and test")
    return assign


class SurgeBuilder(DatasetBuilder):
    """Reads the Surge tone folders in place; label = note stem; seeded or published tone-level split."""

    SPLIT_FILE_FORMAT: ClassVar[str] = SPLIT_FILE_HINT

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the ``.ogg`` (path, size) list, the split options (and split file) and the spec's classes."""
        opts = _options(task)
        root, files = _listing(task, source)
        facts: dict[str, Any] = {"version": BUILDER_VERSION, "split": to_dict(opts)}
        if opts.split == "reference":
            path = option_path(task, str(opts.split_file))
            facts["split_file_sha256"] = sha256_file(path) if path.is_file() else None
        return fingerprint(task, root, [], files, **facts)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """List the tone folders, label each note by its stem, split tones by the seeded or published rule.

        Raises:
            DataError: No tone folders, a stem outside the spec's classes, too
                few tones for three non-empty splits (``seeded``), or a split
                file that does not match the copy (``reference``).
        """
        opts = _options(task)
        root, files = _listing(task, source)
        rows = [{"file_name": f, "label": Path(f).stem, "group": f.split("/", 1)[0]} for f in files]
        table, excluded = apply_exclusions(pd.DataFrame(rows), task)
        classes = list(task.labels.classes) if task.labels.classes else None
        if classes is not None:
            bad = table[~table["label"].isin(classes)]
            if len(bad):
                raise DataError(
                    f"{root / bad['file_name'].iloc[0]}: note stem '{bad['label'].iloc[0]}' is not one of the "
                    f"task's {len(classes)} classes ({len(bad)} such file(s)); check the layout or labels.classes"
                )
        if opts.split == "reference":
            assign = _reference_split(task, opts, root, {f.split("/", 1)[0] for f in files})
            kept = set(table["group"])  # a tone whose every note the spec excludes is no longer listed
            assign = {tone: split for tone, split in assign.items() if tone in kept}
        else:
            try:
                assign = split_groups(table["group"], opts.train, opts.valid, opts.seed)
            except ValueError as exc:
                raise DataError(f"{root}: cannot split tones ({exc})") from None
        table["split"] = table["group"].map(assign)
        tones = {s: sorted(g for g, v in assign.items() if v == s) for s in SPLITS}
        for split, names in tones.items():
            atomic_write_text(Path(dest) / f"tones_{split}.txt", "".join(f"{n}\n" for n in names))
        notes_per_tone = table.groupby("group").size()
        found = sorted(set(table["label"]), key=pitch_key)
        try:
            rate: int | None = sf.info(str(root / table["file_name"].iloc[0])).samplerate
        except (RuntimeError, sf.LibsndfileError):
            rate = None  # an undecodable first file is reported by `evalbench data verify`
        extra: dict[str, Any] = {
            "classes": classes or found,
            "labels_found": len(found),
            "split_rule": _split_rule(task, opts),
            "tones": {s: len(tones[s]) for s in SPLITS},
            "published_tones": PUBLISHED_TONES,
            "counts": {s: int((table["split"] == s).sum()) for s in SPLITS},
            "notes_per_tone": {"min": int(notes_per_tone.min()), "max": int(notes_per_tone.max())},
            "excluded": excluded,
        }
        return BuildOutput(table[["file_name", "label", "split", "group"]], str(root), rate, extra)


def _split_rule(task: TaskSpec, opts: SurgeOptions) -> dict[str, Any]:
    """The ``split_rule`` entry of ``dataset.json``."""
    lists = [f"tones_{s}.txt" for s in SPLITS]
    if opts.split == "reference":
        path = option_path(task, str(opts.split_file))
        return {
            "by": "tone folder",
            "rule": "reference: the reference harness's published tone split (drawn unseeded, with replacement)",
            "split": "reference",
            "split_file": str(path),
            "split_file_sha256": sha256_file(path),
            "group_lists": lists,
        }
    return {
        "by": "tone folder",
        "rule": "evalbench.data.splitgen.split_groups (sorted tones, default_rng(seed) permutation)",
        **to_dict(opts),
        "replacement": False,
        "group_lists": lists,
    }
