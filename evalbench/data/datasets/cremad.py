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
original release has 7,442 clips.

Split (docs/protocol.md §1.2): speaker-disjoint by actor, 70 % / 10 % / rest of the
actors (63 / 9 / 19 of 91).  Two rules, chosen by ``dataset.options.split``:

- ``seeded`` (the default): the reference draw was unseeded, so evalbench
  regenerates one with :func:`evalbench.data.splitgen.split_groups` and the
  seed in ``dataset.options``, over all 7,442 clips.
- ``reference``: the reference harness's own split, read from ``split_file``,
  a file the user supplies (evalbench does not ship it, and never invents the
  actor table).  It holds 7,438 clips: it leaves out ``1006_TIE_NEU_XX``,
  ``1013_WSI_DIS_XX``, ``1017_IWW_FEA_XX`` and ``1040_ITH_SAD_XX`` (absent from
  the TFDS CREMA-D file list its metadata was drawn from), and splits the rest
  5,155 / 732 / 1,551 clips over 63 / 9 / 19 actors.  Two forms are read, both
  CSV with a header:

  - one row per clip, columns ``file_name`` (clip name, stem or path, e.g.
    ``1001_DFA_ANG_XX.wav``) and ``split``; other columns are ignored.  This is
    the reference harness's ``evar/metadata/cremad.csv`` (columns
    ``file_name,label,speaker_id,split``, in nttcslab/eval-audio-repr).
  - one row per actor, columns ``actor`` (or ``speaker_id``) and ``split``;
    the four clips above are then left out by name.

  ``split`` is ``train``, ``valid`` or ``test``.  The file must match the copy
  (every listed clip or actor present, every clip but the four listed, each
  actor on one side), and the result must be the published split: 7,438
  clips, 5,155 / 732 / 1,551, 63 / 9 / 19 actors, none of the four.  Any
  mismatch fails naming it.  ``evalbench data prepare cremad --split-file
  FILE`` selects this rule; the four left-out clips are reported with the
  spec's exclusions.

Either way the actor lists are written to the dataset folder
(``actors_{train,valid,test}.txt``), and the rule (with the split file's path
and SHA-256) to ``dataset.json`` and the source fingerprint, so a dataset
prepared under one rule is rebuilt, never reused, under the other.  HEAR's
5-fold CV on CREMA-D is a different protocol.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import (
    SPLIT_NAMES,
    fingerprint,
    list_audio,
    option_path,
    read_split_file,
    require_source,
)
from evalbench.data.splitgen import split_groups
from evalbench.errors import DataError, SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import atomic_write_text

BUILDER_VERSION = 1
AUDIO_DIR = "AudioWAV"
EMOTIONS = ["ANG", "DIS", "FEA", "HAP", "NEU", "SAD"]
ACTORS = range(1001, 1092)
SPLITS = SPLIT_NAMES
# The reference harness's published split (docs/protocol.md §1.1): what `split: reference` must reproduce.
REFERENCE_LEFT_OUT = ("1006_TIE_NEU_XX", "1013_WSI_DIS_XX", "1017_IWW_FEA_XX", "1040_ITH_SAD_XX")
REFERENCE_CLIPS = 7438
REFERENCE_COUNTS = {"train": 5155, "valid": 732, "test": 1551}
REFERENCE_GROUP_COUNTS = {"train": 63, "valid": 9, "test": 19}
SPLIT_FILE_HINT = (
    "the reference split as published: a CSV with columns 'file_name' (clip) and 'split', one row per clip "
    "(the reference harness's evar/metadata/cremad.csv), or 'actor' and 'split', one row per actor"
)
_NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>LO|MD|HI|XX)\.wav")
_LFS_POINTER = b"version https://git-lfs"


@dataclass(frozen=True)
class CremaDOptions:
    """Options of the ``cremad`` builder (``dataset.options``).

    Attributes:
        seed: Seed of the actor permutation (``seeded``).
        train: Fraction of actors for training (reference: 0.7 → 63 of 91).
        valid: Fraction for validation (reference: 0.1 → 9); the rest is test (19).
        split: ``seeded`` (evalbench's rule) or ``reference`` (the published
            split read from ``split_file``).
        split_file: The published split (``reference`` only): absolute, or
            relative to the task file's folder.
    """

    seed: int = 0
    train: float = 0.7
    valid: float = 0.1
    split: Literal["seeded", "reference"] = "seeded"
    split_file: str | None = None

    def __post_init__(self) -> None:
        if self.split == "reference" and not self.split_file:
            raise ValueError("split_file: split 'reference' reads the published split; give its file")
        if self.split_file and self.split != "reference":
            raise ValueError("split_file: only read with split 'reference'")


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


def _stem(rel: str) -> str:
    return Path(rel).name.removesuffix(".wav")


def _by_clip(path: Path, rows: list[tuple[int, str, str]], root: Path, fields: dict) -> dict[str, str]:
    """Clip → split from a per-clip file, checked against the copy and for speaker-disjointness."""
    by_stem = {_stem(rel): rel for rel in fields}
    out: dict[str, str] = {}
    actor_side: dict[str, tuple[str, int]] = {}
    unknown = []
    for row, value, split in rows:
        stem = _stem(value)
        if stem in REFERENCE_LEFT_OUT:
            raise DataError(
                f"{path}: row {row}: '{value}' is one of the four clips the reference split leaves out "
                f"({', '.join(REFERENCE_LEFT_OUT)}); this is not the published split"
            )
        rel = by_stem.get(stem)
        if rel is None:
            unknown.append((row, value))
            continue
        if rel in out:
            raise DataError(f"{path}: row {row}: clip '{value}' is listed again")
        actor = fields[rel]["actor"]
        side, first = actor_side.setdefault(actor, (split, row))
        if side != split:
            raise DataError(
                f"{path}: row {row}: actor {actor} is in '{split}' here but in '{side}' on row {first}; "
                "the published split is speaker-disjoint"
            )
        out[rel] = split
    if unknown:
        row, value = unknown[0]
        raise DataError(
            f"{path}: row {row}: clip '{value}' is not in {root / AUDIO_DIR} ({len(unknown)} such row(s)); "
            "restore the clip, or use the published split file"
        )
    missing = [rel for rel in fields if rel not in out and _stem(rel) not in REFERENCE_LEFT_OUT]
    if missing:
        raise DataError(
            f"{root / missing[0]}: not in the split file {path} ({len(missing)} such clip(s)); the published split "
            f"lists every clip but {', '.join(REFERENCE_LEFT_OUT)}"
        )
    return out


def _by_actor(path: Path, rows: list[tuple[int, str, str]], root: Path, fields: dict) -> dict[str, str]:
    """Clip → split from a per-actor file (the four left-out clips dropped by name), checked against the copy."""
    present = {f["actor"] for f in fields.values()}
    assign = {}
    for row, value, split in rows:
        if not (value.isdigit() and int(value) in ACTORS):
            raise DataError(f"{path}: row {row}: actor '{value}' is not a CREMA-D actor (1001-1091)")
        if value not in present:
            raise DataError(f"{path}: row {row}: actor {value} has no clip in {root / AUDIO_DIR}")
        assign[value] = split
    missing = sorted(present - set(assign))
    if missing:
        raise DataError(
            f"{root / AUDIO_DIR}: actor {missing[0]} is not in the split file {path} "
            f"({len(missing)} such actor(s)); the published split assigns all 91"
        )
    return {rel: assign[f["actor"]] for rel, f in fields.items() if _stem(rel) not in REFERENCE_LEFT_OUT}


def _check_published(path: Path, clip_split: dict[str, str], fields: dict) -> None:
    """Fail naming every count that differs from the published reference split."""
    clips = Counter(clip_split.values())
    actors = Counter({fields[rel]["actor"]: split for rel, split in clip_split.items()}.values())
    wrong = [f"clips {len(clip_split):,} (published {REFERENCE_CLIPS:,})"] if len(clip_split) != REFERENCE_CLIPS else []
    for split in SPLITS:
        if clips[split] != REFERENCE_COUNTS[split]:
            wrong.append(f"{split} clips {clips[split]:,} (published {REFERENCE_COUNTS[split]:,})")
        if actors[split] != REFERENCE_GROUP_COUNTS[split]:
            wrong.append(f"{split} actors {actors[split]} (published {REFERENCE_GROUP_COUNTS[split]})")
    if wrong:
        raise DataError(
            f"{path}: not the published reference split: {'; '.join(wrong)}; the reference splits 7,438 clips "
            "5,155 / 732 / 1,551 over 63 / 9 / 19 actors"
        )


def _reference_split(task: TaskSpec, opts: CremaDOptions, root: Path, fields: dict) -> dict[str, str]:
    """Clip → split of the published reference split (module docstring), checked against the published counts.

    Raises:
        DataError: A bad row, a file that does not match the copy, an actor on
            two sides, or counts other than the published ones.
    """
    path = option_path(task, str(opts.split_file))
    key, rows = read_split_file(path, ("file_name", "actor", "speaker_id"), SPLIT_FILE_HINT)
    clip_split = (_by_clip if key == "file_name" else _by_actor)(path, rows, root, fields)
    _check_published(path, clip_split, fields)
    return clip_split


class CremaDBuilder(DatasetBuilder):
    """Builder of CREMA-D emotion recognition with a seeded or the published speaker-disjoint (actor) split."""

    SPLIT_FILE_FORMAT: ClassVar[str] = SPLIT_FILE_HINT

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the spec fields applied (options with defaults, classes, split file) and the (path, size) list."""
        opts, root = _options(task), _root(task, source)
        audio = list_audio(root / AUDIO_DIR, root, (".wav",))
        facts: dict[str, Any] = {"version": BUILDER_VERSION, "resolved": to_dict(opts)}
        if opts.split == "reference":
            path = option_path(task, str(opts.split_file))
            facts["split_file_sha256"] = sha256_file(path) if path.is_file() else None
        return fingerprint(task, root, [], audio, **facts)

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Parse every ``AudioWAV`` file name, split by actor, and write the actor lists to ``dest``.

        Raises:
            DataError: Missing ``AudioWAV/``, no clips, a file name that does
                not parse, Git LFS pointers instead of audio, too few actors
                for three non-empty splits (``seeded``), or a split file that
                does not match the copy or the published split (``reference``).
        """
        opts, root = _options(task), _root(task, source)
        files = list_audio(root / AUDIO_DIR, root, (".wav",))
        if not files:
            raise DataError(f"{root / AUDIO_DIR}: no .wav files; fetch the audio with Git LFS")
        fields = {rel: _parse(root, rel) for rel in files}
        _check_not_lfs_pointers(root, files)
        if opts.split == "reference":
            clip_split = _reference_split(task, opts, root, fields)
        else:
            try:
                by_actor = split_groups((f["actor"] for f in fields.values()), opts.train, opts.valid, opts.seed)
            except ValueError as exc:
                raise DataError(f"{root / AUDIO_DIR}: {exc}; CREMA-D needs more actors") from None
            clip_split = {rel: by_actor[f["actor"]] for rel, f in fields.items()}
        assign = {fields[rel]["actor"]: split for rel, split in clip_split.items()}
        rows = [
            {
                "file_name": rel,
                "label": f["emotion"],
                "split": clip_split[rel],
                "group": f["actor"],
                "sentence": f["sentence"],
                "level": f["level"],
            }
            for rel, f in fields.items()
            if rel in clip_split
        ]
        table, excluded = apply_exclusions(pd.DataFrame(rows), task)
        for split in SPLITS:
            actors = sorted(a for a, s in assign.items() if s == split)
            atomic_write_text(Path(dest) / f"actors_{split}.txt", "".join(f"{a}\n" for a in actors))
        extra = {
            **_rule(task, opts),
            "counts": {s: int((table["split"] == s).sum()) for s in SPLITS},
            "group_counts": {s: sum(1 for v in assign.values() if v == s) for s in SPLITS},
            "reference_counts": REFERENCE_COUNTS,
            "reference_group_counts": REFERENCE_GROUP_COUNTS,
            "excluded": _left_out(opts, fields) + excluded,
        }
        return BuildOutput(table, str(root), task.audio.sample_rate, extra)


def _rule(task: TaskSpec, opts: CremaDOptions) -> dict[str, Any]:
    """The split entries of ``dataset.json``."""
    if opts.split == "reference":
        path = option_path(task, str(opts.split_file))
        return {
            "split_rule": "reference: the reference harness's published actor split, read from split_file",
            "split_file": str(path),
            "split_file_sha256": sha256_file(path),
            "split_note": "the reference harness's own split (7,438 clips): scores comparable with published ones",
        }
    return {
        "split_rule": (
            f"actors sorted, permuted with numpy default_rng(seed), first floor({opts.train}·n) train, "
            f"next floor({opts.valid}·n) valid, rest test (speaker-disjoint)"
        ),
        "split_seed": opts.seed,
        "split_note": (
            "split regenerated by actor with a fixed seed (splitgen rule); scores are close to, but not identical "
            "with, those on the reference harness's unseeded split"
        ),
    }


def _left_out(opts: CremaDOptions, fields: dict) -> list[dict[str, Any]]:
    """The four clips the reference split leaves out, reported like the spec's exclusions (``reference`` only)."""
    if opts.split != "reference":
        return []
    present = {_stem(rel) for rel in fields}
    return [
        {
            "file": f"{AUDIO_DIR}/{stem}.wav",
            "reason": "left out of the reference split (absent from the 7,438-clip list it was drawn from)",
            "rows_removed": int(stem in present),
        }
        for stem in REFERENCE_LEFT_OUT
    ]
