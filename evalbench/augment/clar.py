"""CLAR's waveform augmentations as batched, generator-driven torch modules.

Al-Tahan & Mohsenzadeh, "CLAR: Contrastive Learning of Auditory
Representations", AISTATS 2021 (docs/methods.md §3.4), make the two views of a
fixed-length 16 kHz clip by two independent passes of one chain of waveform
augmentations, each applied to a clip with probability p (intended 0.5; the
official code wraps bare functions in torchvision's ``RandomApply``, so its
effective p is unclear).  Six families are studied; evalbench splits noise
injection into its two variants, so there are seven names:

================  ====================================================================
name              transform (per picked clip)
================  ====================================================================
``fade``          fade-in and fade-out, lengths each an integer in [0, len/2], one
                  shape per clip among linear, exponential, logarithmic,
                  quarter-sine and half-sine (the official code's five; the paper
                  names the first three)
``time_mask``     a segment of exactly len/8 samples at a uniform start replaced by
                  N(0, 0.01²) noise (the official code's length and noise)
``time_stretch``  phase-vocoder time stretch at rate U(0.5, 1.5), then zero-padded
                  or cropped on the right back to len
``pitch_shift``   integer semitones in [−15, 15] (phase vocoder + resampling)
``time_shift``    circular roll by an integer in [−len/2, len/2] (the paper; equal
                  to the official ±8,000 samples for 1 s clips)
``white_noise``   Gaussian noise at an integer SNR in [0, 20] dB, noise std
                  RMS(x)/√(10^(SNR/10)) (the official code's rule)
``mixed_noise``   white, pink or brown noise (1/3 each, the paper's version,
                  synthesised in torch) at an integer SNR in [0, 20] dB
================  ====================================================================

The chain applies the chosen families in the official code's order (fade, time
masking, time stretch, pitch shift, time shift, white noise, mixed noise),
whatever order the option lists them in.  The paper's recommended recipe is
the 2-D encoder with fade and time masking (:data:`RECOMMENDED`).

NOTE (deviations from the official code, each a documented choice):

- time masking: the official function applies itself with an inner p = 0.5
  on top of ``RandomApply``; here the family's p is the only draw;
- time stretch: the official code resamples the stretched clip back to len
  samples, which undoes the duration change and shifts the pitch by 1/rate
  instead; here the clip keeps its new duration and is padded or cropped, the
  phase-vocoder stretch the paper describes;
- pitch shift: whole semitones in [−15, 15] inclusive (the official
  ``randint(−15, 15)`` never draws +15), by :func:`evalbench.augment.waveform.pitch_shift`
  instead of librosa, with the ratio approximated by a fraction of denominator
  ≤ 100 (at most 1.96 cents off);
- mixed noise: the official variant needs noise recordings (brown, pink, fan)
  and mixes them sample-wise at random levels before clipping to [0, 1]; here
  coloured noise is generated and mixed at the white-noise SNR rule;
- the fade's logarithmic curve is ``log10(0.1 + 0.9·u) + 1``, which reaches 1
  at the end of the ramp (the official ``log10(0.1 + u) + 1`` is clipped at 1
  over the last tenth of it).

Random draws follow :mod:`evalbench.augment.clmr`: every transform first draws
``torch.rand(B) < p`` to pick its clips and, when any is picked, the
parameters of the ``k`` picked clips in the order its docstring lists, all on
the CPU from the ``generator`` passed to ``forward``.  Same input and generator
state ⇒ same output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from evalbench.augment.clmr import _RandomTransform
from evalbench.augment.waveform import _fit, pitch_shift, time_stretch

FAMILIES = ("fade", "time_mask", "time_stretch", "pitch_shift", "time_shift", "white_noise", "mixed_noise")
RECOMMENDED = ("fade", "time_mask")  # the paper's best 2-D recipe (§3.4 of docs/methods.md)
FADE_SHAPES = ("linear", "exponential", "logarithmic", "quarter_sine", "half_sine")
NOISE_COLOURS = ("white", "pink", "brown")  # power spectral density ∝ 1/f^0, 1/f^1, 1/f^2
N_FFT = 2048  # phase-vocoder window: librosa's default, which the official code used at 16 kHz
MAX_DENOMINATOR = 100  # pitch ratio approximation: ≤ 1.96 cents off for whole semitones within ±15


def fade_curve(u: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Fade-in gain ``g(u)`` of each row's shape, for ramp positions ``u`` in [0, 1].

    Every curve rises monotonically from g(0) = 0 to g(1) = 1: linear ``u``,
    exponential ``u·2^(u−1)``, logarithmic ``log10(0.1 + 0.9u) + 1``,
    quarter-sine ``sin(πu/2)`` and half-sine ``(1 − cos πu)/2``.

    Args:
        u: ``(B, N)`` positions along the ramp.
        shape: ``(B,)`` indices into :data:`FADE_SHAPES`.

    Returns:
        ``(B, N)`` gains in [0, 1].
    """
    curves = torch.stack(
        [
            u,
            u * torch.pow(2.0, u - 1),
            torch.log10(0.1 + 0.9 * u) + 1,
            torch.sin(0.5 * math.pi * u),
            0.5 - 0.5 * torch.cos(math.pi * u),
        ]
    )
    index = shape.to(u.device)[None, :, None].expand(1, *u.shape)
    return curves.gather(0, index)[0].clamp(0.0, 1.0)


def fade_envelope(n: int, fade_in: torch.Tensor, fade_out: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Gain envelopes ``(B, n)``: fade in over the first ``fade_in`` samples, fade out over the last ``fade_out``.

    Sample i of the fade-in has ramp position ``i / fade_in`` (0 at the first
    sample, 1 from sample ``fade_in`` on); the fade-out is its mirror image
    from the end.  A length of 0 leaves that side untouched.

    Args:
        n: Clip length.
        fade_in: ``(B,)`` fade-in lengths in samples.
        fade_out: ``(B,)`` fade-out lengths in samples.
        shape: ``(B,)`` indices into :data:`FADE_SHAPES` (one shape for both fades).

    Returns:
        ``(B, n)`` gains in [0, 1].
    """
    i = torch.arange(n, device=fade_in.device, dtype=torch.float32)
    fin, fout = fade_in.float()[:, None], fade_out.float()[:, None]
    u_in = torch.where(fin > 0, i / fin.clamp(min=1), 1.0).clamp(max=1.0)
    u_out = torch.where(fout > 0, (n - 1 - i) / fout.clamp(min=1), 1.0).clamp(max=1.0)
    return fade_curve(u_in, shape) * fade_curve(u_out, shape)


def coloured_noise(white: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """Shape white noise to a power spectrum ∝ 1/f^exponent per row, scaled to unit RMS.

    The rFFT of each row is multiplied by ``f^(−exponent/2)`` (bin index f;
    the DC bin is zeroed when exponent > 0) and transformed back.

    Args:
        white: ``(B, N)`` standard normal noise.
        exponent: ``(B,)`` spectral exponents (0 white, 1 pink, 2 brown).

    Returns:
        ``(B, N)`` noise with unit RMS per row.
    """
    n = white.shape[-1]
    f = torch.arange(n // 2 + 1, device=white.device, dtype=white.dtype)
    alpha = exponent.to(device=white.device, dtype=white.dtype)[:, None]
    gain = torch.where(f > 0, f.clamp(min=1) ** (-alpha / 2), (alpha == 0).to(white.dtype))
    noise = torch.fft.irfft(torch.fft.rfft(white) * gain, n)
    return noise / noise.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-12)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(dim=1, keepdim=True).sqrt()


class Fade(_RandomTransform):
    """Fade in and out (see :func:`fade_envelope`).

    Draws the shape (``torch.randint(5, (k,))``), then the fade-in and the
    fade-out lengths (each ``torch.randint(0, ⌊max_fraction·N⌋ + 1, (k,))``).

    Args:
        p: Probability per clip.
        max_fraction: Longest fade as a fraction of the clip (0.5 in the paper and the code).
    """

    def __init__(self, p: float = 0.5, max_fraction: float = 0.5) -> None:
        super().__init__(p)
        self.max_fraction = float(max_fraction)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Multiply each clip by its drawn envelope."""
        k, n = x.shape
        shape = torch.randint(len(FADE_SHAPES), (k,), generator=generator)
        longest = int(self.max_fraction * n)
        fade_in = torch.randint(0, longest + 1, (k,), generator=generator)
        fade_out = torch.randint(0, longest + 1, (k,), generator=generator)
        return x * fade_envelope(n, fade_in.to(x.device), fade_out.to(x.device), shape.to(x.device))


class TimeMask(_RandomTransform):
    """Replace ``⌊fraction·N⌋`` consecutive samples at a uniform start by N(0, std²) noise.

    Draws the start (``torch.randint(0, N − m + 1, (k,))``), then the noise
    (``torch.randn((k, m))``).

    Args:
        p: Probability per clip.
        fraction: Masked share of the clip (1/8 in the paper and the code).
        std: Standard deviation of the replacing noise (0.01 in the code).
    """

    def __init__(self, p: float = 0.5, fraction: float = 0.125, std: float = 0.01) -> None:
        super().__init__(p)
        self.fraction, self.std = float(fraction), float(std)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mask one segment of each clip."""
        k, n = x.shape
        m = int(self.fraction * n)
        start = torch.randint(0, n - m + 1, (k,), generator=generator)
        noise = self.std * torch.randn((k, m), generator=generator)
        index = (start[:, None] + torch.arange(m)).to(x.device)
        return x.scatter(1, index, noise.to(device=x.device, dtype=x.dtype))


class TimeShift(_RandomTransform):
    """Roll each clip circularly by an integer number of samples in [−max_shift, max_shift].

    Draws the shift (``torch.randint(−S, S + 1, (k,))``); sample i of the
    output is sample ``(i − shift) mod N`` of the input (``torch.roll``'s sign).

    Args:
        p: Probability per clip.
        max_shift: Largest shift in samples; None: half the clip (the paper;
            the official code's ±8,000 samples equal it for 1 s clips).
    """

    def __init__(self, p: float = 0.5, max_shift: int | None = None) -> None:
        super().__init__(p)
        self.max_shift = max_shift

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Roll each clip by its drawn shift."""
        k, n = x.shape
        s = n // 2 if self.max_shift is None else int(self.max_shift)
        shift = torch.randint(-s, s + 1, (k,), generator=generator)
        index = (torch.arange(n)[None, :] - shift[:, None]) % n
        return torch.gather(x, 1, index.to(x.device))


class TimeStretch(_RandomTransform):
    """Phase-vocoder time stretch at rate U(lo, hi), then right zero-padding or cropping back to N.

    Draws the rates (``torch.rand(k)``); each clip is stretched alone
    (:func:`evalbench.augment.waveform.time_stretch`, Hann window of ``n_fft``
    points, hop ``n_fft // 4``), pitch kept.

    Args:
        p: Probability per clip.
        rates: Range of the speed-up factor (0.5 to 1.5 in the paper and the code).
        n_fft: Phase-vocoder window.
    """

    def __init__(self, p: float = 0.5, rates: tuple[float, float] = (0.5, 1.5), n_fft: int = N_FFT) -> None:
        super().__init__(p)
        self.rates, self.n_fft = (float(rates[0]), float(rates[1])), int(n_fft)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Stretch each clip by its drawn rate, keeping the length."""
        lo, hi = self.rates
        rates = (lo + (hi - lo) * torch.rand(x.shape[0], generator=generator, dtype=torch.float64)).tolist()
        return torch.cat([_fit(time_stretch(x[i : i + 1], r, self.n_fft), x.shape[1]) for i, r in enumerate(rates)])


class PitchShift(_RandomTransform):
    """Shift the pitch by whole semitones in [lo, hi], length kept.

    Draws the semitones (``torch.randint(lo, hi + 1, (k,))``); clips sharing a
    shift are shifted together by :func:`evalbench.augment.waveform.pitch_shift`,
    and a shift of 0 leaves a clip as it is.

    Args:
        p: Probability per clip.
        semitones: Inclusive range (±15 in the paper and the code).
        n_fft: Phase-vocoder window.
    """

    def __init__(self, p: float = 0.5, semitones: tuple[int, int] = (-15, 15), n_fft: int = N_FFT) -> None:
        super().__init__(p)
        self.semitones, self.n_fft = (int(semitones[0]), int(semitones[1])), int(n_fft)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Shift each clip by its drawn number of semitones."""
        steps = torch.randint(self.semitones[0], self.semitones[1] + 1, (x.shape[0],), generator=generator)
        out = x.clone()
        for s in steps.unique().tolist():
            if s != 0:
                rows = (steps == s).nonzero().squeeze(1).to(x.device)
                out[rows] = pitch_shift(x[rows], s, self.n_fft, MAX_DENOMINATOR).to(x.dtype)
        return out


class WhiteNoise(_RandomTransform):
    """Add Gaussian noise at an integer SNR in [lo, hi] dB: std ``RMS(x)/√(10^(SNR/10))``.

    Draws the SNRs (``torch.randint(lo, hi + 1, (k,))``), then the noise
    (``torch.randn((k, N))``).  RMS is over the whole clip, padding included,
    as in the official code.

    Args:
        p: Probability per clip.
        snr_db: Inclusive SNR range in dB ([0, 20] in the code).
    """

    def __init__(self, p: float = 0.5, snr_db: tuple[int, int] = (0, 20)) -> None:
        super().__init__(p)
        self.snr_db = (int(snr_db[0]), int(snr_db[1]))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add each clip's noise."""
        snr = torch.randint(self.snr_db[0], self.snr_db[1] + 1, (x.shape[0],), generator=generator)
        noise = torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        std = _rms(x) / torch.sqrt(10.0 ** (snr.to(x.device, x.dtype)[:, None] / 10))
        return x + std * noise


class MixedNoise(_RandomTransform):
    """Add white, pink or brown noise (1/3 each) at an integer SNR in [lo, hi] dB.

    Draws the colour (``torch.randint(3, (k,))``, see :data:`NOISE_COLOURS`),
    the SNRs (``torch.randint(lo, hi + 1, (k,))``), then white noise
    (``torch.randn((k, N))``) that :func:`coloured_noise` shapes; the noise is
    scaled to ``RMS(x)/10^(SNR/20)``.

    Args:
        p: Probability per clip.
        snr_db: Inclusive SNR range in dB (the white-noise rule; our choice).
    """

    def __init__(self, p: float = 0.5, snr_db: tuple[int, int] = (0, 20)) -> None:
        super().__init__(p)
        self.snr_db = (int(snr_db[0]), int(snr_db[1]))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add each clip's coloured noise."""
        k = x.shape[0]
        colour = torch.randint(len(NOISE_COLOURS), (k,), generator=generator)
        snr = torch.randint(self.snr_db[0], self.snr_db[1] + 1, (k,), generator=generator)
        white = torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        noise = coloured_noise(white, colour)
        return x + _rms(x) / 10.0 ** (snr.to(x.device, x.dtype)[:, None] / 20) * noise


_BUILD = {
    "fade": Fade,
    "time_mask": TimeMask,
    "time_stretch": TimeStretch,
    "pitch_shift": PitchShift,
    "time_shift": TimeShift,
    "white_noise": WhiteNoise,
    "mixed_noise": MixedNoise,
}


class ClarChain(nn.Module):
    """One CLAR view: the chosen families in :data:`FAMILIES` order, each applied per clip with probability p.

    Args:
        augmentations: Family names (:data:`FAMILIES`); default the paper's recommended fade + time masking.
        p: Probability of each family per clip (0.5, the paper's intent).

    Raises:
        ValueError: An unknown or repeated name, or p outside [0, 1].
    """

    def __init__(self, augmentations: Sequence[str] = RECOMMENDED, p: float = 0.5) -> None:
        super().__init__()
        names = list(augmentations)
        unknown = sorted(set(names) - set(FAMILIES))
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"augmentations: need distinct names from {', '.join(FAMILIES)}; got {names}")
        self.names = tuple(n for n in FAMILIES if n in names)
        self.steps = nn.ModuleList(_BUILD[n](p) for n in self.names)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a ``(B, N)`` batch; every draw comes from ``generator`` (CPU), in step order."""
        for step in self.steps:
            x = step(x, generator)
        return x


__all__ = [
    "FADE_SHAPES",
    "FAMILIES",
    "NOISE_COLOURS",
    "RECOMMENDED",
    "ClarChain",
    "Fade",
    "MixedNoise",
    "PitchShift",
    "TimeMask",
    "TimeShift",
    "TimeStretch",
    "WhiteNoise",
    "coloured_noise",
    "fade_curve",
    "fade_envelope",
]
