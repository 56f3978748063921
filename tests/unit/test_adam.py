"""StackedAdam: the fused per-candidate update equals the written-out one and torch.optim.Adam run per candidate.

Tolerance: float64 to 1e-12 (the three differ only in the order of a few floating-point operations).
"""

from __future__ import annotations

import pytest
import torch

from evalbench.probes.adam import StackedAdam

G = 3
LR = (1e-1, 1e-2, 0.0)  # the last candidate is frozen
DECAY = (0.0, 1e-2, 1e-3)


def problem() -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(G, 5, 7, generator=gen, dtype=torch.float64), torch.randn(G, 4, generator=gen,
              dtype=torch.float64)]  # fmt: skip
    grads = [[torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params] for _ in range(4)]
    return params, grads


@pytest.mark.parametrize("fused", [True, False])
def test_matches_torch_adam_per_candidate(fused: bool) -> None:
    params, grads = problem()
    ours = [p.clone() for p in params]
    adam = StackedAdam(ours, torch.tensor(LR, dtype=torch.float64), torch.tensor(DECAY, dtype=torch.float64))
    refs = [[p[k].clone() for p in params] for k in range(G)]
    opts = [torch.optim.Adam(r, lr=LR[k], weight_decay=DECAY[k]) for k, r in enumerate(refs)]
    for step in grads:
        if fused:
            adam.step([g.transpose(-1, 0).contiguous().transpose(-1, 0) for g in step])  # non-contiguous gradients
        else:
            adam.t += 1
            adam._step_unfused(step)
        for k, opt in enumerate(opts):
            for r, g in zip(refs[k], step, strict=True):
                r.grad = g[k].clone()
            opt.step()
    for k in range(G):
        for p, r in zip(ours, refs[k], strict=True):
            torch.testing.assert_close(p[k], r, rtol=1e-12, atol=1e-12)
    for p, p0 in zip(ours, params, strict=True):
        torch.testing.assert_close(p[2], p0[2], rtol=0, atol=0)  # learning rate 0: frozen
