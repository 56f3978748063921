"""Supervised baselines: logits paths, class-balanced sampling, default initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalbench.adapters.supervised_nets import KumarNet
from evalbench.pretrain.base import default_init
from evalbench.pretrain.supervised import BalancedSampler, Supervised, SupervisedRecipeOptions
from evalbench.specs.recipe import TrainSpec


def test_kumar_logits_are_the_pre_sigmoid_scores() -> None:
    net = KumarNet(5).eval()
    spec = torch.randn(2, 1, 128, 128)
    with torch.no_grad():
        logits = net.logits(spec)
        probs = net(spec)
    assert logits.shape == probs.shape == (2, 5)
    # forward averages sigmoid(map); the logits average the map itself: sigmoid(mean) != mean(sigmoid) in general,
    # but for the 1x1 map of a 128-frame input they coincide
    torch.testing.assert_close(torch.sigmoid(logits), probs, rtol=1e-5, atol=1e-6)


def test_balanced_sampler_draws_classes_evenly_and_deterministically() -> None:
    labels = [0] * 90 + [1] * 10
    sampler = BalancedSampler(labels, batch_size=50, seed=3)
    batches = [b for _, b in zip(range(40), sampler.iter_from(0), strict=False)]
    picks = np.array([labels[i] for batch in batches for _, i in batch])
    assert abs(picks.mean() - 0.5) < 0.05  # 1/count weights: half the draws from the 10-clip class
    again = next(iter(sampler.iter_from(7)))
    assert again == batches[7]
    assert {e for batch in batches for e, _ in batch} == set(range(20))  # 2 steps per "epoch" of 100 clips


def test_default_init_undoes_the_twins_he_init() -> None:
    torch.manual_seed(0)
    net = KumarNet(5)
    he = net.layer1[0].weight.std().item()
    default_init(net)
    assert net.layer1[0].weight.std().item() < 0.8 * he  # PyTorch's default is narrower than He-normal


@pytest.mark.parametrize("arch", ["vgg", "lstm", "crnn"])
def test_training_step_is_finite_and_learns(arch: str) -> None:
    torch.manual_seed(0)
    method = Supervised(SupervisedRecipeOptions(arch=arch, n_classes=2, unit_seconds=0.5), TrainSpec(batch_size=4))
    t = torch.arange(22050) / 44100
    wav = torch.stack([torch.sin(2 * torch.pi * f * t) * 0.3 for f in (200, 210, 2000, 2100)])
    labels = torch.tensor([0, 0, 1, 1])
    opt = torch.optim.Adam(method.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    method.augment = None
    losses = []
    for _ in range(15):
        method.train()
        loss = method.training_step((wav, labels), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert method.accuracy(iter([(wav, labels)])) == 1.0
