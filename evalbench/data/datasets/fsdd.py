"""Free Spoken Digit Dataset (FSDD): spoken digit classification, split by recording index.

Z. Jackson et al., Free Spoken Digit Dataset (github.com/Jakobovski/free-spoken-digit-dataset).
The layout, read in place (``--source`` points at the extracted release, e.g.
``free-spoken-digit-dataset-1.0.10``)::

    recordings/{digit}_{speaker}_{index}.wav     8 kHz mono, trimmed of silence

Each speaker says each digit 50 times (index 0..49).  The dataset grows over
time (3 speakers / 1,500 files, then 5 / 2,500 in the TFDS copy v1.0.9, then
6 / 3,000 in v1.0.10), so the task spec pins a release in ``dataset.options``;
the speakers and file count found are recorded in ``dataset.json`` and
compared with the pinned release's.

Split (docs/protocol.md §1.2).  The README's official test set is the first 10% of
recordings, indices 0–4; indices 5–49 are training.  evalbench's choice for
validation is indices 5–9, so training uses 10–49.  The split is by index, not
by speaker: every speaker appears in every split (by design; this task measures
digit recognition with seen speakers).  ``group`` is the speaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalbench.data.builders import BuildOutput, DatasetBuilder, apply_exclusions
from evalbench.data.datasets import _common as C
from evalbench.errors import DataError
from evalbench.specs.fields import parse
from evalbench.specs.task import TaskSpec

AUDIO = "recordings"
SAMPLE_RATE = 8000
DIGITS = [str(d) for d in range(10)]
_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9]+)_(?P<index>\d+)\.wav$")
_WHAT = "the extracted FSDD release (the folder holding recordings/)"


@dataclass(frozen=True)
class FSDDOptions:
    """Options of the ``fsdd`` builder (``dataset.options``).

    Attributes:
        release: Git tag of the pinned release (recorded, and compared with what is found).
        speakers: Speaker count of the pinned release (0: not checked).
        files: File count of the pinned release (0: not checked).
        test_max_index: Recordings with index ≤ this are test (README: 0–4).
        valid_max_index: Recordings with index ≤ this (and above ``test_max_index``)
            are validation (evalbench's choice: 5–9); the rest are training.
    """

    release: str = ""
    speakers: int = 0
    files: int = 0
    test_max_index: int = 4
    valid_max_index: int = 9

    def __post_init__(self) -> None:
        if not 0 <= self.test_max_index < self.valid_max_index:
            raise ValueError(
                f"valid_max_index: must exceed test_max_index ({self.test_max_index}), got {self.valid_max_index}"
            )


def _split(index: int, opts: FSDDOptions) -> str:
    if index <= opts.test_max_index:
        return "test"
    return "valid" if index <= opts.valid_max_index else "train"


class FSDDBuilder(DatasetBuilder):
    """Reads an FSDD release in place; labels, speakers and index-based splits from the file names."""

    def _root(self, task: TaskSpec, source: Path | None) -> Path:
        src = C.require_source(task, source, _WHAT)
        return C.locate_root(src, AUDIO, (), _WHAT)

    def _options(self, task: TaskSpec) -> FSDDOptions:
        return parse(FSDDOptions, task.dataset.options, task.source_path or task.name, "dataset.options")

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the (path, size) list of ``recordings/``, options, exclusions and classes."""
        root = self._root(task, source)
        self._options(task)
        return C.fingerprint(task, root, [], C.list_audio(root / AUDIO, root, (".wav",)))

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Parse every recording name and assign its split by index.

        Raises:
            DataError: No ``recordings/`` folder or no recordings, a ``.wav`` whose
                name is not ``{digit}_{speaker}_{index}.wav``, or a class list
                other than the digits 0–9.
        """
        opts = self._options(task)
        if task.labels.classes is not None and list(task.labels.classes) != DIGITS:
            raise DataError(f"{task.source_path}: labels.classes: must be the digits {DIGITS} in order")
        root = self._root(task, source)
        rows = []
        for rel in C.list_audio(root / AUDIO, root, (".wav",)):
            match = _NAME.match(Path(rel).name)
            if match is None or Path(rel).parent.as_posix() != AUDIO:
                raise DataError(f"{root / rel}: not named {AUDIO}/{{digit}}_{{speaker}}_{{index}}.wav; remove it")
            index = int(match["index"])
            rows.append(
                {
                    "file_name": rel,
                    "label": match["digit"],
                    "split": _split(index, opts),
                    "group": match["speaker"],
                    "speaker": match["speaker"],
                    "index": index,
                }
            )
        if not rows:
            raise DataError(f"{root / AUDIO}: no recordings found; point --source at {_WHAT}")
        meta, excluded = apply_exclusions(pd.DataFrame(rows), task)
        speakers = sorted(meta["speaker"].unique().tolist())
        found = {"speakers": len(speakers), "files": len(meta)}
        pinned = {"speakers": opts.speakers, "files": opts.files}
        differs = {k: (pinned[k], found[k]) for k in found if pinned[k] and pinned[k] != found[k]}
        extra = {
            "release": opts.release,
            "release_check": "matches"
            if not differs
            else {k: {"pinned": p, "found": f} for k, (p, f) in differs.items()},
            "speakers": speakers,
            "n_speakers": len(speakers),
            "n_files": len(meta),
            "split_rule": (
                f"index 0-{opts.test_max_index} test, {opts.test_max_index + 1}-{opts.valid_max_index} valid, "
                f"{opts.valid_max_index + 1}+ train; not speaker-disjoint"
            ),
            "excluded": excluded,
            "counts": {s: int((meta["split"] == s).sum()) for s in ("train", "valid", "test")},
        }
        return BuildOutput(meta, str(root), SAMPLE_RATE, extra)
