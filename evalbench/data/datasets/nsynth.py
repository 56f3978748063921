"""NSynth: instrument-family classification of single musical notes (official splits).

NSynth (Engel et al., "Neural Audio Synthesis of Musical Notes with WaveNet
Autoencoders", ICML 2017) holds 305,979 four-second, 16 kHz monophonic notes of
1,006 instruments.  The ``jsonwav`` release unpacks into one folder per split::

    nsynth-train/examples.json   nsynth-train/audio/<note_str>.wav   (289,205 notes)
    nsynth-valid/examples.json   nsynth-valid/audio/<note_str>.wav   ( 12,678 notes)
    nsynth-test/examples.json    nsynth-test/audio/<note_str>.wav    (  4,096 notes)

``examples.json`` is one object keyed by ``note_str``
(``<instrument_str>-<pitch:03d>-<velocity:03d>``) whose records carry, among
others, ``instrument_str``, ``pitch``, ``velocity``, ``sample_rate`` and the
task label ``instrument_family_str``.  The 11 families are bass, brass, flute,
guitar, keyboard, mallet, organ, reed, string, synth_lead and vocal; synth_lead
has no valid or test notes (docs/protocol.md §1.2), so the class order is fixed in
the task spec, never derived from one split.  The official splits are used as
published; the instrument (``instrument_str``) is kept as the metadata group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.errors import DataError, SpecError
from evalbench.specs.task import TaskSpec

BUILDER_VERSION = 1
# Official split folder of each canonical split.
SPLITS = {"train": "nsynth-train", "valid": "nsynth-valid", "test": "nsynth-test"}
# Notes per official split (Engel et al. 2017; the dataset's download page).
OFFICIAL_COUNTS = {"train": 289_205, "valid": 12_678, "test": 4_096}
LABEL_FIELD = "instrument_family_str"


def _root(task: TaskSpec, source: Path | None) -> Path:
    """The folder holding ``nsynth-{train,valid,test}/``, checked."""
    if task.dataset.options:
        raise SpecError(f"{task.source_path or task.name}: dataset.options: the nsynth builder takes no options")
    root = require_source(task, source, "the folder holding nsynth-train/, nsynth-valid/ and nsynth-test/")
    for folder in SPLITS.values():
        for need in (root / folder / "examples.json", root / folder / "audio"):
            if not need.exists():
                raise DataError(
                    f"{need}: not found; --source must hold the three unpacked nsynth-*.jsonwav.tar.gz folders"
                )
    return root


def _audio(root: Path) -> list[str]:
    """``nsynth-<split>/audio/<note_str>.wav`` paths found, relative to ``root`` (``._*`` files skipped)."""
    return [p for folder in SPLITS.values() for p in list_audio(root / folder / "audio", root, (".wav",))]


def _examples(path: Path) -> dict[str, dict[str, Any]]:
    """Parse one ``examples.json`` (an object keyed by ``note_str``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc}); re-extract the archive") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError(f"{path}: expected a JSON object of note records keyed by note_str")
    return data


class NSynthBuilder(DatasetBuilder):
    """Reads NSynth's ``jsonwav`` layout in place; label = ``instrument_family_str``."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the three ``examples.json``, the (path, size) list of the audio and the spec's classes."""
        root = _root(task, source)
        tables = [f"{folder}/examples.json" for folder in SPLITS.values()]
        return fingerprint(task, root, tables, _audio(root), version=BUILDER_VERSION)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Turn the three ``examples.json`` into canonical metadata over the audio in place.

        Raises:
            DataError: A record lacks ``instrument_family_str``, names a family
                outside the spec's classes, or its ``<note_str>.wav`` is missing
                (and not excluded by the spec).
        """
        root = _root(task, source)
        classes = list(task.labels.classes) if task.labels.classes else None
        rows: list[dict[str, Any]] = []
        rates: set[int] = set()
        unlisted: dict[str, int] = {}
        found = set(_audio(root))
        for split, folder in SPLITS.items():
            path = root / folder / "examples.json"
            examples = _examples(path)
            for note_str, record in examples.items():
                family = record.get(LABEL_FIELD)
                if not isinstance(family, str) or not family:
                    raise DataError(f"{path}: note '{note_str}' has no '{LABEL_FIELD}' field")
                if classes is not None and family not in classes:
                    raise DataError(
                        f"{path}: note '{note_str}': family '{family}' is not one of the task's classes {classes}"
                    )
                if "sample_rate" in record:
                    rates.add(int(record["sample_rate"]))
                rows.append(
                    {
                        "file_name": f"{folder}/audio/{note_str}.wav",
                        "label": family,
                        "split": split,
                        "group": str(record.get("instrument_str", note_str.rsplit("-", 2)[0])),
                        "pitch": record.get("pitch", ""),
                    }
                )
            unlisted[split] = sum(p.startswith(f"{folder}/") for p in found) - len(examples)
        table, excluded = apply_exclusions(pd.DataFrame(rows), task)
        missing = [f for f in table["file_name"] if f not in found]
        if missing:
            folder = missing[0].split("/", 1)[0]
            raise DataError(
                f"{root / missing[0]}: listed in {folder}/examples.json but missing ({len(missing)} missing file(s)); "
                f"re-extract {folder}.jsonwav.tar.gz or exclude the file in the task spec"
            )
        counts = {s: int((table["split"] == s).sum()) for s in SPLITS}
        families = classes or sorted(set(table["label"]))
        per_class = {
            s: {c: int(((table["split"] == s) & (table["label"] == c)).sum()) for c in families} for s in SPLITS
        }
        extra = {
            "counts": counts,
            "official_counts": OFFICIAL_COUNTS,
            "matches_official_counts": counts == OFFICIAL_COUNTS,
            "classes": families,
            "class_counts": per_class,
            "classes_absent": {s: [c for c in families if per_class[s][c] == 0] for s in SPLITS},
            "audio_without_metadata": unlisted,
            "excluded": excluded,
        }
        rate = rates.pop() if len(rates) == 1 else None
        return BuildOutput(table, str(root), rate, extra)
