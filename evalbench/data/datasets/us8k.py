"""UrbanSound8K: urban sound classification in 10 official folds.

J. Salamon, C. Jacoby and J. P. Bello, "A Dataset and Taxonomy for Urban Sound
Research", ACM Multimedia 2014 (urbansounddataset.weebly.com).  The official
layout, read in place (``--source`` points at ``UrbanSound8K`` or its parent)::

    UrbanSound8K/audio/fold1 ... fold10/<slice_file_name>
    UrbanSound8K/metadata/UrbanSound8K.csv
        slice_file_name, fsID, start, end, salience, fold, classID, class

8,732 slices of at most 4 s cut from Freesound recordings (``fsID``); slice
names read ``{fsID}-{classID}-{occurrenceID}-{sliceID}.wav``.

Protocol facts (docs/protocol.md §1.2, §2.3):

- The 10 folds are used as published and never reshuffled: the authors put all
  slices of one recording in one fold, and reshuffling leaks recordings
  between train and test.  ``fsID`` is the ``group`` column, so the validation
  holdout drawn inside the training folds is grouped by recording too.
  Recordings that nevertheless span folds are counted and reported.
- The class order is ``classID`` (0..9): the task's ``labels.classes[i]`` must
  be the ``class`` of ``classID`` ``i``.
- Sample rate, bit depth and channel count vary per file, so the native rate
  is reported as None and the pipeline converts every clip to mono at the
  encoder's rate.  The distribution of rates and channel counts (read from the
  file headers) is stored in ``dataset.json``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import soundfile as sf

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets import _common as C
from evalbench.errors import DataError
from evalbench.specs.task import TaskSpec

COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
META = "metadata/UrbanSound8K.csv"
AUDIO = "audio"
ROOT_NAME = "UrbanSound8K"
_WHAT = f"{ROOT_NAME} (the folder holding metadata/UrbanSound8K.csv and audio/fold1..fold10)"


def _check_names(table: pd.DataFrame, class_ids: list[int], path: Path) -> None:
    """Every slice name must read ``{fsID}-{classID}-{occurrenceID}-{sliceID}.wav`` with its row's values."""
    rows = zip(table["slice_file_name"], table["fsID"], class_ids, strict=True)
    for row, (name, fs_id, class_id) in enumerate(rows):
        parts = Path(str(name)).stem.split("-")
        if len(parts) != 4 or parts[0] != str(fs_id).strip() or parts[1] != str(class_id):
            raise DataError(
                f"{path}: row {row + 2}: slice_file_name '{name}' does not read "
                f"{{fsID}}-{{classID}}-{{occurrence}}-{{slice}}.wav with fsID {fs_id} and classID {class_id}"
            )


def _header_facts(root: Path, files: list[str]) -> dict[str, dict[str, int]]:
    """Counts of sample rates, channel counts and sample formats, from the file headers only.

    Raises:
        DataError: A header cannot be read (the message names the file).
    """
    rates: Counter[int] = Counter()
    channels: Counter[int] = Counter()
    subtypes: Counter[str] = Counter()
    for rel in files:
        try:
            info = sf.info(str(root / rel))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{root / rel}: unreadable audio header ({first}); restore the file or exclude it in the task spec"
            ) from None
        rates[int(info.samplerate)] += 1
        channels[int(info.channels)] += 1
        subtypes[str(info.subtype)] += 1
    return {
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "channels": {str(k): v for k, v in sorted(channels.items())},
        "subtypes": dict(sorted(subtypes.items())),
    }


class UrbanSound8KBuilder(DatasetBuilder):
    """Reads UrbanSound8K in place; labels, official folds and ``fsID`` groups from its metadata CSV."""

    def _root(self, task: TaskSpec, source: Path | None) -> Path:
        src = C.require_source(task, source, _WHAT)
        return C.locate_root(src, META, (ROOT_NAME,), _WHAT)

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the metadata CSV, the (path, size) list of ``audio/``, exclusions and classes."""
        root = self._root(task, source)
        return C.fingerprint(task, root, [META], C.list_audio(root / AUDIO, root))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Validate the layout and return one row per slice with its official fold.

        Raises:
            DataError: Missing metadata file or column, a malformed value or slice
                name, a class list that disagrees with ``classID``, or a listed
                slice missing from ``audio/fold<k>/``.
        """
        if task.dataset.options:
            raise DataError(f"{task.source_path}: dataset.options: the us8k builder takes no options")
        root = self._root(task, source)
        path = root / META
        table = C.read_table(path, COLUMNS, hint=f"point --source at {_WHAT}")
        folds = C.int_column(table, "fold", path)
        class_ids = C.int_column(table, "classID", path)
        C.check_range(folds, 1, task.splits.folds or 10, "fold", path)
        _check_names(table, class_ids, path)
        by_id: dict[int, set[str]] = {}
        for class_id, name in zip(class_ids, table["class"].str.strip(), strict=True):
            by_id.setdefault(class_id, set()).add(name)
        classes = C.indexed_classes(task, by_id, "classID", path)
        meta = pd.DataFrame(
            {
                "file_name": [f"{AUDIO}/fold{k}/{n}" for k, n in zip(folds, table["slice_file_name"], strict=True)],
                "label": table["class"].str.strip(),
                "fold": folds,
                "group": table["fsID"].str.strip(),
                "class_id": class_ids,
                "start": table["start"],
                "end": table["end"],
                "salience": table["salience"],
            }
        )
        meta, excluded = apply_exclusions(meta, task)
        C.check_exist(root, meta["file_name"], path)
        listed = set(meta["file_name"])
        unlisted = [f for f in C.list_audio(root / AUDIO, root) if f not in listed]
        extra = {
            "classes": classes,
            "class_rule": "class order = classID 0..9",
            "excluded": excluded,
            "counts": C.counts(meta["fold"], "fold"),
            "n_groups": int(meta["group"].nunique()),
            "groups_across_folds": C.groups_across(meta["group"], meta["fold"]),
            "unlisted_audio": len(unlisted),
            **_header_facts(root, meta["file_name"].tolist()),
        }
        return BuildOutput(meta, str(root), None, extra)
