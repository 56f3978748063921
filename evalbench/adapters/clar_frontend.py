"""CLAR's 3-channel spectrogram front ends: log-magnitude STFT, phase and log-mel.

Al-Tahan & Mohsenzadeh (AISTATS 2021) feed their 2-D ResNet-18 a stack of
three 128-row images of a 16 kHz clip: ``[log-magnitude STFT, STFT phase,
log-mel]`` (docs/methods.md §3.1).  The paper and the official code describe
different front ends; both are implemented and the encoder option records
which one was used.

``code`` (default, the official code):

- channel 0: a Hann-windowed 2048-point (128 ms) STFT with a 128-sample (8 ms)
  hop, evaluated directly at 128 log-spaced frequencies
  ``f_k = 40 · (8000/40)^(k/128)`` Hz, k = 0…127 (the top bin sits just below
  8 kHz, as in the code's log-frequency Fourier kernels), as magnitude in dB
  ``20·log10(max(√(|X|² + 1e-8), 1e-5)) − 20``;
- channel 1: the phase of the same complex bins, in radians;
- channel 2: a 128-band mel spectrogram (same window and hop, 40–8000 Hz) in
  dB ``10·log10(max(P, 1e-5)) − 10``.

The dB conversions are the official ``get_features`` exactly: torchaudio's
``amplitude_to_DB(x, multiplier, amin=1e-5, db_multiplier=1)`` for both
channels, i.e. ``multiplier·log10(max(x, 1e-5)) − multiplier`` (a reference
level of 10, so −20 dB on the magnitude and −10 dB on the mel; no top-dB
clipping), applied to the code's STFT magnitude, which is ``√(|X|² + 1e-8)``,
and to its mel power.  Silence is therefore −100 dB on channel 0 (the 1e-8
inside the root, not ``amin``, sets that floor) and −60 dB on channel 2.
(Before adapter version 2 the mel was floored at 1e-10, silence at −100 dB,
and both offsets were missing.)

``paper`` (the AISTATS text): a 16 ms window (n_fft 256) with an 8 ms hop;
magnitude and mel as ``10·log10`` power, phase of the same bins.

Frames are centred (reflection padding of half a window), so 1 s gives
``1 + 16000 // 128 = 126`` frames and the input image is ``3 × 128 × 126``.
"""

from __future__ import annotations

import math
import warnings

import torch
import torchaudio
from torch import nn

from evalbench.adapters.options.clar import SAMPLE_RATE

N_BINS = 128  # rows of every channel
HOP = 128  # 8 ms at 16 kHz, in both front ends
F_MIN, F_MAX = 40.0, 8000.0  # frequency range of the official code's log-STFT and mel channels
AMIN = 1e-5  # floor of both dB conversions of the official code (amplitude_to_DB's amin)
DB_OFFSET_REF = 1.0  # the code's db_multiplier: log10 of a reference level of 10 → −20 dB (magnitude), −10 dB (mel)
MAG_EPS = 1e-8  # the code's STFT magnitude is sqrt(|X|² + 1e-8)
POW_AMIN = 1e-10  # power floor of the ``paper`` front end's 10·log10 (librosa's power_to_db default)


def _db_power(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power.clamp(min=POW_AMIN))


def code_db(x: torch.Tensor, multiplier: float) -> torch.Tensor:
    """The official code's dB: ``multiplier·log10(max(x, 1e-5)) − multiplier·1`` (20 for amplitude, 10 for power)."""
    return multiplier * torch.log10(x.clamp(min=AMIN)) - multiplier * DB_OFFSET_REF


def _mel_filters(n_fft: int) -> torch.Tensor:
    """``(n_fft//2 + 1, 128)`` Slaney-scale, Slaney-normalised mel filters between 40 and 8000 Hz.

    NOTE: neither source states the mel scale; the official code builds its
    filters with librosa, whose defaults are the Slaney scale and area norm.
    With n_fft 256 (``paper``) the lowest bands are narrower than one FFT bin
    and stay empty (constant −100 dB rows), a consequence of the paper's
    128 bands on a 16 ms window.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio warns about the empty low bands of the paper variant
        return torchaudio.functional.melscale_fbanks(
            n_fft // 2 + 1, F_MIN, F_MAX, N_BINS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
        )


def log_frequency_kernel(n_fft: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed DFT kernels at CLAR's 128 log-spaced frequencies.

    Args:
        n_fft: Window length in samples.

    Returns:
        ``(kernel, freqs)``: ``kernel`` is ``(n_fft, 2·128)`` with the real parts
        (Hann-windowed cosines) in the first 128 columns and the imaginary parts
        (windowed negative sines, the usual DFT sign) in the last 128;
        ``freqs`` are the 128 centre frequencies in Hz.
    """
    k = torch.arange(N_BINS, dtype=torch.float64)
    freqs = F_MIN * (F_MAX / F_MIN) ** (k / N_BINS)
    n = torch.arange(n_fft, dtype=torch.float64)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    phase = 2 * math.pi * n[:, None] * freqs[None, :] / SAMPLE_RATE
    kernel = torch.cat([window[:, None] * torch.cos(phase), -window[:, None] * torch.sin(phase)], dim=1)
    return kernel.float(), freqs.float()


class ClarFrontEnd(nn.Module):
    """Waveform ``(B, N)`` at 16 kHz → CLAR input image ``(B, 3, 128, T)``.

    Args:
        kind: ``code`` (official code) or ``paper`` (AISTATS text); see the module docstring.
    """

    def __init__(self, kind: str = "code") -> None:
        super().__init__()
        if kind not in ("code", "paper"):
            raise ValueError(f"unknown CLAR front end '{kind}'")
        self.kind = kind
        self.n_fft = 2048 if kind == "code" else 256
        self.hop = HOP
        # Reflection padding needs more than half a window of signal; shorter clips are zero-padded to one window.
        self.min_samples = self.n_fft
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("mel_fb", _mel_filters(self.n_fft), persistent=False)
        if kind == "code":
            self.register_buffer("log_kernel", log_frequency_kernel(self.n_fft)[0], persistent=False)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a clip of ``n_samples`` (after padding to :attr:`min_samples`)."""
        return 1 + max(n_samples, self.min_samples) // self.hop

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Three-channel image ``(B, 3, 128, T)`` with ``T = 1 + N // 128``.

        Args:
            waveforms: ``(B, N)`` float32 mono audio, ``N >= min_samples``.
        """
        spec = torch.stft(
            waveforms,
            self.n_fft,
            hop_length=self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, n_fft//2 + 1, T)
        power = spec.real**2 + spec.imag**2
        mel_power = torch.einsum("bft,fm->bmt", power, self.mel_fb)
        if self.kind == "code":
            mel = code_db(mel_power, 10.0)
            pad = self.n_fft // 2
            padded = nn.functional.pad(waveforms[:, None], (pad, pad), mode="reflect")[:, 0]
            frames = padded.unfold(-1, self.n_fft, self.hop)  # (B, T, n_fft)
            out = frames @ self.log_kernel  # (B, T, 2·128)
            # + 0.0 turns −0.0 into +0.0, so silent frames have phase 0 (atan2 of signed zeros can give ±π)
            real, imag = out[..., :N_BINS].transpose(1, 2) + 0.0, out[..., N_BINS:].transpose(1, 2) + 0.0
            magnitude = code_db(torch.sqrt(real**2 + imag**2 + MAG_EPS), 20.0)
            phase = torch.atan2(imag, real)
        else:
            mel = _db_power(mel_power)
            # NOTE: n_fft 256 gives 129 bins; the Nyquist bin is dropped so that all three channels have 128 rows.
            bins = spec[:, :N_BINS]
            magnitude = _db_power(power[:, :N_BINS])
            phase = torch.atan2(bins.imag, bins.real)
        return torch.stack([magnitude, phase, mel], dim=1)
