"""Orchestration of ``evalbench run``: encoders × tasks → run records.

Stages live elsewhere; this module wires them together:

1. preflight: resolve the device, check the probe, open every task's prepared
   data (generating embedded synthetic datasets on first use) and verify every
   encoder's checkpoint, so that a missing dataset or weight file fails before
   any work and nothing is written to ``results/``;
2. per (encoder, task): skip if an up-to-date record exists (unless
   ``overwrite``); else embed (from cache where possible), run the probe
   protocol, and write one record atomically, then its test predictions
   beside it (:func:`evalbench.results.store.write_predictions`).

Under ``torchrun`` every rank embeds a slice of each uncached part and rank 0
merges, probes and writes (:mod:`evalbench.embed.shard`); rank 0 runs the
preflight first (it may generate the synthetic datasets) while the others wait.
Precision (``--precision``, ``--tf32``) is part of the encoder identity
whenever it is not float32 on CPU (:mod:`evalbench.utils.precision`).

With ``skip_bad`` (``--skip-bad``) the preflight also decodes every clip once
and leaves out those that ``run`` would refuse (:mod:`evalbench.data.skip_bad`);
a task that loses clips is scored on the rest, its record lists them and goes to
``<task>.<probe>[...].skip-bad.json``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from evalbench import __version__
from evalbench.data.prepare import open_task_data
from evalbench.data.skip_bad import ExcludedClip, exclusions_record, find_bad, skip_bad_path, warn, without
from evalbench.data.task_data import TaskData
from evalbench.embed.cache import EmbeddingCache
from evalbench.embed.contamination import check_contamination, trained_hashes
from evalbench.embed.extract import (
    EmbedStats,
    LoadedEncoder,
    embed_views,
    fitted_on,
    load_encoder_model,
    static_identity,
    verify_checkpoint,
)
from evalbench.errors import DiskFullError, EvalbenchError
from evalbench.presets import DEFAULT_PRESET, get_preset, identity, record_file
from evalbench.presets import probe_config as preset_probe_config
from evalbench.pretrain.distributed import DistEnv, barrier, init_from_env, rank_device
from evalbench.protocol import RunScore, evaluate_probe, runs_as_dicts, summarize, test_interval
from evalbench.registry import PROBES
from evalbench.results.schema import SCHEMA_VERSION
from evalbench.results.store import existing_is_current, staleness_key, write_predictions, write_record
from evalbench.specs.encoder import EncoderSpec
from evalbench.specs.task import TaskSpec
from evalbench.utils.console import say
from evalbench.utils.device import resolve_device
from evalbench.utils.precision import check_precision, compute_identity, set_matmul_policy
from evalbench.utils.provenance import environment, git_state

log_debug = logging.getLogger(__name__)

RANK_TIMEOUT = _dt.timedelta(hours=12)  # under torchrun, other ranks wait while rank 0 trains probes


@dataclass
class RunConfig:
    """Options of one ``evalbench run``.

    Attributes:
        data_root: Prepared datasets.
        cache_dir: Embedding cache.
        results_dir: Run records and leaderboards.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seeds: Probe seeds (None: the preset's).
        probe: Registered probe name.
        probe_options: Probe hyperparameters overriding the preset (a distinct protocol id).
        protocol: Protocol preset name (:mod:`evalbench.presets`).
        overwrite: Recompute records that are up to date.
        batch_size: Extraction batch size (never affects results).
        workers: DataLoader worker processes for decoding (None: :func:`~evalbench.embed.loader.auto_workers`).
        allow_contaminated: Score encoders on tasks whose evaluation clips they
            were trained on (the record and the leaderboard mark it).
        precision: Extraction precision: ``fp32`` (default), ``bf16`` or ``fp16`` (autocast; checked against fp32).
        tf32: Allow TF32 matmuls and convolutions on CUDA (off by default).
        encoder_dirs: The encoder spec overlay the encoders came from, searched for the spec a weights file that
            fails to load does match (None: :func:`evalbench.paths.encoder_dirs`).
        skip_bad: Leave out the clips ``run`` would refuse instead of stopping at the first; the record lists
            them and the leaderboard marks the row (:mod:`evalbench.data.skip_bad`).
    """

    data_root: Path
    cache_dir: Path
    results_dir: Path
    device: str = "auto"
    seeds: list[int] | None = None
    probe: str = "linear"
    probe_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = DEFAULT_PRESET
    overwrite: bool = False
    batch_size: int = 32
    workers: int | None = None
    allow_contaminated: bool = False
    precision: str = "fp32"
    tf32: bool = False
    encoder_dirs: list[Path] | None = None
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.seeds is None:
            self.seeds = list(get_preset(self.protocol).seeds)


@dataclass
class Outcome:
    """What happened to one (encoder, task) pair."""

    encoder: str
    task: str
    status: str  # "written" or "up to date"
    path: Path
    summary: dict[str, Any] | None = None


def probe_config(cfg: RunConfig, encoder: str | None = None, task: str | None = None) -> dict[str, Any]:
    """Probe hyperparameters as recorded.

    Class defaults, then the preset's values (for ``encoder`` × ``task``), then the run's overrides.
    """
    return preset_probe_config(get_preset(cfg.protocol), cfg.probe, cfg.probe_options, encoder, task)


def protocol_identity(cfg: RunConfig, encoder: str | None = None, task: str | None = None) -> dict[str, Any]:
    """Protocol id, preset, version and deviations of this run's probe configuration."""
    return identity(get_preset(cfg.protocol), cfg.probe, probe_config(cfg, encoder, task), encoder, task)


def _record(
    enc: LoadedEncoder,
    data: TaskData,
    cfg: RunConfig,
    device: str,
    runs: list[RunScore],
    stats: EmbedStats,
    probe_seconds: float,
    static: dict[str, Any],
    env: DistEnv,
) -> dict[str, Any]:
    task = data.task
    return {
        "schema_version": SCHEMA_VERSION,
        "evalbench_version": __version__,
        "git": git_state(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "encoder": {
            "name": enc.spec.name,
            "adapter": enc.spec.adapter,
            "pooling": enc.spec.pooling,
            "fingerprint": enc.fingerprint,
            "identity_static": static,
            "fitted": enc.model.fitted_state(),
            "fitted_on": fitted_on(enc, data),
            "checkpoint_sha256": enc.checkpoint_sha256,
            "embedding_dim": enc.dim,
            "sample_rate": enc.model.sample_rate,
        },
        "task": {
            "name": task.name,
            "version": task.version,
            "spec_sha256": task.sha256,
            "dataset": task.dataset_name,
            "dataset_sha256": data.dataset.fingerprint,
            "label_type": task.labels.type,
            "classes": data.classes,
            "metrics": task.metrics,
            "primary_metric": task.primary_metric,
            "split": {
                "type": task.splits.type,
                "folds": task.splits.folds,
                "validation": task.splits.validation.__dict__,
            },
            "audio": task.audio.__dict__,
            "n_clips": data.n,
        },
        "probe": {
            "name": cfg.probe,
            **protocol_identity(cfg, enc.spec.name, task.name),
            "config": probe_config(cfg, enc.spec.name, task.name),
            "data": get_preset(cfg.protocol).as_record(),
            "standardize": "train-only z-score" if get_preset(cfg.protocol).standardize else "none",
        },
        "seeds": cfg.seeds,
        "scores": {
            "test": test_interval(summarize(runs, task.metrics, "test"), runs, data),
            "valid": summarize(runs, task.metrics, "valid"),
        },
        "runs": runs_as_dicts(runs),
        "timings": {
            "extract_s": round(stats.seconds, 3),
            "probe_s": round(probe_seconds, 3),
            "parts_cached": stats.parts_cached,
            "parts_computed": stats.parts_computed,
            "clips_embedded": stats.clips_computed,
            "stages_s": {k: round(v, 3) for k, v in {**stats.stages, "probe": probe_seconds}.items()},
        },
        "environment": environment(device),
        "compute": {
            "device": enc.device.type,
            "precision": enc.precision,
            "tf32": enc.tf32,
            "check_deviation": enc.deviations.get(task.name),
            "processes": env.world,
        },
    }


def _current_key(
    spec: EncoderSpec, static: dict[str, Any], data: TaskData, cfg: RunConfig, excluded: list[ExcludedClip]
) -> str:
    task = data.task
    return staleness_key(
        {
            **({"excluded": exclusions_record(excluded)} if excluded else {}),
            "schema_version": SCHEMA_VERSION,
            "evalbench_version": __version__,
            "encoder": {"identity_static": static},
            "task": {
                "version": task.version,
                "spec_sha256": task.sha256,
                "dataset_sha256": data.dataset.fingerprint,
            },
            "probe": {
                "protocol": protocol_identity(cfg, spec.name, task.name)["protocol"],
                "config": probe_config(cfg, spec.name, task.name),
                "data": get_preset(cfg.protocol).as_record(),
            },
            "seeds": cfg.seeds,
        }
    )


def _evaluate_pair(
    enc: LoadedEncoder,
    data: TaskData,
    cfg: RunConfig,
    cache: EmbeddingCache,
    device: str,
    static: dict[str, Any],
    env: DistEnv,
) -> tuple[dict[str, Any], list[RunScore]] | None:
    """Embed (cache-aware), run the probe protocol and build the record of one pair (returned with its runs).

    Under torchrun, ranks other than 0 embed their shards and return None.
    """
    preset = get_preset(cfg.protocol)
    x, x_test, stats = embed_views(enc, data, cache, cfg.batch_size, cfg.workers, preset.embedding, env)
    if x is None or x_test is None:
        return None
    start = time.perf_counter()
    split_dir = Path(cfg.cache_dir) / "splits"
    config = probe_config(cfg, enc.spec.name, data.task.name)
    runs = evaluate_probe(
        data, x, cfg.probe, cfg.seeds, device, config, split_dir, x_test, preset.validation, preset.standardize,
        preset.search_rule, cache.root / ".scratch",
    )  # fmt: skip
    return _record(enc, data, cfg, device, runs, stats, time.perf_counter() - start, static, env), runs


def _quiet(_: str) -> None:
    """The log of ranks other than 0 under torchrun."""


def run(
    encoders: list[EncoderSpec],
    tasks: list[TaskSpec],
    cfg: RunConfig,
    log: Callable[[str], None] = say,
    on_preflight: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Evaluate every encoder on every task and write run records.

    Args:
        encoders: Encoder specs.
        tasks: Task specs.
        cfg: Run options.
        log: Progress lines (default: status lines that ``--quiet`` silences).
        on_preflight: Called once the preflight is done (every dataset open and checked, every checkpoint
            verified), before any record is examined or written: the up-to-date memo observes its inputs here.

    Returns:
        One :class:`Outcome` per (encoder, task) pair, in order.
    """
    device = resolve_device(cfg.device)
    env = init_from_env(device, RANK_TIMEOUT)
    device = rank_device(device, env)
    check_precision(cfg.precision, device)
    set_matmul_policy(cfg.tf32)
    compute = compute_identity(device, cfg.precision, cfg.tf32)
    log_debug.debug(
        "device %s, compute %s, %d torch thread(s), rank %d of %d",
        device,
        compute,
        torch.get_num_threads(),
        env.rank,
        env.world,
    )
    if not env.main:
        log = _quiet
    PROBES.check(cfg.probe, "--probe")
    protocol_identity(cfg)  # an unknown preset or probe option fails here, before any work
    probe_cls = PROBES.get(cfg.probe)
    for t in tasks:  # a probe that cannot fit a task's labels fails here, before any work
        if t.labels.type not in probe_cls.label_types(probe_config(cfg, None, t.name)):
            raise EvalbenchError(
                f"task '{t.name}' has {t.labels.type} labels, which --probe {cfg.probe} under --protocol "
                f"{cfg.protocol} cannot fit; leave the task out, or use --protocol evalbench --probe linear or knn"
            )
    if not env.main:
        barrier(env)  # rank 0 prepares (and may generate) the datasets first
    datas = {t.name: open_task_data(t, cfg.data_root, require_files=not cfg.skip_bad) for t in tasks}
    if env.main:
        barrier(env)
    skipped: dict[str, list[ExcludedClip]] = {}
    if cfg.skip_bad:  # before the contamination check: the scored clips are those that remain
        for t in tasks:
            skipped[t.name] = find_bad(datas[t.name])
            if skipped[t.name]:
                warn(datas[t.name], skipped[t.name])
                datas[t.name] = without(datas[t.name], skipped[t.name])
    digests = {e.name: verify_checkpoint(e) for e in encoders}
    seen = {e.name: trained_hashes(e) for e in encoders}
    overlaps = {
        (e.name, t.name): check_contamination(e, datas[t.name], cfg.allow_contaminated, seen[e.name])
        for e in encoders
        for t in tasks
    }
    if on_preflight is not None:
        on_preflight()
    cache = EmbeddingCache(cfg.cache_dir)
    outcomes = []
    for spec in encoders:
        enc: LoadedEncoder | None = None
        static = static_identity(spec, digests[spec.name], compute)
        for task in tasks:
            data = datas[task.name]
            ident = protocol_identity(cfg, spec.name, task.name)
            excluded = skipped.get(task.name, [])
            path = record_file(cfg.results_dir, spec.name, task.name, cfg.probe, ident)
            path = skip_bad_path(path) if excluded else path  # never the full task's record
            log_debug.debug("%s × %s: record %s, protocol %s", spec.name, task.name, path, ident)
            if not cfg.overwrite and existing_is_current(path, _current_key(spec, static, data, cfg, excluded)):
                log(f"{spec.name} × {task.name}: up to date ({path}); --overwrite recomputes it")
                outcomes.append(Outcome(spec.name, task.name, "up to date", path))
                continue
            enc = enc or load_encoder_model(spec, device, digests[spec.name], cfg.precision, cfg.tf32, cfg.encoder_dirs)
            try:
                done = _evaluate_pair(enc, data, cfg, cache, str(device), static, env)
            except EvalbenchError as exc:  # name the pair: the message alone may not say which
                raise type(exc)(f"{spec.name} × {task.name}: {exc}") from None
            if done is None:  # another rank than 0: its shards are stored; rank 0 probes and writes
                outcomes.append(Outcome(spec.name, task.name, "embedded", path))
                continue
            record, runs = done
            overlap = overlaps[spec.name, task.name]
            if overlap is not None:
                record["contamination"] = overlap.as_record()
            if excluded:
                record["excluded"] = exclusions_record(excluded)
            write_record(path, record)
            # After the record: a failure here leaves a valid, untested record (results/store.py).
            try:
                write_predictions(path, record, [(r.test_rows, r.test_scores) for r in runs], data.y)
            except DiskFullError as exc:  # the run fails; kept, the record would make the rerun skip its sidecar
                path.unlink(missing_ok=True)
                raise DiskFullError(
                    f"{spec.name} × {task.name}: {exc}; its record {path} was withdrawn so that the rerun writes both",
                    exc.path,
                ) from None
            primary = record["scores"]["test"][task.primary_metric]
            shown = "undefined" if primary["mean"] is None else f"{primary['mean']:.4f}"
            if primary["mean"] is not None and len(cfg.seeds) > 1:
                shown += f" ± {primary['std']:.4f} ({len(cfg.seeds)} seeds)"
            if primary.get("ci95"):
                shown += f", 95% CI [{primary['ci95']['low']:.4f}, {primary['ci95']['high']:.4f}]"
            timings = record["timings"]
            log(
                f"{spec.name} × {task.name}: {task.primary_metric} {shown} "
                f"(extract {timings['extract_s']:.1f} s, {timings['parts_cached']} part(s) cached; "
                f"probe {timings['probe_s']:.1f} s)"
                + (f", {len(excluded)} bad clip(s) excluded (--skip-bad)" if excluded else "")
                + f" → {path}"
            )
            outcomes.append(Outcome(spec.name, task.name, "written", path, primary))
    return outcomes
