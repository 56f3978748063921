"""CLAR pretraining: the combined loss, the labelled subset and sampler, heads, initialisation, steps, export."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evalbench.adapters.clar import ClarEncoder
from evalbench.adapters.options.clar import ClarOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.augment.clar import ClarChain
from evalbench.errors import EvalbenchError
from evalbench.pretrain.base import DataRequest, make_optimizer
from evalbench.pretrain.clar import (
    Clar,
    ClarRecipeOptions,
    LabelledFractionSampler,
    clar_loss,
    labelled_subset,
    masked_cross_entropy,
)
from evalbench.pretrain.heads import ClarClassifier, ClarProjectionHead, ClarSemiSupervisedProjection
from evalbench.pretrain.losses import nt_xent
from evalbench.specs.recipe import OptimizerSpec, TrainSpec

SR = 16000


def tones(n: int, samples: int = SR, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / SR
    freqs = 100 + 2000 * torch.rand(n, 1, generator=gen)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.02 * torch.randn(n, samples, generator=gen)


# --- the loss ------------------------------------------------------------------------------------------------


def test_combined_loss_hand_computed_with_unlabelled_clips_masked() -> None:
    z1, z2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.5], [0.0, 2.0], [-1.0, 1.0]])
    logits1 = torch.tensor([[2.0, 0.0], [5.0, -5.0], [0.0, 1.0]])
    logits2 = torch.tensor([[1.0, 1.0], [-9.0, 9.0], [0.0, 3.0]])
    labels = torch.tensor([0, -1, 1])  # the middle clip is unlabelled: its (wild) logits must not count

    def ce(row: list[float], y: int) -> float:
        return -(row[y] - math.log(sum(math.exp(v) for v in row)))

    expected_ce1 = (ce([2.0, 0.0], 0) + ce([0.0, 1.0], 1)) / 2  # log(1 + e^-2) and log(1 + e^-1), averaged
    expected_ce2 = (ce([1.0, 1.0], 0) + ce([0.0, 3.0], 1)) / 2  # log 2 and log(1 + e^-3), averaged
    assert expected_ce1 == pytest.approx((math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2)
    torch.testing.assert_close(masked_cross_entropy(logits1, labels), torch.tensor(expected_ce1))
    total = clar_loss(z1, z2, logits1, logits2, labels, 0.5)
    torch.testing.assert_close(total, nt_xent(z1, z2, 0.5) + expected_ce1 + expected_ce2)


def test_a_batch_without_labels_has_exactly_zero_cross_entropy() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    none = torch.full((4,), -1)
    ce = masked_cross_entropy(logits, none)
    assert ce.item() == 0.0 and ce.requires_grad  # still in the graph (DDP needs every parameter used)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.equal(clar_loss(z1, z2, logits, logits, none), nt_xent(z1, z2, 0.5))


# --- labelled subset and sampler -----------------------------------------------------------------------------


def test_labelled_subset_is_seeded_and_stratified() -> None:
    classes = [0] * 50 + [1] * 30 + [2] * 20
    keep = labelled_subset(classes, 0.2)  # default seed 1337, the official code's
    assert np.bincount(np.asarray(classes)[keep]).tolist() == [10, 6, 4]
    assert np.array_equal(keep, labelled_subset(classes, 0.2, 1337))
    assert not np.array_equal(keep, labelled_subset(classes, 0.2, 1338))
    assert np.bincount(np.asarray(classes)[labelled_subset(classes, 0.01)]).tolist() == [1, 1, 1]  # ≥ 1 per class
    assert len(labelled_subset(classes, 1.0)) == 100 and len(labelled_subset(classes, 0.0)) == 0


def test_sampler_keeps_the_labelled_count_constant_deterministic_and_resumable() -> None:
    mask = np.zeros(100, dtype=bool)
    mask[labelled_subset([i % 4 for i in range(100)], 0.2)] = True
    sampler = LabelledFractionSampler(mask, batch_size=10, fraction=0.2, seed=3)
    batches = [b for _, b in zip(range(30), sampler.iter_from(0), strict=False)]
    for batch in batches:
        files = [i for _, i in batch]
        assert len(files) == 10 and len(set(files)) == 10 and sum(mask[files]) == 2  # round(0.2 · 10)
    first_pass = {i for b in batches[:10] for i in (f for _, f in b) if mask[i]}
    assert first_pass == set(np.flatnonzero(mask))  # 20 labelled clips / 2 per batch: all seen in 10 steps
    assert next(iter(sampler.iter_from(17))) == batches[17]  # resume from step 17 = the same batches
    again = LabelledFractionSampler(mask, batch_size=10, fraction=0.2, seed=3)
    assert [b for _, b in zip(range(30), again.iter_from(0), strict=False)] == batches
    assert {e for b in batches for e, _ in b} == {0, 1, 2}  # 10 steps an epoch of 100 clips


def test_sampler_ranks_split_each_batch_evenly() -> None:
    mask = np.arange(40) % 5 == 0  # 8 labelled
    whole = next(iter(LabelledFractionSampler(mask, 8, 0.25, seed=1).iter_from(4)))
    parts = [next(iter(LabelledFractionSampler(mask, 8, 0.25, seed=1, rank=r, world=2).iter_from(4))) for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == sorted(whole)
    assert [sum(mask[[i for _, i in p]]) for p in parts] == [1, 1]  # 2 labelled per batch, one per rank


def test_sampler_refuses_a_pool_smaller_than_its_share() -> None:
    with pytest.raises(EvalbenchError, match="needs 5 labelled clips but the corpus has 2"):
        LabelledFractionSampler(np.arange(20) < 2, batch_size=10, fraction=0.5, seed=0)


# --- the method ----------------------------------------------------------------------------------------------


def test_heads_follow_the_labelled_fraction_and_labels_are_required() -> None:
    ssl = Clar(ClarRecipeOptions(), TrainSpec(batch_size=4))
    assert isinstance(ssl.projector, ClarProjectionHead) and ssl.classifier is None
    assert ssl.projector[-1].bias is None and ssl.projector[-1].out_features == 128
    semi = Clar(ClarRecipeOptions(labelled_fraction=0.2, n_classes=5), TrainSpec(batch_size=4))
    assert isinstance(semi.projector, ClarSemiSupervisedProjection) and isinstance(semi.classifier, ClarClassifier)
    assert semi.projector[-1].bias is not None and semi.classifier[-1].bias is None
    assert semi.classifier[-1].out_features == 5
    with pytest.raises(EvalbenchError, match=r"--task.*labelled_fraction=0"):
        Clar(ClarRecipeOptions(labelled_fraction=0.1), TrainSpec(batch_size=4))
    with pytest.raises(ValueError, match="augmentations"):
        ClarRecipeOptions(augmentations=["fade", "fade"])
    with pytest.raises(ValueError, match="labelled_fraction"):
        ClarRecipeOptions(labelled_fraction=1.5)


def test_make_data_hides_labels_outside_the_seeded_subset(tmp_path: Path) -> None:
    corpus = SimpleNamespace(files=[f"c{i}.wav" for i in range(40)], root=tmp_path, content={})
    labels = {f: i % 4 for i, f in enumerate(corpus.files)}
    method = Clar(ClarRecipeOptions(labelled_fraction=0.1, n_classes=4), TrainSpec(batch_size=8))
    with pytest.raises(EvalbenchError, match="--task"):
        method.make_data(DataRequest(corpus, 0, tmp_path))
    dataset, sampler = method.make_data(DataRequest(corpus, 0, tmp_path, labels))
    kept = [i for i, y in enumerate(dataset.labels) if y != -1]
    assert kept == labelled_subset([labels[f] for f in corpus.files], 0.1).tolist()
    assert all(dataset.labels[i] == labels[corpus.files[i]] for i in kept) and len(kept) == 4
    assert isinstance(sampler, LabelledFractionSampler) and sampler.n_labelled == 1  # round(0.1 · 8)
    assert dataset.mode == "start" and dataset.unit == SR  # the first second, zero-padded


def test_networks_keep_the_resnet_init_of_the_official_code() -> None:
    torch.manual_seed(0)
    method = Clar(ClarRecipeOptions(), TrainSpec(batch_size=4))
    # Kaiming normal, fan-out (torchvision's and pl_bolts' ResNet): std √(2 / (64·7·7)) for the stem
    assert method.encoder.conv1.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 49)), rel=0.05)
    assert (method.encoder.bn1.weight == 1).all() and "frontend" not in "".join(method.state_dict())


def test_param_groups_exempt_biases_and_norms_from_weight_decay() -> None:
    method = Clar(ClarRecipeOptions(labelled_fraction=1.0, n_classes=3), TrainSpec(batch_size=4))
    decay, free = method.param_groups()
    assert "weight_decay" not in decay and free["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in free["params"])
    assert len(decay["params"]) + len(free["params"]) == len(list(method.parameters()))
    spec = TrainSpec(batch_size=4, optimizer=OptimizerSpec(weight_decay=1e-6))
    assert [g["weight_decay"] for g in make_optimizer(method.param_groups(), spec).param_groups] == [1e-6, 0.0]


@pytest.mark.parametrize(
    ("encoder", "samples", "fraction"),
    [("resnet2d", SR // 2, 0.5), ("resnet2d", SR // 2, 0.0), ("resnet1d", 1024, 0.5)],
)
def test_loss_is_finite_reaches_every_parameter_and_falls(encoder: str, samples: int, fraction: float) -> None:
    torch.manual_seed(0)
    options = ClarRecipeOptions(encoder=encoder, unit_seconds=samples / SR, labelled_fraction=fraction, n_classes=2)
    method = Clar(options, TrainSpec(batch_size=4))
    wav, labels = tones(4, samples, 1), torch.tensor([0, -1, 1, -1])
    gen = torch.Generator().manual_seed(0)
    method.train()
    loss = method.training_step((wav, labels), gen)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() >= 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters())
    method.zero_grad()
    method.chain = ClarChain([])  # fixed views: the loss must fall
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = method.training_step((wav, labels), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses


def test_export_loads_into_the_clar_adapter_and_the_monitor_computes_what_run_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    method = Clar(ClarRecipeOptions(), TrainSpec(batch_size=4))
    method.train()
    method.training_step((tones(4), torch.full((4,), -1)), torch.Generator().manual_seed(0))  # move BN statistics
    method.eval()
    assert method.encoder_options() == {"frontend": "code", "encoder": "resnet2d"}
    state = method.encoder_network().state_dict()
    assert "conv1.weight" in state and not any(k.startswith(("projector", "classifier", "fc.")) for k in state)
    torch.save(state, tmp_path / "clar.pth")
    adapter = ClarEncoder.from_options(ClarOptions(**method.encoder_options()), tmp_path / "clar.pth")
    wav, lengths = tones(2, SR, 2), torch.tensor([SR, SR // 2])
    with torch.inference_mode():
        expected = pool_mean(adapter.encode(wav, lengths))
        got = method.embed_for_monitor(wav, lengths)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert "_monitor_view" not in dict(method.named_modules())
