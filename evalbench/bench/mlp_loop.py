"""The one-at-a-time reference for the MLP probe's batched search: plain ``torch.nn`` networks, one after another.

Each candidate is a ``torch.nn.Sequential`` (per hidden layer ``Linear →
BatchNorm1d → Dropout → ReLU``, then ``Linear``) trained by
``torch.optim.Adam`` on its own, with what the batched search gives it: the
same initial weights (Xavier draws from the candidate's seeded generator, in
layer order), the same dropout draws (``torch.nn.Dropout`` on CPU draws from the
global generator, seeded here with the candidate's seed), the same minibatch
order, checks, strict-improvement early stopping, best-check restore and
selection rule; for regression, the mean squared error on the standardised
targets and validation scores in the targets' units.  It is written without :mod:`evalbench.probes.mlp_train` so
that it checks it: ``evalbench bench probe`` times the two against each other,
``tests/unit/test_mlp_probe.py`` compares their scores.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evalbench import metrics as M
from evalbench.metric_info import oriented
from evalbench.probes.linear import mean_loss
from evalbench.probes.mlp_net import Candidate, layer_gain


@dataclass
class LoopResult:
    """One candidate trained alone: its best check and its restored network."""

    candidate: Candidate
    valid: float
    valid_loss: float
    best_epoch: int
    epochs: int
    model: nn.Sequential


def build(cand: Candidate, n_in: int, n_out: int, random_state: int, dtype: torch.dtype) -> nn.Sequential:
    """The candidate as a ``torch.nn.Sequential`` with its seeded Xavier initialisation."""
    layers: list[nn.Module] = []
    size = n_in
    for _ in range(cand.hidden_layers):
        layers += [nn.Linear(size, cand.width), nn.BatchNorm1d(cand.width), nn.Dropout(cand.dropout), nn.ReLU()]
        size = cand.width
    layers.append(nn.Linear(size, n_out))
    gen = torch.Generator().manual_seed(cand.seed(random_state))
    init = getattr(nn.init, f"{cand.init}_")
    for i, linear in enumerate(m for m in layers if isinstance(m, nn.Linear)):
        init(linear.weight, gain=layer_gain(i, cand.hidden_layers), generator=gen)
        nn.init.zeros_(linear.bias)
    return nn.Sequential(*layers).to(dtype)


def train_one(
    cand: Candidate,
    x: torch.Tensor,
    y: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: np.ndarray,
    n_classes: int,
    label_type: str,
    metric: str,
    random_state: int,
    batch_size: int = 1024,
    max_epochs: int = 500,
    check_every: int = 3,
    patience: int = 20,
    target: tuple[float, float] = (0.0, 1.0),
) -> LoopResult:
    """Train one candidate alone with HEAR's schedule; the network restored to its best check.

    ``y`` holds standardised targets for regression, and ``target`` their training ``(mean, scale)``; ``valid``
    is the oriented (higher is better) primary metric.
    """
    model = build(cand, x.shape[1], n_classes, random_state, x.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=cand.lr, weight_decay=cand.weight_decay)
    order_gen = torch.Generator().manual_seed(int(random_state))
    torch.manual_seed(cand.seed(random_state))  # nn.Dropout's masks
    best, best_loss, best_epoch, waited, epochs = -np.inf, np.inf, 0, 0, 0
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=order_gen)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2 and cand.hidden_layers:
                continue
            logits = model(x[idx])
            if label_type == "regression":
                loss = F.mse_loss(logits[:, 0], y[idx])
            elif label_type == "multilabel":
                loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            else:
                loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % check_every and epoch != max_epochs:
            continue
        epochs = epoch
        model.eval()
        with torch.no_grad():
            logits = model(x_valid)
        if label_type == "regression":
            proba = target[0] + target[1] * logits[:, 0].double().numpy()
        else:
            act = torch.sigmoid(logits) if label_type == "multilabel" else torch.softmax(logits, -1)
            proba = act.double().numpy()
        score = oriented(metric, M.compute([metric], y_valid, proba, label_type)[metric])
        if score > best:
            best, best_epoch, waited = score, epoch, 0
            best_loss, best_state = mean_loss(y_valid, proba, label_type), copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return LoopResult(cand, float(best), float(best_loss), best_epoch, epochs, model.eval())


def one_at_a_time(candidates: list[Candidate], *args: object, **kwargs: object) -> tuple[int, list[LoopResult]]:
    """Every candidate trained alone (:func:`train_one` arguments); the chosen index and all results.

    The choice: best validation score, ties to the lower validation loss, then the earlier candidate.
    """
    results = [train_one(c, *args, **kwargs) for c in candidates]  # type: ignore[arg-type]
    pick = min(range(len(results)), key=lambda k: (-results[k].valid, results[k].valid_loss, k))
    return pick, results


__all__ = ["LoopResult", "build", "one_at_a_time", "train_one"]
