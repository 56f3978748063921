"""VoxCeleb1 speaker identification.

Nagrani, Chung & Zisserman, "VoxCeleb: a large-scale speaker identification
dataset", Interspeech 2017.  Utterances of 1,251 celebrities cut from YouTube
interviews (16 kHz; the paper gives 4 s minimum, 8.2 s mean and 145 s maximum
length, hence the 8.2 s unit of docs/protocol.md §1.1).  The dev and test audio
archives are unzipped into one folder and read in place::

    wav/<speaker_id>/<youtube_id>/<nnnnn>.wav     # speaker_id: id10001 ... id11251
    iden_split.txt                                # lines "<1|2|3> <speaker_id>/<youtube_id>/<nnnnn>.wav"

``iden_split.txt`` is the official identification split: 1 = train, 2 = valid,
3 = test, over the same speakers (closed-set identification; speakers absent
from train are counted in ``dataset.json``).  The label is the speaker id (the
first path component) and the group the source video; the metric is
identification accuracy, not verification EER.  The published split sizes
138,361 / 6,904 / 8,251 (153,516 clips) are unverified; the counts found are
stored beside them.  Files under ``wav/`` that the list does not mention are
ignored and counted.  The class vocabulary (sorted speaker ids) is published
as ``classes`` in ``dataset.json``, so the task spec need not list 1,251 names.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec

BUILDER_VERSION = 1
SPLIT_FILE = "iden_split.txt"
SPLIT_CODES = {"1": "train", "2": "valid", "3": "test"}
REFERENCE_COUNTS = {"train": 138361, "valid": 6904, "test": 8251}
_LINE = re.compile(r"(?P<code>[123])\s+(?P<path>id\d+/[^/\s]+/[^/\s]+\.wav)")


def _root(task: TaskSpec, source: Path | None) -> Path:
    """The folder holding ``wav/`` and ``iden_split.txt``."""
    root = require_source(task, source, f"the VoxCeleb1 folder holding wav/ and {SPLIT_FILE} (manual download)")
    if not (root / SPLIT_FILE).is_file():
        raise DataError(f"{root / SPLIT_FILE}: not found; put the official identification split file beside wav/")
    if not (root / "wav").is_dir():
        raise DataError(f"{root / 'wav'}: not found; unzip the VoxCeleb1 dev and test audio into one wav/ folder")
    return root


def _read_split(path: Path) -> dict[str, tuple[str, int]]:
    """``speaker/video/file.wav`` → (split, line number) from ``iden_split.txt``."""
    out: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise DataError(
                f"{path}: line {number}: '{line[:80]}' is not '<1|2|3> <speaker_id>/<youtube_id>/<nnnnn>.wav'; "
                "use the official file"
            )
        if match["path"] in out:
            raise DataError(f"{path}: line {number}: '{match['path']}' is listed twice; use the official file")
        out[match["path"]] = (SPLIT_CODES[match["code"]], number)
    if not out:
        raise DataError(f"{path}: no entries; use the official identification split file")
    return out


class VoxCeleb1Builder(DatasetBuilder):
    """Builder of VoxCeleb1 identification (official ``iden_split.txt``), read in place."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of ``iden_split.txt``, the spec fields applied and the (path, size) listing of ``wav/``."""
        root = _root(task, source)
        return fingerprint(task, root, [SPLIT_FILE], list_audio(root / "wav", root, (".wav",)), version=BUILDER_VERSION)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Read ``iden_split.txt`` into canonical metadata (audio stays in place under ``wav/``).

        Raises:
            DataError: Missing ``wav/`` or split file, a malformed or duplicate
                split line, or a listed file that is not under ``wav/``.
        """
        root = _root(task, source)
        split_path = root / SPLIT_FILE
        entries = _read_split(split_path)
        present = {f.removeprefix("wav/") for f in list_audio(root / "wav", root, (".wav",))}
        missing = [(p, n) for p, (_, n) in entries.items() if p not in present]
        if missing:
            path, number = min(missing, key=lambda m: m[1])
            raise DataError(
                f"{root / 'wav' / path}: listed in {split_path} line {number} but missing "
                f"({len(missing)} missing file(s)); unzip both the dev and the test audio into wav/"
            )
        rows = []
        for path, (split, _) in sorted(entries.items()):
            speaker, video, _ = path.split("/")
            rows.append({"file_name": f"wav/{path}", "label": speaker, "split": split, "group": f"{speaker}/{video}"})
        table, excluded = apply_exclusions(pd.DataFrame(rows), task)
        speakers = sorted(set(table["label"]))
        per_split = {s: set(table.loc[table["split"] == s, "label"]) for s in SPLIT_CODES.values()}
        extra = {
            "split_rule": f"official {SPLIT_FILE}: 1 = train, 2 = valid, 3 = test",
            "counts": {s: int((table["split"] == s).sum()) for s in SPLIT_CODES.values()},
            "reference_counts": REFERENCE_COUNTS,
            "n_speakers": len(speakers),
            "n_videos": int(table["group"].nunique()),
            "speakers_missing_from_train": len(set(speakers) - per_split["train"]),
            "unlisted_files": len(present - set(entries)),
            "classes": speakers,
            "excluded": excluded,
        }
        return BuildOutput(table, str(root), task.audio.sample_rate, extra)
