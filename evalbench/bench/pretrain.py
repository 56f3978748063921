"""The ``pretrain`` bench part: does the data path keep up with the training step?

For each method (``byola`` by default), with its recipe's ``smoke`` preset
(``encoders/recipes/<method>.yaml``), two timed loops run the identical training
step (:func:`evalbench.pretrain.base.train_steps`, the method freshly built
under the recipe's seed, the recipe's optimiser and ``LambdaLR`` schedule, the
same augmentation generator) over the same batches:

1. the **real data path**: the embedded synthetic corpus, the method's
   ``make_data``, :func:`evalbench.pretrain.data.make_loader` with the recipe's
   ``train.workers`` decoding workers (decode, crop, collate), moving to the
   device, and the method's on-device augmentation inside ``training_step``;
2. **pre-loaded tensors**: the same batches, drawn once from a fresh loader of
   the same dataset and sampler and kept in memory (its workers shut down
   before timing).

Each loop first runs untimed warm-up steps (first-step allocations, decoding of
the first batches, worker start-up; the loader's start-up plus first batch is
reported on its own).  The figure is the ratio of the two step rates, target
≥ 0.9.  The method's ``prepare`` (BYOL-A's statistics over ``norm_clips`` = 256
crops) runs once, before either loop, and is not part of the rates.

The loops run in two rounds, real then pre-loaded, then pre-loaded then real, so
that a change in the machine's load falls on both sides; each rate is all its
timed steps over their summed time, and the note gives each round's ratio and
whether every loop logged the same losses (it must: same weights, batches and
augmentation draws).  The loops are not interleaved step by step: during a
pre-loaded step a live loader's workers would decode ahead for free, hiding the
very cost being measured.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evalbench import paths
from evalbench.bench import BenchContext, Figure, ratio_at_least
from evalbench.errors import EvalbenchError
from evalbench.pretrain import method_class
from evalbench.pretrain.base import DataRequest, History, lr_multiplier, make_optimizer, train_steps
from evalbench.pretrain.corpus import embedded_corpus
from evalbench.pretrain.run import PretrainJob, load_corpus, load_recipe, prepare_method
from evalbench.specs.recipe import Recipe
from evalbench.utils.device import resolve_device

DEFAULT_METHODS = ("byola",)
NORM_CLIPS = 256  # crops for the method's prepare() (BYOL-A's statistics); not part of the step rate
TARGET = 0.9  # real data path ÷ pre-loaded tensors, steps/s
SPREAD = 1.25  # per-round ratios further apart than this factor are flagged as disturbed by other load


@dataclass(frozen=True)
class Sizes:
    """How much is measured.

    Attributes:
        batch: Batch size.
        steps: Timed steps of each of the two data paths, split evenly over the rounds (a multiple of them).
        warmup: Untimed steps at the start of every loop.
        corpus_clips: Embedded-corpus clips (None: ``load_corpus``'s default corpus).
        rounds: Rounds of (real, pre-loaded) loops, the order swapped every other round so that a change in
            the machine's load during the run falls on both sides.
    """

    batch: int
    steps: int
    warmup: int
    corpus_clips: int | None
    rounds: int

    @property
    def per_loop(self) -> int:
        """Timed steps of one loop."""
        return self.steps // self.rounds


FULL = Sizes(batch=32, steps=20, warmup=3, corpus_clips=None, rounds=2)
QUICK = Sizes(batch=8, steps=6, warmup=2, corpus_clips=200, rounds=2)


def measure(ctx: BenchContext) -> list[Figure]:
    """Figures of every method in ``ctx.options["methods"]`` (default ``byola``); see the module docstring.

    Raises:
        EvalbenchError: An unknown method, a method that needs labels, or a bad recipe (checked before any timing).
    """
    sizes = QUICK if ctx.quick else FULL
    methods = list(dict.fromkeys(ctx.options.get("methods") or DEFAULT_METHODS))
    jobs = [_job(name, ctx, sizes) for name in methods]
    recipes = [load_recipe(job) for job in jobs]
    figures: list[Figure] = []
    for job, recipe in zip(jobs, recipes, strict=True):
        figures += _measure_method(job, recipe, sizes, ctx)
    return figures


def _job(name: str, ctx: BenchContext, sizes: Sizes) -> PretrainJob:
    """The ``smoke`` job of method ``name`` with the bench's batch size (and ``norm_clips`` where it has one)."""
    cls = method_class(name)
    if cls.NEEDS_LABELS:
        raise EvalbenchError(
            f"bench pretrain: method '{name}' trains on a task's labels; this part measures unlabelled methods "
            "on the embedded corpus (e.g. --methods byola)"
        )
    options = {f.name for f in dataclasses.fields(cls.OPTIONS)} if dataclasses.is_dataclass(cls.OPTIONS) else set()
    layer: dict[str, Any] = {"train": {"batch_size": sizes.batch}}
    if "norm_clips" in options:
        layer["options"] = {"norm_clips": NORM_CLIPS}
    return PretrainJob(
        method=name,
        recipes_dir=paths.builtin_catalog() / "encoders" / "recipes",  # the built-in recipe, never a user's
        data_root=ctx.data_root,
        cache_dir=ctx.cache_dir,
        encoders_dir=ctx.cache_dir / "bench-encoders",  # nothing is registered, but never into a user folder
        tasks_dir=paths.task_dirs(None),
        preset="smoke",
        overrides=[layer],
        device=ctx.device,
    )


def _measure_method(job: PretrainJob, recipe: Recipe, sizes: Sizes, ctx: BenchContext) -> list[Figure]:
    """The figures of one method: both step rates (and their ratio), loader start-up, prepare."""
    from evalbench.pretrain.data import make_loader

    cls, train, device = method_class(job.method), recipe.train, resolve_device(job.device)
    torch.manual_seed(train.seed)
    method = cls(recipe.options, train)
    if sizes.corpus_clips is not None:
        corpus = embedded_corpus(job.data_root, n_clips=sizes.corpus_clips, sample_rate=method.sample_rate)
    else:
        corpus = load_corpus(job, method.sample_rate)
    dataset, sampler = method.make_data(DataRequest(corpus, train.seed, Path(job.cache_dir) / "audio"))
    method.to(device)
    tag = f"bench pretrain {job.method}"
    ctx.log(
        f"{tag}: {corpus.description}; batch {train.batch_size}, {sizes.rounds} round(s) of {sizes.warmup} warm-up "
        f"+ {sizes.per_loop} timed steps per loop, {train.workers} decoding worker(s), "
        f"{torch.get_num_threads()} torch thread(s) on {device}"
    )
    began = time.perf_counter()
    fitted = prepare_method(method, dataset, len(corpus.files), train.seed, train.workers)
    prepare_s = time.perf_counter() - began
    prepared = min(method.prepare_clips, len(corpus.files))
    initial = {k: v.detach().clone() for k, v in method.state_dict().items()}
    del method
    total = train.steps or train.epochs * sampler.steps_per_epoch
    schedule = lr_multiplier(train.schedule, total, sampler.steps_per_epoch)

    batches = iter(make_loader(dataset, sampler, 0, train.workers))
    kept = [next(batches) for _ in range(sizes.warmup + sizes.per_loop)]
    del batches  # shuts its workers down before anything is timed

    def loop(real: bool) -> tuple[list[float], list[float], float]:
        """One loop: (timed steps' seconds, every step's loss, loader start-up + first batch seconds)."""
        startup, batches = 0.0, iter(kept)
        if real:
            began = time.perf_counter()
            loader = iter(make_loader(dataset, sampler, 0, train.workers))
            first = next(loader)
            startup = time.perf_counter() - began
            batches = itertools.chain([first], loader)
        method = _fresh(cls, recipe, initial, device)
        method.set_schedule(total, sampler.steps_per_epoch)
        seconds, losses = _timed(method, batches, recipe, schedule, sizes, device)
        return seconds, losses, startup  # the real loader (and its workers) goes with this frame

    timings: dict[bool, list[list[float]]] = {True: [], False: []}
    startups: list[float] = []
    losses: list[list[float]] = []
    for r in range(sizes.rounds):
        for real in (True, False) if r % 2 == 0 else (False, True):
            ctx.log(f"{tag}: round {r + 1}: {'the real data path' if real else 'the same batches pre-loaded'}")
            seconds, lost, startup = loop(real)
            timings[real].append(seconds)
            losses.append(lost)
            if real:
                startups.append(startup)

    real_rate, pre_rate = (sizes.steps / sum(map(sum, timings[side])) for side in (True, False))
    rounds = [sum(p) / sum(q) for p, q in zip(timings[False], timings[True], strict=True)]
    per_round = ", ".join(f"{r:.2f}" for r in rounds)
    if max(rounds) > SPREAD * min(rounds):
        per_round += " (they disagree: the machine's load changed during the run; rerun on an idle machine)"
    medians = [statistics.median(itertools.chain.from_iterable(timings[side])) for side in (False, True)]
    same = "identical" if all(x == losses[0] for x in losses) else "NOT identical (the loops ran different steps)"
    common = (
        f"batch {train.batch_size}; {sizes.rounds} round(s) of {sizes.per_loop} timed steps after {sizes.warmup} "
        f"untimed warm-up steps per loop (first-step overheads, first batches' decoding and worker start-up "
        f"excluded); losses of all loops {same}"
    )
    order = "real first in odd rounds, pre-loaded first in even ones" if sizes.rounds > 1 else "measured first"
    name = f"pretrain {job.method}: steps/s"
    return [
        Figure(
            f"{name}, pre-loaded tensors", pre_rate, "steps/s", note=f"baseline: the same batches in memory; {common}"
        ),
        ratio_at_least(
            f"{name}, real data path",
            real_rate,
            pre_rate,
            "steps/s",
            TARGET,
            f"embedded corpus, make_data, make_loader with {train.workers} worker(s), decode, crop, to device, "
            f"on-device augmentation; ratio = real ÷ pre-loaded ({order}); per round: {per_round}; "
            f"of the median step times: {medians[0] / medians[1]:.2f}; {common}",
        ),
        Figure(
            f"pretrain {job.method}: loader start-up + first batch",
            max(startups),
            "s",
            note=f"{train.workers} worker(s), worst of {len(startups)}; not in either step rate",
        ),
        Figure(
            f"pretrain {job.method}: prepare ({prepared} clips)",
            prepare_s,
            "s",
            note=f"once, before timing; not in either step rate; {fitted or 'nothing to fit'}",
        ),
    ]


def _fresh(cls: type, recipe: Recipe, initial: dict[str, torch.Tensor], device: torch.device) -> Any:
    """The method built anew under the recipe's seed, with the prepared state (statistics, initial weights)."""
    torch.manual_seed(recipe.train.seed)
    method = cls(recipe.options, recipe.train)
    method.load_state_dict(initial)
    torch.manual_seed(recipe.train.seed)  # the same global RNG (dropout) state in both loops
    return method.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(
    method: Any, batches: Iterator[Any], recipe: Recipe, schedule: Any, sizes: Sizes, device: torch.device
) -> tuple[list[float], list[float]]:
    """The seconds of each of ``sizes.per_loop`` timed steps after ``sizes.warmup`` untimed ones, and every loss.

    ``train_steps`` is given exactly the batches it runs (``islice``), so no
    batch beyond the last timed step is fetched inside the timed region.
    """
    train = recipe.train
    optimizer = make_optimizer(method.param_groups(), train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(train.seed)
    history = History()

    def run(start: int, stop: int) -> int:
        return train_steps(
            method, optimizer, scheduler, itertools.islice(batches, stop - start), generator, recipe, start, stop,
            device, history, _no_op, "bench", show=False,
        )  # fmt: skip

    n = sizes.warmup + sizes.per_loop
    done = run(0, sizes.warmup)
    _sync(device)
    began = time.perf_counter()
    done = run(done, n)
    _sync(device)
    ended = time.perf_counter() - began
    if done != n:
        raise RuntimeError(f"bench pretrain: the loader ran dry after {done} of {n} steps")
    # History's clock starts inside the timed train_steps call: per-step seconds are its differences, the last
    # step stretched to the end of the timed region (the device sync).
    marks = [row[3] for row in history.rows[sizes.warmup :]]
    marks[-1] = max(marks[-1], ended)
    return [b - a for a, b in itertools.pairwise([0.0, *marks])], [row[1] for row in history.rows]


def _no_op(step: int) -> None:
    """``on_step`` of the timed loops: nothing (no checkpoint, no monitor)."""


__all__ = ["DEFAULT_METHODS", "FULL", "QUICK", "TARGET", "Sizes", "measure"]
