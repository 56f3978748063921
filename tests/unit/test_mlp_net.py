"""The stacked MLP equals G separate torch.nn.Sequential networks: forward, backward, running statistics, dropout.

Tolerances: float64 to 1e-10 (the stack and nn.Linear sum in different orders, nothing else differs); float32 to
1e-5 relative.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evalbench.bench.mlp_loop import build
from evalbench.probes.mlp_net import Candidate, StackedMLP

D, C, W, B = 7, 4, 12, 16


def candidates(dropout: float = 0.0, hidden: int = 2) -> list[Candidate]:
    return [
        Candidate(hidden, W, 1e-3, 0.0, dropout, "xavier_uniform"),
        Candidate(hidden, W, 1e-2, 1e-4, dropout, "xavier_normal"),
        Candidate(hidden, W, 3e-4, 0.0, dropout, "xavier_normal"),
    ]


def parts(model: nn.Sequential) -> tuple[list[nn.Linear], list[nn.BatchNorm1d]]:
    return [m for m in model if isinstance(m, nn.Linear)], [m for m in model if isinstance(m, nn.BatchNorm1d)]


def candidate_params(net: StackedMLP, k: int) -> list[torch.Tensor]:
    """Candidate ``k``'s parameters, in nn.Sequential.parameters() order and nn.Linear's (out, in) layout."""
    return [p[k] for p in net.parameters()]


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("hidden", [0, 1, 2])
def test_stack_equals_separate_sequentials(dtype: torch.dtype, tol: float, hidden: int) -> None:
    cands = candidates(hidden=hidden)
    net = StackedMLP.initialise(cands, D, C, random_state=3, dtype=dtype)
    models = [build(c, D, C, 3, dtype) for c in cands]
    x = torch.randn(B, D, generator=torch.Generator().manual_seed(0), dtype=dtype)
    y = torch.arange(B) % C
    for k, model in enumerate(models):  # the same initial weights
        for a, b in zip(candidate_params(net, k), model.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    for step in range(3):  # training forward and backward, three times (running statistics accumulate)
        logits = net.forward(x + step, training=True)
        loss = sum(F.cross_entropy(logits[k], y) for k in range(len(cands)))
        grads = torch.autograd.grad(loss, net.parameters())
        for k, model in enumerate(models):
            model.train()
            ref = model(x + step)
            torch.testing.assert_close(logits[k], ref, rtol=tol, atol=tol)
            ref_grads = torch.autograd.grad(F.cross_entropy(ref, y), list(model.parameters()))
            # net.parameters() is in nn.Sequential.parameters() order: w0 b0 gamma0 beta0 ... w_out b_out
            for g, g_ref in zip(grads, ref_grads, strict=True):
                torch.testing.assert_close(g[k], g_ref, rtol=tol, atol=tol)
    for k, model in enumerate(models):
        for i, bn in enumerate(parts(model)[1]):
            torch.testing.assert_close(net.tensors[f"mean{i}"][k], bn.running_mean, rtol=tol, atol=tol)
            torch.testing.assert_close(net.tensors[f"var{i}"][k], bn.running_var, rtol=tol, atol=tol)
        model.eval()
        with torch.no_grad():  # evaluation uses the running statistics
            torch.testing.assert_close(net.forward(x)[k], model(x), rtol=tol, atol=tol)


def test_dropout_draws_match_torch_dropout() -> None:
    cands = candidates(dropout=0.3)
    net = StackedMLP.initialise(cands, D, C, random_state=5, dtype=torch.float64)
    x = torch.randn(B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    logits = net.forward(x, training=True)
    for k, cand in enumerate(cands):
        model = build(cand, D, C, 5, torch.float64).train()
        torch.manual_seed(cand.seed(5))  # nn.Dropout draws from the global generator
        torch.testing.assert_close(logits[k], model(x), rtol=1e-10, atol=1e-10)
    plain = StackedMLP.initialise(candidates(dropout=0.0), D, C, 5, torch.float64).forward(x, training=True)
    assert not torch.allclose(logits, plain)  # same weights (the seed ignores dropout): the masks act


def test_select_keeps_the_chosen_candidates() -> None:
    net = StackedMLP.initialise(candidates(), D, C, random_state=0, dtype=torch.float64)
    x = torch.randn(B, D, dtype=torch.float64)
    with torch.no_grad():
        full = net.forward(x)
    net.select([2, 0])
    with torch.no_grad():
        torch.testing.assert_close(net.forward(x), full[[2, 0]], rtol=0, atol=0)
    assert len(net) == 2 and all(p.requires_grad for p in net.parameters())
    single = StackedMLP.stack([net.snapshot(1)], [0.0])
    torch.testing.assert_close(single.forward(x)[0], full[0], rtol=0, atol=0)


def test_one_shape_per_stack_and_seeds_follow_the_architecture() -> None:
    with pytest.raises(ValueError, match="one shape"):
        StackedMLP.initialise([Candidate(1, 8, 1e-3, 0, 0, "xavier_uniform"), Candidate(2, 8, 1e-3, 0, 0,
                               "xavier_uniform")], D, C, 0)  # fmt: skip
    a, b = Candidate(1, 8, 1e-3, 0.0, 0.1, "xavier_uniform"), Candidate(1, 8, 1e-2, 1e-3, 0.3, "xavier_uniform")
    assert a.seed(0) == b.seed(0)  # only lr / decay / dropout differ: common initial weights
    assert a.seed(0) != a.seed(1) and a.seed(0) != Candidate(1, 8, 1e-3, 0.0, 0.1, "xavier_normal").seed(0)
    assert Candidate(0, 8, 1e-3, 0, 0, "xavier_uniform").shape == Candidate(0, 64, 1e-3, 0, 0, "xavier_uniform").shape
    with pytest.raises(ValueError, match="init"):
        Candidate(1, 8, 1e-3, 0.0, 0.1, "kaiming")


def test_dropout_mixes_candidates_with_and_without_dropout() -> None:
    cands = [Candidate(1, W, 1e-3, 0.0, p, "xavier_uniform") for p in (0.3, 0.0, 0.5)]
    net = StackedMLP.initialise(cands, D, C, random_state=5, dtype=torch.float64)
    x = torch.randn(B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    logits = net.forward(x, training=True)
    for k, cand in enumerate(cands):
        model = build(cand, D, C, 5, torch.float64).train()
        torch.manual_seed(cand.seed(5))
        torch.testing.assert_close(logits[k], model(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("hidden", [0, 1, 2])
def test_first_layer_gradient_written_into_the_given_buffer(hidden: int) -> None:
    net = StackedMLP.initialise(candidates(hidden=hidden), D, C, random_state=1, dtype=torch.float64)
    x = torch.randn(B, D, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.arange(B) % C
    grads = []
    for buffer in (None, torch.full_like(net.parameters()[0], float("nan"))):
        logits = net.forward(x, training=True, first_grad=buffer)
        loss = sum(F.cross_entropy(logits[k], y) for k in range(len(net)))
        grads.append(torch.autograd.grad(loss, net.parameters()))
        if buffer is not None:
            assert grads[-1][0] is buffer or grads[-1][0].data_ptr() == buffer.data_ptr()
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
