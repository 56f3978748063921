"""Adam over stacked candidates: one learning rate and one weight decay per candidate.

Probes train several candidates together (the linear probe's learning-rate
grid, the MLP probe's search trials): each parameter tensor carries the
candidate as its first axis.  ``torch.optim.Adam`` holds one learning rate per
parameter group, and a single stacked tensor cannot carry several, so the
update is written out here.  It is the update of ``torch.optim.Adam`` (Kingma &
Ba, ICLR 2015) with L2 ``weight_decay`` added to the gradient, applied per
candidate; ``tests/unit/test_linear_probe.py`` checks it against
``torch.optim.Adam`` run one candidate at a time.
"""

from __future__ import annotations

import torch


class StackedAdam:
    """Adam with a per-candidate learning rate and weight decay; a learning rate of 0 freezes a candidate.

    Args:
        params: Parameters whose first axis is the candidate.
        lr: ``(G,)`` learning rates.
        weight_decay: L2 weight decay, one value for all or ``(G,)``.
        betas: Adam's moment decays.
        eps: Adam's denominator floor.
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        lr: torch.Tensor,
        weight_decay: float | torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.weight_decay = torch.as_tensor(weight_decay, dtype=lr.dtype, device=lr.device).expand(lr.shape)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        """Apply one update given the gradients of the parameters."""
        self.t += 1
        b1, b2 = self.betas
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            shape = (-1, *([1] * (p.dim() - 1)))
            grad = g + self.weight_decay.view(shape) * p
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
            p.sub_(self.lr.view(shape) / (1 - b1**self.t) * m / denom)


__all__ = ["StackedAdam"]
