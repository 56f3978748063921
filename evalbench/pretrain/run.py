"""Orchestration of ``evalbench pretrain``: recipe → data → method → loop → checkpoint → encoder.

1. Resolve the recipe (``encoders/recipes/<method>.yaml``, preset, overrides)
   and the corpus (``--data DIR``, ``--task NAME`` training portion, or the
   embedded synthetic corpus), and say which.
2. Build the method on the device under the recipe's seed; resume from
   ``<out>/state.pt`` when it exists and matches the recipe and data (else
   refuse, naming what differs), or fit the method's input statistics and
   save the step-0 network (``init.pt``, the random twin).
3. Train with :func:`evalbench.pretrain.base.train_steps`, checkpointing every
   ``checkpoint_every`` steps, at the end, and on Ctrl-C.  The output folder
   is locked (``.pretrain.lock``): a second pretrain into it refuses at once.
4. Export the network and register ``<encoders dir>/<name>.yaml`` and its twin
   ``<name>-init.yaml``; print the ``evalbench run`` command that scores them.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench.data.prepare import open_task_data
from evalbench.data.task_data import TaskData
from evalbench.errors import EvalbenchError
from evalbench.pretrain import method_class
from evalbench.pretrain.base import (
    DataRequest,
    History,
    lr_multiplier,
    make_optimizer,
    save_curve,
    to_device,
    train_steps,
)
from evalbench.pretrain.corpus import PretrainCorpus, embedded_corpus, folder_corpus, task_corpus
from evalbench.pretrain.data import collate, make_loader
from evalbench.pretrain.distributed import (
    DistEnv,
    barrier,
    gather,
    init_from_env,
    mean_over_ranks,
    rank_device,
    shutdown,
    wrap,
)
from evalbench.pretrain.export import INIT, TWIN_SUFFIX, export_encoder, export_initial
from evalbench.pretrain.state import check_compatible, load_state, rng_states, save_state, set_rng_states
from evalbench.specs.recipe import Recipe, resolve_recipe
from evalbench.utils.console import say
from evalbench.utils.device import resolve_device
from evalbench.utils.locks import refuse_if_locked

STATE = "state.pt"
LOCK = ".pretrain.lock"  # held by the running pretrain (flock: released if it dies)


@dataclass
class PretrainJob:
    """Everything ``evalbench pretrain`` was asked to do.

    Attributes:
        method: Method name.
        recipes_dir: Folder of the recipe YAMLs.
        preset: Recipe preset.
        overrides: ``{"train"|"options": {...}}`` layers from ``--set`` and the dedicated flags.
        data: ``--data`` folder, or None.
        task: ``--task`` name, or None.
        fold: ``--fold`` of a k-fold task.
        name: Encoder name to register (default ``<method>-<preset>``).
        device: ``auto``, ``cpu``, ``cuda``...
        restart: Ignore an existing checkpoint and start over.
        data_root: Prepared datasets (``--task``, the embedded corpus).
        cache_dir: Cache root (resampled audio).
        encoders_dir: Where the encoder YAML is registered (and checkpoints live).
        tasks_dir: Task specs (``--task``).
        command: The command line, recorded in the encoder YAML.
        monitor: ``--monitor`` task scored every ``train.monitor_every`` steps (:mod:`evalbench.pretrain.monitor`).
        export_format: ``pt`` or ``safetensors``: which weights file the encoder YAMLs register
            (:func:`~evalbench.pretrain.export.export_encoder`).
    """

    method: str
    recipes_dir: Path
    data_root: Path
    cache_dir: Path
    encoders_dir: Path
    tasks_dir: Path
    preset: str = "paper"
    overrides: list[dict[str, Any]] = field(default_factory=list)
    data: Path | None = None
    task: str | None = None
    fold: int | None = None
    name: str | None = None
    device: str = "auto"
    restart: bool = False
    command: str = ""
    monitor: str | None = None
    export_format: str = "pt"


@dataclass
class PretrainResult:
    """What a pretraining run produced."""

    name: str
    encoder_yaml: Path
    out_dir: Path
    steps: int
    final_loss: float
    resumed_from: int
    main: bool = True


def load_recipe(job: PretrainJob, extra: list[dict[str, Any]] | None = None) -> Recipe:
    """The resolved recipe of ``job`` (file, preset, overrides, then ``extra`` layers)."""
    cls = method_class(job.method)
    path = Path(job.recipes_dir) / f"{job.method}.yaml"
    if not path.is_file():
        raise EvalbenchError(f"{path}: recipe not found; recipes live in encoders/recipes/<method>.yaml")
    return resolve_recipe(path, cls.OPTIONS, job.preset, [*job.overrides, *(extra or [])])


def labelled_task(job: PretrainJob) -> TaskData:
    """The task whose labels a supervised method trains on (single-label only).

    Raises:
        EvalbenchError: No ``--task``, or a multi-label task.
    """
    if job.task is None:
        raise EvalbenchError(
            f"pretrain {job.method}: trains on labels; give --task NAME (and --fold K for a k-fold task)"
        )
    from evalbench.specs.task import load_task

    data = open_task_data(load_task(job.task, job.tasks_dir), job.data_root)
    if data.y.ndim != 1:
        raise EvalbenchError(f"pretrain {job.method}: task '{job.task}' is multi-label; it needs single-label classes")
    return data


def held_out(data: TaskData, fold: int | None) -> PretrainCorpus:
    """The test clips of a labelled task (test split, or fold ``fold``) as a corpus, for the classifier's accuracy."""
    rows = np.flatnonzero(data.fold == fold) if data.fold is not None else np.flatnonzero(data.split == "test")
    files = [data.files[i] for i in rows]
    where = f"fold {fold}" if data.fold is not None else "test split"
    return PretrainCorpus(
        f"task {data.task.name}, {where}", data.dataset.audio_root, files, {f: data.dataset.content[f] for f in files}
    )


def load_corpus(job: PretrainJob, sample_rate: int) -> PretrainCorpus:
    """The pretraining audio: ``--data``, ``--task`` (training portion only) or the embedded corpus."""
    if job.data is not None and job.task is not None:
        raise EvalbenchError("--data and --task: give one source of pretraining audio, not both")
    if job.data is not None:
        return folder_corpus(Path(job.data).expanduser())
    if job.task is not None:
        from evalbench.specs.task import load_task

        return task_corpus(load_task(job.task, job.tasks_dir), job.data_root, job.fold)
    if job.fold is not None:
        raise EvalbenchError("--fold goes with --task (the k-fold task whose fold is held out)")
    return embedded_corpus(job.data_root, sample_rate=sample_rate)


def prepare_method(method: Any, dataset: Any, n_files: int, seed: int, workers: int) -> dict[str, Any]:
    """Feed the method the crops it wants before training (e.g. BYOL-A's pre-normalisation statistics).

    The crops are epoch 0's of a seeded random subset of ``method.prepare_clips`` files; the loader has its own
    generator, so fitting never advances the global torch RNG.
    """
    if not method.prepare_clips:
        return {}
    order = torch.randperm(n_files, generator=torch.Generator().manual_seed(seed))[: method.prepare_clips].tolist()
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=64,
        sampler=[(0, i) for i in order],
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    return method.prepare(iter(loader))


def pretrain(job: PretrainJob, log: Callable[[str], None] = say) -> PretrainResult:
    """Run (or resume) one pretraining job; see the module docstring.

    Under torchrun every rank calls this; rank 0 logs, checkpoints and registers
    (:mod:`evalbench.pretrain.distributed`).

    Raises:
        EvalbenchError: Bad recipe or data, or a checkpoint of another recipe or corpus.
    """
    cls = method_class(job.method)
    env = init_from_env(resolve_device(job.device))
    try:
        with ExitStack() as held:
            return _pretrain(job, cls, env, log if env.main else (lambda _: None), held)
    finally:
        shutdown(env)


def _pretrain(job: PretrainJob, cls: type, env: DistEnv, log: Callable[[str], None], held: ExitStack) -> PretrainResult:
    task_data = labelled_task(job) if cls.NEEDS_LABELS or (cls.USES_LABELS and job.task is not None) else None
    recipe = load_recipe(job, [{"options": {"n_classes": len(task_data.classes)}}] if task_data else None)
    train = recipe.train
    if train.batch_size % env.world:
        raise EvalbenchError(f"batch size {train.batch_size} does not divide over {env.world} processes")
    device = rank_device(resolve_device(job.device), env)
    torch.manual_seed(train.seed)
    method = cls(recipe.options, train)
    if env.main:  # rank 0 builds an embedded corpus first; the others then read it
        corpus = load_corpus(job, method.sample_rate)
    barrier(env)
    if not env.main:
        corpus = load_corpus(job, method.sample_rate)
    labels = None
    if task_data is not None:
        labels = {f: int(y) for f, y in zip(task_data.files, task_data.y, strict=True)}
    name = job.name or f"{job.method}-{recipe.preset}"
    out_dir = Path(job.encoders_dir) / "checkpoints" / "pretrain" / name
    if env.main:  # a second pretrain into this folder refuses at once rather than interleave checkpoints
        held.enter_context(refuse_if_locked(out_dir / LOCK, f"pretrain output folder {out_dir}"))
    log(f"pretrain {job.method}: recipe {recipe.source}, preset '{recipe.preset}'")
    log(f"pretrain {job.method}: data: {corpus.description}")
    request = DataRequest(corpus, train.seed, Path(job.cache_dir) / "audio", labels, env.rank, env.world)
    dataset, sampler = method.make_data(request)
    total = train.steps or train.epochs * sampler.steps_per_epoch
    monitor = None
    if job.monitor is not None and env.main:  # --monitor: kNN probe of a task's train/valid rows while training
        from evalbench.pretrain.monitor import Monitor
        from evalbench.specs.task import load_task

        monitor_task = load_task(job.monitor, job.tasks_dir)
        audio = Path(job.cache_dir) / "audio"
        monitor = Monitor(monitor_task, job.data_root, audio, out_dir, sample_rate=method.sample_rate)
        log(f"pretrain {job.method}: monitor {job.monitor}: {monitor.description}")
    method.to(device)
    model = wrap(method, env, device)
    generator = torch.Generator().manual_seed(train.seed + 7919 * env.rank)  # rank 0: the single-process stream
    method.set_schedule(total, sampler.steps_per_epoch)
    optimizer = make_optimizer(method.param_groups(), train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(train.schedule, total, sampler.steps_per_epoch)
    )
    data = {"description": corpus.description, "fingerprint": corpus.fingerprint, "n_files": len(corpus.files)}
    history, start, fitted = History(), 0, {}
    state_path = out_dir / STATE
    if state_path.is_file() and not job.restart:
        state = load_state(state_path)
        check_compatible(state, recipe.resolved, data, state_path)
        method.load_state_dict(state["method"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]
        set_rng_states(rngs[env.rank] if env.rank < len(rngs) else rngs[0], generator)
        history.rows = [tuple(r) for r in state["history"]]
        start, fitted = int(state["step"]), state.get("fitted", {})
        if monitor is not None:
            monitor.load_state(state.get("monitor", []))
        log(f"pretrain {job.method}: resuming {state_path} at step {start} of {total}")
    else:
        fitted = prepare_method(method, dataset, len(corpus.files), train.seed, train.workers)
        if fitted:
            log(f"pretrain {job.method}: fitted {fitted}")
        if env.main:
            export_initial(method, recipe, data, out_dir)

    def checkpoint(step: int) -> None:
        rngs = gather(rng_states(generator), env)  # a collective: every rank calls it at the same steps
        if env.main:
            save_state(
                state_path,
                {
                    "recipe": recipe.resolved,
                    "recipe_sha256": recipe.sha256,
                    "data": data,
                    "step": step,
                    "world_size": env.world,
                    "method": method.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rngs,
                    "history": history.rows,
                    "fitted": fitted,
                    "monitor": monitor.state() if monitor is not None else [],
                },
            )
            save_curve(history, out_dir, f"{name}: {job.method} ({recipe.preset})")
        barrier(env)

    def evaluate(step: int) -> None:
        row = monitor(step, method)
        log(f"monitor {job.monitor} @ step {step}: {monitor.metric} {row[monitor.metric]:.4f}")

    def on_step(step: int) -> None:
        if interrupted:
            checkpoint(step)
            log(f"pretrain {job.method}: interrupted; checkpoint at step {step} in {state_path}; rerun to resume")
            raise KeyboardInterrupt
        if monitor is not None and (step % train.monitor_every == 0 or step == total):
            evaluate(step)
        if step % train.checkpoint_every == 0 and step < total:
            checkpoint(step)

    per_rank = f" ({env.world} processes × {train.batch_size // env.world})" if env.active else ""
    log(
        f"pretrain {job.method}: {total} steps of batch {train.batch_size}{per_rank} on {device}; "
        f"checkpoints in {out_dir}"
    )
    if monitor is not None and not monitor.has(start):
        evaluate(start)
    loader = make_loader(dataset, sampler, start, train.workers)
    interrupted: list[bool] = []
    with _deferred_interrupt(interrupted, enabled=not env.active):
        step = train_steps(
            method, optimizer, scheduler, iter(loader), generator, recipe, start, total, device, history, on_step,
            f"pretrain {name}", show=env.main, forward=model, reduce=lambda v: mean_over_ranks(v, env),
        )  # fmt: skip
    checkpoint(step)
    final = history.last_mean()
    if not env.main:
        return PretrainResult(name, Path(job.encoders_dir) / f"{name}.yaml", out_dir, step, final, start, main=False)
    extra = {}
    if task_data is not None and getattr(method, "classifier", True) is not None:  # CLAR without labels has none
        extra = classifier_accuracy(method, task_data, job, dataset)
        log(f"pretrain {job.method}: the classifier's own accuracy on {extra['held_out']}: {extra['accuracy']:.4f}")
    yaml_path = export_encoder(
        method, recipe, data, list(corpus.content.values()), out_dir, name, job.encoders_dir, step, final,
        job.command, extra, job.export_format,
    )  # fmt: skip
    log(f"pretrain {job.method}: {step} steps, final loss {final:.4f} (mean of the last 20); loss curve {out_dir}")
    if monitor is not None and monitor.last() is not None:
        last = monitor.last()
        log(f"pretrain {job.method}: monitor {job.monitor} @ step {last['step']}: {monitor.metric} "
            f"{last[monitor.metric]:.4f}; curve {out_dir / 'monitor.png'}")  # fmt: skip
    log(f"pretrain {job.method}: registered encoder '{name}' ({yaml_path})")
    if (out_dir / INIT).is_file():
        log(f"pretrain {job.method}: registered its random twin '{name}{TWIN_SUFFIX}' (the same network at step 0)")
    else:
        log(f"pretrain {job.method}: no {INIT} in {out_dir} (a run started before it was saved): no random twin")
    return PretrainResult(name, yaml_path, out_dir, step, final, start)


def classifier_accuracy(method: Any, data: TaskData, job: PretrainJob, train_set: Any) -> dict[str, Any]:
    """A supervised method's own test accuracy on the held-out clips (the number the baselines' report gave)."""
    holdout = held_out(data, job.fold)
    labels = {f: int(y) for f, y in zip(data.files, data.y, strict=True)}
    cache = train_set.cache.root if train_set.cache is not None else None
    dataset = type(train_set)(
        holdout, method.sample_rate, method.unit_seconds, method.crop_mode, 0, cache,
        labels=[labels[f] for f in holdout.files],
    )  # fmt: skip
    keys = [(0, i) for i in range(len(holdout.files))]
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, sampler=keys, collate_fn=collate)
    device = next(method.parameters()).device
    accuracy = method.accuracy(to_device(b, device) for b in loader)
    return {"classifier": {"accuracy": accuracy, "held_out": holdout.description, "clips": len(keys)},
            "accuracy": accuracy, "held_out": holdout.description}  # fmt: skip


@contextlib.contextmanager
def _deferred_interrupt(flag: list[bool], enabled: bool = True) -> Iterator[None]:
    """Turn Ctrl-C into a flag checked at the next step boundary, so the checkpoint is of a whole step.

    A second Ctrl-C interrupts at once (the last periodic checkpoint stays valid).  Off under torchrun,
    where ranks could see the signal at different steps and the checkpoint is a collective.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag:
            raise KeyboardInterrupt
        flag.append(True)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def command_line(argv: list[str]) -> str:
    """The command as a user would type it (recorded in the encoder YAML)."""
    return "evalbench " + " ".join(shlex.quote(a) for a in argv)


__all__ = ["PretrainJob", "PretrainResult", "command_line", "load_corpus", "load_recipe", "pretrain"]
