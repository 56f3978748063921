"""The shared pretraining base: the method interface and the training loop.

A method (one file each: :mod:`evalbench.pretrain.byola`, ...) is an
``nn.Module`` that declares its networks, heads, views and
:meth:`PretrainMethod.training_step`; everything else lives here, once:

- a device-agnostic loop (``--device auto|cpu|cuda``) with the optimiser and
  learning-rate schedule of the recipe (``torch.optim``,
  ``torch.optim.lr_scheduler.LambdaLR``), gradient clipping, bf16/fp16 autocast
  on CUDA only (fp32 on CPU), a per-step hook for EMA targets, and a ``tqdm``
  bar with loss, steps/s and ETA;
- seeded, deterministic data: crops are pure functions of (seed, epoch,
  index) and augmentations draw from one checkpointed ``torch.Generator``;
- checkpoints (:mod:`evalbench.pretrain.state`) written atomically every
  ``checkpoint_every`` steps, at the end and on Ctrl-C, holding everything
  needed to continue bit-identically on CPU;
- the loss history as CSV and a PNG curve beside the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from evalbench.specs.recipe import Recipe, ScheduleSpec, TrainSpec
from evalbench.utils.console import progress


@dataclass(frozen=True)
class DataRequest:
    """What a method needs to build its training data (:meth:`PretrainMethod.make_data`).

    Attributes:
        corpus: The :class:`~evalbench.pretrain.corpus.PretrainCorpus`.
        seed: The recipe's seed.
        audio_cache: Resampled-audio cache folder.
        labels: File → class index, for methods that train on labels (else None).
        rank: This process's rank under torchrun (it takes its slice of each global batch).
        world: Number of ranks.
    """

    corpus: Any
    seed: int
    audio_cache: Path
    labels: dict[str, int] | None = None
    rank: int = 0
    world: int = 1


class PretrainMethod(nn.Module):
    """Base of the pretraining methods.

    Subclasses set the class attributes, build their networks in ``__init__``
    (under the loop's seed) and implement :meth:`training_step`; the exported
    network must be the adapter's own network class, so that ``evalbench run``
    loads it with no conversion.

    Attributes:
        NAME: Method name (``evalbench pretrain NAME``).
        NEEDS_LABELS: Trains on a task's labels; ``--task`` is required.
        USES_LABELS: Reads the labels of ``--task`` when one is given (the
            loop then sets ``options.n_classes`` and ``DataRequest.labels``).
        FAMILY: Adapter (and checkpoint family) of the exported encoder.
        POOLING: Pooling of the registered encoder.
        OPTIONS: The options dataclass of ``options`` in the recipe.
        CITATION: The paper the recipe follows.
    """

    NAME: ClassVar[str] = ""
    NEEDS_LABELS: ClassVar[bool] = False  # trains on a task's labels (needs --task)
    USES_LABELS: ClassVar[bool] = False  # uses a task's labels when --task is given (CLAR's supervised term)
    FAMILY: ClassVar[str] = ""
    POOLING: ClassVar[str] = "mean"
    OPTIONS: ClassVar[type] = object
    CITATION: ClassVar[str] = ""

    def __init__(self, options: Any, train: TrainSpec) -> None:
        super().__init__()
        self.options, self.train_spec = options, train

    # --- data the loop feeds ---------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """Rate of the training audio."""
        raise NotImplementedError

    @property
    def unit_seconds(self) -> float:
        """Length of each training crop."""
        raise NotImplementedError

    @property
    def crop_mode(self) -> str:
        """Crop/pad rule of :class:`~evalbench.pretrain.data.CropDataset` (``v1``, ``v2``, ``start``)."""
        raise NotImplementedError

    prepare_clips: int = 0  # clips :meth:`prepare` wants before training (0: none)

    def prepare(self, clips: Iterator[torch.Tensor]) -> dict[str, Any]:
        """Statistics fitted on training audio before the first step (e.g. BYOL-A's pre-normalisation).

        Returns:
            A JSON-able description for the log and the checkpoint.
        """
        return {}

    # --- the step ----------------------------------------------------------------------------
    def training_step(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        """The scalar loss of one batch, on the training device.

        The batch is waveforms ``(B, N)``, or a tuple such as ``(waveforms,
        labels)`` for methods whose data yields one (:meth:`make_data`).
        """
        raise NotImplementedError

    def forward(self, batch: Any, generator: torch.Generator) -> torch.Tensor:
        """:meth:`training_step`, so that ``DistributedDataParallel(method)`` can be called like the method."""
        return self.training_step(batch, generator)

    def make_data(self, req: DataRequest) -> tuple[Any, Any]:
        """The dataset and batch sampler of training (default: unlabelled seeded crops, a permutation per epoch)."""
        from evalbench.pretrain.data import CropDataset, EpochSampler

        dataset = CropDataset(
            req.corpus, self.sample_rate, self.unit_seconds, self.crop_mode, req.seed, req.audio_cache
        )
        return dataset, EpochSampler(len(req.corpus.files), self.train_spec.batch_size, req.seed, req.rank, req.world)

    def param_groups(self) -> list[dict[str, Any]]:
        """Parameter groups of the optimiser (default: every trainable parameter in one group).

        A group that sets ``"weight_decay": 0.0`` is exempt from weight decay and
        from its schedule (biases, norms and MSN's prototypes); the other groups
        take the recipe's weight decay.
        """
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def set_schedule(self, total_steps: int, steps_per_epoch: int) -> None:
        """Told by the loop, before the first step, how long the run is (for schedules such as MSN's EMA)."""
        self.total_steps, self.steps_per_epoch = int(total_steps), int(steps_per_epoch)

    def after_step(self, step: int) -> None:
        """Called after each optimiser step (EMA targets update here)."""

    # --- export ------------------------------------------------------------------------------
    def encoder_network(self) -> nn.Module:
        """The network that ``evalbench run``'s adapter loads (an adapter network class)."""
        raise NotImplementedError

    def encoder_options(self) -> dict[str, Any]:
        """Adapter options of the registered encoder (they shape its input: front end, rates, version)."""
        raise NotImplementedError

    def embed_for_monitor(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pooled clip embeddings ``(B, D)`` of the current weights, as ``evalbench run`` would compute them.

        The registered adapter's computation (front end, input normalisation,
        network, validity mask, the encoder's pooling) on the training network,
        for :mod:`evalbench.pretrain.monitor`, which calls it in eval mode under
        ``torch.inference_mode``.

        Args:
            wav: ``(B, N)`` float32 audio at :attr:`sample_rate`, zero-padded on the right.
            lengths: ``(B,)`` valid samples per clip.
        """
        raise NotImplementedError(f"pretrain method '{self.NAME}' does not implement embed_for_monitor")


def default_init(net: nn.Module) -> None:
    """Reset every layer of ``net`` to PyTorch's default initialisation.

    The adapters' random twins use He initialisation (a NOTE in their
    modules: PyTorch's default leaves an untrained deep ReLU network nearly
    constant); the recipes that evalbench trains (the supervised report, CLMR)
    start from PyTorch's defaults, so methods undo the twins' choice.
    """
    for module in net.modules():
        if module is not net and hasattr(module, "reset_parameters"):
            module.reset_parameters()


def lr_multiplier(schedule: ScheduleSpec, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as ``step -> factor`` of the base learning rate (for ``LambdaLR``).

    Linear warm-up over ``warmup_steps`` (or ``warmup_epochs``) from ``warmup_start_factor``; then
    ``constant`` (BYOL-A), ``cosine`` decay towards ``final_factor``, reached at
    ``span_factor × total_steps`` (MSN: 1.25, so never reached), or ``step``
    (× ``gamma`` at each milestone epoch).
    """
    start = schedule.warmup_start_factor
    warmup = schedule.warmup(steps_per_epoch)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return start + (1 - start) * (step + 1) / warmup
        if schedule.name == "cosine":
            span = max(1, round(schedule.span_factor * total_steps) - warmup)
            progress = min(1.0, (step - warmup) / span)
            return schedule.final_factor + (1 - schedule.final_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        if schedule.name == "step":
            epoch = step // max(1, steps_per_epoch)
            return schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
        return 1.0

    return factor


def weight_decay_at(schedule: ScheduleSpec, base: float, step: int, total_steps: int) -> float:
    """Weight decay at ``step``: ``base``, or a cosine from ``base`` to ``weight_decay_final``.

    The cosine spans ``span_factor × total_steps`` (MSN: 0.04 → 0.4 over 1.25 ×
    the run; Assran et al., ECCV 2022, App. C).
    """
    if schedule.weight_decay_final is None:
        return base
    progress = min(1.0, step / max(1, round(schedule.span_factor * total_steps)))
    end = schedule.weight_decay_final
    return end + (base - end) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(groups: list[dict[str, Any]] | list[nn.Parameter], train: TrainSpec) -> torch.optim.Optimizer:
    """The recipe's ``torch.optim`` optimiser over parameter ``groups`` (or a plain list of parameters).

    Groups that set their own ``weight_decay`` keep it; the others take the
    recipe's and are marked ``scheduled_wd`` for :func:`weight_decay_at`.
    """
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": list(groups)}]
    groups = [{**g, "scheduled_wd": "weight_decay" not in g} for g in groups]
    opt = train.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(groups, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    cls = torch.optim.AdamW if opt.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=opt.lr, betas=opt.betas, weight_decay=opt.weight_decay)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 for ``auto``/``bf16`` on CUDA, fp16 for ``fp16``, none on CPU or for ``fp32``."""
    if device.type != "cuda" or precision == "fp32":
        return None
    return torch.float16 if precision == "fp16" else torch.bfloat16


@dataclass
class History:
    """Loss history: one row per step (``step``, ``loss``, ``lr``, ``seconds`` since start of this run)."""

    rows: list[tuple[int, float, float, float]] = field(default_factory=list)

    def add(self, step: int, loss: float, lr: float, seconds: float) -> None:
        """Append one step."""
        self.rows.append((step, loss, lr, seconds))

    def last_mean(self, n: int = 20) -> float:
        """Mean loss of the last ``n`` steps (NaN when empty)."""
        tail = [r[1] for r in self.rows[-n:]]
        return sum(tail) / len(tail) if tail else float("nan")


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (a tensor or a tuple of tensors) on ``device`` (non-blocking from pinned memory)."""
    if isinstance(batch, tuple | list):
        return tuple(b.to(device, non_blocking=True) for b in batch)
    return batch.to(device, non_blocking=True)


def train_steps(
    method: PretrainMethod,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batches: Iterator[Any],
    generator: torch.Generator,
    recipe: Recipe,
    start: int,
    total: int,
    device: torch.device,
    history: History,
    on_step: Callable[[int], None],
    desc: str,
    show: bool = True,
    forward: Callable[[Any, torch.Generator], torch.Tensor] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> int:
    """Run optimiser steps ``start .. total - 1``; returns the number of the next step.

    ``on_step(step)`` runs after each completed step (checkpointing, the
    monitor); a non-finite loss stops training with a clear error before the
    step is applied, so a checkpoint never holds NaN weights.  ``forward`` is
    what computes the loss (the ``DistributedDataParallel`` wrapper under
    torchrun; default the method) and ``reduce`` turns a rank's loss into the
    logged global one.
    """
    forward = forward or method
    reduce = reduce or (lambda v: v)
    train = recipe.train
    dtype = autocast_dtype(train.precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    params = [p for p in method.parameters() if p.requires_grad]
    began = time.perf_counter()
    bar = progress(
        total=total, initial=start, desc=desc, unit="step", disable=None if show else True, dynamic_ncols=True
    )
    step = start
    try:
        while step < total:
            batch = next(batches)  # never one more than needed: a batch costs a decode
            method.train()
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = forward(batch, generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {step}: the {method.NAME} loss is {loss.item()}; training stopped")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if train.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, train.grad_clip)
            if train.schedule.weight_decay_final is not None:
                wd = weight_decay_at(train.schedule, train.optimizer.weight_decay, step, total)
                for group in optimizer.param_groups:
                    if group.get("scheduled_wd", True):
                        group["weight_decay"] = wd
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            method.after_step(step)
            history.add(step, float(reduce(loss.detach())), lr, time.perf_counter() - began)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{history.last_mean():.4f}", lr=f"{lr:.2e}")
            on_step(step)
    finally:
        bar.close()
    return step


def save_curve(history: History, out_dir: Path, title: str) -> list[Path]:
    """Write ``loss.csv`` and ``loss.png`` (raw loss and a 20-step running mean) into ``out_dir``."""
    import pandas as pd

    from evalbench.utils.io import PRETRAIN_ADVICE, atomic_write_text

    frame = pd.DataFrame(history.rows, columns=["step", "loss", "lr", "seconds"])
    paths = [Path(out_dir) / "loss.csv", Path(out_dir) / "loss.png"]
    atomic_write_text(paths[0], frame.to_csv(index=False, lineterminator="\n"), PRETRAIN_ADVICE)
    if frame.empty:
        return paths[:1]
    from evalbench.utils.plots import pyplot, save_png

    fig, ax = pyplot().subplots(figsize=(7, 3.5))
    ax.plot(frame.step, frame.loss, alpha=0.3, label="loss")
    ax.plot(frame.step, frame.loss.rolling(20, min_periods=1).mean(), label="running mean (20 steps)")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, paths[1])
    return paths


__all__ = [
    "DataRequest",
    "History",
    "PretrainMethod",
    "autocast_dtype",
    "default_init",
    "lr_multiplier",
    "make_optimizer",
    "save_curve",
    "train_steps",
    "weight_decay_at",
]
