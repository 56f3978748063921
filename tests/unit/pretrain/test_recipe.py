"""Recipes: presets, overrides and errors that name the file, key and value; every recipe file parses."""

from __future__ import annotations

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
