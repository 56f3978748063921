"""MSN pretraining: the loss against hand-computed values, prototypes that learn, the method's step and export."""

from __future__ import annotations

import math

import pytest
import torch

from evalbench.adapters.msn import MSNEncoder, build_backbone
from evalbench.adapters.options.msn import MSNOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.pretrain.base import make_optimizer
from evalbench.pretrain.losses import msn_loss, sharpen, sinkhorn
from evalbench.pretrain.msn import Msn, MsnRecipeOptions, global_views
from evalbench.specs.fields import parse
from evalbench.specs.recipe import OptimizerSpec, TrainSpec

# A tiny ViT on the real geometry (224 px and 96 px views, patch 32) and small heads.
TINY = {
    "num_layers": 1, "hidden_dim": 32, "num_heads": 2, "mlp_dim": 64, "hidden": 64, "projection": 16,
    "prototypes": 8, "mixup_bank": 16, "focal_views": 2, "norm_clips": 8,
}  # fmt: skip


def softmax(v: list[float]) -> list[float]:
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def unit(v: list[float]) -> list[float]:
    n = math.hypot(*v)
    return [x / n for x in v]


def naive_sinkhorn(p: list[list[float]], iterations: int) -> list[list[float]]:
    """The definition, one entry at a time: Q = p^T / sum; rows to 1/K, columns to 1/B; return B·Q^T."""
    b, k = len(p), len(p[0])
    total = sum(map(sum, p))
    q = [[p[i][j] / total for i in range(b)] for j in range(k)]
    for _ in range(iterations):
        q = [[v / sum(row) / k for v in row] for row in q]
        cols = [sum(q[j][i] for j in range(k)) for i in range(b)]
        q = [[q[j][i] / cols[i] / b for i in range(b)] for j in range(k)]
    return [[q[j][i] * b for j in range(k)] for i in range(b)]


def test_sharpen_hand_computed() -> None:
    p = torch.tensor([[0.5, 0.3, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    expected = torch.tensor([[0.25, 0.09, 0.04], [1.0, 1.0, 1.0]])
    expected = expected / expected.sum(1, keepdim=True)
    torch.testing.assert_close(sharpen(p, 0.5), expected)
    torch.testing.assert_close(sharpen(p, 1.0), p)
    assert float(sharpen(p, 0.25)[0, 0]) == pytest.approx(0.5**4 / (0.5**4 + 0.3**4 + 0.2**4))


def test_sinkhorn_sums_and_definition() -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(3 * torch.randn(6, 4, generator=gen), dim=1)
    for iterations in (1, 3):
        out = sinkhorn(p, iterations)
        torch.testing.assert_close(out, torch.tensor(naive_sinkhorn(p.tolist(), iterations)))
        torch.testing.assert_close(out.sum(1), torch.ones(6))  # every sample's target sums to one
    # prototype usage: B/K per prototype, ever closer with more iterations
    err = [float((sinkhorn(p, n).sum(0) - 6 / 4).abs().max()) for n in (1, 3, 50)]
    assert err[0] > err[1] > err[2] and err[2] < 1e-4
    torch.testing.assert_close(sinkhorn(p, 0), p)  # no iteration: unchanged


@pytest.mark.parametrize(("iterations", "weight"), [(0, 1.0), (3, 1.0), (3, 0.0)])
def test_msn_loss_hand_computed(iterations: int, weight: float) -> None:
    """K = 3 prototypes in 2-D, 2 targets, 2 anchor views each (view-major)."""
    protos = [[1.0, 0.0], [-0.5, 0.8], [0.2, -1.0]]
    targets = [[0.9, 0.3], [-0.2, 1.0]]
    anchors = [[1.0, 0.5], [0.1, 0.7], [0.6, -0.4], [-1.0, 0.2]]  # view 0: rows 0-1, view 1: rows 2-3
    tau, t_sharp = 0.1, 0.25
    q = [unit(v) for v in protos]

    def probs(z: list[float]) -> list[float]:
        z = unit(z)
        return softmax([(z[0] * c[0] + z[1] * c[1]) / tau for c in q])

    tgt = [[x ** (1 / t_sharp) for x in probs(z)] for z in targets]
    tgt = [[x / sum(row) for x in row] for row in tgt]
    if iterations:
        tgt = naive_sinkhorn(tgt, iterations)
    pred = [probs(z) for z in anchors]
    ce = sum(-sum(tgt[i % 2][k] * math.log(pred[i][k]) for k in range(3)) for i in range(4)) / 4
    mean_p = [sum(p[k] for p in pred) / 4 for k in range(3)]
    me_max = sum(m * math.log(m) for m in mean_p) + math.log(3)  # = log K − H(p̄) >= 0
    assert me_max >= 0
    loss = msn_loss(
        torch.tensor(anchors), torch.tensor(targets), torch.tensor(protos), tau, t_sharp, weight, iterations
    )
    assert float(loss) == pytest.approx(ce + weight * me_max, rel=1e-5)


def test_me_max_is_zero_for_a_uniform_mean_prediction() -> None:
    protos = torch.tensor([[math.cos(a), math.sin(a)] for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)])
    anchors = protos * 2.0  # one anchor on each prototype: by symmetry the mean prediction is uniform
    targets = protos[:1].repeat(3, 1)
    with_term = msn_loss(anchors, targets, protos, sinkhorn_iterations=0, me_max_weight=1.0)
    without = msn_loss(anchors, targets, protos, sinkhorn_iterations=0, me_max_weight=0.0)
    torch.testing.assert_close(with_term, without)
    with pytest.raises(ValueError, match="whole number of views"):
        msn_loss(anchors, targets[:2], protos)


def test_prototypes_receive_gradients_and_targets_do_not() -> None:
    gen = torch.Generator().manual_seed(0)
    prototypes = torch.nn.Parameter(torch.empty(8, 4).uniform_(-0.5, 0.5, generator=gen))
    anchors = torch.randn(6, 4, generator=gen, requires_grad=True)
    targets = torch.randn(3, 4, generator=gen, requires_grad=True)
    msn_loss(anchors, targets, prototypes).backward()
    assert prototypes.grad is not None and float(prototypes.grad.abs().sum()) > 0
    assert anchors.grad is not None and targets.grad is None
    # docs/methods.md §2.6 pitfall 1: a detached copy (.data) leaves the prototypes without a gradient
    prototypes.grad = None
    msn_loss(anchors, targets, prototypes.data).backward()
    assert prototypes.grad is None


def tiny_method(**changes: object) -> Msn:
    torch.manual_seed(0)
    train = TrainSpec(batch_size=4, steps=10, optimizer=OptimizerSpec(name="adamw", lr=1e-3, weight_decay=0.04))
    method = Msn(MsnRecipeOptions(**{**TINY, **changes}), train)  # type: ignore[arg-type]
    method.set_schedule(10, 5)
    return method


def crops(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(15200) / 16000
    freqs = 200 + 1800 * torch.rand(n, 1, generator=gen)
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.05 * torch.randn(n, 15200, generator=gen)


def test_views_shapes_and_masks() -> None:
    method = tiny_method(mask_focal=True, mask_ratio=0.15)
    assert set(method.prepare(iter([crops(4)]))) == {"norm_mean", "norm_std"}
    target, anchor, focal, keep, keep_focal = method.views(crops(4, 1), torch.Generator().manual_seed(0))
    assert target.shape == anchor.shape == (4, 1, 224, 224) and focal.shape == (8, 1, 96, 96)
    assert keep.shape == (4, 50) and keep[:, 1:].sum(1).tolist() == [41] * 4 and bool(keep[:, 0].all())
    assert keep_focal.shape == (8, 10) and keep_focal[:, 1:].sum(1).tolist() == [7] * 8
    everything = torch.cat([target.flatten(), anchor.flatten(), focal.flatten()])
    assert abs(float(everything.mean())) < 1e-4 and abs(float(everything.std()) - 1) < 1e-4  # one joint post-norm
    official = tiny_method()  # MSN: only the 224 anchor is masked, at 0.3
    official.prepare(iter([crops(4)]))
    *_, keep, keep_focal = official.views(crops(4, 1), torch.Generator().manual_seed(0))
    assert keep[:, 1:].sum(1).tolist() == [34] * 4 and keep_focal is None


def test_training_step_gradients_and_one_step_moves_the_prototypes() -> None:
    method = tiny_method()
    method.prepare(iter([crops(4)]))
    optimizer = make_optimizer(method.param_groups(), method.train_spec)
    before = method.prototypes.detach().clone()
    method.train()
    loss = method.training_step(crops(4, 1), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    online = [*method.online.parameters(), method.prototypes]
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in online)
    assert all(p.grad is None for p in method.target.parameters())
    optimizer.step()
    assert not torch.equal(method.prototypes.detach(), before)  # pitfall 1: the prototypes learn


def test_param_groups_cover_every_trainable_parameter_once() -> None:
    method = tiny_method()
    groups = method.param_groups()
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in method.parameters() if p.requires_grad])
    exempt = {id(p) for g in groups if g.get("weight_decay") == 0.0 for p in g["params"]}
    assert id(method.prototypes) in exempt
    assert all(p.ndim == 1 for p in method.online.parameters() if id(p) in exempt)  # biases and norms
    assert sum(p.ndim == 1 for p in method.online.parameters()) == len(exempt) - 1
    assert id(method.online["backbone"].encoder.pos_embedding) not in exempt


def test_a_few_steps_lower_the_loss() -> None:
    method = tiny_method()
    method.prepare(iter([crops(8)]))
    optimizer = torch.optim.AdamW(method.param_groups(), lr=1e-3)
    gen, batch, losses = torch.Generator().manual_seed(0), crops(8, 2), []
    for step in range(8):
        method.train()
        loss = method.training_step(batch, gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(step)
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], losses


def test_ema_momentum_schedules() -> None:
    method = tiny_method()  # 10 steps: 0.996 -> 1.0 over 12.5 steps
    assert method.ema_momentum(0) == pytest.approx(0.996)
    assert method.ema_momentum(10) == pytest.approx(0.996 + 0.004 * 10 / 12.5)
    assert method.ema_momentum(1000) == 1.0
    assert tiny_method(ema_schedule="constant").ema_momentum(9) == 0.996


def test_export_is_the_target_backbone_and_loads_into_the_adapter() -> None:
    method = tiny_method()
    net = method.encoder_network()
    assert net is method.target["backbone"]
    options = parse(MSNOptions, method.encoder_options(), "test")  # what the registered YAML holds
    assert (options.window_frames, options.min_tail_frames) == (64, 40)
    assert (options.geometry, options.output) == ("resize", "cls")
    adapter = MSNEncoder(options)
    assert set(adapter.backbone.state_dict()) == set(net.state_dict())
    adapter.backbone.load_state_dict(net.state_dict(), strict=True)  # no conversion
    assert type(net) is type(build_backbone(options))


def test_monitor_embeddings_are_the_adapters() -> None:
    method = tiny_method()
    method.prepare(iter([crops(4)]))
    mean, std = method.norm_stats.tolist()
    adapter = MSNEncoder(parse(MSNOptions, {**method.encoder_options(), "norm_mean": mean, "norm_std": std}, "t"))
    adapter.backbone.load_state_dict(method.encoder_network().state_dict())
    wav = crops(3, 4)
    lengths = torch.tensor([15200, 9000, 4000])
    method.eval()
    with torch.inference_mode():
        ours = method.embed_for_monitor(wav, lengths)
        theirs = pool_mean(adapter.encode(wav, lengths))
    torch.testing.assert_close(ours, theirs)
    assert "_monitor_view" not in str(list(method.state_dict()))


def test_global_views_is_the_identity_without_torchrun() -> None:
    anchors, targets = torch.randn(6, 4), torch.randn(2, 4)
    a, t = global_views(anchors, targets, 3)
    assert torch.equal(a, anchors) and torch.equal(t, targets)


def test_recipe_options_are_checked() -> None:
    with pytest.raises(ValueError, match="mask_ratio"):
        MsnRecipeOptions(mask_ratio=1.0)
    with pytest.raises(ValueError, match="focal_size"):
        MsnRecipeOptions(focal_size=100)
    with pytest.raises(ValueError, match="hidden_dim"):
        MsnRecipeOptions(hidden_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="min_tail_frames"):
        MsnRecipeOptions(eval_window_frames=32, eval_min_tail_frames=40)


def _rank_loss(rank: int, init: str, out: str) -> None:
    """One of two Gloo ranks: its half of each view, the global loss and its own prototype gradient."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    anchors, targets, prototypes = _global_case()
    mine = anchors.reshape(3, 4, -1)[:, 2 * rank : 2 * rank + 2].reshape(6, -1)  # view-major rows of my 2 clips
    mine.requires_grad_(True)
    protos = torch.nn.Parameter(prototypes.clone())
    a, t = global_views(mine, targets[2 * rank : 2 * rank + 2], 3)
    loss = msn_loss(a, t, protos)
    loss.backward()
    torch.save({"anchors": a.detach(), "loss": loss.detach(), "grad": protos.grad, "rows": mine.grad}, f"{out}.{rank}")
    dist.destroy_process_group()


def _global_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(12, 5, generator=gen), torch.randn(4, 5, generator=gen), torch.randn(6, 5, generator=gen)


def test_two_ranks_see_the_global_batch(tmp_path) -> None:
    """Under torchrun the loss is the single-process loss of the global batch, and so is the averaged gradient."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "rank")
    mp.spawn(_rank_loss, args=(f"file://{tmp_path / 'store'}", out), nprocs=2, join=True)
    anchors, targets, prototypes = _global_case()
    protos = torch.nn.Parameter(prototypes.clone())
    anchors.requires_grad_(True)
    loss = msn_loss(anchors, targets, protos)
    loss.backward()
    ranks = [torch.load(f"{out}.{r}") for r in (0, 1)]
    for r in ranks:
        torch.testing.assert_close(r["anchors"], anchors)  # view-major over the global batch, clips in rank order
        torch.testing.assert_close(r["loss"], loss.detach())
    torch.testing.assert_close((ranks[0]["grad"] + ranks[1]["grad"]) / 2, protos.grad)  # DDP's average
    # each rank's own rows get world x their share, so DDP's average of the weight gradients is exact
    per_view = anchors.grad.reshape(3, 4, -1)
    for r, rank in enumerate(ranks):
        torch.testing.assert_close(rank["rows"], 2 * per_view[:, 2 * r : 2 * r + 2].reshape(6, -1))
