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

Split (PROTOCOL.md §1.2): the reference harness drew 10% valid and 10% test
tones *with replacement*, unseeded, giving 1,692 / 195 / 197 tones.  evalbench
instead draws by tone **without replacement** with
:func:`evalbench.data.splitgen.split_groups` (fractions and seed in the spec:
train 0.8, valid 0.1, rest test; 2,084 tones → 1,667 / 208 / 209), so no tone is
on two sides.  The tone lists are written to ``tones_<split>.txt`` in the
prepared dataset folder and the counts to ``dataset.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import soundfile as sf

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.data.splitgen import split_groups
from evalbench.errors import DataError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec
from evalbench.utils.io import atomic_write_text

BUILDER_VERSION = 1
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SurgeOptions:
    """Options of the ``surge`` builder (``dataset.options``).

    Attributes:
        train: Fraction of tones for training.
        valid: Fraction of tones for validation; the rest is test.
        seed: Seed of the tone permutation.
    """

    train: float = 0.8
    valid: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 < self.valid < 1 and self.train + self.valid < 1):
            raise ValueError(f"train/valid: fractions in (0, 1) summing below 1, got {self.train}/{self.valid}")


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


class SurgeBuilder(DatasetBuilder):
    """Reads the Surge tone folders in place; label = note stem; seeded tone-level split."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the (path, size) list of the ``.ogg`` files, the split options and the spec's classes."""
        opts = _options(task)
        root, files = _listing(task, source)
        return fingerprint(task, root, [], files, version=BUILDER_VERSION, split=to_dict(opts))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """List the tone folders, label each note by its stem, split tones by the seeded rule.

        Raises:
            DataError: No tone folders, a stem outside the spec's classes, or
                too few tones for three non-empty splits.
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
            "split_rule": {
                "by": "tone folder",
                "rule": "evalbench.data.splitgen.split_groups (sorted tones, default_rng(seed) permutation)",
                **to_dict(opts),
                "replacement": False,
                "group_lists": [f"tones_{s}.txt" for s in SPLITS],
            },
            "tones": {s: len(tones[s]) for s in SPLITS},
            "counts": {s: int((table["split"] == s).sum()) for s in SPLITS},
            "notes_per_tone": {"min": int(notes_per_tone.min()), "max": int(notes_per_tone.max())},
            "excluded": excluded,
        }
        return BuildOutput(table[["file_name", "label", "split", "group"]], str(root), rate, extra)
