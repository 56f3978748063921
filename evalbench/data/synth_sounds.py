"""Procedural sound generators for the embedded synthetic suite (pure NumPy).

Every generator takes an explicit ``numpy.random.Generator`` so a clip is a pure
function of its seed.  Signals are float64 internally, returned as float32.
Band-limited waveforms are built additively (no partial above Nyquist, and none
above ``F_TOP`` so the log-mel range of 60–7800 Hz sees no aliasing).
"""

from __future__ import annotations

import numpy as np

F_TOP = 7600.0


def midi_to_hz(note: float) -> float:
    """Frequency of a (fractional) MIDI note number, A4 = 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def envelope(n: int, sr: int, rng: np.random.Generator, *, percussive: bool = False) -> np.ndarray:
    """An attack–decay–sustain–release amplitude envelope of ``n`` samples.

    Percussive envelopes have a short attack and an exponential decay to silence.
    """
    t = np.arange(n) / sr
    attack = rng.uniform(0.002, 0.01) if percussive else rng.uniform(0.005, 0.12)
    env = np.clip(t / attack, 0.0, 1.0)
    if percussive:
        return env * np.exp(-t / rng.uniform(0.08, 0.6))
    sustain = rng.uniform(0.4, 1.0)
    decay = rng.uniform(0.05, 0.3)
    env = env * (sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / decay))
    release_start = t[-1] - rng.uniform(0.05, 0.2)
    return env * np.clip((t[-1] - t) / max(t[-1] - release_start, 1e-3), 0.0, 1.0)


def phase_of(
    f0: float, n: int, sr: int, vibrato_cents: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Instantaneous phase (radians) of a tone at ``f0`` with optional 4–7 Hz vibrato."""
    t = np.arange(n) / sr
    freq = np.full(n, f0)
    if vibrato_cents and rng is not None:
        rate = rng.uniform(4.0, 7.0)
        freq = f0 * 2.0 ** (vibrato_cents / 1200.0 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return 2 * np.pi * np.cumsum(freq) / sr


def additive(phase: np.ndarray, f0: float, amps: np.ndarray, inharmonicity: float = 0.0) -> np.ndarray:
    """Sum of partials k·f0·sqrt(1 + B·k²) with amplitudes ``amps[k-1]`` (skipping those above F_TOP)."""
    out = np.zeros_like(phase)
    for k, a in enumerate(amps, start=1):
        stretch = k * np.sqrt(1.0 + inharmonicity * k * k)
        if a == 0 or f0 * stretch >= F_TOP:
            continue
        out += a * np.sin(stretch * phase)
    return out


def waveform_amps(kind: str, n_partials: int) -> np.ndarray:
    """Fourier amplitudes of band-limited classic waveforms.

    square: odd harmonics at 1/k; saw: all harmonics at 1/k; triangle: odd
    harmonics at 1/k² (sign alternation does not change the magnitude spectrum).
    """
    k = np.arange(1, n_partials + 1, dtype=float)
    if kind == "square":
        return np.where(k % 2 == 1, 1.0 / k, 0.0)
    if kind == "saw":
        return 1.0 / k
    if kind == "triangle":
        return np.where(k % 2 == 1, 1.0 / k**2, 0.0)
    raise ValueError(kind)


def karplus_strong(f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Plucked string (Karplus–Strong): a noise burst in a loss-filtered delay line.

    y[i] = d·(y[i−L] + y[i−L−1])/2, computed block-wise (each block of L samples
    depends only on earlier blocks, so the recursion vectorises).
    """
    period = max(2, round(sr / f0))
    decay = rng.uniform(0.990, 0.999)
    y = np.zeros(n + period + 1)
    y[: period + 1] = rng.uniform(-1, 1, period + 1)
    pos = period + 1
    while pos < len(y):
        end = min(pos + period, len(y))
        y[pos:end] = decay * 0.5 * (y[pos - period : end - period] + y[pos - period - 1 : end - period - 1])
        pos = end
    return y[:n]


def fm_tone(f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Two-operator FM (Chowning 1973): carrier f0, modulator ratio·f0, decaying index."""
    t = np.arange(n) / sr
    ratio = rng.choice([0.5, 1.0, 1.4, 2.0, 3.5])
    index = rng.uniform(1.0, 6.0) * np.exp(-t / rng.uniform(0.1, 0.8))
    return np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * ratio * f0 * t))


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise with power spectrum ∝ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    spec *= f ** (-exponent / 2.0)
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def band_noise(n: int, sr: int, rng: np.random.Generator, center: float, width_octaves: float) -> np.ndarray:
    """Gaussian noise band-passed around ``center`` Hz (FFT masking, raised-cosine edges), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    dist = np.abs(np.log2(np.maximum(f, 1.0) / center)) / (width_octaves / 2.0)
    spec *= np.where(dist < 1.0, 0.5 + 0.5 * np.cos(np.pi * dist), 0.0)
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def bell(f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Inharmonic bell-like partials (ratios of a minor-third bell), each with its own decay."""
    t = np.arange(n) / sr
    ratios = np.array([0.5, 1.0, 1.19, 1.56, 2.0, 2.51, 2.66, 3.01, 4.1])
    out = np.zeros(n)
    for r in ratios:
        if f0 * r >= F_TOP:
            continue
        amp = rng.uniform(0.2, 1.0)
        out += amp * np.exp(-t * rng.uniform(1.5, 6.0) * r) * np.sin(2 * np.pi * f0 * r * t + rng.uniform(0, 6.28))
    return out


def rms(x: np.ndarray) -> float:
    """Root-mean-square level."""
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


def mix_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``signal`` plus ``noise`` scaled so that RMS(signal)/RMS(noise) is ``snr_db`` dB."""
    return signal + noise * (rms(signal) / rms(noise)) / 10.0 ** (snr_db / 20.0)


def to_peak(x: np.ndarray, peak: float) -> np.ndarray:
    """Scale ``x`` to a given absolute peak, as float32."""
    return (x * (peak / (np.max(np.abs(x)) + 1e-12))).astype(np.float32)
