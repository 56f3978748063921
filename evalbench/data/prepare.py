"""Prepare datasets under the data root and open them for a task.

``prepare`` is idempotent: the builder's source fingerprint is stored in
``dataset.json`` and a second run with the same source is a no-op.  Writes are
atomic and ``dataset.json`` comes last, so an interrupted preparation is never
mistaken for a complete one.
"""

from __future__ import annotations

from pathlib import Path

from evalbench.data.builders import DatasetBuilder
from evalbench.data.metadata import PreparedDataset, is_prepared, read_info, read_prepared, write_prepared
from evalbench.data.task_data import TaskData, build_task_data
from evalbench.errors import DataError, DatasetNotReadyError
from evalbench.registry import BUILDERS
from evalbench.specs.task import TaskSpec


def builder_for(task: TaskSpec) -> DatasetBuilder:
    """Instantiate the task's registered dataset builder."""
    return BUILDERS.get(task.dataset.builder)()


def dataset_dir(task: TaskSpec, data_root: Path) -> Path:
    """Folder of the task's prepared dataset."""
    return Path(data_root) / task.dataset_name


def prepare(
    task: TaskSpec, data_root: Path, source: Path | None = None, force: bool = False
) -> tuple[PreparedDataset, bool]:
    """Prepare the task's dataset unless an identical preparation exists.

    Args:
        task: Task spec.
        data_root: Data root.
        source: Folder holding the official distribution (None for embedded data).
        force: Rebuild even if the source fingerprint is unchanged.

    Returns:
        The prepared dataset and whether it was (re)built.
    """
    builder = builder_for(task)
    dest = dataset_dir(task, data_root)
    fingerprint = builder.source_fingerprint(task, source)
    info = read_info(dest)
    if not force and info is not None and is_prepared(dest) and info.get("source_fingerprint") == fingerprint:
        return read_prepared(dest), False
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "dataset.json").unlink(missing_ok=True)
    out = builder.build(task, dest, source)
    write_prepared(
        dest,
        out.metadata,
        builder=task.dataset.builder,
        options=task.dataset.options,
        audio_root=out.audio_root,
        sample_rate=out.sample_rate,
        source_fingerprint=fingerprint,
        extra=out.extra,
    )
    return read_prepared(dest), True


def open_task_data(task: TaskSpec, data_root: Path, require_files: bool = True) -> TaskData:
    """Open a task's prepared dataset, generating embedded datasets on first use.

    Args:
        task: Task spec.
        data_root: Data root.
        require_files: Fail when a listed file is missing (``run``); ``verify``
            passes False to report every missing file itself.

    Raises:
        DatasetNotReadyError: A non-embedded dataset is not prepared; the message
            gives the exact command to prepare it.
        DataError: A listed audio file is missing, or the metadata contradicts the spec.
    """
    builder = builder_for(task)
    dest = dataset_dir(task, data_root)
    if builder.embedded:
        dataset, _ = prepare(task, data_root)
    elif is_prepared(dest):
        dataset = read_prepared(dest)
    else:
        raise DatasetNotReadyError(
            f"task '{task.name}': dataset '{task.dataset_name}' is not prepared under {Path(data_root)}; "
            f"run: {builder.instructions(task)}"
        )
    missing = dataset.missing
    if require_files and missing:
        raise DataError(
            f"{dataset.audio_root / missing[0]}: audio file not found ({len(missing)} listed file(s) missing); "
            f"restore it or prepare the dataset again; `evalbench data verify {task.name}` lists every problem"
        )
    return build_task_data(task, dataset)
