"""MagnaTagATune: top-50 music auto-tagging (multi-label), directory or Pons et al. split.

MagnaTagATune (Law et al., "Evaluation of Algorithms Using Games: The Case of
Music Tagging", ISMIR 2009) has about 25,863 clips of ≈29.1 s cut from 5,405
tracks, tagged with 188 binary tags.  The distribution is three byte-split
parts ``mp3.zip.001``–``003`` that, concatenated, unzip into 16 folders
``0``–``9``, ``a``–``f`` of ``<artist>-<album>-<track#>-<title>-<start>-<end>.mp3``,
plus ``annotations_final.csv``: **tab-separated** (fields possibly quoted),
``clip_id``, 188 tag columns of 0/1, ``mp3_path`` (relative, e.g.
``f/<name>.mp3``).

Classes are the top-50 tags in frequency order, fixed in the task spec and not
merged with synonyms (CLMR, Spijkervet & Burgoyne, ISMIR 2021, compares
unmerged tags).  A clip with none of the 50 tags keeps an empty label (an
all-zero target row): it stays a negative for every tag, as in the directory
split of the tagging literature.

Splits (``dataset.options.split``; recorded in ``dataset.json``):

- ``directory`` (default): folders ``0``–``b`` train, ``c`` valid, ``d``–``f``
  test (12:1:3), needing nothing beyond the distribution;
- ``pons``: the index of Pons et al. ("End-to-end learning for music audio
  tagging at scale", ISMIR 2018; CLMR's default), a separate download from the
  musicnn-training repository: ``index_mtt.tsv`` lines ``<clip_id>TAB<mp3_path>``
  and ``{train,val,test}_gt_mtt.tsv`` lines ``<clip_id>TAB[<50 floats>]``.  Only the
  clip ids of the ground-truth files are used (mapped to paths through the
  index and checked against ``annotations_final.csv``); labels always come from
  ``annotations_final.csv`` so both splits share one tag order.  The exact
  format of these files was read from a copy of the repository (unverified
  against every revision).

Each tag without a positive in the test split is skipped by the metrics and
counted; ``dataset.json`` reports which ones.  Track (the file name without its
``-<start>-<end>`` suffix) is kept as the metadata group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import soundfile as sf

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets._common import fingerprint, list_audio, require_source
from evalbench.errors import DataError, SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec

BUILDER_VERSION = 1
ANNOTATIONS = "annotations_final.csv"
FOLDERS = "0123456789abcdef"
DIRECTORY_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "valid", **dict.fromkeys("def", "test")}
PONS_FILES = {"train": "train_gt_mtt.tsv", "valid": "val_gt_mtt.tsv", "test": "test_gt_mtt.tsv"}
PONS_INDEX = "index_mtt.tsv"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class MTTOptions:
    """Options of the ``mtt`` builder (``dataset.options``).

    Attributes:
        split: ``directory`` (folders 0–b / c / d–f) or ``pons`` (Pons et al. index files).
        index_dir: Folder of the four Pons index files, relative to ``--source``
            (or absolute); only read with ``split: pons``.
    """

    split: Literal["directory", "pons"] = "directory"
    index_dir: str = ""


def _options(task: TaskSpec) -> MTTOptions:
    opts = parse(MTTOptions, task.dataset.options, task.source_path or task.name, "dataset.options")
    if task.labels.classes is None:
        raise SpecError(f"{task.source_path or task.name}: labels.classes: list the top-50 tags in frequency order")
    return opts


def _root(task: TaskSpec, source: Path | None) -> Path:
    root = require_source(
        task, source, f"the folder holding {ANNOTATIONS} and the folders 0-f unzipped from the joined mp3.zip.001-003"
    )
    if not (root / ANNOTATIONS).is_file():
        raise DataError(f"{root / ANNOTATIONS}: not found; download it into --source beside the folders 0-f")
    if not any((root / f).is_dir() for f in FOLDERS):
        raise DataError(f"{root}: no mp3 folders 0-f; concatenate mp3.zip.001-003 into mp3.zip and unzip it here")
    return root


def _audio(root: Path) -> list[str]:
    """``<folder>/<name>.mp3`` paths in the 16 folders, relative to ``root`` (``._*`` files skipped)."""
    return [p for f in FOLDERS if (root / f).is_dir() for p in list_audio(root / f, root, (".mp3",))]


def _index_dir(root: Path, opts: MTTOptions) -> Path:
    folder = Path(opts.index_dir) if Path(opts.index_dir).is_absolute() else root / opts.index_dir
    for name in (PONS_INDEX, *PONS_FILES.values()):
        if not (folder / name).is_file():
            raise DataError(
                f"{folder / name}: not found; split 'pons' needs the MTT index files of the musicnn-training "
                "repository in dataset.options.index_dir (or use split: directory)"
            )
    return folder


def _read_annotations(path: Path, tags: list[str]) -> pd.DataFrame:
    """``annotations_final.csv`` with its columns checked (tab-separated; pandas strips any quotes)."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: unreadable as a tab-separated file ({exc})") from None
    missing = [c for c in ("clip_id", "mp3_path", *tags) if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing[:5]} ({len(missing)} in all); expected the tab-separated file"
        )
    dupes = table["clip_id"][table["clip_id"].duplicated()]
    if len(dupes):
        raise DataError(f"{path}: clip_id '{dupes.iloc[0]}' appears more than once")
    values = table[tags]
    bad = ~values.isin(["0", "1"])
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}: row {row + 2}: tag '{tags[col]}' is '{values.iat[row, col]}', expected 0 or 1")
    folder = table["mp3_path"].str.split("/", n=1).str[0]
    wrong = table[~folder.isin(list(FOLDERS)) | ~table["mp3_path"].str.contains("/", regex=False)]
    if len(wrong):
        first = wrong.index[0]
        raise DataError(f"{path}: row {first + 2}: mp3_path '{wrong['mp3_path'][first]}' is not in a folder 0-f")
    return table


def _read_tsv(path: Path) -> list[tuple[int, str, str]]:
    """Non-empty lines of an index file as ``(line number, clip id, rest)``."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        clip_id, sep, rest = line.partition("\t")
        if not sep or not clip_id.strip().isdigit():
            raise DataError(f"{path}: line {number}: expected '<clip_id>\\t...', got '{line[:60]}'")
        out.append((number, clip_id.strip(), rest.strip()))
    return out


def _pons_split(folder: Path, table: pd.DataFrame) -> pd.Series:
    """Split name per annotation row from the Pons et al. files ("" for clips on no list)."""
    index = {cid: path for _, cid, path in _read_tsv(folder / PONS_INDEX)}
    row_of = {cid: i for i, cid in enumerate(table["clip_id"])}
    split = pd.Series("", index=table.index, dtype=object)
    for name, file in PONS_FILES.items():
        path = folder / file
        for number, cid, _ in _read_tsv(path):
            if cid not in index:
                raise DataError(f"{path}: line {number}: clip id {cid} is not in {folder / PONS_INDEX}")
            if cid not in row_of:
                raise DataError(f"{path}: line {number}: clip id {cid} is not in {ANNOTATIONS}")
            row = row_of[cid]
            if index[cid] != table["mp3_path"].iat[row]:
                raise DataError(
                    f"{folder / PONS_INDEX}: clip id {cid} maps to '{index[cid]}' but {ANNOTATIONS} "
                    f"says '{table['mp3_path'].iat[row]}'"
                )
            if split.iat[row]:
                raise DataError(f"{path}: line {number}: clip id {cid} is already in the {split.iat[row]} split")
            split.iat[row] = name
    return split


class MagnaTagATuneBuilder(DatasetBuilder):
    """Reads MagnaTagATune in place; top-50 multi-label tags from ``annotations_final.csv``."""

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the annotation (and Pons index) files, the mp3 (path, size) list and the spec's choices."""
        opts, root = _options(task), _root(task, source)
        tables = [ANNOTATIONS]
        if opts.split == "pons":
            folder = _index_dir(root, opts)
            tables += [os.path.relpath(folder / n, root) for n in (PONS_INDEX, *PONS_FILES.values())]
        return fingerprint(task, root, tables, _audio(root), version=BUILDER_VERSION, split=to_dict(opts))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Canonical metadata: ``mp3_path``, comma-joined top-50 tags, split, track group.

        Raises:
            DataError: Malformed annotation or index files, or a kept clip whose
                mp3 is missing.
        """
        opts, root = _options(task), _root(task, source)
        tags = list(task.labels.classes or [])
        table = _read_annotations(root / ANNOTATIONS, tags)
        hot = table[tags].to_numpy() == "1"
        if opts.split == "directory":
            split = table["mp3_path"].str[0].map(DIRECTORY_SPLIT)
        else:
            split = _pons_split(_index_dir(root, opts), table)
        names = table["mp3_path"].str.rsplit("/", n=1).str[-1].str.removesuffix(".mp3")
        meta = pd.DataFrame(
            {
                "file_name": table["mp3_path"],
                "label": [",".join(t for t, on in zip(tags, row, strict=True) if on) for row in hot],
                "split": split,
                "group": names.str.rsplit("-", n=2).str[0],
                "clip_id": table["clip_id"],
                "_row": np.arange(len(table)),
            }
        )
        unlisted = int((meta["split"] == "").sum())
        meta, excluded = apply_exclusions(meta[meta["split"] != ""].reset_index(drop=True), task)
        hot = hot[meta.pop("_row").to_numpy()]
        on_disk = set(_audio(root))
        missing = [f for f in meta["file_name"] if f not in on_disk]
        if missing:
            raise DataError(
                f"{root / missing[0]}: listed in {ANNOTATIONS} but missing ({len(missing)} missing file(s)); "
                "re-join mp3.zip.001-003 and unzip, or exclude known-bad files in the spec"
            )
        test_pos = hot[(meta["split"] == "test").to_numpy()].sum(axis=0)
        try:
            rate: int | None = sf.info(str(root / meta["file_name"].iloc[0])).samplerate if len(meta) else None
        except (RuntimeError, sf.LibsndfileError):
            rate = None  # an undecodable first file is reported by `evalbench data verify`
        extra: dict[str, Any] = {
            "classes": tags,
            "split": opts.split,
            "split_rule": "folders 0-b train, c valid, d-f test"
            if opts.split == "directory"
            else f"Pons et al. index files ({', '.join(PONS_FILES.values())}, {PONS_INDEX})",
            "counts": {s: int((meta["split"] == s).sum()) for s in SPLITS},
            "annotation_rows": len(table),
            "annotation_tag_columns": len(table.columns) - 2,
            "clips_not_in_split": unlisted,
            "clips_without_top_tag": {s: int((~hot[meta["split"].to_numpy() == s].any(axis=1)).sum()) for s in SPLITS},
            "tags_without_test_positive": {
                "count": int((test_pos == 0).sum()),
                "tags": [t for t, n in zip(tags, test_pos, strict=True) if n == 0],
            },
            "excluded": excluded,
        }
        return BuildOutput(meta, str(root), rate, extra)
