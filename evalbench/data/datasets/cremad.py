"""CREMA-D emotion recognition.

Cao et al., "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset", IEEE
Trans. Affective Computing 5(4), 2014.  91 actors (1001–1091) read 12 sentences in six emotions; the audio of each
clip, converted to 16 kHz WAV, sits in the repository's ``AudioWAV`` folder,
read in place::

    AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav
        actor    1001 ... 1091
        sentence three capital letters (DFA, IEO, IOM, ...)
        emotion  ANG, DIS, FEA, HAP, NEU, SAD   (the label)
        level    LO, MD, HI or XX (unspecified)

The repository stores the audio in Git LFS: a clone without LFS holds small
text pointers instead of audio, which the builder detects and rejects.  The
original release has 7,442 clips; the reference file list holds 7,438
(unverified).

Split (PROTOCOL.md §1.2): speaker-disjoint by actor, 70 % / 10 % / rest of the
actors (63 / 9 / 19 of 91).  The reference draw was unseeded and ships only as
a licensed CSV, so evalbench regenerates it with
:func:`evalbench.data.splitgen.split_groups` and the seed in
``dataset.options``, and writes the actor lists to the dataset folder
(``actors_{train,valid,test}.txt``).  HEAR's 5-fold CV on CREMA-D is a different
protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.data.splitgen import split_groups
from evalbench.errors import DataError, SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec
from evalbench.utils.io import atomic_write_text

BUILDER_VERSION = 1
AUDIO_DIR = "AudioWAV"
EMOTIONS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
ACTORS = range(1001, 1092)
SPLITS = ("train", "valid", "test")
_NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX)\.wav")
_LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True)
class CremaDOptions:
    """Options of the ``cremad`` builder (``dataset.options``).

    Attributes:
        seed: Seed of the actor permutation.
        train: Fraction of actors for training (reference: 0.7 → 63 of 91).
        valid: Fraction for validation (reference: 0.1 → 9); the rest is test (19).
    """

    seed: int = 0
    train: float = 0.7
    valid: float = 0.1


def _options(task: TaskSpec) -> CremaDOptions:
    where = task.source_path or task.name
    if task.labels.classes is not None and sorted(task.labels.classes) != EMOTIONS:
        raise SpecError(f"{where}: labels.classes: must be the six CREMA-D emotions {EMOTIONS}")
    return parse(CremaDOptions, task.dataset.options, where, "dataset.options")


def _root(task: TaskSpec, source: Path | None) -> Path:
    root = require_source(task, source, f"the CREMA-D repository clone holding {AUDIO_DIR}/ (with Git LFS audio)")
    if not (root / AUDIO_DIR).is_dir():
        raise DataError(f"{root / AUDIO_DIR}: not found; pass the CREMA-D repository clone (with Git LFS audio)")
    return root


def _parse(root: Path, rel: str) -> dict[str, str]:
    """Fields of one file name, validated."""
    match = _NAME.fullmatch(rel.split("/", 1)[1])
    if match is None:
        raise DataError(
            f"{root / rel}: file name is not '<actor>_<sentence>_<emotion>_<LO|MD|HI|XX>.wav'; remove or rename it"
        )
    if int(match["actor"]) not in ACTORS or match["emotion"] not in EMOTIONS:
        raise DataError(f"{root / rel}: actor must be 1001-1091 and emotion one of {EMOTIONS}; remove or rename it")
    return match.groupdict()


def _check_not_lfs_pointers(root: Path, files: list[str]) -> None:
    pointers = []
    for rel in files:
        with open(root / rel, "rb") as fh:
            if fh.read(len(_LFS_POINTER)) == _LFS_POINTER:
                pointers.append(rel)
    if pointers:
        raise DataError(
            f"{root / pointers[0]}: a Git LFS pointer, not audio ({len(pointers)} such file(s)); "
            "run 'git lfs pull' in the clone"
        )


class CremaDBuilder(DatasetBuilder):
    """Builder of CREMA-D emotion recognition with a seeded speaker-disjoint (actor) split, read in place."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the spec fields applied (options with defaults, classes) and the (path, size) listing."""
        opts, root = _options(task), _root(task, source)
        audio = list_audio(root / AUDIO_DIR, root, (".wav",))
        return fingerprint(task, root, [], audio, version=BUILDER_VERSION, resolved=to_dict(opts))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Parse every ``AudioWAV`` file name, split by actor with the seed, and write the actor lists to ``dest``.

        Raises:
            DataError: Missing ``AudioWAV/``, no clips, a file name that does
                not parse, Git LFS pointers instead of audio, or too few actors
                for three non-empty splits.
        """
        opts, root = _options(task), _root(task, source)
        files = list_audio(root / AUDIO_DIR, root, (".wav",))
        if not files:
            raise DataError(f"{root / AUDIO_DIR}: no .wav files; fetch the audio with Git LFS")
        fields = {rel: _parse(root, rel) for rel in files}
        _check_not_lfs_pointers(root, files)
        try:
            assign = split_groups((f["actor"] for f in fields.values()), opts.train, opts.valid, opts.seed)
        except ValueError as exc:
            raise DataError(f"{root / AUDIO_DIR}: {exc}; CREMA-D needs more actors") from None
        rows = [
            {
                "file_name": rel,
                "label": f["emotion"],
                "split": assign[f["actor"]],
                "group": f["actor"],
                "sentence": f["sentence"],
                "level": f["level"],
            }
            for rel, f in fields.items()
        ]
        table, excluded = apply_exclusions(pd.DataFrame(rows), task)
        for split in SPLITS:
            actors = sorted(a for a, s in assign.items() if s == split)
            atomic_write_text(Path(dest) / f"actors_{split}.txt", "".join(f"{a}\n" for a in actors))
        extra = {
            "split_rule": (
                f"actors sorted, permuted with numpy default_rng(seed), first floor({opts.train}·n) train, "
                f"next floor({opts.valid}·n) valid, rest test (speaker-disjoint)"
            ),
            "split_seed": opts.seed,
            "split_note": (
                "split regenerated by actor with a fixed seed (splitgen rule); scores are close to, but not identical "
                "with, those on the reference harness's unseeded split"
            ),
            "counts": {s: int((table["split"] == s).sum()) for s in SPLITS},
            "group_counts": {s: sum(1 for v in assign.values() if v == s) for s in SPLITS},
            "reference_counts": {"train": 5155, "valid": 732, "test": 1551},
            "reference_group_counts": {"train": 63, "valid": 9, "test": 19},
            "excluded": excluded,
        }
        return BuildOutput(table, str(root), task.audio.sample_rate, extra)
