"""CLAR's waveform augmentations: ranges, invariants, probabilities, determinism."""

from __future__ import annotations

import math

import pytest
import torch

from evalbench.augment.clar import (
    FADE_SHAPES,
    FAMILIES,
    ClarChain,
    Fade,
    MixedNoise,
    PitchShift,
    TimeMask,
    TimeShift,
    TimeStretch,
    WhiteNoise,
    coloured_noise,
    fade_curve,
)

SR = 16000
CLASSES = [Fade, TimeMask, TimeStretch, PitchShift, TimeShift, WhiteNoise, MixedNoise]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tone(freq: float, n: int = SR, amp: float = 0.5) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(n) / SR)


def peak_hz(x: torch.Tensor) -> float:
    """Frequency of the spectral peak, resolved to 0.25 Hz by zero-padding."""
    size = 4 * SR
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False), size).abs()
    return spectrum.argmax().item() * SR / size


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(clean.pow(2).mean(1) / (noisy - clean).pow(2).mean(1))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_length_is_kept_p0_is_identity_and_p1_always_applies(cls: type) -> None:
    x = torch.stack([tone(300 + 40 * i, 4000) for i in range(12)])
    assert cls(0.0)(x, gen()) is x
    out = cls(1.0)(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    changed = (out != x).any(dim=1)
    assert changed.sum() >= 11  # a zero shift or two zero-length fades may leave one clip as it was
    half = cls(0.5)(x.repeat(20, 1), gen(1))
    share = (half != x.repeat(20, 1)).any(dim=1).float().mean().item()
    assert 0.35 < share < 0.65  # per-clip Bernoulli(0.5)


@pytest.mark.parametrize("k", [-15, -7, 1, 12, 15])
def test_pitch_shift_by_k_semitones_moves_the_fundamental_by_2_pow_k_over_12(k: int) -> None:
    out = PitchShift(1.0, semitones=(k, k))(tone(440.0)[None], gen())
    assert out.shape == (1, SR)
    assert peak_hz(out[0]) == pytest.approx(440.0 * 2 ** (k / 12), rel=0.02)  # 2 % is a third of a semitone


def test_pitch_shift_draws_whole_semitones_within_15_per_clip() -> None:
    out = PitchShift(1.0)(tone(440.0).repeat(10, 1), gen(3))
    steps = torch.tensor([12 * math.log2(peak_hz(row) / 440.0) for row in out])
    assert (steps.round() - steps).abs().max() < 0.35 and steps.round().abs().max() <= 15
    assert len(steps.round().unique()) >= 5  # clips get their own shifts


def test_fade_curves_rise_from_0_to_1() -> None:
    u = torch.linspace(0, 1, 501)[None].repeat(len(FADE_SHAPES), 1)
    g = fade_curve(u, torch.arange(len(FADE_SHAPES)))
    assert (g[:, 0] == 0).all() and torch.allclose(g[:, -1], torch.ones(len(FADE_SHAPES)))
    assert (g.diff(dim=1) >= 0).all()
    assert len({round(float(v), 3) for v in g[:, 125]}) == len(FADE_SHAPES)  # five different shapes at u = 1/4


def test_fades_on_a_constant_signal_rise_then_fall_within_half_the_clip_each() -> None:
    n = 1000
    env = Fade(1.0)(torch.ones(64, n), gen(2))
    for row in env:
        steps = row.diff()
        first_fall = int((steps < 0).nonzero()[0]) if (steps < 0).any() else n
        assert (steps[:first_fall] >= 0).all() and (steps[first_fall:] <= 0).all()  # in: non-decreasing; out: not
        below = (row < 1).nonzero().squeeze(1)
        head, tail = int((below < n // 2).sum()), int((below >= n // 2).sum())
        assert head <= n // 2 and tail <= n // 2 and (row[head : n - tail] == 1).all()
    assert (env[:, 0] == 0).float().mean() > 0.9  # a fade-in starts from silence (length 0 in about 1/500)


def test_time_mask_replaces_exactly_one_eighth_by_quiet_noise() -> None:
    x = torch.ones(8, 8000)
    out = TimeMask(1.0)(x, gen())
    changed = out != 1
    assert (changed.sum(dim=1) == 1000).all()
    for row in changed:
        where = row.nonzero().squeeze(1)
        assert where[-1] - where[0] == 999  # one contiguous segment
    assert out[changed].std().item() == pytest.approx(0.01, rel=0.05)


def test_time_shift_is_a_circular_roll_within_half_the_clip() -> None:
    x = torch.randn(16, 16000, generator=gen(5))
    out = TimeShift(1.0)(x, gen())
    shifts = []
    for a, b in zip(x, out, strict=True):
        s = int((b == a[0]).nonzero()[0])
        assert torch.equal(b, torch.roll(a, s))
        shifts.append(s if s <= 8000 else s - 16000)
    assert max(abs(s) for s in shifts) <= 8000 and min(shifts) < 0 < max(shifts)  # ±len/2 = the code's ±8,000


@pytest.mark.parametrize("rate", [0.5, 0.75, 1.5])
def test_time_stretch_changes_duration_keeps_pitch_and_length(rate: float) -> None:
    x = torch.nn.functional.pad(tone(500.0, SR // 2), (0, SR // 2))[None]  # 0.5 s tone, 0.5 s silence
    out = TimeStretch(1.0, rates=(rate, rate))(x, gen())[0]
    assert out.shape == (SR,)
    sounding = (out.abs() > 0.25).nonzero().squeeze(1)  # above half the tone's amplitude
    # the tone now lasts 0.5 s / rate (cut at 1 s); the phase vocoder blurs its end by about one hop (32 ms)
    assert (sounding[-1] + 1) / SR == pytest.approx(min(1.0, 0.5 / rate), abs=0.03)
    assert peak_hz(out) == pytest.approx(500.0, rel=0.02)


def test_white_noise_reaches_the_drawn_integer_snr() -> None:
    x = tone(440.0).repeat(64, 1)
    snr = snr_db(x, WhiteNoise(1.0)(x, gen()))
    assert (snr - snr.round()).abs().max() < 0.2  # 16,000 samples: the noise power is measured to ~1 %
    assert snr.round().min() >= 0 and snr.round().max() <= 20 and snr.min() < 3 and snr.max() > 17


def test_coloured_noise_has_the_spectral_slope_of_its_colour() -> None:
    white = torch.randn(3, 2**16, generator=gen(4))
    noise = coloured_noise(white, torch.tensor([0, 1, 2]))
    torch.testing.assert_close(noise.pow(2).mean(1), torch.ones(3))
    power = torch.fft.rfft(noise).abs().pow(2)[:, 16:8192]  # away from DC and the top
    logf = torch.log10(torch.arange(16, 8192).double())
    for row, expected in zip(power, (0.0, -1.0, -2.0), strict=True):
        slope = torch.linalg.lstsq(
            torch.stack([logf, torch.ones_like(logf)], 1), torch.log10(row.double())[:, None]
        ).solution[0]
        assert float(slope) == pytest.approx(expected, abs=0.1)


def test_mixed_noise_reaches_the_drawn_integer_snr() -> None:
    x = tone(440.0).repeat(32, 1)
    snr = snr_db(x, MixedNoise(1.0)(x, gen(6)))
    assert (snr - snr.round()).abs().max() < 0.2 and snr.round().min() >= 0 and snr.round().max() <= 20


def test_chain_order_names_and_determinism() -> None:
    assert ClarChain().names == ("fade", "time_mask")  # the paper's recommended recipe
    assert ClarChain(["time_mask", "fade", "pitch_shift"]).names == ("fade", "time_mask", "pitch_shift")
    with pytest.raises(ValueError, match="distinct names"):
        ClarChain(["fade", "reverb"])
    chain = ClarChain(FAMILIES)
    x = torch.stack([tone(200.0 * (i + 1), 8000) for i in range(4)])
    a, b = chain(x, gen(9)), chain(x, gen(9))
    assert torch.equal(a, b) and not torch.equal(a, chain(x, gen(10)))
    g = gen(9)
    assert not torch.equal(chain(x, g), chain(x, g))  # the two views are independent draws
