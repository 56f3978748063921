"""MSN's multi-crop views: torchvision's RandomResizedCrop rule batched, patch drop, per-view mixup."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import RandomResizedCrop as TorchvisionRRC

from evalbench.augment.spectrogram import EPS
from evalbench.augment.views import (
    MultiViewMixup,
    RandomResizedCrop,
    kept_patches,
    patch_keep,
    resized_crop,
    rrc_params,
)

FREQ, TIME = 64, 96  # a BYOL-A log-mel crop: 64 mels x 96 frames (0.95 s)


@pytest.mark.parametrize(("size", "scale"), [(224, (0.3, 1.0)), (96, (0.05, 0.3))])
def test_resized_crop_equals_interpolate_per_sample(size: int, scale: tuple[float, float]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 1, FREQ, TIME, generator=gen)
    top, left, h, w = rrc_params(24, FREQ, TIME, scale, generator=gen)
    out = resized_crop(x, top, left, h, w, size)
    assert out.shape == (24, 1, size, size)
    for b in range(24):
        crop = x[b : b + 1, :, top[b] : top[b] + h[b], left[b] : left[b] + w[b]]
        ref = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        torch.testing.assert_close(out[b : b + 1], ref, atol=5e-5, rtol=0)  # measured 1.3e-5 (summation order)


@pytest.mark.parametrize(("scale", "name"), [((0.3, 1.0), "random"), ((0.05, 0.3), "focal")])
def test_boxes_fit_and_respect_scale_and_ratio(scale: tuple[float, float], name: str) -> None:
    top, left, h, w = rrc_params(20000, FREQ, TIME, scale, generator=torch.Generator().manual_seed(1))
    assert bool((top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all())
    assert bool((top + h <= FREQ).all() and (left + w <= TIME).all())
    # area fraction in the scale range up to the rounding of each side to whole bins (at most half a bin each)
    frac = (h * w).double() / (FREQ * TIME)
    slack = ((h + w) / 2 + 0.25).double() / (FREQ * TIME)
    assert bool((frac >= scale[0] - slack).all() and (frac <= scale[1] + slack).all()), name
    # the aspect of the unrounded box lies in (3/4, 4/3); each side moved by at most half a bin
    assert bool(((w - 0.5) / (h + 0.5) <= 4 / 3).all() and ((w + 0.5) / (h - 0.5) >= 3 / 4).all())
    assert frac.min() < scale[0] + 0.01 and frac.max() > min(scale[1], 0.89) - 0.02  # the range is used


def test_distribution_matches_torchvision() -> None:
    n = 20000
    ours = rrc_params(n, FREQ, TIME, (0.3, 1.0), generator=torch.Generator().manual_seed(2))
    img = torch.zeros(1, FREQ, TIME)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        ref = torch.tensor([TorchvisionRRC.get_params(img, [0.3, 1.0], [3 / 4, 4 / 3]) for _ in range(n)]).T
    for mine, theirs in zip(ours, ref, strict=True):  # top, left, h, w: means within 3 standard errors
        stderr = theirs.double().std() * math.sqrt(2 / n)
        assert abs(mine.double().mean() - theirs.double().mean()) < 3 * stderr + 1e-9


def test_crops_never_span_more_than_86_frames() -> None:
    """The geometry behind msn's evaluation windows (evalbench/pretrain/msn.py docstring).

    A box at most 64 rows high (h = round(sqrt(area/aspect)) <= 64, so sqrt(area/aspect) < 64.5)
    with aspect <= 4/3 has sqrt(area·aspect) < 64.5·4/3 = 86, so its width rounds to at most 86;
    the fallback (96/64 = 1.5 > 4/3) is 64 × round(85.33) = 85.  Checked on torchvision's own
    sampler and on ours.
    """
    assert math.floor(64.5 * 4 / 3 + 0.5) == 86
    img = torch.zeros(1, FREQ, TIME)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        widths = [TorchvisionRRC.get_params(img, [0.3, 1.0], [3 / 4, 4 / 3])[3] for _ in range(20000)]
    assert max(widths) <= 86
    _, _, h, w = rrc_params(200000, FREQ, TIME, (0.3, 1.0), generator=torch.Generator().manual_seed(0))
    assert int(w.max()) == 86 and int(h.max()) == 64
    assert 55 < float(w.double().mean()) < 60  # typical width ~57 frames: 96-143-frame windows were never seen
    full = w[h == 64]  # full-height crops (what evaluation shows): 48-86 frames wide, ~66 on average
    assert int(full.min()) == 48 and int(full.max()) == 86 and 64 < float(full.double().mean()) < 68
    # no box fits: the centred fallback with the aspect clamped into the range
    top, left, h, w = rrc_params(5, FREQ, TIME, (1.0, 1.0), (0.5, 0.6), torch.Generator().manual_seed(0))
    assert h.tolist() == [64] * 5 and w.tolist() == [38] * 5 and left.tolist() == [29] * 5 and top.tolist() == [0] * 5


def test_module_sizes_and_determinism() -> None:
    x = torch.randn(3, 1, FREQ, TIME)
    big, small = RandomResizedCrop(224, (0.3, 1.0)), RandomResizedCrop(96, (0.05, 0.3))
    a = big(x, torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 224, 224) and small(x, torch.Generator().manual_seed(5)).shape == (3, 1, 96, 96)
    assert torch.equal(a, big(x, torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCrop(96, (0.5, 0.2))


def test_patch_keep_exact_count_cls_kept_and_every_patch_possible() -> None:
    assert (kept_patches(49, 0.3), kept_patches(49, 0.15), kept_patches(9, 0.15), kept_patches(49, 0.0)) == (
        34,
        41,
        7,
        49,
    )
    n = 20000
    keep = patch_keep(n, 50, 0.3, torch.Generator().manual_seed(0))  # 1 + 7x7 tokens (ViT-B/32 at 224)
    assert keep.shape == (n, 50) and keep.dtype == torch.bool
    assert bool(keep[:, 0].all())  # [CLS] is never dropped
    assert keep[:, 1:].sum(1).unique().tolist() == [34]  # exactly 15 of 49 patches dropped in every image
    rate = keep[:, 1:].double().mean(0)
    expected, sd = 34 / 49, math.sqrt(34 / 49 * 15 / 49 / n)
    assert bool(((rate - expected).abs() < 5 * sd).all())  # every patch, the last included, equally likely
    assert abs(float(rate[-1]) - expected) < 5 * sd
    focal = patch_keep(100, 10, 0.15, torch.Generator().manual_seed(0))  # 1 + 3x3 tokens at 96
    assert focal[:, 1:].sum(1).unique().tolist() == [7] and bool(focal[:, 0].all())
    with pytest.raises(ValueError, match="num_tokens"):
        patch_keep(2, 1, 0.3, torch.Generator())


def test_multi_view_mixup_draws_per_view_and_stores_each_clip_once() -> None:
    bank = MultiViewMixup(alpha=0.2, size=8)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 4, 6)
    state = gen.get_state()
    first = bank.views(x, 3, gen)
    assert torch.equal(gen.get_state(), state)  # empty bank: no draws, copies un-mixed
    assert torch.equal(first, torch.cat([x, x, x])) and int(bank.filled) == 2  # pushed once, not per view
    y = torch.randn(2, 1, 4, 6)
    replay = torch.Generator().manual_seed(0)
    replay.set_state(gen.get_state())
    second = bank.views(y, 3, gen)
    assert second.shape == (6, 1, 4, 6) and int(bank.filled) == 4
    # one lambda and one partner per view (view-major), partners from the bank as it was before the call
    lam = torch.rand(6, generator=replay) * 0.2
    slots = torch.randint(2, (6,), generator=replay)
    ys = torch.cat([y, y, y])
    expected = torch.log((1 - lam)[:, None, None, None] * ys.exp() + lam[:, None, None, None] * x[slots].exp() + EPS)
    torch.testing.assert_close(second, expected)
    assert not torch.equal(second[:2], second[2:4])
