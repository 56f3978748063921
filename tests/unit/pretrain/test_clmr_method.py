"""CLMR pretraining: the SimCLR step on SampleCNN, its two views, initialisation and export."""

from __future__ import annotations

import math

import torch

from evalbench.adapters.clmr import SampleCNN
from evalbench.pretrain.clmr import Clmr, ClmrRecipeOptions
from evalbench.specs.recipe import OptimizerSpec, TrainSpec

N = 59049


def tones(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(N) / 22050
    freqs = 100 + 2000 * torch.rand(n, 1, generator=gen)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.02 * torch.randn(n, N, generator=gen)


def test_sample_cnn_starts_from_pytorch_defaults_not_the_twins_he_init() -> None:
    torch.manual_seed(0)
    twin = SampleCNN()
    torch.manual_seed(0)
    method = Clmr(ClmrRecipeOptions(), TrainSpec(batch_size=4))
    he = twin.sequential[1][0].weight.std().item()
    assert method.encoder.sequential[1][0].weight.std().item() < 0.8 * he
    assert not any(p.abs().sum() == 0 for p in method.encoder.parameters() if p.ndim > 1)


def test_step_gives_every_parameter_a_gradient_and_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    method = Clmr(ClmrRecipeOptions(), TrainSpec(batch_size=4, optimizer=OptimizerSpec(lr=1e-3)))
    gen = torch.Generator().manual_seed(0)
    a, b = tones(4, 1), tones(4, 1)
    method.train()
    loss = method.training_step((a, b), gen)
    loss.backward()
    assert math.isfinite(loss.item()) and 0 <= loss.item() <= math.log(7) + 1.0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    method.zero_grad()
    method.chain = None  # fixed views: the loss must fall
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = method.training_step((a, b + 0.01 * torch.randn_like(b)), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_export_is_the_encoder_without_projector() -> None:
    method = Clmr(ClmrRecipeOptions(projection=128), TrainSpec(batch_size=4))
    assert method.encoder_network() is method.encoder and method.encoder_options() == {}
    assert method.projector[-1].out_features == 128 and method.projector[0].bias is None
    assert all(not k.startswith("projector") for k in method.encoder_network().state_dict())
