"""BYOL-A pretraining pieces: the loss and EMA against hand-computed values, the method's training step."""

from __future__ import annotations

import math

import pytest
import torch

from evalbench.pretrain.byola import ByolA, ByolaRecipeOptions
from evalbench.pretrain.ema import ema_update, make_target
from evalbench.pretrain.losses import byol_loss, symmetric_byol_loss
from evalbench.specs.recipe import OptimizerSpec, TrainSpec


def test_byol_loss_hand_computed() -> None:
    p = torch.tensor([[1.0, 0.0], [3.0, 4.0], [1.0, 1.0], [2.0, 0.0]])
    z = torch.tensor([[0.0, 5.0], [3.0, 4.0], [-1.0, -1.0], [1.0, 1.0]])
    # orthogonal: 2; equal direction: 0; opposite: 4; 45 degrees: 2 - 2 cos(pi/4)
    expected = torch.tensor([2.0, 0.0, 4.0, 2 - 2 * math.cos(math.pi / 4)])
    torch.testing.assert_close(byol_loss(p, z), expected, rtol=0, atol=1e-6)
    sym = symmetric_byol_loss(p[:2], p[2:], z[:2], z[2:])
    # mean over the batch of l(p1, z2) + l(p2, z1): rows (p0,z2)+(p2,z0), (p1,z3)+(p3,z1)
    hand = (byol_loss(p[[0, 1]], z[[2, 3]]) + byol_loss(p[[2, 3]], z[[0, 1]])).mean()
    torch.testing.assert_close(sym, hand)
    assert 0 <= float(sym) <= 8


def test_symmetric_loss_sends_no_gradient_to_the_target() -> None:
    p1, p2 = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    z1, z2 = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    symmetric_byol_loss(p1, p2, z1, z2).backward()
    assert p1.grad is not None and p2.grad is not None and z1.grad is None and z2.grad is None


def test_ema_averages_parameters_only() -> None:
    online = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.fill_(5.0)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, tau=0.99)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.99 * b + 0.01 * o)
    assert float(target[1].running_mean.abs().max()) == 0.0  # buffers are not averaged
    ema_update(target, online, tau=0.0)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, o)


def tiny_method(version: str = "v2") -> ByolA:
    options = ByolaRecipeOptions(
        version=version, feature_d=3072 if version == "v2" else 512, hidden=64, projection=16, mixup_bank=8
    )
    torch.manual_seed(0)
    return ByolA(options, TrainSpec(batch_size=4, optimizer=OptimizerSpec(lr=1e-3)))


def crops(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(15200) / 16000
    freqs = 200 + 1800 * torch.rand(n, 1, generator=gen)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.05 * torch.randn(n, 15200, generator=gen)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_training_step_gives_every_online_parameter_a_gradient_and_updates_batchnorm(version: str) -> None:
    method = tiny_method(version)
    stats = method.prepare(iter([crops(4)]))
    assert set(stats) == {"norm_mean", "norm_std"} and stats["norm_std"] > 0
    bn = method.online["encoder"].features[1]
    running = bn.running_mean.clone()
    method.train()
    loss = method.training_step(crops(4, 1), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and 0 <= loss.item() <= 8
    trainable = [*method.online.parameters(), *method.predictor.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
    assert all(p.grad is None for p in method.target.parameters())
    assert not torch.equal(bn.running_mean, running)  # BatchNorm statistics move in training mode
    assert method.encoder_network() is method.online["encoder"]


def test_a_few_steps_lower_the_loss() -> None:
    method = tiny_method()
    method.prepare(iter([crops(8)]))
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = crops(8, 2)
    losses = []
    for step in range(12):
        method.train()
        loss = method.training_step(batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step(step)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_recipe_options_are_checked() -> None:
    with pytest.raises(ValueError, match="feature_d: v2's output is 3072"):
        ByolaRecipeOptions(version="v2", feature_d=2048)
    with pytest.raises(ValueError, match="tau"):
        ByolaRecipeOptions(tau=1.5)


def test_nt_xent_hand_computed() -> None:
    from evalbench.pretrain.losses import nt_xent

    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    tau = 0.5
    views = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=-1)
    total = 0.0
    for i in range(4):  # the definition, one view at a time
        j = (i + 2) % 4
        sims = [float(views[i] @ views[k]) / tau for k in range(4) if k != i]
        total += -(float(views[i] @ views[j]) / tau - math.log(sum(math.exp(s) for s in sims)))
    torch.testing.assert_close(nt_xent(z1, z2, tau), torch.tensor(total / 4))
    equal = nt_xent(torch.ones(3, 2), torch.ones(3, 2), tau)  # every similarity equal: log(2N - 1)
    torch.testing.assert_close(equal, torch.tensor(math.log(5.0)))
    far = nt_xent(torch.eye(3) * 5, torch.eye(3) * 7, 0.1)  # positives aligned, negatives orthogonal: near 0
    assert float(far) < 1e-3
