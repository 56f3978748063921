"""The linear probe: one ``Linear(D, C)``, trained by Adam with the lr chosen on validation, or to convergence.

``solver="newton"`` (the ``evalbench`` protocol preset, v3) solves the
L2-regularised logistic regression to convergence by Newton-CG and chooses the
strength on validation (:mod:`evalbench.probes.lbfgs` for the path,
:mod:`evalbench.probes.newton` for the solver); ``solver="lbfgs"`` is protocol
v2's L-BFGS to an absolute gradient tolerance, kept to reproduce v2 records.
``solver="adam"`` (the default of the class, the reference harness's
algorithm) is described below.

Adam protocol (docs/protocol.md §2.2, the reference linear evaluation, with evalbench's
fixes): PyTorch-default initialisation; standard mean cross-entropy for single
and binary tasks (a binary task has 2 logits and integer labels, never a
one-column binarised label, flaw 1) and BCE-with-logits for multi-label; Adam
(β = 0.9, 0.999, ε = 1e-8, weight decay 1e-8, no schedule); batch
``min(200, n_train)``; at most 200 epochs with early stopping on the task's
primary metric on validation (patience 20 epochs; a tie counts as an
improvement); the best-validation weights are restored.

The learning rate is selected on validation from a small grid
(``DEFAULT_LRS``: 1e-4 … 1e-2 in half-decades spans EVAR's default 3e-4, BYOL-A
v1's and CLMR's 1e-3 and the top of the BYOL-A TASLP search range 1e-5 … 1e-2).  All grid points are
trained *together*: one weight tensor per grid point, same initialisation and
batch order, each with its own Adam learning rate and its own early-stopping
state.  That is the same computation as training them one after another, at
a fraction of the Python overhead.  Ties in the validation metric between
grid points (common when a small validation set saturates) go to the point
with the lower validation loss at its selected epoch.

Regression tasks (``label_type="regression"``, ``n_classes=1``): ``newton`` or ``lbfgs``
fits ridge regression on standardised targets fitted on train only, in closed
form along the same strength path, chosen on validation by the primary metric
(:mod:`evalbench.probes.ridge`); :meth:`LinearProbe.predict` returns ``(n,)``
predictions in the targets' units and ``predict_proba`` refuses.
``solver="adam"`` refuses regression tasks: it exists to reproduce the
reference harness, which has none.

The class is a scikit-learn estimator (``BaseEstimator``: ``get_params``, ``set_params``,
``sklearn.base.clone``): hyperparameters in ``__init__``,
learned state (``coef_``, ``intercept_``, ``best_lr_``...) set by :meth:`fit`.
It never sees test labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError
from evalbench.probes.adam import StackedAdam
from evalbench.probes.design import probe_features
from evalbench.probes.lbfgs import DEFAULT_L2, PathPoint, fit_path, solve
from evalbench.probes.newton import solve_newton
from evalbench.probes.ridge import ridge_solver, target_scaling

DEFAULT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def mean_loss(y: np.ndarray, proba: np.ndarray, label_type: str) -> float:
    """Mean loss of predictions; the selection tie-break.

    Cross-entropy of class probabilities, BCE over clips × classes for multilabel, and for regression the mean
    squared error of predictions ``(n,)`` or ``(n, 1)`` in the targets' units.
    """
    if label_type == "regression":
        return float(np.mean((np.asarray(y, np.float64) - np.asarray(proba, np.float64).reshape(len(y))) ** 2))
    p = np.clip(np.asarray(proba, np.float64), 1e-12, 1 - 1e-12)
    if label_type == "multilabel":
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(y)), y])))


class LinearProbe(BaseEstimator):
    """Linear classifier with validation-selected learning rate and early stopping.

    Args:
        n_classes: Number of output classes C (the task's full vocabulary); 1 for regression.
        label_type: ``single``, ``binary``, ``multilabel`` or ``regression``.
        metric: Validation metric for early stopping and selection.
        lrs: Learning-rate grid.
        max_epochs: Epoch limit.
        patience: Epochs without validation improvement before stopping.
        batch_size: Mini-batch size cap (the batch is ``min(batch_size, n_train)``).
        weight_decay: Adam (L2) weight decay.
        random_state: Seed of initialisation and batch order (Adam; the path solvers do not depend on it).
        device: Torch device string.
        solver: ``adam`` (minibatch, epoch budget, lr grid), ``newton`` (converged, L2 strength grid) or
            ``lbfgs`` (the same path by L-BFGS to an absolute tolerance; protocol v2).
        l2: Path solvers: L2 strengths, strongest first (extended at an edge, bounded).
        l2_patience: Path solvers: path points past the best before stopping.
        tol: Convergence tolerance on the largest absolute gradient entry: ``newton``, relative to the
            strength (≤ ``tol · l2``, scikit-learn's convention); ``lbfgs``, absolute.
        max_iter: ``newton`` / ``lbfgs``: iterations per strength.
        loss_scale: Adam, single-label and binary tasks: ``mean`` (standard mean cross-entropy, evalbench's fix)
            or ``per_class`` (cross-entropy ÷ C, the reference harness's −mean(one-hot · log-softmax) over
            clips × classes; the ``evar`` preset).  Adam is nearly scale-invariant, but not with ε and weight
            decay, so the reproduction uses the reference's scale.
    """

    def __init__(
        self,
        n_classes: int,
        label_type: str = "single",
        metric: str = "accuracy",
        lrs: tuple[float, ...] = DEFAULT_LRS,
        max_epochs: int = 200,
        patience: int = 20,
        batch_size: int = 200,
        weight_decay: float = 1e-8,
        random_state: int = 0,
        device: str = "cpu",
        solver: str = "adam",
        l2: tuple[float, ...] = DEFAULT_L2,
        l2_patience: int = 3,
        tol: float = 1e-4,
        max_iter: int = 1000,
        loss_scale: str = "mean",
    ) -> None:
        if solver not in ("adam", "newton", "lbfgs"):
            raise ValueError(f"linear probe: solver '{solver}' is not one of adam, newton, lbfgs")
        if loss_scale not in ("mean", "per_class"):
            raise ValueError(f"linear probe: loss_scale '{loss_scale}' is not one of mean, per_class")
        self.loss_scale = loss_scale
        self.n_classes = n_classes
        self.label_type = label_type
        self.metric = metric
        self.lrs = lrs
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device
        self.solver, self.l2, self.l2_patience, self.tol, self.max_iter = solver, l2, l2_patience, tol, max_iter

    @classmethod
    def label_types(cls, config: dict[str, object]) -> tuple[str, ...]:
        """Label types the probe fits with ``config``: regression needs a path solver (``newton``/``lbfgs``)."""
        classes = ("single", "binary", "multilabel")
        return (*classes, "regression") if config.get("solver", "adam") in ("newton", "lbfgs") else classes

    @property
    def deterministic(self) -> bool:
        """True when the fit does not depend on ``random_state`` (Newton-CG, L-BFGS: zero start, full batch)."""
        return self.solver in ("newton", "lbfgs")

    def _grad_logits(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gradient of each grid point's mean loss w.r.t. its logits ``(G, B, C)``.

        Mean softmax cross-entropy: (softmax − one-hot) / B (÷ C more with
        ``loss_scale="per_class"``).  Mean BCE-with-logits over B×C entries:
        (sigmoid − y) / (B·C).  Written analytically: for a
        linear model this is exact and avoids autograd's per-step overhead.
        """
        _, b, c = logits.shape
        if self.label_type == "multilabel":
            return (torch.sigmoid(logits) - y) / (b * c)
        grad = torch.softmax(logits, dim=-1)
        grad[:, torch.arange(b, device=y.device), y] -= 1.0
        return grad / (b * c if self.loss_scale == "per_class" else b)

    def _proba(self, logits: torch.Tensor) -> np.ndarray:
        act = torch.sigmoid(logits) if self.label_type == "multilabel" else torch.softmax(logits, dim=-1)
        return act.double().cpu().numpy()

    def _valid_loss(self, y_valid: np.ndarray, proba: np.ndarray) -> float:
        return mean_loss(y_valid, proba, self.label_type)

    def _score(self, y_valid: np.ndarray, proba: np.ndarray) -> float:
        try:
            return M.compute([self.metric], y_valid, proba, self.label_type)[self.metric]
        except MetricUndefinedError as exc:
            raise MetricUndefinedError(f"validation split: {exc}") from None

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray) -> LinearProbe:
        """Train every grid point with early stopping; keep the best on validation.

        Args:
            x: ``(n, D)`` standardised training embeddings.
            y: Training labels (``(n,)`` int, ``(n, C)`` multi-hot, or ``(n,)`` float regression targets).
            x_valid: Validation embeddings.
            y_valid: Validation labels.

        Returns:
            self, with ``coef_`` ``(D, C)``, ``intercept_`` ``(C,)``, ``best_lr_``,
            ``best_epoch_``, ``valid_score_`` and ``grid_`` (per-point best
            validation score and epoch), and ``chosen_`` (what the record shows).

        Raises:
            ValueError: A regression task with ``solver="adam"``.
        """
        if self.label_type == "regression":
            if self.solver not in ("newton", "lbfgs"):
                raise ValueError(
                    f"linear probe: solver '{self.solver}' does not fit regression tasks; use solver 'newton' "
                    "(the evalbench preset: closed-form ridge regression along the L2 path)"
                )
            return self._fit_ridge(x, y, x_valid, y_valid)
        if self.solver in ("newton", "lbfgs"):
            return self._fit_path(x, y, x_valid, y_valid)
        dev = torch.device(self.device)
        gen = torch.Generator().manual_seed(self.random_state)
        xt = torch.as_tensor(np.asarray(x, np.float32), device=dev)
        xv = torch.as_tensor(np.asarray(x_valid, np.float32), device=dev)
        ydtype = torch.float32 if self.label_type == "multilabel" else torch.int64
        yt = torch.as_tensor(np.asarray(y), dtype=ydtype, device=dev)
        n, d = xt.shape
        g, c = len(self.lrs), self.n_classes
        bound = 1.0 / d**0.5  # nn.Linear's default: U(-1/sqrt(D), 1/sqrt(D)) for weight and bias
        w0 = (torch.rand(d, c, generator=gen) * 2 - 1) * bound
        b0 = (torch.rand(c, generator=gen) * 2 - 1) * bound
        weight = w0.to(dev).expand(g, d, c).clone()
        bias = b0.to(dev).expand(g, c).clone()
        adam = StackedAdam([weight, bias], torch.tensor(self.lrs, dtype=torch.float32, device=dev), self.weight_decay)
        batch = min(self.batch_size, n)
        best = np.full(g, -np.inf)
        best_loss = np.full(g, np.inf)
        best_epoch = np.zeros(g, dtype=int)
        waited = np.zeros(g, dtype=int)
        best_w, best_b = weight.clone(), bias.clone()
        for epoch in range(1, self.max_epochs + 1):
            order = torch.randperm(n, generator=gen).to(dev)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                xb = xt[idx]
                grad = self._grad_logits(torch.matmul(xb, weight) + bias[:, None], yt[idx])
                adam.step([torch.matmul(xb.T, grad), grad.sum(1)])
            proba = self._proba(torch.matmul(xv, weight) + bias[:, None])
            for k in np.flatnonzero(waited < self.patience):
                score = M.oriented(self.metric, self._score(y_valid, proba[k]))  # higher is better
                if score >= best[k]:
                    best[k], best_epoch[k], waited[k] = score, epoch, 0
                    best_loss[k] = self._valid_loss(y_valid, proba[k])
                    best_w[k], best_b[k] = weight[k], bias[k]
                else:
                    waited[k] += 1
                    if waited[k] >= self.patience:
                        adam.lr[k] = 0.0
            if (waited >= self.patience).all():
                break
        pick = int(np.lexsort((best_loss, -best))[0])  # best metric; ties: lowest validation loss
        self.coef_ = best_w[pick].cpu().numpy()
        self.intercept_ = best_b[pick].cpu().numpy()
        self.best_lr_ = float(self.lrs[pick])
        self.best_epoch_ = int(best_epoch[pick])
        self.valid_score_ = M.oriented(self.metric, float(best[pick]))
        self.grid_ = [
            {"lr": float(lr), "valid": M.oriented(self.metric, float(s)), "epoch": int(e)}
            for lr, s, e in zip(self.lrs, best, best_epoch, strict=True)
        ]
        self.chosen_ = {"lr": self.best_lr_, "epoch": self.best_epoch_, "grid": self.grid_}
        return self

    def _fit_path(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray) -> LinearProbe:
        """Converged L2 logistic regression along the strength path, chosen on validation (module docstring)."""
        dev = torch.device(self.device)
        features = probe_features(x, x_valid, dev)
        multilabel = self.label_type == "multilabel"
        yt = torch.as_tensor(np.asarray(y), dtype=torch.float64 if multilabel else torch.int64, device=dev)

        def valid_score(logits: torch.Tensor) -> tuple[float, float]:
            proba = self._proba(logits)
            return M.oriented(self.metric, self._score(y_valid, proba)), self._valid_loss(y_valid, proba)

        points, added = fit_path(
            features.train, yt, features.valid, valid_score, self.n_classes, multilabel, tuple(self.l2),
            self.l2_patience, self.max_iter, self.tol, solve_newton if self.solver == "newton" else solve,
        )  # fmt: skip
        pick = self._choose(points, added, features.rank)
        self.coef_ = features.lift(pick.weight).float().cpu().numpy()
        self.intercept_ = pick.bias.float().cpu().numpy()
        return self

    def _fit_ridge(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray) -> LinearProbe:
        """Closed-form ridge on standardised targets along the strength path, chosen on validation (module doc)."""
        dev = torch.device(self.device)
        features = probe_features(x, x_valid, dev)
        mean, scale = target_scaling(y)  # training targets only
        self.target_mean_, self.target_scale_ = mean, scale
        train = features.train
        t = torch.as_tensor((np.asarray(y, np.float64) - mean) / scale, device=dev)[:, None]

        def valid_score(z: torch.Tensor) -> tuple[float, float]:
            pred = mean + scale * z[:, 0].cpu().numpy()
            return M.oriented(self.metric, self._score(y_valid, pred)), self._valid_loss(y_valid, pred)

        points, added = fit_path(
            train, t, features.valid, valid_score, 1, False, tuple(self.l2), self.l2_patience,
            solver=ridge_solver(train, t),
        )  # fmt: skip
        pick = self._choose(points, added, features.rank)
        # float64, in target units: predict = x @ coef_ + intercept_
        self.coef_ = scale * features.lift(pick.weight).cpu().numpy()
        self.intercept_ = mean + scale * pick.bias.cpu().numpy()
        return self

    def _choose(self, points: list[PathPoint], added: list[float], rank: int) -> PathPoint:
        """The validation-best path point (ties: lower validation loss); sets ``grid_``, ``chosen_`` and friends."""
        pick = min(points, key=lambda p: (-p.valid, p.valid_loss))
        self.best_lr_, self.best_epoch_, self.valid_score_ = None, None, M.oriented(self.metric, float(pick.valid))
        self.grid_ = [
            {
                "l2": p.l2,
                "valid": M.oriented(self.metric, p.valid),
                "iterations": p.iterations,
                "converged": p.converged,
            }
            for p in sorted(points, key=lambda p: -p.l2)
        ]
        strengths = [p.l2 for p in points]
        edge = "strongest" if pick.l2 == max(strengths) else "weakest" if pick.l2 == min(strengths) else None
        self.chosen_: dict[str, Any] = {
            "l2": pick.l2,
            "iterations": pick.iterations,
            "converged": pick.converged,
            "rank": int(rank),
            "extended": added,
            "on_edge": edge,
            "grid": self.grid_,
        }
        return pick

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(n, C)`` (regression: float64 predictions ``(n, 1)`` in the targets' units)."""
        if self.label_type == "regression":
            return np.asarray(x, np.float64) @ self.coef_ + self.intercept_
        return np.asarray(x, np.float32) @ self.coef_ + self.intercept_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax) or tag probabilities (sigmoid), ``(n, C)``.

        Raises:
            ValueError: On a regression task (use :meth:`predict`).
        """
        if self.label_type == "regression":
            raise ValueError("linear probe: a regression task has no class probabilities; use predict(x)")
        return self._proba(torch.from_numpy(self.decision_function(x)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices ``(n,)``, a 0/1 matrix ``(n, C)`` at threshold 0.5 for multilabel, or regression ``(n,)``."""
        if self.label_type == "regression":
            return self.decision_function(x)[:, 0]
        proba = self.predict_proba(x)
        return (proba >= 0.5).astype(np.int64) if self.label_type == "multilabel" else proba.argmax(1)
