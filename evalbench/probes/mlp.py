"""The MLP probe: HEAR's network and schedule, its grid or an Optuna search, many candidates trained at once.

Protocol (docs/protocol.md §3, hear-eval-kit's "predictions" protocol): per hidden
layer ``Linear(·, width) → BatchNorm1d → Dropout → ReLU``, then
``Linear(·, C)`` (:mod:`evalbench.probes.mlp_net`); softmax cross-entropy for
single-label and binary tasks (2 logits, integer labels), BCE-with-logits for
multi-label, and (an evalbench extension) mean squared error on standardised
targets for regression; Adam, batch 1024, ≤ 500 epochs, a validation check every 3
epochs, patience 20 checks on the task's primary validation metric, best
check restored (:mod:`evalbench.probes.mlp_train`).  Among the candidates the
one with the best validation score is chosen, ties going to the lower
validation loss, then to the earlier candidate.  Test labels never reach it.

Searches (``search``):

- ``grid`` (default): HEAR's default grid, hidden layers {1, 2} × lr {3.2e-3,
  1e-3, 3.2e-4, 1e-4} × init {xavier_uniform, xavier_normal} with width 1024,
  dropout 0.1 and no weight decay (HEAR's ``torch.optim.Adam`` default),
  shuffled with a fixed seed (:data:`GRID_SEED`, independent of
  ``random_state``, as HEAR's) and cut to its first ``grid_points`` (8);
  evalbench adds a 0-hidden-layer (linear) point with the fixed ``lr`` and
  ``init`` (``add_linear_point``; the HEAR preset turns it off).
- ``optuna``: ``trials`` trials of the ``space`` (:data:`DEFAULT_SPACE`: lr and
  weight decay log-uniform, hidden layers, width, dropout), sampled by a seeded
  ``TPESampler`` (with the default 8 trials all fall within TPE's 10 random
  start-up trials) and pruned by a ``MedianPruner``
  (``n_startup_trials=prune_startup``, 4; ``n_warmup_steps=prune_warmup``, 5
  checks = 15 epochs): a trial is pruned at a check when its validation score
  is below the median of the completed trials' scores at that check.  Width and
  dropout are only sampled with hidden layers.  Parameters outside the space
  take the fixed values.
- ``none``: the one fixed candidate (``hidden_layers``, ``width``, ``lr``,
  ``weight_decay``, ``dropout``, ``init``).

Many candidates at once: the candidates (the grid, or each batch of up to
``parallel`` trials asked from Optuna) are grouped by shape (hidden layers,
width); each group of up to ``parallel`` trains as one stacked computation.

k-fold tasks (HEAR: search on the first rotation, reuse the winner on the
others): after :meth:`MLPProbe.fit`, ``best_params_`` holds the chosen
candidate, so ``clone(probe).set_params(search="none", **probe.best_params_)``
retrains exactly that configuration (same initialisation for the same
``random_state``).

Regression tasks (``label_type="regression"``, ``n_classes=1``): the targets
are standardised with the training targets' mean and standard deviation
(:func:`evalbench.probes.ridge.target_scaling`, train only), the network has
one output trained by mean squared error, and :meth:`MLPProbe.predict` returns
predictions in the targets' units; the primary metric (R², Spearman, MAE or
RMSE) drives early stopping, pruning and selection, oriented so that higher is
better.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from evalbench.metric_info import oriented
from evalbench.probes.mlp_net import Candidate, StackedMLP
from evalbench.probes.mlp_train import OnCheck, Outcome, Schedule, outputs, probabilities, train_group
from evalbench.probes.ridge import target_scaling

GRID_SEED = 0
HEAR_GRID: dict[str, tuple] = {
    "hidden_layers": (1, 2),
    "lr": (3.2e-3, 1e-3, 3.2e-4, 1e-4),
    "init": ("xavier_uniform", "xavier_normal"),
}
DEFAULT_SPACE: dict[str, tuple] = {
    "lr": ("log", 1e-5, 1e-2),
    "weight_decay": ("log", 1e-8, 1e-2),
    "hidden_layers": ("choice", 0, 1, 2),
    "width": ("choice", 256, 512, 1024),
    "dropout": ("float", 0.0, 0.5),
}
SEARCHES = ("grid", "optuna", "none")
LABEL_TYPES = ("single", "binary", "multilabel", "regression")
CANDIDATE_KEYS = ("hidden_layers", "width", "lr", "weight_decay", "dropout", "init")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def grid_candidates(grid: dict[str, tuple], points: int, fixed: dict[str, Any], add_linear: bool) -> list[Candidate]:
    """The grid's product, shuffled with :data:`GRID_SEED`, its first ``points``, and optionally the linear point."""
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    order = np.random.default_rng(GRID_SEED).permutation(len(combos))
    chosen = [Candidate(**{**fixed, **combos[i]}) for i in order[:points]]
    return [*chosen, Candidate(**{**fixed, "hidden_layers": 0})] if add_linear else chosen


def suggest(trial: Any, space: dict[str, tuple], fixed: dict[str, Any]) -> Candidate:
    """A candidate sampled by an Optuna trial from ``space`` (width and dropout only with hidden layers)."""
    params = dict(fixed)
    for name in sorted(space, key=lambda k: k != "hidden_layers"):  # hidden layers first: the rest depend on it
        if name in ("width", "dropout") and params["hidden_layers"] == 0:
            continue
        kind, *args = space[name]
        if kind == "choice":
            params[name] = trial.suggest_categorical(name, list(args))
        elif kind in ("log", "float"):
            params[name] = trial.suggest_float(name, float(args[0]), float(args[1]), log=kind == "log")
        elif kind == "int":
            params[name] = trial.suggest_int(name, int(args[0]), int(args[1]))
        else:
            raise ValueError(f"mlp probe: space '{name}': kind '{kind}' is not one of choice, log, float, int")
    return Candidate(**params)


def report_and_prune(trials: list[Any]) -> OnCheck:
    """The check callback of a group of Optuna trials: report each score, return the positions to prune."""

    def on_check(check: int, scores: dict[int, float]) -> set[int]:
        pruned = set()
        for pos, score in scores.items():
            trials[pos].report(score, check)
            if trials[pos].should_prune():
                pruned.add(pos)
        return pruned

    return on_check


class MLPProbe(BaseEstimator):
    """HEAR-style MLP probe with a grid or Optuna search over stacked candidates (module docstring).

    Args:
        n_classes: Outputs C (2 for a binary task, 1 for regression).
        label_type: ``single``, ``binary``, ``multilabel`` or ``regression``.
        metric: Primary validation metric (early stopping and selection).
        search: ``grid``, ``optuna`` or ``none``.
        trials: Optuna trial budget.
        space: Optuna space: name → ``("log"|"float"|"int", low, high)`` or ``("choice", *values)``.
        grid: Grid: name → values.
        grid_points: Grid points tried after the fixed-seed shuffle (HEAR: 8).
        add_linear_point: Add a 0-hidden-layer point to the grid (evalbench; HEAR's preset: False).
        hidden_layers: Fixed candidate: hidden layers.
        width: Fixed candidate: hidden width (HEAR: 1024).
        lr: Fixed candidate: Adam learning rate.
        weight_decay: Fixed candidate: Adam L2 weight decay (HEAR: none).
        dropout: Fixed candidate: dropout probability (HEAR: 0.1).
        init: Fixed candidate: ``xavier_uniform`` or ``xavier_normal``.
        batch_size: Minibatch size (HEAR: 1024).
        max_epochs: Epoch limit (HEAR: 500).
        check_every: Epochs between validation checks (HEAR: 3).
        patience: Checks without improvement before stopping (HEAR: 20).
        parallel: Candidates trained at once (per shape group, per Optuna batch).
        prune_startup: MedianPruner ``n_startup_trials``.
        prune_warmup: MedianPruner ``n_warmup_steps`` (checks).
        dtype: ``float32`` or ``float64`` (reproducibility checks).
        random_state: Seed of initialisation, dropout, batch order and the Optuna sampler.
        device: Torch device string.
    """

    def __init__(
        self,
        n_classes: int,
        label_type: str = "single",
        metric: str = "accuracy",
        search: str = "grid",
        trials: int = 8,
        space: dict[str, tuple] = DEFAULT_SPACE,
        grid: dict[str, tuple] = HEAR_GRID,
        grid_points: int = 8,
        add_linear_point: bool = True,
        hidden_layers: int = 1,
        width: int = 1024,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        dropout: float = 0.1,
        init: str = "xavier_uniform",
        batch_size: int = 1024,
        max_epochs: int = 500,
        check_every: int = 3,
        patience: int = 20,
        parallel: int = 8,
        prune_startup: int = 4,
        prune_warmup: int = 5,
        dtype: str = "float32",
        random_state: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_classes, self.label_type, self.metric = n_classes, label_type, metric
        self.search, self.trials, self.space = search, trials, space
        self.grid, self.grid_points, self.add_linear_point = grid, grid_points, add_linear_point
        self.hidden_layers, self.width, self.lr, self.weight_decay = hidden_layers, width, lr, weight_decay
        self.dropout, self.init = dropout, init
        self.batch_size, self.max_epochs = batch_size, max_epochs
        self.check_every, self.patience = check_every, patience
        self.parallel, self.prune_startup, self.prune_warmup = parallel, prune_startup, prune_warmup
        self.dtype, self.random_state, self.device = dtype, random_state, device

    @classmethod
    def label_types(cls, config: dict[str, object]) -> tuple[str, ...]:
        """Label types the probe fits with ``config`` (checked by ``evalbench run`` before any work)."""
        return LABEL_TYPES

    @property
    def fixed_params(self) -> dict[str, Any]:
        """The fixed candidate's parameters (``search="none"``, and every value a search leaves alone)."""
        return {k: getattr(self, k) for k in CANDIDATE_KEYS}

    def _groups(self, candidates: list[Candidate]) -> list[list[int]]:
        """Positions of ``candidates`` grouped by shape (first-seen order), in chunks of at most ``parallel``."""
        by_shape: dict[tuple[int, int], list[int]] = {}
        for k, cand in enumerate(candidates):
            by_shape.setdefault(cand.shape, []).append(k)
        step = max(1, int(self.parallel))
        return [ks[i : i + step] for ks in by_shape.values() for i in range(0, len(ks), step)]

    def _train(self, group: list[Candidate], on_check: OnCheck | None = None) -> list[Outcome]:
        x, y, xv, yv = self._data
        schedule = Schedule(self.batch_size, self.max_epochs, self.check_every, self.patience)
        return train_group(group, x, y, xv, yv, self.n_classes, self.label_type, self.metric, schedule,
                           self.random_state, on_check, self._target)  # fmt: skip

    def _run_optuna(self) -> list[Outcome]:
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(logging.WARNING)
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=self.random_state),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=self.prune_startup, n_warmup_steps=self.prune_warmup),
        )
        outcomes: list[Outcome] = []
        while len(outcomes) < self.trials:
            asked = [study.ask() for _ in range(min(max(1, self.parallel), self.trials - len(outcomes)))]
            batch = [suggest(t, dict(self.space), self.fixed_params) for t in asked]
            results: list[Outcome | None] = [None] * len(batch)
            for group in self._groups(batch):
                on_check = report_and_prune([asked[k] for k in group])
                for pos, out in zip(group, self._train([batch[k] for k in group], on_check), strict=True):
                    results[pos] = out
                    if out.pruned:
                        study.tell(asked[pos], state=TrialState.PRUNED)
                    else:
                        study.tell(asked[pos], out.valid)
            outcomes += [r for r in results if r is not None]
        return outcomes

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray) -> MLPProbe:
        """Search, train and keep the best candidate on validation.

        Args:
            x: ``(n, D)`` training embeddings.
            y: Training labels (``(n,)`` int, ``(n, C)`` multi-hot, or ``(n,)`` float regression targets).
            x_valid: Validation embeddings.
            y_valid: Validation labels.

        Returns:
            self, with ``net_`` (the chosen network), ``best_params_``, ``best_epoch_``, ``valid_score_``,
            ``trials_`` (every candidate: params, validation score and loss, state, epochs) and ``chosen_``.

        Raises:
            ValueError: An unknown search, dtype or label type; a regression task with ``n_classes`` other than 1.
        """
        if self.label_type not in LABEL_TYPES:
            raise ValueError(f"mlp probe: label type '{self.label_type}' is not one of {', '.join(LABEL_TYPES)}")
        if self.search not in SEARCHES:
            raise ValueError(f"mlp probe: search '{self.search}' is not one of {', '.join(SEARCHES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"mlp probe: dtype '{self.dtype}' is not one of {', '.join(DTYPES)}")
        dev, dtype = torch.device(self.device), DTYPES[self.dtype]
        ydtype = dtype if self.label_type in ("multilabel", "regression") else torch.int64
        self._target = (0.0, 1.0)
        if self.label_type == "regression":
            if self.n_classes != 1:
                raise ValueError(f"mlp probe: a regression task has one output, got n_classes={self.n_classes}")
            self._target = target_scaling(y)  # training targets only
            y = (np.asarray(y, np.float64) - self._target[0]) / self._target[1]
        self.target_mean_, self.target_scale_ = self._target
        self._data = (
            torch.as_tensor(np.asarray(x), dtype=dtype, device=dev),
            torch.as_tensor(np.asarray(y), dtype=ydtype, device=dev),
            torch.as_tensor(np.asarray(x_valid), dtype=dtype, device=dev),
            np.asarray(y_valid),
        )
        try:
            if self.search == "optuna":
                outcomes = self._run_optuna()
            else:
                fixed = self.fixed_params
                cands = (
                    [Candidate(**fixed)]
                    if self.search == "none"
                    else grid_candidates(dict(self.grid), self.grid_points, fixed, self.add_linear_point)
                )
                outcomes = [Outcome(c) for c in cands]
                for group in self._groups(cands):
                    for k, out in zip(group, self._train([cands[k] for k in group]), strict=True):
                        outcomes[k] = out
        finally:
            del self._data, self._target
        eligible = [k for k, o in enumerate(outcomes) if not o.pruned]
        pick = min(eligible, key=lambda k: (-outcomes[k].valid, outcomes[k].valid_loss, k))
        best = outcomes[pick]
        self.net_ = StackedMLP.stack([best.state], [best.candidate.dropout])
        self.best_params_ = best.candidate.params()
        self.best_epoch_, self.valid_score_ = best.best_epoch, oriented(self.metric, float(best.valid))
        self.trials_ = [
            {"number": k, "params": o.candidate.params(), "valid": oriented(self.metric, float(o.valid)),
             "valid_loss": float(o.valid_loss),
             "state": "pruned" if o.pruned else "complete", "epochs": o.epochs, "best_epoch": o.best_epoch}
            for k, o in enumerate(outcomes)
        ]  # fmt: skip
        self.chosen_ = {**self.best_params_, "epoch": self.best_epoch_, "search": self.search, "trials": self.trials_}
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(n, C)`` of the chosen network (BatchNorm running statistics, no dropout).

        Regression: float64 predictions ``(n, 1)`` in the targets' units.
        """
        t = self.net_.tensors["w_out"]
        with torch.no_grad():
            logits = self.net_.forward(torch.as_tensor(np.asarray(x), dtype=t.dtype, device=t.device))[0]
        if self.label_type == "regression":
            return outputs(logits, self.label_type, (self.target_mean_, self.target_scale_))[:, None]
        return logits.cpu().numpy()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax) or tag probabilities (sigmoid), ``(n, C)``.

        Raises:
            ValueError: On a regression task (use :meth:`predict`).
        """
        if self.label_type == "regression":
            raise ValueError("mlp probe: a regression task has no class probabilities; use predict(x)")
        return probabilities(torch.from_numpy(self.decision_function(x)), self.label_type)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices ``(n,)``, a 0/1 matrix ``(n, C)`` at threshold 0.5 (multilabel), or regression ``(n,)``."""
        if self.label_type == "regression":
            return self.decision_function(x)[:, 0]
        proba = self.predict_proba(x)
        return (proba >= 0.5).astype(np.int64) if self.label_type == "multilabel" else proba.argmax(1)


__all__ = ["DEFAULT_SPACE", "GRID_SEED", "HEAR_GRID", "MLPProbe", "grid_candidates", "report_and_prune", "suggest"]
