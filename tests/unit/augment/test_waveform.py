"""The supervised baselines' one-of-five (six) waveform augmentation."""

from __future__ import annotations

import math

import pytest
import torch

from evalbench.augment.waveform import OPTIONS, REPORT_CHOICES, SupervisedWaveformAugment, stft_size

SR = 16000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tone(n: int, freq: float = 440.0, amp: float = 0.5, sr: int = SR) -> torch.Tensor:
    return amp * torch.sin(2 * math.pi * freq * torch.arange(n) / sr)


def padded(clips: list[torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
    wav = torch.zeros(len(clips), n)
    for i, c in enumerate(clips):
        wav[i, : len(c)] = c
    return wav, torch.tensor([len(c) for c in clips])


def dominant_hz(x: torch.Tensor, sr: int = SR) -> float:
    spectrum = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False)).abs()
    return spectrum.argmax().item() * sr / len(x)


def only(option: str, **kwargs) -> SupervisedWaveformAugment:
    return SupervisedWaveformAugment(kwargs.pop("sr", SR), choices=(option,), **kwargs)


def test_defaults_are_the_reports_five_choices() -> None:
    aug = SupervisedWaveformAugment(44100)
    assert aug.choices == REPORT_CHOICES == ("identity", "noise", "stretch", "pitch", "gain")
    assert "background" not in aug.choices and aug.n_fft == 2048 and stft_size(SR) == 1024
    with pytest.raises(ValueError, match="no background"):
        SupervisedWaveformAugment(SR, choices=OPTIONS)
    with pytest.raises(ValueError, match="choices"):
        SupervisedWaveformAugment(SR, choices=("identity", "reverb"))


def test_identity_leaves_the_batch_unchanged() -> None:
    wav, lengths = padded([tone(SR), tone(SR // 2)], SR)
    out, new_lengths = only("identity")(wav, lengths, gen())
    assert torch.equal(out, wav) and torch.equal(new_lengths, lengths)


def test_gaussian_noise_has_std_001_and_is_clamped() -> None:
    wav, lengths = padded([torch.zeros(SR), torch.full((SR // 2,), 0.999)], SR)
    out, new_lengths = only("noise")(wav, lengths, gen())
    assert abs(out[0].std().item() - 0.01) < 0.001  # silent clip: the noise itself
    assert out.abs().max() <= 1.0 and (out[1, : SR // 2] == 1.0).any()  # near full scale: clamped
    assert torch.equal(new_lengths, lengths) and (out[1, SR // 2 :] == 0).all()


def test_time_stretch_halves_the_length_and_keeps_the_frequency() -> None:
    aug = only("stretch")
    wav, lengths = padded([tone(SR), tone(SR // 2)], SR + 3000)
    out, new_lengths = aug(wav, lengths, gen())
    hop = aug.n_fft // 4
    assert (new_lengths - lengths / 2).abs().max() <= hop and new_lengths.tolist() == [SR // 2, SR // 4]
    assert (out[0, SR // 2 :] == 0).all() and (out[1, SR // 4 :] == 0).all()
    for row, length in zip(out, new_lengths, strict=True):
        assert dominant_hz(row[:length]) == pytest.approx(440, rel=0.02)
    # a clip's valid output does not depend on the padding after it
    alone, _ = aug(wav[1:, : SR // 2], lengths[1:], gen())
    torch.testing.assert_close(alone[0, : SR // 4], out[1, : SR // 4], atol=1e-5, rtol=0)


@pytest.mark.parametrize("sr", [SR, 44100])
def test_pitch_shift_keeps_the_length_and_moves_the_tone_by_minus_5_semitones(sr: int) -> None:
    wav, lengths = padded([tone(sr, sr=sr), tone(sr // 2, sr=sr)], sr)
    out, new_lengths = only("pitch", sr=sr)(wav, lengths, gen())
    assert torch.equal(new_lengths, lengths) and (out[1, sr // 2 :] == 0).all()
    for row, length in zip(out, lengths, strict=True):
        assert dominant_hz(row[:length], sr) == pytest.approx(440 * 2 ** (-5 / 12), rel=0.02)
    assert out[0].norm() > 0.5 * wav[0].norm()  # the tone survives (not just silenced)


def test_gain_multiplies_by_a_quarter_exactly() -> None:
    wav, lengths = padded([tone(SR), tone(300)], SR)
    out, new_lengths = only("gain")(wav, lengths, gen())
    assert torch.equal(out, wav * 0.25) and torch.equal(new_lengths, lengths)


@pytest.mark.parametrize("noise_len", [3 * SR, SR // 3])  # longer than the batch, and shorter (looped)
def test_background_noise_is_added_at_1_db_snr(noise_len: int) -> None:
    background = 0.5 * torch.randn(noise_len, generator=gen(1))
    aug = only("background", background=background)
    wav, lengths = padded([tone(SR, amp=0.05), tone(SR // 2, amp=0.02)], SR)
    out, new_lengths = aug(wav, lengths, gen())
    added = out - wav
    assert out.abs().max() < 1.0  # quiet clips: no clamping
    for i, length in enumerate(lengths):
        snr = 20 * torch.log10(wav[i].norm() / added[i].norm())
        assert snr.item() == pytest.approx(1.0, abs=1e-3)
        assert (added[i, length:] == 0).all()
    assert torch.equal(new_lengths, lengths)


def test_background_noise_is_a_contiguous_segment_at_a_random_offset() -> None:
    background = 1e-3 * (1 + torch.arange(3 * SR, dtype=torch.float64)).float()  # sample k holds 1e-3·(k + 1)
    aug = only("background", background=background)
    wav, lengths = padded([tone(SR, amp=0.05)] * 8, SR)
    added = (aug(wav, lengths, gen(4))[0] - wav).double()
    slope = added[:, 1:].diff(dim=1).mean(dim=1)  # scale·1e-3 per sample
    offsets = (added[:, 0] / slope - 1).round()
    assert ((offsets >= 0) & (offsets <= 2 * SR)).all() and len(set(offsets.tolist())) == 8


def test_options_are_drawn_uniformly_from_choices() -> None:
    n_clips, n = 1000, 1024
    wav = tone(n)[None].repeat(n_clips, 1)
    lengths = torch.full((n_clips,), n)
    out, new_lengths = SupervisedWaveformAugment(SR)(wav, lengths, gen(2))
    stretch = new_lengths != lengths
    identity = (out == wav).all(1)
    gain = (out == 0.25 * wav).all(1)
    noise = ~stretch & ~identity & ~gain & ((out - wav).std(1) < 0.02)
    pitch = ~stretch & ~identity & ~gain & ~noise
    counts = torch.stack([identity, noise, stretch, pitch, gain]).sum(1).float() / n_clips
    assert (counts.sum() == 1.0) and ((counts - 0.2).abs() < 0.04).all(), counts


def test_draw_covers_background_when_chosen_and_padding_stays_zero() -> None:
    aug = SupervisedWaveformAugment(SR, choices=OPTIONS, background=0.1 * torch.randn(SR, generator=gen(3)))
    lengths = torch.randint(200, 4000, (60,), generator=gen(4))
    wav, _ = padded([tone(int(length)) for length in lengths], 4000)
    out, new_lengths = aug(wav, lengths, gen(5))
    assert (new_lengths <= lengths).all() and (new_lengths < lengths).any()
    beyond = torch.arange(4000) >= new_lengths[:, None]
    assert (out[beyond] == 0).all() and out.abs().max() <= 1.0


def test_same_generator_state_gives_identical_outputs() -> None:
    aug = SupervisedWaveformAugment(SR, choices=OPTIONS, background=0.1 * torch.randn(SR, generator=gen(3)))
    wav, lengths = padded([tone(SR // 4, freq=200 + 50 * i) for i in range(12)], SR // 4)
    first, second, other = aug(wav, lengths, gen(7)), aug(wav, lengths, gen(7)), aug(wav, lengths, gen(8))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])
