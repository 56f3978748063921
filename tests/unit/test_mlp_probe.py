"""The MLP probe: batched search = one-at-a-time loop, seeded Optuna, pruning, sklearn API, binary and multi-label.

The batched-vs-loop comparison runs in float64 (``dtype="float64"``): in float32 the batched and the single matrix
products sum in different orders and early stopping can then flip at a tied check.  Tolerance: validation scores
within 1e-4 (they are equal), the same best epoch and the same chosen candidate.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from evalbench import metrics as M
from evalbench.bench.mlp_loop import one_at_a_time
from evalbench.presets import class_defaults
from evalbench.probes.mlp import HEAR_GRID, MLPProbe, grid_candidates
from evalbench.registry import PROBES

TINY = {"width": 16, "max_epochs": 24, "patience": 3, "batch_size": 32}


def blobs(n: int, d: int, c: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % c
    return (rng.standard_normal((c, d))[y] * sep + rng.standard_normal((n, d))).astype(np.float32), y


def splits(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(x)
    a, b = int(0.6 * n), int(0.8 * n)
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def test_registered_with_json_able_defaults() -> None:
    assert PROBES.get("mlp") is MLPProbe
    defaults = class_defaults("mlp")
    json.dumps(defaults)
    assert defaults["search"] == "grid" and defaults["patience"] == 20 and defaults["batch_size"] == 1024


def test_default_grid_is_hears_eight_plus_a_linear_point() -> None:
    fixed = MLPProbe(3).fixed_params
    cands = grid_candidates(HEAR_GRID, 8, fixed, add_linear=True)
    assert len(cands) == 9 and cands[-1].hidden_layers == 0
    hear = cands[:8]
    assert len(set(hear)) == 8 and {c.hidden_layers for c in hear} <= {1, 2}
    assert all(c.lr in HEAR_GRID["lr"] and c.width == 1024 and c.dropout == 0.1 for c in hear)
    assert grid_candidates(HEAR_GRID, 8, fixed, add_linear=False) == hear  # the shuffle is fixed


def test_batched_grid_equals_one_at_a_time_loop() -> None:
    xtr, ytr, xva, yva, _, _ = splits(*blobs(200, 10, 3, sep=0.6, seed=0))
    grid = {"hidden_layers": (1, 2), "lr": (3e-2, 3e-3), "init": ("xavier_uniform", "xavier_normal")}
    options = {**TINY, "grid": grid, "grid_points": 8, "dtype": "float64", "random_state": 7}
    probe = MLPProbe(3, **options).fit(xtr, ytr, xva, yva)
    cands = grid_candidates(grid, 8, probe.fixed_params, add_linear=True)
    f64 = torch.float64
    pick, results = one_at_a_time(
        cands, torch.as_tensor(xtr, dtype=f64), torch.as_tensor(ytr), torch.as_tensor(xva, dtype=f64), yva, 3,
        "single", "accuracy", 7, 32, 24, 3, 3,
    )  # fmt: skip
    assert len(probe.trials_) == len(results) == 9
    for trial, ref in zip(probe.trials_, results, strict=True):
        assert trial["params"] == ref.candidate.params()
        assert trial["valid"] == pytest.approx(ref.valid, abs=1e-4)
        assert trial["valid_loss"] == pytest.approx(ref.valid_loss, abs=1e-8)
        assert (trial["best_epoch"], trial["epochs"]) == (ref.best_epoch, ref.epochs)
    assert probe.best_params_ == results[pick].candidate.params()
    assert len({t["valid"] for t in probe.trials_}) > 2  # the candidates differ: the comparison is not vacuous
    with torch.no_grad():
        ref_proba = torch.softmax(results[pick].model(torch.as_tensor(xva, dtype=f64)), -1).numpy()
    np.testing.assert_allclose(probe.predict_proba(xva), ref_proba, atol=1e-8)


def test_optuna_search_is_reproducible() -> None:
    xtr, ytr, xva, yva, xte, _ = splits(*blobs(150, 8, 3, sep=0.8, seed=1))
    options = {**TINY, "search": "optuna", "trials": 6, "parallel": 3, "random_state": 3}
    options["space"] = {"lr": ("log", 1e-4, 1e-1), "hidden_layers": ("choice", 0, 1), "width": ("choice", 8, 16)}
    a = MLPProbe(3, **options).fit(xtr, ytr, xva, yva)
    b = MLPProbe(3, **options).fit(xtr, ytr, xva, yva)
    assert a.chosen_ == b.chosen_ and len(a.trials_) == 6
    assert len({t["params"]["lr"] for t in a.trials_}) == 6  # sampled, not fixed
    np.testing.assert_array_equal(a.predict_proba(xte), b.predict_proba(xte))
    c = MLPProbe(3, **{**options, "random_state": 4}).fit(xtr, ytr, xva, yva)
    assert [t["params"] for t in c.trials_] != [t["params"] for t in a.trials_]


def test_median_pruner_prunes_hopeless_learning_rates() -> None:
    xtr, ytr, xva, yva, _, _ = splits(*blobs(200, 8, 4, sep=1.0, seed=2))
    options = {**TINY, "max_epochs": 30, "patience": 100, "search": "optuna", "trials": 10, "parallel": 2}
    options |= {"space": {"lr": ("choice", 1e-9, 3e-2)}, "prune_startup": 2, "prune_warmup": 1, "random_state": 0}
    probe = MLPProbe(4, **options).fit(xtr, ytr, xva, yva)
    pruned = [t for t in probe.trials_ if t["state"] == "pruned"]
    complete = [t for t in probe.trials_ if t["state"] == "complete"]
    assert len(pruned) >= 1 and complete
    assert all(t["params"]["lr"] == 1e-9 for t in pruned)
    assert max(t["epochs"] for t in pruned) < min(t["epochs"] for t in complete) == 30  # pruned trials stop early
    assert probe.chosen_["lr"] == 3e-2 and probe.chosen_["trials"] == probe.trials_


def test_clone_round_trip_and_retraining_the_chosen_configuration() -> None:
    xtr, ytr, xva, yva, _, _ = splits(*blobs(150, 8, 3, sep=0.6, seed=4))
    grid = {"hidden_layers": (1, 2), "lr": (3e-2, 1e-3)}
    probe = MLPProbe(3, **TINY, grid=grid, grid_points=4, dtype="float64", random_state=5, dropout=0.2)
    params = probe.get_params()
    assert clone(probe).get_params() == params
    assert probe.set_params(patience=4).patience == 4 and probe.set_params(patience=3).get_params() == params
    probe.fit(xtr, ytr, xva, yva)
    again = clone(probe).set_params(search="none", **probe.best_params_).fit(xtr, ytr, xva, yva)
    assert again.best_params_ == probe.best_params_ and len(again.trials_) == 1
    assert again.valid_score_ == pytest.approx(probe.valid_score_, abs=1e-12)  # exactly the chosen configuration
    assert again.best_epoch_ == probe.best_epoch_
    np.testing.assert_allclose(again.predict_proba(xva), probe.predict_proba(xva), atol=1e-10)


def test_binary_head_learns_a_separable_toy() -> None:
    xtr, ytr, xva, yva, xte, yte = splits(*blobs(200, 6, 2, sep=3.0, seed=5))
    probe = MLPProbe(2, "binary", **TINY, grid_points=2).fit(xtr, ytr, xva, yva)
    proba = probe.predict_proba(xte)
    assert proba.shape == (len(xte), 2) and M.accuracy(yte, proba, "binary") > 0.9


def test_multilabel_head_learns_a_separable_toy() -> None:
    rng = np.random.default_rng(6)
    y = (rng.random((300, 4)) < 0.3).astype(np.float32)
    x = (y @ rng.standard_normal((4, 12)) * 3 + rng.standard_normal((300, 12))).astype(np.float32)
    xtr, ytr, xva, yva, xte, yte = splits(x, y)
    probe = MLPProbe(4, "multilabel", "map", **TINY, grid_points=2).fit(xtr, ytr, xva, yva)
    proba = probe.predict_proba(xte)
    assert proba.shape == (len(xte), 4) and M.map(yte, proba, "multilabel") > 0.9
    assert probe.predict(xte).shape == (len(xte), 4)


def test_unknown_options_fail_in_fit() -> None:
    x, y = blobs(40, 4, 2, sep=1.0, seed=0)
    with pytest.raises(ValueError, match="search"):
        MLPProbe(2, search="random").fit(x, y, x, y)
    with pytest.raises(ValueError, match="label type"):
        MLPProbe(1, "ordinal").fit(x, y, x, y)


def _regression_toy(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A nonlinear target in its own units (mean ≈ 60, scale ≈ 10): a linear probe cannot reach R² 0.9."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, 60.0 + 6.0 * np.tanh(2.0 * x[:, 0]) + 6.0 * np.abs(x[:, 1]) + 0.3 * rng.standard_normal(n)


def test_regression_head_learns_a_nonlinear_target_in_its_units() -> None:
    xtr, ytr, xva, yva, xte, yte = splits(*_regression_toy(600, 6, seed=8))
    options = {**TINY, "width": 32, "max_epochs": 150, "patience": 10, "lr": 1e-2, "search": "none"}
    probe = MLPProbe(1, "regression", "r2", **options).fit(xtr, ytr, xva, yva)
    assert (probe.target_mean_, probe.target_scale_) == pytest.approx((ytr.mean(), ytr.std()))  # train only
    pred = probe.predict(xte)
    assert pred.shape == (len(xte),) and M.r2(yte, pred) > 0.9
    assert probe.valid_score_ == pytest.approx(M.r2(yva, probe.predict(xva)), abs=1e-6)
    ridge = np.linalg.lstsq(np.c_[xtr, np.ones(len(xtr))], ytr, rcond=None)[0]
    assert M.r2(yte, np.c_[xte, np.ones(len(xte))] @ ridge) < 0.8  # the hidden layer is what it needs
    with pytest.raises(ValueError, match="use predict"):
        probe.predict_proba(xte)
    with pytest.raises(ValueError, match="one output"):
        MLPProbe(2, "regression", "r2", **options).fit(xtr, ytr, xva, yva)


def test_regression_batched_grid_equals_loop_and_lower_is_better_picks_the_smallest_error() -> None:
    """MAE, a lower-is-better primary: the batched search and the torch.nn loop agree, and the pick minimises it."""
    xtr, ytr, xva, yva, _, _ = splits(*_regression_toy(200, 5, seed=9))
    grid = {"hidden_layers": (1,), "lr": (3e-2, 3e-3, 3e-4)}
    options = {**TINY, "grid": grid, "grid_points": 3, "dtype": "float64", "random_state": 2}
    probe = MLPProbe(1, "regression", "mae", **options).fit(xtr, ytr, xva, yva)
    cands = grid_candidates(grid, 3, probe.fixed_params, add_linear=True)
    f64, (mean, scale) = torch.float64, (ytr.mean(), ytr.std())
    pick, results = one_at_a_time(
        cands, torch.as_tensor(xtr, dtype=f64), torch.as_tensor((ytr - mean) / scale, dtype=f64),
        torch.as_tensor(xva, dtype=f64), yva, 1, "regression", "mae", 2, 32, 24, 3, 3, target=(mean, scale),
    )  # fmt: skip
    maes = [t["valid"] for t in probe.trials_]
    assert maes == pytest.approx([-r.valid for r in results], abs=1e-6) and len(set(maes)) == 4
    assert all(m > 0 for m in maes) and probe.valid_score_ == min(maes)  # MAE in target units; the smallest wins
    assert probe.best_params_ == results[pick].candidate.params()
    with torch.no_grad():
        ref = mean + scale * results[pick].model(torch.as_tensor(xva, dtype=f64))[:, 0].numpy()
    np.testing.assert_allclose(probe.predict(xva), ref, atol=1e-8)
