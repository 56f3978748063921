"""CLMR's augmentation chain: each transform's invariant, probabilities, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from evalbench.augment.clmr import (
    ClmrChain,
    Delay,
    Gain,
    GaussianNoise,
    HighLowPass,
    PitchShift,
    PolarityInversion,
    Reverb,
    delay,
    reverb,
    sinc_filter,
)

SR = 22050


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tone(n: int, freq: float, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(n) / SR)


def dominant_hz(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False)).abs()
    return spectrum.argmax().item() * SR / len(x)


def gain_db(out: torch.Tensor, x: torch.Tensor, edge: int = 200) -> float:
    """Level change in dB, away from the filter's edges."""
    return 20 * math.log10(out[edge:-edge].pow(2).mean().sqrt() / x[edge:-edge].pow(2).mean().sqrt())


def test_polarity_flips_exactly_and_keeps_length() -> None:
    x = torch.randn(3, 1000, generator=gen(1))
    assert torch.equal(PolarityInversion(1.0)(x, gen()), -x)
    assert torch.equal(PolarityInversion(0.0)(x, gen()), x)
    with pytest.raises(ValueError, match="p must be"):
        PolarityInversion(1.5)


def test_gain_factor_is_between_minus_20_and_minus_1_db() -> None:
    x = torch.randn(200, 64, generator=gen(1))
    out = Gain(1.0)(x, gen())
    factor = (out / x).median(dim=1).values
    assert ((factor >= 10 ** (-20 / 20) - 1e-6) & (factor <= 10 ** (-1 / 20) + 1e-6)).all()
    assert torch.allclose(out, x * factor[:, None], rtol=1e-5, atol=0)
    assert factor.min() < 0.2 and factor.max() > 0.7  # spread over the range


def test_noise_std_relative_to_the_clip_std_is_in_range() -> None:
    x = 3.0 * torch.randn(50, 20000, generator=gen(1))
    out = GaussianNoise(1.0)(x, gen())
    ratio = (out - x).std(dim=1) / x.std(dim=1)
    assert out.shape == x.shape
    assert (ratio >= 0.0001 * 0.95).all() and (ratio <= 0.01 * 1.05).all() and (ratio > 0).all()


def test_lowpass_at_2500_hz_cuts_6_khz_and_passes_500_hz() -> None:
    x = torch.stack([tone(SR // 2, 6000), tone(SR // 2, 500)])
    out = sinc_filter(x, torch.tensor([2500.0, 2500.0]), torch.tensor([False, False]), SR)
    assert out.shape == x.shape
    assert gain_db(out[0], x[0]) <= -20 and abs(gain_db(out[1], x[1])) <= 1


@pytest.mark.parametrize("cutoff", [1000.0, 1200.0])
def test_highpass_cuts_150_hz_and_passes_5_khz(cutoff: float) -> None:
    x = torch.stack([tone(SR // 2, 150), tone(SR // 2, 5000)])
    out = sinc_filter(x, torch.tensor([cutoff, cutoff]), torch.tensor([True, True]), SR)
    assert gain_db(out[0], x[0]) <= -20 and abs(gain_db(out[1], x[1])) <= 1


def test_high_low_pass_module_mixes_both_kinds() -> None:
    x = torch.stack([tone(SR // 4, 100), tone(SR // 4, 6000)]).repeat(20, 1)
    out = HighLowPass(1.0)(x, gen())
    low_kept = torch.tensor([gain_db(o, i) > -3 for o, i in zip(out[0::2], x[0::2], strict=True)])
    assert out.shape == x.shape and 0 < low_kept.sum() < 20  # 100 Hz survives the low-passes only


def test_delay_on_an_impulse_gives_half_then_a_quarter() -> None:
    x = torch.zeros(6, SR)
    x[:, 0] = 1.0
    shifts = torch.tensor([round(ms * SR / 1000) for ms in range(200, 500, 50)])
    out = delay(x, shifts)
    for row, shift in zip(out, shifts.tolist(), strict=True):
        assert row[0] == 0.5 and row[shift] == 0.25 and row.abs().sum() == 0.75
    out = Delay(1.0)(x, gen())
    echo = out[:, 1:].abs().argmax(dim=1) + 1
    assert out.shape == x.shape and (out[:, 0] == 0.5).all() and set(echo.tolist()) <= set(shifts.tolist())


@pytest.mark.parametrize("cents", [700, 300, -500, 37])
def test_pitch_shift_moves_a_440_hz_tone(cents: int) -> None:
    x = tone(SR, 440)[None]
    out = PitchShift(1.0, cents=(cents, cents))(x, gen())
    assert out.shape == x.shape
    assert dominant_hz(out[0]) == pytest.approx(440 * 2 ** (cents / 1200), rel=0.02)


def test_reverb_with_zero_reverberance_is_the_identity() -> None:
    x = torch.randn(3, 5000, generator=gen(1))
    zeros = torch.zeros(3)
    out = reverb(x, zeros, torch.tensor([0.0, 50, 100]), torch.tensor([100.0, 50, 0]), torch.randn(3, 4000), SR)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_reverb_tail_decays_after_an_impulse() -> None:
    x = torch.zeros(2, SR + 1)
    x[:, 0] = 1.0
    full = torch.tensor([100.0, 100.0])
    out = Reverb(1.0, reverberance=(100, 100), room_size=(100, 100))(x, gen())
    assert out.shape == x.shape
    windows = out[:, 1:].reshape(2, 10, -1).pow(2).mean(dim=2).sqrt()  # RMS per tenth of a second
    assert (windows[:, 8] > 0).all() and (windows[:, 1] > windows[:, 4]).all() and (windows[:, 4] > windows[:, 8]).all()
    # more damping: the high band dies out faster, so the late tail is duller
    noise = torch.randn(1, SR, generator=gen(2)).repeat(2, 1)
    irs = reverb(x, full, torch.tensor([0.0, 100.0]), full, noise, SR)
    late = torch.fft.rfft(irs[:, SR // 2 :]).abs().pow(2)
    high_share = late[:, late.shape[1] // 2 :].sum(dim=1) / late.sum(dim=1)
    assert high_share[1] < 0.5 * high_share[0]
    again = Reverb(1.0, reverberance=(100, 100), room_size=(100, 100))(x, gen())
    assert torch.equal(out, again)


@pytest.mark.parametrize(("module", "p"), [(PolarityInversion(0.8), 0.8), (Gain(0.3), 0.3)])
def test_fraction_of_changed_clips_matches_p(module: torch.nn.Module, p: float) -> None:
    x = 0.5 + torch.rand(2000, 16, generator=gen(1))
    changed = (module(x, gen(3)) != x).any(dim=1).float().mean().item()
    assert changed == pytest.approx(p, abs=0.04)


def test_chain_runs_and_is_deterministic() -> None:
    x = 0.1 * torch.randn(4, 59049, generator=gen(1))
    chain = ClmrChain()
    first = chain(x, gen(5))
    assert first.shape == x.shape and torch.isfinite(first).all() and not torch.equal(first, x)
    assert torch.equal(first, chain(x, gen(5)))
    assert not torch.equal(first, chain(x, gen(6)))


def test_chain_order_and_defaults() -> None:
    chain = ClmrChain()
    kinds = [type(step) for step in chain.steps]
    assert kinds == [PolarityInversion, GaussianNoise, Gain, HighLowPass, Delay, PitchShift, Reverb]
    assert [step.p for step in chain.steps] == [0.8, 0.01, 0.3, 0.8, 0.3, 0.6, 0.6]
