"""Pretraining recipes: one YAML per method in ``encoders/recipes/``.

A recipe holds the published hyperparameters of a method (the ``paper``
preset, the default) and named presets that override some of them (``smoke``:
a few minutes on 2 CPU cores).  Resolution order, each step a deep merge:
the YAML's ``train``/``options`` → the chosen preset's overrides →
``--set key.path=value`` pairs and the dedicated flags (``--steps``,
``--epochs``, ``--batch-size``).  The result is parsed into typed dataclasses
(:class:`TrainSpec` here, the method's own options class for ``options``), so
an unknown or mistyped field fails like a task spec does: one line naming the
file, key and value.

The resolved recipe (a plain dict) is stored in every checkpoint; its hash
decides whether a checkpoint can be resumed by a command.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from evalbench.errors import SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.yaml_io import load_yaml
from evalbench.utils.hashing import sha256_json


@dataclass(frozen=True)
class OptimizerSpec:
    """A ``torch.optim`` optimiser.

    Attributes:
        name: ``adam``, ``adamw`` or ``sgd``.
        lr: Base learning rate (peak after warm-up).
        weight_decay: Weight decay (decoupled for ``adamw``).
        betas: Adam betas.
        momentum: SGD momentum.
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr: must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class ScheduleSpec:
    """Learning-rate schedule as a multiplier of the base rate, per step.

    Attributes:
        name: ``constant`` (BYOL-A), ``cosine`` (decay to ``final_factor``) or
            ``step`` (× ``gamma`` at each of ``milestones`` epochs).
        warmup_steps: Linear warm-up steps.
        warmup_epochs: Warm-up in epochs of the corpus (MSN 15, CLAR 10);
            when set it replaces ``warmup_steps`` (rounded to whole steps), so
            a recipe states the paper's value whatever the corpus size.
        warmup_start_factor: Multiplier at the first warm-up step (0: from zero;
            MSN warms up from 2e-4 to 1e-3, i.e. 0.2; Assran et al., ECCV 2022, App. C).
        final_factor: Cosine's last multiplier.
        span_factor: The cosine (and the weight-decay schedule) spans
            ``span_factor`` × the run's steps; MSN sizes its schedules for 1.25 ×
            the run, so their end values are never reached.
        milestones: Epochs of the ``step`` schedule.
        gamma: Factor of the ``step`` schedule.
        weight_decay_final: Cosine schedule of the weight decay from the
            optimiser's ``weight_decay`` to this value (MSN: 0.04 → 0.4), applied
            to the parameter groups that do not opt out; null keeps it constant.
    """

    name: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = 0
    warmup_epochs: float | None = None
    warmup_start_factor: float = 0.0
    final_factor: float = 0.0
    span_factor: float = 1.0
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    weight_decay_final: float | None = None

    def warmup(self, steps_per_epoch: int) -> int:
        """Warm-up length in steps (``warmup_epochs`` × ``steps_per_epoch`` when given)."""
        if self.warmup_epochs is None:
            return self.warmup_steps
        return round(self.warmup_epochs * max(1, steps_per_epoch))

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_start_factor <= 1:
            raise ValueError(f"warmup_start_factor: must lie in [0, 1], got {self.warmup_start_factor}")
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs: must be >= 0 or null, got {self.warmup_epochs}")
        if self.span_factor < 1:
            raise ValueError(f"span_factor: must be >= 1, got {self.span_factor}")
        if self.weight_decay_final is not None and self.weight_decay_final < 0:
            raise ValueError(f"weight_decay_final: must be >= 0 or null, got {self.weight_decay_final}")


@dataclass(frozen=True)
class TrainSpec:
    """The training loop's settings, shared by every method.

    Attributes:
        seed: Seed of initialisation, data order, crops and augmentations.
        batch_size: Global batch (split over ranks under torchrun).
        epochs: Passes over the corpus; ignored when ``steps`` is given.
        steps: Optimiser steps (overrides ``epochs``).
        optimizer: Optimiser.
        schedule: Learning-rate schedule.
        grad_clip: Max global gradient norm, or null.
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32``,
            ``bf16`` or ``fp16`` (CUDA only; fp16 uses a gradient scaler).
        checkpoint_every: Steps between checkpoints (and at the end).
        workers: DataLoader decoding workers.
        monitor_every: Steps between online-monitor evaluations (with ``--monitor``).
    """

    seed: int = 42
    batch_size: int = 256
    epochs: int = 100
    steps: int | None = None
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    grad_clip: float | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    checkpoint_every: int = 500
    workers: int = 2
    monitor_every: int = 200

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size: must be >= 2, got {self.batch_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs: must be >= 1, got {self.epochs}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps: must be >= 1 or null, got {self.steps}")
        if self.checkpoint_every < 1 or self.monitor_every < 1:
            raise ValueError("checkpoint_every and monitor_every: must be >= 1")


@dataclass(frozen=True)
class RecipeFile:
    """The raw structure of ``encoders/recipes/<method>.yaml`` (before a preset is applied).

    Attributes:
        method: Registered pretraining method.
        description: One line for listings.
        citation: Paper(s) the published hyperparameters come from.
        train: :class:`TrainSpec` fields (the ``paper`` values).
        options: The method's own options (validated by its options class).
        presets: Named overrides of ``train``/``options`` (``paper`` is implicit and empty).
    """

    method: str
    description: str
    citation: str = ""
    train: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: what ``evalbench pretrain`` trains with.

    Attributes:
        method: Method name.
        preset: Preset applied.
        train: Loop settings.
        options: The method's typed options.
        resolved: The plain-data form (stored in checkpoints and encoder YAMLs).
        source: The recipe file.
    """

    method: str
    preset: str
    train: TrainSpec
    options: Any
    resolved: dict[str, Any]
    source: str

    @property
    def sha256(self) -> str:
        """Hash of :attr:`resolved`: a checkpoint resumes only under the same recipe."""
        return sha256_json(self.resolved)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_assignment(text: str) -> dict[str, Any]:
    """``a.b.c=value`` → ``{"a": {"b": {"c": value}}}``; the value is read as YAML (``1e-4``, ``[1, 2]``, ``null``).

    Raises:
        SpecError: No ``=`` or an empty key.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise SpecError(f"--set {text}: expected KEY.PATH=VALUE, e.g. train.optimizer.lr=1e-4")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str):  # YAML 1.1 reads 3e-4 (no dot) as a string; a user means the number
        with contextlib.suppress(ValueError):
            parsed = float(parsed)
    out: dict[str, Any] = parsed
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def resolve_recipe(
    path: Path, options_cls: type, preset: str = "paper", overrides: list[dict[str, Any]] | None = None
) -> Recipe:
    """Read a recipe file and apply ``preset`` and ``overrides`` (each ``{"train"|"options": {...}}``).

    Raises:
        SpecError: Malformed file, unknown preset, or an invalid resolved field
            (naming the file and the dotted key).
    """
    where = str(path)
    raw = parse(RecipeFile, load_yaml(Path(path)), where)
    if preset != "paper" and preset not in raw.presets:
        known = ", ".join(["paper", *sorted(raw.presets)])
        raise SpecError(f"{where}: presets: no preset '{preset}' (known: {known})")
    data = {"train": raw.train, "options": raw.options}
    layers = [raw.presets.get(preset, {}), *(overrides or [])]
    for layer in layers:
        unknown = sorted(set(layer) - {"train", "options"})
        if unknown:
            raise SpecError(f"{where}: overrides may set 'train.*' or 'options.*', got {unknown}")
        data = _deep_merge(data, layer)
    train = parse(TrainSpec, data["train"], where, "train")
    options = parse(options_cls, data["options"], where, "options")
    resolved = {"method": raw.method, "preset": preset, "train": to_dict(train), "options": to_dict(options)}
    return Recipe(raw.method, preset, train, options, resolved, where)


__all__ = ["OptimizerSpec", "Recipe", "ScheduleSpec", "TrainSpec", "parse_assignment", "resolve_recipe"]
