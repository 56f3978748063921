"""Task and suite specs: one versioned YAML per task in ``tasks/``.

A task spec states everything that can move a score: the dataset builder, the
native sample rate, the clip length ("unit") and crop policy, the label type and
its fixed class order, the split (fixed train/valid/test or k folds) with its
validation rule, and the metrics (the first one is primary: it selects
hyperparameters and early-stops the probe).  Any change that can move a score
must bump ``version``; the version is printed next to every score.

Suites are named task groups in ``tasks/suites/<name>.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalbench.errors import SpecError, UnknownNameError
from evalbench.metric_info import LABEL_TYPES
from evalbench.registry import BUILDERS, METRICS
from evalbench.specs.catalog import Dirs, find_spec, spec_map
from evalbench.specs.fields import parse
from evalbench.specs.yaml_io import load_yaml, spec_hash

LabelType = Literal["single", "binary", "multilabel", "regression"]
CropPolicy = Literal["start", "center", "random"]

_INTERNAL = {"internal": True}


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= set("0123456789abcdef")


@dataclass(frozen=True)
class DownloadFile:
    """One file of a dataset's public distribution.

    Attributes:
        url: Public URL (http or https).
        sha256: Expected SHA-256 (lower-case hex); null = not yet known, the
            download then prints the computed hash and warns.
        size: Expected size in bytes, if known.
        filename: Local file name; defaults to the last URL path component.
        extract: Unpack the file (zip, tar, tar.gz, tar.bz2, tar.xz) after download.
    """

    url: str
    sha256: str | None = None
    size: int | None = None
    filename: str = ""
    extract: bool = True

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: must start with http:// or https://, got '{self.url}'")
        if self.sha256 is not None and not _is_sha256(self.sha256):
            raise ValueError(f"sha256: expected 64 lower-case hex digits, got '{self.sha256}'")

    @property
    def name(self) -> str:
        """Local file name."""
        return self.filename or self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(frozen=True)
class SourceSpec:
    """How to obtain a dataset's official distribution.

    Attributes:
        id: Folder under ``<data_root>/sources/`` that downloads and extracts
            into; tasks reading the same distribution share it (ESC-10 and
            ESC-50).  Defaults to the dataset name.
        homepage: Where the dataset is published.
        license: The dataset's licence, as published.
        download: Files to fetch, in order.
        join: If set, the downloaded files are concatenated in order into this
            file, which is then extracted (split archives such as MagnaTagATune's
            ``mp3.zip.001``–``003``).
        root: Folder, relative to the extraction folder, that holds the official
            layout (what ``prepare --source`` would point at).
        manual: For datasets without a public URL (licence click-through): what
            to fetch by hand and where to put it.
    """

    id: str = ""
    homepage: str = ""
    license: str = ""
    download: list[DownloadFile] = field(default_factory=list)
    join: str = ""
    root: str = ""
    manual: str = ""


@dataclass(frozen=True)
class ExcludeSpec:
    """A known-bad file of the official distribution, excluded by rule and reported.

    Attributes:
        file: Path relative to the official layout's root.
        reason: Why it is excluded (e.g. "truncated, undecodable").
    """

    file: str
    reason: str


@dataclass(frozen=True)
class DatasetSpec:
    """Where a task's data comes from.

    Attributes:
        builder: Registered dataset builder that writes canonical metadata.
        name: Folder of the prepared dataset under the data root. Defaults to the
            task name.
        options: Builder-specific options (validated by the builder), including
            any split-generation rule and its seed.
        source: How to obtain the official distribution.
        exclude: Known-bad files, excluded by rule (and reported).
        min_seconds: Shortest plausible clip; ``verify`` reports shorter files
            and ``run`` refuses them.
        max_seconds: Longest plausible clip (null: no limit).
        allow_duplicate_audio: Accept byte-identical files on both sides of a
            split (different splits or folds).  Off by default: the same clip in
            training and test data inflates the score.
        allow_group_overlap: Accept one metadata ``group`` (speaker, source
            recording) in several splits or folds of user-made or generated
            metadata (``manifest`` and ``synthetic`` builders; official
            distributions keep their published split).  Off by default: it
            leaks the source into evaluation
            (:func:`evalbench.data.task_data._check_group_overlap`).
    """

    builder: str
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    source: SourceSpec = field(default_factory=SourceSpec)
    exclude: list[ExcludeSpec] = field(default_factory=list)
    min_seconds: float = 0.0
    max_seconds: float | None = None
    allow_duplicate_audio: bool = False
    allow_group_overlap: bool = False

    def __post_init__(self) -> None:
        if self.builder not in BUILDERS:
            raise ValueError(f"builder: {BUILDERS.unknown(self.builder)}")
        # NaN compares false with everything: a NaN bound would silently switch the duration check off
        if not math.isfinite(self.min_seconds) or self.min_seconds < 0:
            raise ValueError(f"min_seconds: must be a finite number >= 0, got {self.min_seconds}")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise ValueError(f"max_seconds: must be a finite number > 0 or null (no limit), got {self.max_seconds}")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds: must be >= min_seconds ({self.min_seconds}), got {self.max_seconds}")


@dataclass(frozen=True)
class AudioSpec:
    """Audio preprocessing before the encoder.

    Every clip is converted to mono, resampled to the encoder's rate and cropped
    or zero-padded on the right to ``clip_seconds`` (the "unit" of the
    reference linear protocol, docs/protocol.md §2.1).  Padding is masked out of
    pooling.  Crop policies for clips longer than the unit: ``start`` keeps
    the first ``clip_seconds`` (the reference harness's test-time policy),
    ``center`` the middle, ``random`` a start drawn from a hash of the file name
    and ``crop_seed`` (deterministic, identical for every encoder and seed).

    Attributes:
        sample_rate: Native sample rate of the prepared audio, in Hz.
        clip_seconds: Unit length in seconds.
        crop: Crop policy for clips longer than the unit.
        crop_seed: Seed of the ``random`` policy.
    """

    sample_rate: int
    clip_seconds: float
    crop: CropPolicy = "start"
    crop_seed: int = 0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate: must be positive, got {self.sample_rate}")
        if not 0 < self.clip_seconds <= 3600:
            raise ValueError(f"clip_seconds: must be in (0, 3600], got {self.clip_seconds}")


@dataclass(frozen=True)
class LabelSpec:
    """Label type and the one fixed class order used for every split.

    Attributes:
        type: ``single`` (one of C classes), ``binary`` (two classes, the second
            is the positive one), ``multilabel`` (any subset of C classes) or
            ``regression`` (the label column holds one float target per clip;
            no classes).
        classes: Class vocabulary in output order.  If omitted, the builder's
            published vocabulary (``classes`` in ``dataset.json``, e.g. FSD50K's
            ``vocabulary.csv``) or else the sorted set of labels over *all*
            splits of the prepared metadata is used: still fixed once per task
            and stored in every run record.
        allow_missing_in_train: Classes that may have no training clips (for a
            k-fold task: no clips outside some test fold).  Any other such class
            is an error, since a probe cannot learn a class it never sees.
    """

    type: LabelType
    classes: list[str] | None = None
    allow_missing_in_train: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.type == "regression" and (self.classes is not None or self.allow_missing_in_train):
            key = "classes" if self.classes is not None else "allow_missing_in_train"
            raise ValueError(f"{key}: a regression task has no classes (its label column holds a float target)")
        if self.classes is None:
            return
        if len(set(self.classes)) != len(self.classes):
            dupes = sorted({c for c in self.classes if self.classes.count(c) > 1})
            raise ValueError(f"classes: duplicate class names {dupes}")
        if len(self.classes) < 2:
            raise ValueError("classes: a task needs at least 2 classes")
        if self.type == "binary" and len(self.classes) != 2:
            raise ValueError(f"classes: a binary task has exactly 2 classes, got {len(self.classes)}")
        bad = [c for c in self.classes if "," in c or not c.strip()]
        if bad:
            raise ValueError(f"classes: class names must be non-empty and contain no comma, got {bad}")


@dataclass(frozen=True)
class ValidationSpec:
    """How the validation portion (for early stopping and selection) is formed.

    ``official``: the dataset's own valid split (fixed-split tasks).
    ``holdout``: a class-stratified ``fraction`` of the training folds, grouped so
    that no source recording sits on both sides, drawn per fold and seed
    (evalbench's fix of the reference harness, docs/protocol.md §2.3).
    ``next_fold``: HEAR's rule, validation = fold i+1 (mod k).

    An unstated rule is the split type's default (:data:`DEFAULT_RULES`),
    filled in by :class:`SplitSpec`: ``official`` for a fixed split, and for
    k folds ``holdout`` with the defaults below, i.e. a grouped, class-stratified
    10 % of the training folds.

    Attributes:
        rule: One of ``official``, ``holdout``, ``next_fold``; None (unstated):
            the split type's default.
        fraction: Holdout fraction of the training folds.
        grouped: Keep groups (metadata ``group`` column) on one side.
        stratified: Draw the holdout per class.
    """

    rule: Literal["official", "holdout", "next_fold"] | None = None
    fraction: float = 0.1
    grouped: bool = True
    stratified: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 0.5:
            raise ValueError(f"fraction: must be in (0, 0.5), got {self.fraction}")


@dataclass(frozen=True)
class SplitSpec:
    """Fixed train/valid/test split or k-fold cross-validation.

    Attributes:
        type: ``fixed`` (metadata column ``split`` in train/valid/test) or
            ``folds`` (metadata column ``fold`` in 1..k; test fold i in turn).
        folds: Number of folds k for ``folds``.
        validation: Validation rule; an unstated ``rule`` becomes the type's
            default (:data:`DEFAULT_RULES`).
    """

    type: Literal["fixed", "folds"]
    folds: int = 0
    validation: ValidationSpec = field(default_factory=ValidationSpec)

    def __post_init__(self) -> None:
        rule = self.validation.rule
        if rule is None:
            rule = DEFAULT_RULES[self.type]
            object.__setattr__(self, "validation", dataclasses.replace(self.validation, rule=rule))
        if self.type == "fixed":
            if self.folds:
                raise ValueError(
                    f"folds: only valid with type 'folds' (got {self.folds}); remove it, or write 'type: folds' "
                    "with a fold column 1..k in the metadata"
                )
            if rule != "official":
                raise ValueError(
                    f"validation.rule: a fixed split uses its 'official' valid split, got '{rule}'; remove the rule "
                    "(a fixed split validates on the metadata's 'valid' rows)"
                )
            return
        least = 3 if rule == "next_fold" else 2
        if self.folds < least:
            got = "none" if not self.folds else str(self.folds)
            raise ValueError(
                f"folds: need at least {least} folds, got {got}; a k-fold task states k, e.g. "
                f"'splits: {{type: folds, folds: 5}}' for a metadata column 'fold' holding 1..5"
            )
        if rule == "official":
            raise ValueError(
                "validation.rule: 'official' is the valid split of a fixed split; a k-fold task validates on "
                "'holdout' (a grouped, class-stratified 10 % of the training folds: write "
                "'validation: {rule: holdout}', or leave the rule out, it is the default) or 'next_fold'"
            )


DEFAULT_RULES = {"fixed": "official", "folds": "holdout"}
"""The validation rule of a split type when its spec leaves ``splits.validation.rule`` out."""


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark task, parsed from ``tasks/<name>.yaml``."""

    name: str
    version: int
    description: str
    dataset: DatasetSpec
    audio: AudioSpec
    labels: LabelSpec
    splits: SplitSpec
    metrics: list[str]
    source_path: str = field(default="", metadata=_INTERNAL)
    sha256: str = field(default="", metadata=_INTERNAL)

    def __post_init__(self) -> None:
        if self.version < 1:
            raise ValueError(f"version: must be a positive integer, got {self.version}")
        if not self.metrics:
            raise ValueError("metrics: list at least one metric (the first is primary)")
        for metric in self.metrics:
            if metric not in METRICS:
                raise ValueError(f"metrics: {METRICS.unknown(metric)}")
        if self.labels.type == "multilabel" and "accuracy" in self.metrics:
            raise ValueError("metrics: accuracy is undefined for multilabel tasks; use map or roc_auc")
        label_type = self.labels.type
        wrong = [m for m in self.metrics if label_type not in LABEL_TYPES.get(m, {label_type})]
        if wrong:
            fits = sorted(m for m, types in LABEL_TYPES.items() if label_type in types)
            raise ValueError(f"metrics: {wrong} undefined for {label_type} tasks; use some of {fits}")

    @property
    def primary_metric(self) -> str:
        """The metric used for model selection and early stopping."""
        return self.metrics[0]

    @property
    def dataset_name(self) -> str:
        """Folder of the prepared dataset under the data root."""
        return self.dataset.name or self.name


@dataclass(frozen=True)
class SuiteSpec:
    """A named group of tasks (``tasks/suites/<name>.yaml``)."""

    name: str
    description: str
    tasks: list[str]

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("tasks: a suite lists at least one task")


def _check_name(spec_name: str, path: Path) -> None:
    if spec_name != path.stem:
        raise SpecError(f"{path}: name: '{spec_name}' must equal the file name '{path.stem}'")


def parse_task_file(path: Path) -> TaskSpec:
    """Parse and validate one task YAML file."""
    data = load_yaml(path)
    spec = parse(TaskSpec, data, str(path))
    _check_name(spec.name, path)
    return dataclasses.replace(spec, source_path=str(path), sha256=spec_hash(data))


def parse_suite_file(path: Path) -> SuiteSpec:
    """Parse and validate one suite YAML file."""
    spec = parse(SuiteSpec, load_yaml(path), str(path))
    _check_name(spec.name, path)
    return spec


def task_files(tasks_dir: Dirs) -> list[Path]:
    """Task YAML files of a spec folder or overlay (top level; ``_``-prefixed files are includes), by name."""
    return list(spec_map(tasks_dir).values())


def suite_files(tasks_dir: Dirs) -> list[Path]:
    """Suite YAML files in ``<folder>/suites`` of a spec folder or overlay, by name."""
    return list(spec_map(tasks_dir, "suites").values())


def load_task(name: str, tasks_dir: Dirs) -> TaskSpec:
    """Load the task called ``name`` from a spec folder or overlay (:mod:`evalbench.specs.catalog`).

    Raises:
        UnknownNameError: No such task (with a close-match suggestion).
        SpecError: The file is malformed.
    """
    known = [p.stem for p in task_files(tasks_dir)] + [p.stem for p in suite_files(tasks_dir)]
    return parse_task_file(find_spec(tasks_dir, name, "task or suite", known, "evalbench tasks list"))


def resolve_tasks(selector: str, tasks_dir: Dirs) -> list[TaskSpec]:
    """Expand a comma-separated list of task and suite names into task specs.

    Suite names expand to their tasks (a task of the same name wins); duplicates are dropped, order is kept.
    """
    tasks, suites = spec_map(tasks_dir), spec_map(tasks_dir, "suites")
    names: list[str] = []
    for raw in selector.split(","):
        item = raw.strip()
        if not item:
            continue
        if item in suites and item not in tasks:
            names.extend(parse_suite_file(suites[item]).tasks)
        else:
            names.append(item)
    if not names:
        raise UnknownNameError("no task given; pass --tasks NAME[,NAME...] (a suite name works too)")
    unique = list(dict.fromkeys(names))
    return [load_task(n, tasks_dir) for n in unique]
