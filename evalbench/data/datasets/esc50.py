"""ESC-50 and its ESC-10 subset: environmental sound classification in 5 official folds.

K. J. Piczak, "ESC: Dataset for Environmental Sound Classification", ACM
Multimedia 2015 (github.com/karolpiczak/ESC-50).  The official layout, read in
place (``--source`` points at ``ESC-50-master`` or the folder holding it)::

    ESC-50-master/audio/{fold}-{src_file}-{take}-{target}.wav   5 s, 44.1 kHz mono
    ESC-50-master/meta/esc50.csv   filename, fold, target, category, esc10, src_file, take

2,000 clips, 50 classes of 40 clips, 5 folds of 400 (docs/protocol.md §1.2).

Classes.  ESC-50's class order is its ``target`` column (0..49): the task's
``labels.classes[t]`` must be the ``category`` of target ``t``, and any
disagreement is a :class:`~evalbench.errors.DataError`.  ESC-10 (``options:
{subset: esc10}``) keeps the rows with ``esc10 == True`` and re-indexes the
labels from the *sorted* list of its 10 names, because the original targets are
sparse (dog 0 ... chainsaw 41); the spec must list exactly those names, sorted.

Groups.  Takes cut from one Freesound recording share ``src_file``; it is the
``group`` column, so the validation holdout drawn inside the training folds
keeps every take of a recording on one side (docs/protocol.md §2.3).  The README
says such takes share a fold (unverified): the builder counts recordings that
span folds and reports the count instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets import _common as C
from evalbench.errors import DataError
from evalbench.specs.fields import parse
from evalbench.specs.task import TaskSpec

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
META = "meta/esc50.csv"
AUDIO = "audio"
ROOT_NAME = "ESC-50-master"
SAMPLE_RATE = 44100
_WHAT = f"{ROOT_NAME} (the folder holding meta/esc50.csv and audio/)"


@dataclass(frozen=True)
class ESC50Options:
    """Options of the ``esc50`` builder (``dataset.options``).

    Attributes:
        subset: ``esc50`` (all 2,000 clips, 50 classes) or ``esc10`` (the 400
            rows flagged ``esc10``, 10 classes).
    """

    subset: Literal["esc50", "esc10"] = "esc50"


def _flag(value: str, row: int, path: Path) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise DataError(f"{path}: row {row + 2}: column 'esc10' holds '{value}', expected True or False")
    return text == "true"


def _check_names(table: pd.DataFrame, folds: list[int], targets: list[int], path: Path) -> None:
    """Every ``filename`` must read ``{fold}-{src_file}-{take}-{target}.wav`` with its row's fold and target."""
    for row, (name, fold, target) in enumerate(zip(table["filename"], folds, targets, strict=True)):
        parts = str(name).removesuffix(".wav").split("-")
        if len(parts) != 4 or parts[0] != str(fold) or parts[3] != str(target) or not str(name).endswith(".wav"):
            raise DataError(
                f"{path}: row {row + 2}: filename '{name}' does not read {{fold}}-{{src_file}}-{{take}}-{{target}}.wav "
                f"with fold {fold} and target {target}"
            )


def _esc10_classes(task: TaskSpec, found: set[str], path: Path) -> list[str]:
    """The sorted ESC-10 names; the spec's list, if given, must be exactly these, sorted."""
    names = sorted(found)
    declared = task.labels.classes
    if declared is not None:
        if sorted(declared) != list(declared):
            raise DataError(f"{task.source_path}: labels.classes: ESC-10 classes must be sorted by name: {names}")
        if set(declared) != found:
            extra, absent = sorted(set(declared) - found), sorted(found - set(declared))
            raise DataError(
                f"{path}: the rows with esc10 == True have classes {names}; the spec's labels.classes "
                f"differ (not in the data: {extra}; missing from the spec: {absent})"
            )
    return names


class ESC50Builder(DatasetBuilder):
    """Reads ESC-50 (or its ESC-10 subset) in place; labels, folds and ``src_file`` groups from ``meta/esc50.csv``."""

    def _root(self, task: TaskSpec, source: Path | None) -> Path:
        src = C.require_source(task, source, _WHAT)
        return C.locate_root(src, META, (ROOT_NAME,), _WHAT)

    def _options(self, task: TaskSpec) -> ESC50Options:
        return parse(ESC50Options, task.dataset.options, task.source_path or task.name, "dataset.options")

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of ``meta/esc50.csv``, the (path, size) list of ``audio/``, options, exclusions and classes."""
        root = self._root(task, source)
        self._options(task)
        return C.fingerprint(task, root, [META], C.list_audio(root / AUDIO, root))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Validate the layout and return one row per clip of the chosen subset.

        Raises:
            DataError: Missing ``meta/esc50.csv`` or column, a malformed value or
                file name, a class list that disagrees with the data, or a listed
                clip missing from ``audio/``.
        """
        opts = self._options(task)
        root = self._root(task, source)
        path = root / META
        table = C.read_table(path, COLUMNS, hint=f"point --source at {_WHAT}")
        folds = C.int_column(table, "fold", path)
        targets = C.int_column(table, "target", path)
        C.check_range(folds, 1, task.splits.folds or 5, "fold", path)
        _check_names(table, folds, targets, path)
        flags = [_flag(v, r, path) for r, v in enumerate(table["esc10"])]
        meta = pd.DataFrame(
            {
                "file_name": [f"{AUDIO}/{name}" for name in table["filename"]],
                "label": table["category"].str.strip(),
                "fold": folds,
                "group": table["src_file"].str.strip(),
                "target": targets,
                "take": table["take"].str.strip(),
                "esc10": flags,
            }
        )
        if opts.subset == "esc10":
            meta = meta[meta["esc10"]].reset_index(drop=True)
            if meta.empty:
                raise DataError(f"{path}: no row has esc10 == True; is this the ESC-50 metadata?")
            classes = _esc10_classes(task, set(meta["label"]), path)
            rule = "rows with esc10 == True; labels re-indexed from the sorted class names"
        else:
            by_target: dict[int, set[str]] = {}
            for target, name in zip(meta["target"], meta["label"], strict=True):
                by_target.setdefault(int(target), set()).add(name)
            classes = C.indexed_classes(task, by_target, "target", path)
            rule = "class order = target 0..49"
        meta, excluded = apply_exclusions(meta, task)
        C.check_exist(root, meta["file_name"], path)
        listed = set(meta["file_name"])
        unlisted = [f for f in C.list_audio(root / AUDIO, root) if f not in listed]
        extra = {
            "subset": opts.subset,
            "classes": classes,
            "class_rule": rule,
            "excluded": excluded,
            "counts": C.counts(meta["fold"], "fold"),
            "n_groups": int(meta["group"].nunique()),
            "groups_across_folds": C.groups_across(meta["group"], meta["fold"]),
            "unlisted_audio": len(unlisted) if opts.subset == "esc50" else None,
        }
        return BuildOutput(meta, str(root), SAMPLE_RATE, extra)
