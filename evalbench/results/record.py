"""The run record as typed dataclasses: what every key of ``results/<encoder>/<task>.<probe>*.json`` holds.

:mod:`evalbench.runner` writes a record as plain JSON; these classes describe
it, field by field, and are the one source of three things:

- the JSON Schema ``results/schema.json`` (:func:`evalbench.results.schema.json_schema`),
  whose descriptions are the ``Attributes`` below;
- typed access for the Python API (:func:`parse_record`, used by
  :class:`evalbench.results.frame.TaskResult`);
- the list of keys older records of this schema version may lack.

Schema version 1 grew by added keys without a version bump (records
written by evalbench 0.1.0 lack the protocol preset, the bootstrap interval,
per-stage timings and the compute identity); such keys carry :func:`absent`
metadata, and the schema leaves them out of ``required``.  Version 2 added
``excluded`` (``run --skip-bad``) with a bump.  That key changes what the scores
mean: they are over fewer clips than the task's.  An evalbench that did not
know the key would show such a score as a full-task one, so older versions
must refuse these records rather than read them.  A field without a default is
required.  A type ``X | None`` means the key is present and may be null.  The
provenance parts live in :mod:`evalbench.results.record_parts` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from evalbench.errors import ResultsError, SpecError
from evalbench.metric_info import HIGHER_IS_BETTER
from evalbench.results.record_parts import (
    Compute,
    Contamination,
    Environment,
    ExcludedFile,
    Exclusions,
    GitState,
    Precision,
)
from evalbench.results.schema import SCHEMA_VERSION
from evalbench.specs.task import CropPolicy, LabelType

MetricName = Literal[tuple(HIGHER_IS_BETTER)]  # type: ignore[valid-type]  # every metric evalbench computes
ValidationRule = Literal["official", "holdout", "next_fold"]  # specs.task.ValidationSpec.rule
Role = Literal["train", "valid", "test"]  # presets.ROLES

BEFORE_PRESETS = "from records written before protocol presets (evalbench-linear-v2)"
BEFORE_V3 = "from records written before protocol v3 (evalbench-linear-v3)"
BEFORE_ISSUE_11 = "from records written before the knn probe and the hear preset (issue 11)"
BEFORE_ISSUE_12 = "from records written before per-stage timings and the compute identity (evalbench 0.2.0, issue 12)"


def absent(when: str) -> dict[str, str]:
    """Field metadata of a key that some records of this schema version lack (not required by the schema).

    Use as ``field(default=None, metadata=absent("from records written by ..."))``: the value is None when the key
    is absent.  Whether the key, when present, may be null is said by its type (``X`` or ``X | None``).

    Args:
        when: When the key is missing, completing "Absent ...".

    Returns:
        The metadata.
    """
    return {"absent": when}


@dataclass(frozen=True, kw_only=True)
class EncoderInfo:
    """The encoder that produced the embeddings.

    Attributes:
        name: Encoder name (``encoders/<name>.yaml``, ``<name>@<stem>-<sha8>`` for ``--checkpoint``, ``hear-...``).
        adapter: Registered adapter that runs it.
        pooling: Pooling from frames to clip embeddings.
        fingerprint: SHA-256 of everything that determines the embeddings (static identity plus fitted state).
        identity_static: What identifies the encoder before any fit: adapter, adapter code version, options,
            checkpoint hash, pooling, and precision when not float32 on CPU.
        fitted: State the adapter fitted on the task's audio (e.g. normalisation statistics); empty if none.
        fitted_on: What that state was fitted on, in words; null when nothing was fitted.
        checkpoint_sha256: SHA-256 of the weights file; null for encoders without weights.
        embedding_dim: Dimension of the clip embeddings.
        sample_rate: Sample rate the encoder takes, in Hz.
    """

    name: str
    adapter: str
    pooling: str
    fingerprint: str
    identity_static: dict[str, Any]
    fitted: dict[str, Any]
    fitted_on: str | None = field(default=None, metadata=absent(BEFORE_PRESETS))
    checkpoint_sha256: str | None
    embedding_dim: int
    sample_rate: int


@dataclass(frozen=True, kw_only=True)
class ValidationInfo:
    """How the task's validation rows are formed (``tasks/<task>.yaml`` ``splits.validation``).

    Attributes:
        rule: ``official`` (the dataset's valid split), ``holdout`` (a grouped, stratified fraction of the
            training folds) or ``next_fold`` (HEAR's rule).
        fraction: Holdout fraction of the training folds.
        grouped: Whether a group (source recording) stays on one side.
        stratified: Whether the holdout is drawn per class.
    """

    rule: ValidationRule
    fraction: float
    grouped: bool
    stratified: bool


@dataclass(frozen=True, kw_only=True)
class SplitInfo:
    """The task's split.

    Attributes:
        type: ``fixed`` (train/valid/test) or ``folds`` (k-fold cross-validation).
        folds: Number of folds k (0 for a fixed split).
        validation: Validation rule.
    """

    type: Literal["fixed", "folds"]
    folds: int
    validation: ValidationInfo


@dataclass(frozen=True, kw_only=True)
class AudioInfo:
    """Audio preprocessing before the encoder (``tasks/<task>.yaml`` ``audio``).

    Attributes:
        sample_rate: Native sample rate of the prepared audio, in Hz.
        clip_seconds: Unit length in seconds: clips are cropped or zero-padded to it.
        crop: Crop policy for clips longer than the unit.
        crop_seed: Seed of the ``random`` crop policy.
    """

    sample_rate: int
    clip_seconds: float
    crop: CropPolicy
    crop_seed: int


@dataclass(frozen=True, kw_only=True)
class TaskInfo:
    """The task and the data it was scored on.

    Attributes:
        name: Task name (``tasks/<name>.yaml``).
        version: Task version; bumped by any change that can move a score.
        spec_sha256: SHA-256 of the resolved task spec.
        dataset: Dataset name.
        dataset_sha256: Fingerprint of the prepared dataset (metadata and audio content).
        label_type: ``single``, ``binary``, ``multilabel`` or ``regression``.
        classes: Class names in label-index order (empty for regression).
        metrics: Metrics computed, in the spec's order.
        primary_metric: The metric that selects hyperparameters and ranks the leaderboard.
        split: Fixed split or folds, and the validation rule.
        audio: Preprocessing of the clips.
        n_clips: Number of clips scored: the task's clips less any ``excluded`` ones.
    """

    name: str
    version: int
    spec_sha256: str
    dataset: str
    dataset_sha256: str
    label_type: LabelType
    classes: list[str]
    metrics: list[MetricName]
    primary_metric: MetricName
    split: SplitInfo
    audio: AudioInfo
    n_clips: int


@dataclass(frozen=True, kw_only=True)
class EmbeddingInfo:
    """How the protocol preset turns clips into embeddings (:class:`evalbench.presets.EmbeddingRecipe`).

    Attributes:
        crop: Crop policy per role (``train``, ``valid``, ``test``); null: the task's own for every role.
        mask_padding: Whether padded frames are left out of pooling.
    """

    crop: dict[Role, CropPolicy] | None
    mask_padding: bool


@dataclass(frozen=True, kw_only=True)
class ProbeData:
    """The data-side settings of the protocol preset (:meth:`evalbench.presets.ProtocolPreset.as_record`).

    Attributes:
        embedding: Crop by role and masked pooling.
        validation: The k-fold validation draw: "the task's rule", or the preset's (``random``).
        standardize: ``train-only z-score`` or ``none``.
        search_rule: For searching probes: ``per_rotation`` or ``first_rotation`` (search on a seed's first
            rotation, retrain that configuration on the others).
    """

    embedding: EmbeddingInfo
    validation: str
    standardize: str = field(default=None, metadata=absent(BEFORE_ISSUE_11))
    search_rule: str = field(default=None, metadata=absent(BEFORE_ISSUE_11))


@dataclass(frozen=True, kw_only=True)
class ProbeInfo:
    """The probe protocol.

    Attributes:
        name: Registered probe (``linear``, ``mlp``, ``knn``).
        protocol: Protocol id, ``<preset>-<probe>-v<version>[+<hash of deviations>]``: the leaderboard section.
        preset: Protocol preset name (``evalbench``, ``evar``, ``hear``).
        version: Preset version.
        deviations: Probe options off the preset's values (their hash suffixes the protocol id).
        config: Every probe hyperparameter as used: class defaults, then the preset's, then the run's.
        data: The preset's data-side settings.
        standardize: ``train-only z-score`` or ``none``.
    """

    name: str
    protocol: str
    preset: str = field(default=None, metadata=absent(BEFORE_PRESETS))
    version: int = field(default=None, metadata=absent(BEFORE_PRESETS))
    deviations: dict[str, Any] = field(default=None, metadata=absent(BEFORE_PRESETS))
    config: dict[str, Any]
    data: ProbeData = field(default=None, metadata=absent(BEFORE_V3))
    standardize: str


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A 95 % percentile bootstrap interval over test clips (:func:`evalbench.uncertainty.bootstrap_ci`).

    Attributes:
        low: Lower bound.
        high: Upper bound.
        level: Coverage (0.95).
        n_boot: Bootstrap replicates drawn.
        n_used: Replicates on which the metric was defined.
        seed: Seed of the resampling.
        method: How the clips were resampled, in words.
    """

    low: float
    high: float
    level: float
    n_boot: int
    n_used: int
    seed: int
    method: str


@dataclass(frozen=True, kw_only=True)
class MetricSummary:
    """One metric over every (seed, fold) run (:func:`evalbench.protocol.summarize`).

    Attributes:
        mean: Mean over all runs; null when the metric was undefined on some run.
        std: Sample standard deviation over seeds of each seed's mean over folds (0 with one seed); null as ``mean``.
        n_runs: Number of (seed, fold) runs.
        seed_means: Per seed, its mean over folds.
        fold_means: Per fold (k-fold tasks), its mean over seeds.
        fold_std: Sample standard deviation of ``fold_means`` (k-fold tasks).
        undefined_runs: Runs on which the metric was undefined (e.g. ROC-AUC with one class).
        ci95: The primary metric's bootstrap interval on test (null when undefined).
    """

    mean: float | None
    std: float | None
    n_runs: int
    seed_means: list[float] = field(default=None, metadata=absent("when the metric is undefined on some run"))
    fold_means: list[float] = field(
        default=None, metadata=absent("on fixed-split tasks, and when the metric is undefined")
    )
    fold_std: float = field(default=None, metadata=absent("on fixed-split tasks, and when the metric is undefined"))
    undefined_runs: int = field(default=None, metadata=absent("when the metric is defined on every run"))
    ci95: Interval | None = field(
        default=None, metadata=absent("from valid scores and other metrics than the primary, and " + BEFORE_PRESETS)
    )


@dataclass(frozen=True, kw_only=True)
class Scores:
    """Summaries per split and metric.

    Attributes:
        test: Per metric, its summary on the test rows (each scored once, by the selected probe).
        valid: Per metric, its summary on the validation rows that selected the probe.
    """

    test: dict[MetricName, MetricSummary]
    valid: dict[MetricName, MetricSummary]


@dataclass(frozen=True, kw_only=True)
class SampleCounts:
    """Rows of one run.

    Attributes:
        train: Training rows.
        valid: Validation rows.
        test: Test rows.
    """

    train: int
    valid: int
    test: int


@dataclass(frozen=True, kw_only=True)
class Run:
    """One (seed, rotation) run of the protocol (:class:`evalbench.protocol.RunScore`).

    Attributes:
        seed: Probe seed.
        fold: Test fold (k-fold tasks); null for a fixed split.
        test: Per metric, its test score (null where undefined).
        valid: Per metric, its validation score (null where undefined).
        chosen: What the probe selected on validation (hyperparameters, epochs, its search grid).
        n: Row counts.
        valid_sha256: SHA-256 of the validation file list (the draw is auditable).
        skipped_classes: Per metric, classes left out for having no positive test clip.
    """

    seed: int
    fold: int | None
    test: dict[MetricName, float | None]
    valid: dict[MetricName, float | None]
    chosen: dict[str, Any]
    n: SampleCounts
    valid_sha256: str
    skipped_classes: dict[MetricName, int]


@dataclass(frozen=True, kw_only=True)
class Timings:
    """Wall-clock seconds of the run of this pair.

    Attributes:
        extract_s: Embedding extraction (0 when every part came from the cache).
        probe_s: The probe protocol.
        parts_cached: Cache parts (splits or folds) read from the embedding cache.
        parts_computed: Cache parts computed.
        clips_embedded: Clips run through the encoder.
        stages_s: Per stage (fit, load_wait, decode, resample, encode, pool, cache_write, probe), its seconds.
    """

    extract_s: float
    probe_s: float
    parts_cached: int
    parts_computed: int
    clips_embedded: int
    stages_s: dict[str, float] = field(default=None, metadata=absent(BEFORE_ISSUE_12))


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One run record: an encoder scored on a task under a probe protocol, with its provenance.

    Attributes:
        schema_version: Version of this schema; older records are upgraded on load
            (:data:`evalbench.results.schema.MIGRATIONS`).
        evalbench_version: The evalbench that computed the numbers.
        git: The checkout that computed them.
        created: When the record was written (ISO 8601, UTC).
        encoder: The encoder.
        task: The task.
        probe: The probe protocol.
        seeds: Probe seeds.
        scores: Mean, spreads and interval per split and metric.
        runs: Every (seed, rotation) run, in order.
        timings: Seconds per stage.
        environment: Software versions and device.
        compute: Device, precision and processes of the extraction.
        contamination: Scored clips the encoder was trained on.
        excluded: Clips left out as unreadable or damaged (``run --skip-bad``); the scores are over the others.
    """

    schema_version: int = field(metadata={"const": SCHEMA_VERSION})
    evalbench_version: str
    git: GitState
    created: str
    encoder: EncoderInfo
    task: TaskInfo
    probe: ProbeInfo
    seeds: list[int]
    scores: Scores
    runs: list[Run]
    timings: Timings
    environment: Environment
    compute: Compute = field(default=None, metadata=absent(BEFORE_ISSUE_12))
    contamination: Contamination = field(
        default=None, metadata=absent("unless the encoder was trained on some of the task's scored clips")
    )
    excluded: Exclusions = field(default=None, metadata=absent("unless `run --skip-bad` excluded some clip"))


def parse_record(record: dict[str, Any], where: str) -> RunRecord:
    """The typed form of a record of the current schema version, as :func:`~.schema.load_record` returns it.

    Raises:
        ResultsError: An unknown or missing key, or a value of the wrong type, named by its dotted path.
    """
    from evalbench.specs.fields import parse

    try:
        return parse(RunRecord, record, where)
    except SpecError as exc:
        raise ResultsError(f"{exc}; this evalbench cannot read the record (delete it or re-run)") from None


__all__ = [
    "AudioInfo",
    "Compute",
    "Contamination",
    "EmbeddingInfo",
    "EncoderInfo",
    "Environment",
    "ExcludedFile",
    "Exclusions",
    "GitState",
    "Interval",
    "MetricSummary",
    "Precision",
    "ProbeData",
    "ProbeInfo",
    "Run",
    "RunRecord",
    "SampleCounts",
    "Scores",
    "SplitInfo",
    "TaskInfo",
    "Timings",
    "ValidationInfo",
    "absent",
    "parse_record",
]
