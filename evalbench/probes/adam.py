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
        """Apply one update given the gradients of the parameters.

        On CPU and CUDA, each candidate's slices of every parameter are updated by one call of PyTorch's fused
        Adam kernel (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)`` runs) with the candidate's
        learning rate and weight decay: one pass over the parameter, gradient and moments instead of a dozen
        full-size temporaries.  Elsewhere (or for non-contiguous parameters), the same update written out.
        """
        self.t += 1
        grads = [g.contiguous() for g in grads]
        if self.params[0].device.type in ("cpu", "cuda") and all(p.is_contiguous() for p in self.params):
            b1, b2 = self.betas
            step = [torch.tensor(float(self.t), device=self.params[0].device)] * len(self.params)
            for k, (lr, wd) in enumerate(zip(self.lr.tolist(), self.weight_decay.tolist(), strict=True)):
                torch._fused_adam_(
                    [p[k] for p in self.params], [g[k] for g in grads], [m[k] for m in self.m],
                    [v[k] for v in self.v], [], step, lr=lr, beta1=b1, beta2=b2, weight_decay=wd, eps=self.eps,
                    amsgrad=False, maximize=False,
                )  # fmt: skip
            return
        self._step_unfused(grads)

    def _step_unfused(self, grads: list[torch.Tensor]) -> None:
        """The update of :meth:`step` written out on whole stacked tensors (devices without the fused kernel)."""
        b1, b2 = self.betas
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            shape = (-1, *([1] * (p.dim() - 1)))
            grad = g + self.weight_decay.view(shape) * p
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
            p.sub_(self.lr.view(shape) / (1 - b1**self.t) * m / denom)


__all__ = ["StackedAdam"]
