"""The dataset-builder interface.

A builder turns a dataset's distribution (official layout, or nothing for the
embedded synthetic suite) into evalbench's canonical metadata
(:mod:`evalbench.data.metadata`).  Builders are registered by name in
:data:`evalbench.registry.BUILDERS` and referenced from task YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from evalbench.specs.task import TaskSpec


@dataclass
class BuildOutput:
    """What a builder produced.

    Attributes:
        metadata: Canonical metadata table.
        audio_root: Audio folder, relative to the dataset folder or absolute.
        sample_rate: Native sample rate if uniform, else None.
        extra: More facts for ``dataset.json`` (exclusions, counts...).
    """

    metadata: pd.DataFrame
    audio_root: str
    sample_rate: int | None
    extra: dict[str, Any] = field(default_factory=dict)


class DatasetBuilder:
    """Base class of dataset builders.

    Attributes:
        embedded: True if the dataset can be generated without any source (the
            synthetic suite); such datasets are prepared on first use.
    """

    embedded: ClassVar[bool] = False

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """A hash of everything the builder reads; equal hashes make ``prepare`` a no-op."""
        raise NotImplementedError

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Write audio (if the builder makes any) under ``dest`` and return the metadata."""
        raise NotImplementedError

    def instructions(self, task: TaskSpec) -> str:
        """One line on how to obtain and prepare the data for ``task`` (from its ``dataset.source``)."""
        source = task.dataset.source
        prepare = f"evalbench data prepare {task.name} --source DIR"
        if source.download:
            return f"evalbench data download {task.name}  (or, with the dataset already on disk: {prepare})"
        if source.manual:
            return f"{prepare}  after fetching it by hand: {' '.join(source.manual.split())}"
        return prepare


def apply_exclusions(table: pd.DataFrame, task: TaskSpec) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Drop the spec's known-bad files (``dataset.exclude``) from a metadata table.

    A rule matches a row whose ``file_name`` equals the rule's ``file`` or ends
    with ``/<file>``.  Every rule is reported with the number of rows it removed
    (0 when the file is absent from this copy of the dataset), to be stored in
    ``dataset.json`` and printed by ``prepare``.

    Returns:
        The filtered table and the exclusion report.
    """
    keep = pd.Series(True, index=table.index)
    report = []
    names = table["file_name"].astype(str)
    for rule in task.dataset.exclude:
        hit = (names == rule.file) | names.str.endswith("/" + rule.file)
        report.append({"file": rule.file, "reason": rule.reason, "rows_removed": int(hit.sum())})
        keep &= ~hit
    return table[keep].reset_index(drop=True), report
