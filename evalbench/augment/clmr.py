"""CLMR's waveform view chain as batched, generator-driven torch modules.

Contrastive Learning of Musical Representations (Spijkervet & Burgoyne, ISMIR
2021) makes each view of a raw-waveform crop with seven randomly applied
transforms, in this order: polarity inversion, Gaussian noise, gain, high- or
low-pass filter, delay, pitch shift, reverb.  The reference implementation
calls sox (reverb), WavAugment (pitch) and julius (filters) clip by clip; here
everything is torch, runs on the whole ``(B, N)`` batch on ``x``'s device, and
keeps the length.

Random draws (all on the CPU from the ``generator`` passed to ``forward``, then
moved to ``x.device``): each transform first draws ``torch.rand(B) < p`` to pick
its clips; if none is picked it draws nothing more, otherwise it draws the
parameters of the ``k`` picked clips only, in the order listed in its docstring,
and transforms that sub-batch.  Same input and generator state ⇒ same output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from evalbench.augment.waveform import pitch_shift, stft_size

SAMPLE_RATE = 22050  # CLMR's audio rate
_LN_1000 = math.log(1000.0)  # −60 dB, the definition of a reverberation time T60
_T60 = (0.1, 2.0)  # reverb: T60 range in seconds (our choice; see Reverb)
_CROSSOVER_HZ = (8000.0, 1000.0)  # reverb: one-pole corner at damping 0 and 100 (our choice)


class _RandomTransform(nn.Module):
    """Apply :meth:`transform` to each clip with probability ``p`` (a sub-batch of the picked clips)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Transform each clip of ``x`` with probability ``p``.

        Args:
            x: ``(B, N)`` float waveforms at the module's sample rate.
            generator: CPU generator for every random draw.

        Returns:
            ``(B, N)`` waveforms; clips not picked are unchanged.
        """
        rows = (torch.rand(x.shape[0], generator=generator) < self.p).nonzero().squeeze(1).to(x.device)
        if rows.numel() == 0:
            return x
        out = x.clone()
        out[rows] = self.transform(x[rows], generator).to(x.dtype)
        return out

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Transform every clip of the ``(k, N)`` sub-batch ``x``."""
        raise NotImplementedError


def _uniform(k: int, bounds: tuple[float, float], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``(k, 1)`` draws of U(bounds) from one ``torch.rand(k)`` call, moved to ``device``."""
    lo, hi = bounds
    return (lo + (hi - lo) * torch.rand(k, generator=generator)).to(device)[:, None]


class PolarityInversion(_RandomTransform):
    """Flip the sign of a clip, x → −x (CLMR: p = 0.8).  Draws nothing beyond the pick."""

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return ``−x``."""
        return -x


class GaussianNoise(_RandomTransform):
    """Add white Gaussian noise of std σ·std(x), σ ~ U(0.0001, 0.01) per clip (CLMR: p = 0.01).

    Draws σ (``torch.rand(k)``), then the noise (``torch.randn((k, N))``).

    Args:
        p: Probability per clip.
        relative_std: Range of σ, the noise std relative to the clip's std; CLMR: (0.0001, 0.01).
    """

    def __init__(self, p: float = 0.01, relative_std: tuple[float, float] = (0.0001, 0.01)) -> None:
        super().__init__(p)
        self.relative_std = tuple(map(float, relative_std))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add noise scaled to each clip's own std."""
        sigma = _uniform(x.shape[0], self.relative_std, generator, x.device)
        noise = torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
        return x + sigma * x.std(dim=1, keepdim=True) * noise


class Gain(_RandomTransform):
    """Multiply a clip by 10^(g/20), g ~ U(−20, −1) dB (CLMR: p = 0.3; always quieter).  Draws g.

    Args:
        p: Probability per clip.
        gain_db: Range of g in dB; CLMR: (−20, −1).
    """

    def __init__(self, p: float = 0.3, gain_db: tuple[float, float] = (-20.0, -1.0)) -> None:
        super().__init__(p)
        self.gain_db = tuple(map(float, gain_db))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Scale each clip by its drawn gain."""
        return x * 10 ** (_uniform(x.shape[0], self.gain_db, generator, x.device) / 20)


def sinc_filter(
    x: torch.Tensor, cutoff_hz: torch.Tensor, highpass: torch.Tensor, sample_rate: int, taps: int = 101
) -> torch.Tensor:
    """Filter each clip with its own Hann-windowed-sinc FIR low- or high-pass, 'same' length.

    The low-pass is ``2·fc·sinc(2·fc·m)·hann(m)`` for ``m = −(taps−1)/2 … (taps−1)/2`` (fc in
    cycles per sample), normalised to unit DC gain; the high-pass is its spectral
    inversion ``δ − h``.  Measured with 101 taps at 22,050 Hz (low-pass at 2,500 Hz): −1 dB at
    2,294 Hz, −6 dB at the cutoff, −40 dB at 2,834 Hz, below −67 dB from 3,500 Hz on.  All clips
    are filtered by one grouped ``F.conv1d`` on a ``(1, B, N)`` view with zero padding.

    Args:
        x: ``(B, N)`` waveforms.
        cutoff_hz: ``(B,)`` cutoff frequencies (−6 dB points).
        highpass: ``(B,)`` bool, True for a high-pass.
        sample_rate: Audio rate in Hz.
        taps: Odd filter length.

    Returns:
        ``(B, N)`` filtered waveforms.
    """
    if taps % 2 == 0:
        raise ValueError(f"sinc_filter: taps must be odd, got {taps}")
    b, n = x.shape
    fc = (cutoff_hz.to(device=x.device, dtype=torch.float64) / sample_rate)[:, None]
    m = torch.arange(taps, device=x.device, dtype=torch.float64) - (taps - 1) / 2
    h = 2 * fc * torch.sinc(2 * fc * m) * torch.hann_window(taps, periodic=False, dtype=torch.float64, device=x.device)
    h = h / h.sum(dim=1, keepdim=True)
    delta = (m == 0).to(h.dtype)
    h = torch.where(highpass.to(x.device)[:, None], delta - h, h)
    out = F.conv1d(x.reshape(1, b, n), h.to(x.dtype)[:, None], padding=taps // 2, groups=b)
    return out.reshape(b, n)


class HighLowPass(_RandomTransform):
    """Filter a clip with a high-pass (cutoff U(200, 1200) Hz) or a low-pass (U(2200, 4000) Hz), 50/50.

    CLMR: p = 0.8, the ranges above.  Draws the kind (``torch.rand(k) < 0.5`` is
    high-pass), then one ``torch.rand(k)`` placing the cutoff in the kind's range.

    NOTE: the reference (julius filters) lengthens its sinc as the cutoff falls;
    we use a fixed ``taps`` (101 by default, see :func:`sinc_filter`), so the
    200 Hz high-pass is gentler (measured: −20 dB at 100 Hz, −32 dB at 50 Hz).

    Args:
        p: Probability per clip.
        sample_rate: Audio rate in Hz.
        highpass_hz: Range of the high-pass cutoff; CLMR: (200, 1200).
        lowpass_hz: Range of the low-pass cutoff; CLMR: (2200, 4000).
        taps: Odd FIR length.
    """

    def __init__(
        self,
        p: float = 0.8,
        sample_rate: int = SAMPLE_RATE,
        highpass_hz: tuple[float, float] = (200.0, 1200.0),
        lowpass_hz: tuple[float, float] = (2200.0, 4000.0),
        taps: int = 101,
    ) -> None:
        super().__init__(p)
        self.sample_rate, self.taps = int(sample_rate), int(taps)
        self.highpass_hz, self.lowpass_hz = tuple(map(float, highpass_hz)), tuple(map(float, lowpass_hz))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Filter each clip with its drawn filter."""
        highpass = torch.rand(x.shape[0], generator=generator) < 0.5
        u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64)
        (hl, hh), (ll, lh) = self.highpass_hz, self.lowpass_hz
        cutoff = torch.where(highpass, hl + (hh - hl) * u, ll + (lh - ll) * u)
        return sinc_filter(x, cutoff, highpass, self.sample_rate, self.taps)


def delay(x: torch.Tensor, shift: torch.Tensor, volume: float = 0.5) -> torch.Tensor:
    """Return ``(x + volume·x_delayed) / 2``, x delayed by ``shift`` samples per clip (zeros in front).

    Args:
        x: ``(B, N)`` waveforms.
        shift: ``(B,)`` delays in samples, ``>= 0``.
        volume: Level of the echo; CLMR: 0.5.

    Returns:
        ``(B, N)`` waveforms.
    """
    source = torch.arange(x.shape[1], device=x.device) - shift.to(x.device)[:, None]
    delayed = torch.gather(x, 1, source.clamp(min=0)) * (source >= 0)
    return (x + volume * delayed) / 2


class Delay(_RandomTransform):
    """Add one echo, delay uniform in {200, 250, …, 450} ms at half the level (CLMR: p = 0.3).

    Draws the delay's index (``torch.randint(len(delays_ms), (k,))``); see :func:`delay`.

    Args:
        p: Probability per clip.
        sample_rate: Audio rate in Hz.
        delays_ms: Candidate delays; CLMR: 200 to 450 ms in steps of 50.
        volume: Echo level; CLMR: 0.5.
    """

    def __init__(
        self,
        p: float = 0.3,
        sample_rate: int = SAMPLE_RATE,
        delays_ms: Sequence[float] = (200, 250, 300, 350, 400, 450),
        volume: float = 0.5,
    ) -> None:
        super().__init__(p)
        self.sample_rate, self.volume = int(sample_rate), float(volume)
        self.delays_ms = tuple(map(float, delays_ms))

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Add each clip's drawn echo."""
        shifts = torch.tensor([round(ms * self.sample_rate / 1000) for ms in self.delays_ms])
        return delay(x, shifts[torch.randint(len(shifts), (x.shape[0],), generator=generator)], self.volume)


class PitchShift(_RandomTransform):
    """Shift the pitch by an integer number of cents in [−700, 700], length kept (CLMR: p = 0.6).

    Draws the cents (``torch.randint(lo, hi + 1, (k,))``).  Clips sharing a shift
    are processed together with :func:`evalbench.augment.waveform.pitch_shift`
    (phase vocoder + rational resampling); a shift of 0 leaves the clip as is.
    Per-cent shifts are kept (no quantisation): one group of a 59,049-sample clip
    at 22,050 Hz takes about 15–35 ms on one CPU core, so a batch costs about that
    per distinct shift.

    Args:
        p: Probability per clip.
        sample_rate: Audio rate in Hz (sets the phase vocoder's FFT size).
        cents: Inclusive range of the shift; CLMR: ±7 semitones = (−700, 700).
        n_fft: Phase-vocoder FFT size; default :func:`~evalbench.augment.waveform.stft_size`.
    """

    def __init__(
        self,
        p: float = 0.6,
        sample_rate: int = SAMPLE_RATE,
        cents: tuple[int, int] = (-700, 700),
        n_fft: int | None = None,
    ) -> None:
        super().__init__(p)
        self.sample_rate, self.cents = int(sample_rate), (int(cents[0]), int(cents[1]))
        self.n_fft = stft_size(sample_rate) if n_fft is None else int(n_fft)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Shift each clip by its drawn number of cents."""
        cents = torch.randint(self.cents[0], self.cents[1] + 1, (x.shape[0],), generator=generator)
        out = x.clone()
        for c in cents.unique().tolist():
            if c != 0:
                rows = (cents == c).nonzero().squeeze(1).to(x.device)
                out[rows] = pitch_shift(x[rows], c / 100, self.n_fft).to(x.dtype)
        return out


def _fft_convolve(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Row-wise linear convolution of ``(B, N)`` by ``(B, L)`` via zero-padded rFFTs, truncated to N."""
    n = x.shape[-1]
    size = 2 ** math.ceil(math.log2(n + h.shape[-1] - 1))
    return torch.fft.irfft(torch.fft.rfft(x, size) * torch.fft.rfft(h, size), size)[..., :n]


def reverb(
    x: torch.Tensor,
    reverberance: torch.Tensor,
    damping: torch.Tensor,
    room_size: torch.Tensor,
    noise: torch.Tensor,
    sample_rate: int,
) -> torch.Tensor:
    """Mix each clip with its convolution by a synthetic, exponentially decaying noise impulse response.

    With r, d, s the reverberance, damping and room size divided by 100:

    - reverberation time ``T60 = 0.1 + 1.9·r·(0.2 + 0.8·s)`` s (from 0.1 s up to 2 s);
    - the IR noise is split by a one-pole low-pass ``y[t] = (1 − a)·n[t] + a·y[t−1]`` with corner
      ``8000·(1/8)^d`` Hz (8 kHz to 1 kHz), ``a = exp(−2π·corner/sr)``, applied as an FFT convolution
      with its impulse response ``(1 − a)·aᵗ``; the low band decays with ``T60``, the rest (high band)
      with ``T60·(1 − 0.8·d)``, so damping makes high frequencies die out faster (d = 0: plain decaying
      white noise);
    - the IR is scaled to unit energy and convolved with the clip (FFT, truncated to N);
    - output ``(1 − m)·x + m·wet`` with wet level ``m = 0.5·r``, so r = 0 returns ``x`` exactly
      (r = 1 on white noise: RMS × ≈0.7, as dry and wet are uncorrelated halves).

    Args:
        x: ``(B, N)`` waveforms.
        reverberance: ``(B,)`` in [0, 100].
        damping: ``(B,)`` in [0, 100].
        room_size: ``(B,)`` in [0, 100].
        noise: ``(B, L)`` standard normal noise, the IR's source (L ≥ 1 samples, typically 2 s).
        sample_rate: Audio rate in Hz.

    Returns:
        ``(B, N)`` reverberated waveforms.
    """
    dev = x.device
    r, d, s = (v.to(device=dev, dtype=torch.float64)[:, None] / 100 for v in (reverberance, damping, room_size))
    noise = noise.to(device=dev, dtype=torch.float64)
    t = torch.arange(noise.shape[1], device=dev, dtype=torch.float64) / sample_rate
    t60 = _T60[0] + (_T60[1] - _T60[0]) * r * (0.2 + 0.8 * s)
    corner = _CROSSOVER_HZ[0] * (_CROSSOVER_HZ[1] / _CROSSOVER_HZ[0]) ** d
    a = torch.exp(-2 * math.pi * corner / sample_rate)
    low = _fft_convolve(noise, (1 - a) * a ** torch.arange(noise.shape[1], device=dev, dtype=torch.float64))
    ir = low * torch.exp(-_LN_1000 * t / t60) + (noise - low) * torch.exp(-_LN_1000 * t / (t60 * (1 - 0.8 * d)))
    ir = ir / ir.norm(dim=1, keepdim=True).clamp(min=1e-12)
    wet = _fft_convolve(x.double(), ir)
    m = 0.5 * r
    return ((1 - m) * x.double() + m * wet).to(x.dtype)


class Reverb(_RandomTransform):
    """Synthetic room reverb with integer reverberance, damping and room size in [0, 100] (CLMR: p = 0.6).

    Draws reverberance, damping and room size (one ``torch.randint(lo, hi + 1, (k, 3))``),
    then the IR noise (``torch.randn((k, L))``, ``L = min(N, 2 s)``); see :func:`reverb`.

    NOTE: this replaces sox's ``reverb`` (freeverb) used by CLMR: same three
    parameters and ranges, but our own IR model, so the sound differs; no stereo
    depth, pre-delay or wet-only option.

    Args:
        p: Probability per clip.
        sample_rate: Audio rate in Hz.
        reverberance: Inclusive integer range; CLMR: (0, 100).
        damping: Inclusive integer range; CLMR: (0, 100).
        room_size: Inclusive integer range; CLMR: (0, 100).
    """

    def __init__(
        self,
        p: float = 0.6,
        sample_rate: int = SAMPLE_RATE,
        reverberance: tuple[int, int] = (0, 100),
        damping: tuple[int, int] = (0, 100),
        room_size: tuple[int, int] = (0, 100),
    ) -> None:
        super().__init__(p)
        self.sample_rate = int(sample_rate)
        self.bounds = torch.tensor([reverberance, damping, room_size])  # (3, 2): lo, hi

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Reverberate each clip with its drawn room."""
        k, n = x.shape
        lo, hi = self.bounds.unbind(1)
        u = torch.rand((k, 3), generator=generator, dtype=torch.float64)
        params = torch.minimum(lo + (u * (hi - lo + 1)).long(), hi)
        noise = torch.randn((k, min(n, round(_T60[1] * self.sample_rate))), generator=generator)
        return reverb(x, *params.unbind(1), noise, self.sample_rate)


class ClmrChain(nn.Module):
    """CLMR's view augmentation: the seven transforms in the paper's order, each applied per clip."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        polarity: float = 0.8,
        noise: float = 0.01,
        gain: float = 0.3,
        filters: float = 0.8,
        delay: float = 0.3,
        pitch: float = 0.6,
        reverb: float = 0.6,
    ) -> None:
        """Build the chain; arguments are the probabilities per clip.

        Defaults are CLMR's v2 values (Spijkervet & Burgoyne, ISMIR 2021):

        ========  ====  ===============================================
        step      p     parameters
        ========  ====  ===============================================
        polarity  0.8   x → −x
        noise     0.01  std U(0.0001, 0.01)·std(x)
        gain      0.3   U(−20, −1) dB
        filters   0.8   high-pass U(200, 1200) Hz | low-pass U(2200, 4000) Hz
        delay     0.3   {200, …, 450} ms, echo at 0.5, (x + 0.5·x_d)/2
        pitch     0.6   integer cents in [−700, 700]
        reverb    0.6   reverberance, damping, room size in [0, 100]
        ========  ====  ===============================================

        Random crops are not part of the chain (the data layer does them).

        Args:
            sample_rate: Audio rate in Hz; CLMR: 22,050.
            polarity: p of :class:`PolarityInversion`.
            noise: p of :class:`GaussianNoise`.
            gain: p of :class:`Gain`.
            filters: p of :class:`HighLowPass`.
            delay: p of :class:`Delay`.
            pitch: p of :class:`PitchShift`.
            reverb: p of :class:`Reverb`.
        """
        super().__init__()
        self.steps = nn.ModuleList(
            [
                PolarityInversion(polarity),
                GaussianNoise(noise),
                Gain(gain),
                HighLowPass(filters, sample_rate),
                Delay(delay, sample_rate),
                PitchShift(pitch, sample_rate),
                Reverb(reverb, sample_rate),
            ]
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Apply the chain to a ``(B, N)`` batch; every draw comes from ``generator`` (CPU), in step order."""
        for step in self.steps:
            x = step(x, generator)
        return x
