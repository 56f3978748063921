"""Train one group of same-shape MLP candidates together, with early stopping per candidate.

The training schedule is HEAR's (hear-eval-kit, docs/protocol.md §3): Adam, batch
1024, at most 500 epochs, a validation check every 3 epochs (and after the last
epoch), early stopping after 20 checks without improvement of the task's
primary metric on validation (not the loss), and the weights of the best check
restored.  As HEAR's checkpointing (PyTorch Lightning's ``ModelCheckpoint`` and
``EarlyStopping`` in ``max`` mode, ``min_delta`` 0), only a *strictly* higher
score is an improvement: a tie keeps the earlier checkpoint and counts toward
the patience.

The group shares each epoch's minibatch order (``torch.randperm`` from a
generator seeded by ``random_state``: every group, and the one-at-a-time
reference loop, sees the same sequence), while each candidate has its own
learning rate, weight decay, dropout and initialisation.  The loss is the sum
over candidates of each candidate's mean loss, so one backward pass gives each
candidate the gradient of its own loss.  A candidate that stops (patience) or
is pruned (a search's callback) leaves the stack — its parameters and Adam
moments are dropped — so it costs neither training nor validation passes.
A trailing minibatch of one clip is skipped when the network has BatchNorm
layers (batch statistics of one clip are undefined; ``torch.nn.BatchNorm1d``
raises).

Regression tasks (an evalbench extension; HEAR has none): one output, the mean
squared error on targets standardised with the training targets' mean and
standard deviation (``target``), and validation scores on predictions mapped
back to the targets' units.  Scores are compared *oriented* (higher is better,
:func:`evalbench.metric_info.oriented`), so early stopping and selection also
work for lower-is-better metrics such as MAE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError
from evalbench.metric_info import oriented
from evalbench.probes.adam import StackedAdam
from evalbench.probes.linear import mean_loss
from evalbench.probes.mlp_net import Candidate, StackedMLP

OnCheck = Callable[[int, dict[int, float]], set[int]]  # (check index, {position: score}) -> positions to prune


@dataclass(frozen=True)
class Schedule:
    """HEAR's training schedule (module docstring).

    Attributes:
        batch_size: Minibatch size.
        max_epochs: Epoch limit.
        check_every: Epochs between validation checks.
        patience: Checks without strict improvement before a candidate stops.
    """

    batch_size: int = 1024
    max_epochs: int = 500
    check_every: int = 3
    patience: int = 20


@dataclass
class Outcome:
    """What training one candidate produced.

    Attributes:
        candidate: The configuration.
        valid: Best validation primary score, oriented (higher is better).
        valid_loss: Validation loss at that check (the selection tie-break).
        best_epoch: Epoch of the best check.
        epochs: Epochs trained before stopping or pruning.
        pruned: Stopped by the search's pruner rather than by patience or the epoch limit.
        state: The candidate's state at its best check (:meth:`StackedMLP.snapshot`).
    """

    candidate: Candidate
    valid: float = -np.inf
    valid_loss: float = np.inf
    best_epoch: int = 0
    epochs: int = 0
    pruned: bool = False
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def probabilities(logits: torch.Tensor, label_type: str) -> np.ndarray:
    """Sigmoid (multi-label) or softmax probabilities as float64 numpy."""
    act = torch.sigmoid(logits) if label_type == "multilabel" else torch.softmax(logits, dim=-1)
    return act.detach().double().cpu().numpy()


def outputs(logits: torch.Tensor, label_type: str, target: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """What the metrics score: probabilities, or regression predictions ``mean + scale · z`` (float64 numpy).

    Args:
        logits: ``(..., C)`` network outputs.
        label_type: The task's label type.
        target: Regression: the training targets' ``(mean, scale)`` (ignored otherwise).
    """
    if label_type == "regression":
        return target[0] + target[1] * logits[..., 0].detach().double().cpu().numpy()
    return probabilities(logits, label_type)


def stacked_loss(logits: torch.Tensor, y: torch.Tensor, label_type: str) -> torch.Tensor:
    """Sum over candidates of each one's mean loss: softmax CE, BCE-with-logits over clips × classes, or MSE."""
    g, b, c = logits.shape
    if label_type == "regression":  # y: (B,) standardised targets
        return F.mse_loss(logits[..., 0], y.expand(g, b), reduction="sum") / b
    if label_type == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="sum") / (b * c)
    return F.cross_entropy(logits.reshape(g * b, c), y.repeat(g), reduction="sum") / b


def validation_score(metric: str, y_valid: np.ndarray, proba: np.ndarray, label_type: str) -> float:
    """The primary metric on validation, oriented so that higher is better.

    Raises:
        MetricUndefinedError: The metric is undefined on the validation labels.
    """
    try:
        return oriented(metric, M.compute([metric], y_valid, proba, label_type)[metric])
    except MetricUndefinedError as exc:
        raise MetricUndefinedError(f"validation split: {exc}") from None


def _keep_adam(adam: StackedAdam, params: list[torch.Tensor], keep: list[int]) -> StackedAdam:
    """The optimiser restricted to the candidates at ``keep`` (their learning rates, decays and moments)."""
    index = torch.as_tensor(keep, device=adam.lr.device)
    kept = StackedAdam(params, adam.lr[index], adam.weight_decay[index], adam.betas, adam.eps)
    kept.m, kept.v, kept.t = [m[index] for m in adam.m], [v[index] for v in adam.v], adam.t
    return kept


def train_group(
    candidates: list[Candidate],
    x: torch.Tensor,
    y: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: np.ndarray,
    n_classes: int,
    label_type: str,
    metric: str,
    schedule: Schedule,
    random_state: int,
    on_check: OnCheck | None = None,
    target: tuple[float, float] = (0.0, 1.0),
) -> list[Outcome]:
    """Train same-shape candidates as one stack; each keeps its best check (module docstring).

    Args:
        candidates: Configurations of one shape.
        x: ``(n, D)`` training inputs (the dtype and device of the computation).
        y: Training labels, int64 ``(n,)``, float multi-hot ``(n, C)`` or float standardised targets ``(n,)``.
        x_valid: Validation inputs.
        y_valid: Validation labels (numpy, for the metric).
        n_classes: Outputs C (2 for a binary task).
        label_type: ``single``, ``binary``, ``multilabel`` or ``regression``.
        metric: The primary metric.
        schedule: Batch size, epochs, check interval and patience.
        random_state: Seed of the minibatch order and of the candidates' generators.
        on_check: Called after each check with the (oriented) scores of the active candidates; returns those to
            prune.
        target: Regression: the training targets' ``(mean, scale)``, mapping outputs back to target units.

    Returns:
        One :class:`Outcome` per candidate, in order.
    """
    net = StackedMLP.initialise(candidates, x.shape[1], n_classes, random_state, x.dtype, x.device)
    lr = torch.tensor([c.lr for c in candidates], dtype=x.dtype, device=x.device)
    wd = torch.tensor([c.weight_decay for c in candidates], dtype=x.dtype, device=x.device)
    adam = StackedAdam(net.parameters(), lr, wd)
    outcomes = [Outcome(c, state=net.snapshot(k)) for k, c in enumerate(candidates)]
    active, waited = list(range(len(candidates))), [0] * len(candidates)
    gen = torch.Generator().manual_seed(int(random_state))
    n, check = x.shape[0], 0
    first_grad = torch.empty_like(net.parameters()[0])  # the first layer's weight gradient, reused every step
    for epoch in range(1, schedule.max_epochs + 1):
        order = torch.randperm(n, generator=gen).to(x.device)
        for start in range(0, n, schedule.batch_size):
            idx = order[start : start + schedule.batch_size]
            if len(idx) < 2 and net.hidden_layers:
                continue
            loss = stacked_loss(net.forward(x[idx], training=True, first_grad=first_grad), y[idx], label_type)
            adam.step(list(torch.autograd.grad(loss, net.parameters())))
        if epoch % schedule.check_every and epoch != schedule.max_epochs:
            continue
        check += 1
        with torch.no_grad():
            proba = outputs(net.forward(x_valid), label_type, target)
        scores = {}
        for j, k in enumerate(active):
            out = outcomes[k]
            out.epochs = epoch
            scores[k] = validation_score(metric, y_valid, proba[j], label_type)
            if scores[k] > out.valid:  # strict: a tie keeps the earlier checkpoint (HEAR)
                out.valid, out.best_epoch, waited[k] = scores[k], epoch, 0
                out.valid_loss, out.state = mean_loss(y_valid, proba[j], label_type), net.snapshot(j)
            else:
                waited[k] += 1
        for k in on_check(check, scores) if on_check is not None else set():
            outcomes[k].pruned = True
        keep = [j for j, k in enumerate(active) if waited[k] < schedule.patience and not outcomes[k].pruned]
        if len(keep) < len(active):
            if not keep:
                break
            net.select(keep)
            adam = _keep_adam(adam, net.parameters(), keep)
            first_grad = torch.empty_like(net.parameters()[0])
            active = [active[j] for j in keep]
    return outcomes


__all__ = [
    "OnCheck",
    "Outcome",
    "Schedule",
    "outputs",
    "probabilities",
    "stacked_loss",
    "train_group",
    "validation_score",
]
