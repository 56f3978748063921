"""Recipes: presets, overrides and errors that name the file, key and value; every recipe file parses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evalbench.errors import SpecError
from evalbench.pretrain import METHODS, method_class
from evalbench.pretrain.base import lr_multiplier
from evalbench.specs.recipe import ScheduleSpec, parse_assignment, resolve_recipe
from tests.conftest import ENCODERS

RECIPES = ENCODERS / "recipes"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_has_a_recipe_with_paper_and_smoke_presets(method: str) -> None:
    cls = method_class(method)
    for preset in ("paper", "smoke"):
        recipe = resolve_recipe(RECIPES / f"{method}.yaml", cls.OPTIONS, preset)
        assert recipe.method == method and recipe.preset == preset and len(recipe.sha256) == 64
    paper = resolve_recipe(RECIPES / f"{method}.yaml", cls.OPTIONS, "paper")
    smoke = resolve_recipe(RECIPES / f"{method}.yaml", cls.OPTIONS, "smoke")
    assert paper.sha256 != smoke.sha256 and smoke.train.steps is not None


def test_byola_paper_preset_is_the_published_recipe() -> None:
    recipe = resolve_recipe(RECIPES / "byola.yaml", method_class("byola").OPTIONS)
    t, o = recipe.train, recipe.options
    assert (t.batch_size, t.epochs, t.optimizer.name, t.optimizer.lr, t.optimizer.weight_decay) == (
        256,
        100,
        "adam",
        1e-4,
        0.0,
    )
    assert (o.version, o.feature_d, o.mixup_alpha, o.mixup_bank, o.tau, o.unit_seconds) == (
        "v2",
        3072,
        0.2,
        2048,
        0.99,
        0.95,
    )


def test_overrides_and_their_errors() -> None:
    cls = method_class("byola").OPTIONS
    layers = [parse_assignment("train.optimizer.lr=3e-4"), parse_assignment("options.version=v1"),
              parse_assignment("options.feature_d=512"), {"train": {"steps": 7}}]  # fmt: skip
    recipe = resolve_recipe(RECIPES / "byola.yaml", cls, "paper", layers)
    assert recipe.train.optimizer.lr == 3e-4 and recipe.options.version == "v1" and recipe.train.steps == 7
    with pytest.raises(SpecError, match=r"byola\.yaml: options\.mixup_alfa: unknown key"):
        resolve_recipe(RECIPES / "byola.yaml", cls, "paper", [parse_assignment("options.mixup_alfa=0.3")])
    with pytest.raises(SpecError, match=r"byola\.yaml: train\.batch_size"):
        resolve_recipe(RECIPES / "byola.yaml", cls, "paper", [parse_assignment("train.batch_size=many")])
    with pytest.raises(SpecError, match="no preset 'fast'"):
        resolve_recipe(RECIPES / "byola.yaml", cls, "fast")
    with pytest.raises(SpecError, match=r"KEY\.PATH=VALUE"):
        parse_assignment("lr")


def test_broken_recipe_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "byola.yaml"
    path.write_text("method: byola\ndescription: x\ntrain: {epochs: 0}\n")
    with pytest.raises(SpecError, match=r"byola\.yaml: train\.epochs: must be >= 1"):
        resolve_recipe(path, method_class("byola").OPTIONS)


def test_schedules() -> None:
    const = lr_multiplier(ScheduleSpec(), 100, 10)
    assert const(0) == const(99) == 1.0
    warm = lr_multiplier(ScheduleSpec(name="cosine", warmup_steps=10, final_factor=0.0), 110, 10)
    assert warm(0) == pytest.approx(0.1) and warm(9) == pytest.approx(1.0)
    assert warm(10) == pytest.approx(1.0) and warm(60) == pytest.approx(0.5) and warm(110) == pytest.approx(0.0)
    step = lr_multiplier(ScheduleSpec(name="step", milestones=[2, 4], gamma=0.1), 100, 10)
    assert step(19) == 1.0 and step(20) == pytest.approx(0.1) and step(45) == pytest.approx(0.01)


def test_warmup_start_span_and_weight_decay_schedule() -> None:
    from evalbench.pretrain.base import weight_decay_at

    spec = ScheduleSpec(name="cosine", warmup_steps=10, warmup_start_factor=0.2, final_factor=0.0, span_factor=1.25)
    f = lr_multiplier(spec, 100, 10)
    assert f(0) == pytest.approx(0.2 + 0.8 * 1 / 10)  # MSN warms up from 2e-4 to 1e-3
    assert f(9) == pytest.approx(1.0)
    # cosine over 1.25 × 100 steps: at the run's last step the factor is cos-decayed only part way
    assert f(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 115)))
    assert f(99) > 0.05
    wd = ScheduleSpec(weight_decay_final=0.4, span_factor=1.25)
    assert weight_decay_at(wd, 0.04, 0, 100) == pytest.approx(0.04)
    assert weight_decay_at(wd, 0.04, 125, 100) == pytest.approx(0.4)
    assert 0.04 < weight_decay_at(wd, 0.04, 50, 100) < 0.4
    assert weight_decay_at(ScheduleSpec(), 0.04, 50, 100) == 0.04


def test_groups_that_opt_out_keep_zero_weight_decay() -> None:
    import torch

    from evalbench.pretrain.base import make_optimizer
    from evalbench.specs.recipe import OptimizerSpec, TrainSpec

    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    train = TrainSpec(optimizer=OptimizerSpec(name="adamw", weight_decay=0.04))
    opt = make_optimizer([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], train)
    assert [g["scheduled_wd"] for g in opt.param_groups] == [True, False]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.04, 0.0]


def test_warmup_in_epochs_follows_the_corpus() -> None:
    spec = ScheduleSpec(name="cosine", warmup_steps=999, warmup_epochs=1.5)
    assert spec.warmup(10) == 15  # replaces warmup_steps
    f = lr_multiplier(spec, 100, 10)
    assert f(14) == pytest.approx(1.0) and f(13) == pytest.approx(14 / 15)
    assert f(15) == pytest.approx(1.0)  # cosine starts at its peak
