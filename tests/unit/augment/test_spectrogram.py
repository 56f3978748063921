"""BYOL-A's view chain: mixup bank, random resize crop, linear fader, post-normalisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evalbench.augment.spectrogram import (
    EPS,
    MixupBank,
    PostNorm,
    RandomLinearFader,
    RandomResizeCrop,
    mixup,
    resize_crop,
)

N_FREQ, N_TIME, CANVAS_T = 64, 96, 144


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clone(g: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(g.get_state())
    return copy


def logmel(batch: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(batch, 1, N_FREQ, N_TIME, generator=gen(seed))


# ---- MixupBank ----------------------------------------------------------------------------------------------------


def test_mixup_first_call_is_identity_and_fills_the_bank() -> None:
    bank, x = MixupBank(size=8), logmel(3)
    g = gen()
    state = g.get_state()
    assert torch.equal(bank(x, g), x)
    assert torch.equal(g.get_state(), state)  # nothing drawn from an empty bank
    assert int(bank.filled) == 3 and bank.bank.shape == (8, 1, N_FREQ, N_TIME)
    assert torch.equal(bank.content(), x)


def test_mixup_with_alpha_zero_is_identity() -> None:
    bank = MixupBank(alpha=0.0, size=8)
    bank(logmel(4, seed=1), gen())
    x = logmel(4, seed=2, scale=0.5)  # eps/e^x stays < 1e-6 for x > −2
    torch.testing.assert_close(bank(x, gen()), x, atol=1e-6, rtol=0)


def test_mixup_one_element_bank_matches_hand_computation() -> None:
    bank = MixupBank(alpha=0.4, size=1)
    z = logmel(1, seed=3)
    bank(z, gen())
    x = logmel(2, seed=4)
    g = gen(7)
    lam = torch.rand(2, generator=clone(g)) * 0.4  # the module's first draw
    out = bank(x, g)
    for i in range(2):
        expected = torch.log((1 - lam[i]) * x[i].exp() + lam[i] * z[0].exp() + EPS)
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=1e-6)
    assert (lam > 0).all() and (lam < 0.4).all()
    assert torch.equal(bank.content(), x[1:])  # size 1: only the newest input remains


def test_mixup_linear_variant_formula() -> None:
    x, z, lam = logmel(3, seed=5), logmel(3, seed=6), torch.tensor([0.0, 0.1, 0.2])
    expected = torch.stack([(1 - lam[i]) * x[i] + lam[i] * z[i] for i in range(3)])
    torch.testing.assert_close(mixup(x, z, lam, log_mixup_exp=False), expected)
    bank = MixupBank(alpha=0.3, size=1, log_mixup_exp=False)
    bank(z[:1], gen())
    g = gen(8)
    lam = torch.rand(3, generator=clone(g)) * 0.3
    torch.testing.assert_close(bank(x, g), mixup(x, z[:1].expand_as(x), lam, log_mixup_exp=False))


def test_mixup_partners_come_from_the_bank_before_the_batch() -> None:
    # a batch never mixes with itself: with one stored value of −30 (e^−30 ≈ 0) every output is log((1 − λ)e^x)
    bank = MixupBank(alpha=0.2, size=4)
    bank(torch.full((1, 1, 2, 2), -30.0), gen())
    x = torch.zeros(3, 1, 2, 2)
    out = bank(x, gen(1))
    assert (out <= 0).all() and (out >= torch.log(torch.tensor(0.8))).all()


def test_mixup_bank_is_fifo_after_overflow() -> None:
    bank = MixupBank(size=4)
    batches = [torch.full((2, 1, 2, 3), float(i)) + torch.tensor([0.0, 0.5]).view(2, 1, 1, 1) for i in range(3)]
    g = gen()
    for b in batches:
        bank(b, g)
    pushed = torch.cat(batches)
    assert int(bank.filled) == 4 and int(bank.pointer) == 2
    assert torch.equal(bank.content(), pushed[2:])  # the 4 newest of 6, oldest first
    big = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 3)  # a batch larger than the bank
    bank(big, g)
    assert torch.equal(bank.content(), big[2:])


@pytest.mark.parametrize("calls_before_save", [0, 1, 3])
def test_mixup_state_dict_round_trip_continues_identically(calls_before_save: int) -> None:
    a, g = MixupBank(size=5), gen(11)
    for i in range(calls_before_save):
        a(logmel(2, seed=20 + i), g)
    state, g_state = a.state_dict(), g.get_state()
    b = MixupBank(size=5)
    if calls_before_save == 0:  # loading an empty bank into an allocated one resizes it back
        b(logmel(2, seed=99), gen())
    b.load_state_dict(state)
    g_b = torch.Generator()
    g_b.set_state(g_state)
    for i in range(3):
        x = logmel(2, seed=40 + i)
        assert torch.equal(a(x, g), b(x, g_b))
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_mixup_rejects_a_new_shape() -> None:
    bank = MixupBank(size=4)
    bank(logmel(1), gen())
    with pytest.raises(ValueError, match="bank holds"):
        bank(torch.zeros(1, 1, N_FREQ, 50), gen())


# ---- RandomResizeCrop ---------------------------------------------------------------------------------------------


def reference_crops(x: torch.Tensor, top, left, h, w) -> torch.Tensor:
    canvas = F.pad(x, ((CANVAS_T - N_TIME) // 2, (CANVAS_T - N_TIME + 1) // 2))
    crops = [canvas[b : b + 1, :, top[b] : top[b] + h[b], left[b] : left[b] + w[b]] for b in range(x.shape[0])]
    return torch.cat([F.interpolate(c, size=(N_FREQ, N_TIME), mode="bicubic", align_corners=True) for c in crops])


def test_rrc_equals_per_sample_bicubic_interpolation() -> None:
    rrc, x, g = RandomResizeCrop(), logmel(32, seed=1), gen(3)
    params = rrc.sample_params(32, N_FREQ, N_TIME, clone(g))
    out = rrc(x, g)
    assert out.shape == (32, 1, N_FREQ, N_TIME)
    torch.testing.assert_close(out, reference_crops(x, *params), atol=1e-5, rtol=0)


def test_resize_crop_edge_cases_match_interpolate() -> None:
    x = logmel(5, seed=2)
    top, left = torch.tensor([0, 63, 10, 0, 0]), torch.tensor([0, 143, 5, 48, 24])
    h, w = torch.tensor([64, 1, 38, 2, 64]), torch.tensor([144, 1, 57, 96, 3])
    out = resize_crop(x, top, left, h, w, CANVAS_T)
    torch.testing.assert_close(out, reference_crops(x, top, left, h, w), atol=1e-5, rtol=0)


def test_resize_crop_of_the_original_region_is_identity() -> None:
    x, n = logmel(4, seed=3), torch.full((4,), 1)
    out = resize_crop(x, 0 * n, 24 * n, N_FREQ * n, N_TIME * n, CANVAS_T)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_resize_crop_in_the_padded_margin_is_zero() -> None:
    x, n = logmel(2, seed=4) + 10, torch.full((2,), 1)
    assert torch.equal(resize_crop(x, 0 * n, 0 * n, 30 * n, 24 * n, CANVAS_T), torch.zeros_like(x))  # left margin
    assert torch.equal(resize_crop(x, 5 * n, 120 * n, 40 * n, 24 * n, CANVAS_T), torch.zeros_like(x))  # right margin


def test_rrc_crop_boxes_stay_in_range_and_never_extend_frequency() -> None:
    rrc = RandomResizeCrop()
    top, left, h, w = rrc.sample_params(20000, N_FREQ, N_TIME, gen(5))
    assert rrc.canvas_size(N_FREQ, N_TIME) == (N_FREQ, CANVAS_T)
    assert h.min() == int(0.6 * N_FREQ) and h.max() == N_FREQ  # capped: ~56 % of draws exceed F
    assert (h == N_FREQ).float().mean() > 0.5
    assert w.min() == int(0.6 * N_TIME) and w.max() <= CANVAS_T
    assert (top >= 0).all() and (top + h <= N_FREQ).all() and (left >= 0).all() and (left + w <= CANVAS_T).all()
    assert (top == 0).any() and (left == 0).any()  # corners reach both edges
    assert ((top == N_FREQ - h) & (h < N_FREQ)).any() and ((left == CANVAS_T - w) & (w < CANVAS_T)).any()


def test_rrc_is_deterministic_given_the_generator() -> None:
    rrc, x = RandomResizeCrop(), logmel(8, seed=6)
    assert torch.equal(rrc(x, gen(9)), rrc(x, gen(9)))
    assert not torch.equal(rrc(x, gen(9)), rrc(x, gen(10)))


# ---- RandomLinearFader and PostNorm -------------------------------------------------------------------------------


def test_linear_fader_adds_a_linear_ramp_constant_over_frequency() -> None:
    gain, x, g = 0.7, logmel(500, seed=7), gen(12)
    ab = (torch.rand((500, 2), generator=clone(g)) * 2 - 1) * gain
    ramp = (RandomLinearFader(gain)(x, g) - x)[:, 0]  # (B, F, T)
    torch.testing.assert_close(ramp, ramp[:, :1].expand_as(ramp), atol=1e-5, rtol=0)  # same for every bin
    s = ramp[:, 0]
    a, b = ab[:, 0], ab[:, 1]
    torch.testing.assert_close(s[:, 0], a, atol=1e-5, rtol=0)
    torch.testing.assert_close(s[:, -1], a + (b - a) * (N_TIME - 1) / N_TIME, atol=1e-5, rtol=0)
    steps = s.diff(dim=1)
    torch.testing.assert_close(steps, ((b - a) / N_TIME)[:, None].expand_as(steps), atol=1e-5, rtol=0)
    assert a.abs().max() <= gain and b.abs().max() <= gain and a.abs().max() > 0.9 * gain


def test_linear_fader_is_deterministic_given_the_generator() -> None:
    x = logmel(4, seed=8)
    assert torch.equal(RandomLinearFader()(x, gen(1)), RandomLinearFader()(x, gen(1)))


def test_post_norm_standardises_the_whole_batch() -> None:
    x = 3.0 * logmel(6, seed=9) - 5.0
    out = PostNorm()(x)
    assert abs(out.mean().item()) < 1e-5 and abs(out.std().item() - 1) < 1e-5
    constant = PostNorm()(torch.full((2, 1, 4, 4), 3.0))
    assert torch.isfinite(constant).all() and torch.equal(constant, torch.zeros_like(constant))


def test_byola_v2_chain_is_deterministic_and_finite() -> None:
    def run(seed: int) -> torch.Tensor:
        mix, rrc, rlf, g = MixupBank(size=16), RandomResizeCrop(), RandomLinearFader(), gen(seed)
        views = []
        for step in range(3):
            x = logmel(4, seed=step)
            views = [rlf(rrc(mix(x, g), g), g) for _ in range(2)]
        return PostNorm()(torch.cat(views))

    out = run(0)
    assert out.shape == (8, 1, N_FREQ, N_TIME) and torch.isfinite(out).all()
    assert torch.equal(out, run(0)) and not torch.equal(out, run(1))
