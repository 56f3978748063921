"""The exponential moving average that builds a target network (BYOL, BYOL-A, MSN).

After every optimiser step, ξ ← τ·ξ + (1 − τ)·θ for every *parameter* of the
target network ξ and its online twin θ (Grill et al., NeurIPS 2020, eq. 1).
Buffers (BatchNorm running statistics) are not averaged: the target's evolve
through its own forward passes in training mode, as in BYOL-A (METHODS §1.5,
fidelity pitfall).  The update is one fused ``torch._foreach_lerp_`` over all
parameters; under DistributedDataParallel every rank holds identical online
parameters after the all-reduced step, so the targets stay identical too.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(online: nn.Module) -> nn.Module:
    """A deep copy of ``online`` with gradients off: the target network at initialisation."""
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """ξ ← τ·ξ + (1 − τ)·θ over parameters only (τ = 1 keeps the target, τ = 0 copies the online net).

    Args:
        target: Target network (updated in place).
        online: Online network, same architecture.
        tau: Decay rate in [0, 1] (BYOL-A: 0.99 constant).
    """
    t = [p for p in target.parameters()]
    o = [p.detach() for p in online.parameters()]
    if len(t) != len(o):
        raise ValueError("target and online networks differ in their parameters")
    torch._foreach_lerp_(t, o, 1.0 - tau)
