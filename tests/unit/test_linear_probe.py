"""The linear probe: learns separable data, not noise; matches torch.optim.Adam; binary and multi-label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evalbench import metrics as M
from evalbench.probes.linear import LinearProbe


def blobs(n: int, d: int, c: int, sep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((c, d)) * sep
    y = np.arange(n) % c
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def test_separable_data_is_learned() -> None:
    x, y = blobs(300, 16, 4, sep=4.0, seed=0)
    probe = LinearProbe(n_classes=4, random_state=0).fit(x[:200], y[:200], x[200:250], y[200:250])
    assert M.accuracy(y[250:], probe.predict_proba(x[250:])) == 1.0
    assert probe.best_lr_ in probe.lrs and 1 <= probe.best_epoch_ <= 200
    assert probe.coef_.shape == (16, 4) and probe.intercept_.shape == (4,)


def test_random_labels_stay_near_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 32)).astype(np.float32)
    y = rng.integers(0, 4, 600)
    probe = LinearProbe(n_classes=4, random_state=0).fit(x[:400], y[:400], x[400:500], y[400:500])
    assert M.accuracy(y[500:], probe.predict_proba(x[500:])) < 0.4


def test_binary_has_two_outputs_and_integer_labels() -> None:
    x, y = blobs(200, 8, 2, sep=3.0, seed=2)
    probe = LinearProbe(n_classes=2, label_type="binary").fit(x[:120], y[:120], x[120:160], y[120:160])
    proba = probe.predict_proba(x[160:])
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1)
    assert M.accuracy(y[160:], proba, "binary") > 0.9


def test_multilabel_uses_independent_sigmoids() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 10)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)  # tag k is on when feature k is positive
    probe = LinearProbe(n_classes=3, label_type="multilabel", metric="map").fit(
        x[:250], y[:250], x[250:320], y[250:320]
    )
    proba = probe.predict_proba(x[320:])
    assert proba.shape == (80, 3) and not np.allclose(proba.sum(1), 1)
    assert M.map(y[320:], proba, "multilabel") > 0.95


@pytest.mark.parametrize("lrs", [(1e-3,), (3e-2,), (1e-3, 3e-2)])
def test_matches_torch_adam_reference(lrs: tuple[float, ...]) -> None:
    """Grid training with analytic gradients equals nn.Linear-style autograd with torch.optim.Adam."""
    x, y = blobs(90, 6, 3, sep=1.0, seed=4)
    # one epoch: the restored weights are those after the epoch's 4 steps, for every grid point
    probe = LinearProbe(n_classes=3, lrs=lrs, max_epochs=1, batch_size=16, random_state=7)
    probe.fit(x[:60], y[:60], x[60:], y[60:])
    gen = torch.Generator().manual_seed(7)
    bound = 1 / 6**0.5
    w = ((torch.rand(6, 3, generator=gen) * 2 - 1) * bound).requires_grad_()
    b = ((torch.rand(3, generator=gen) * 2 - 1) * bound).requires_grad_()
    opt = torch.optim.Adam([w, b], lr=probe.best_lr_, weight_decay=1e-8)
    xt, yt = torch.from_numpy(x[:60]), torch.from_numpy(y[:60])
    order = torch.randperm(60, generator=gen)
    for s in range(0, 60, 16):
        idx = order[s : s + 16]
        opt.zero_grad()
        F.cross_entropy(xt[idx] @ w + b, yt[idx]).backward()
        opt.step()
    np.testing.assert_allclose(probe.coef_, w.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probe.intercept_, b.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_lr_selection_uses_validation(metric: str) -> None:
    x, y = blobs(240, 12, 3, sep=1.5, seed=5)
    probe = LinearProbe(n_classes=3, metric=metric, lrs=(1e-6, 1e-2), max_epochs=30).fit(
        x[:160], y[:160], x[160:], y[160:]
    )
    assert probe.best_lr_ == 1e-2  # 1e-6 cannot move the weights in 30 epochs
    assert probe.grid_[1]["valid"] >= probe.grid_[0]["valid"]
