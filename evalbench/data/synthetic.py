"""The embedded synthetic suite: deterministic procedural audio tasks.

The default benchmark on a fresh machine and the test data.  Each task is
written to the data root as real 16-bit WAV files plus canonical metadata, so
the whole pipeline (decode → crop/pad → encode → cache → probe) is exercised
exactly as for a real dataset.  Every clip is a pure function of
``(seed, kind, index)``: generation order and parallelism do not matter.

Kinds:

- ``pitch``: pitch class (12) of harmonic tones with random timbre (1–12
  partials, random spectral slope, odd-only or full), octave (MIDI 36–83),
  detune (±25 cents), vibrato, envelope and coloured noise (0–25 dB SNR).
  Octave equivalence makes it hard for band statistics.
- ``timbre``: instrument-like families (additive, square, saw, triangle, plucked
  string, FM, noise band, bell) at random pitch; each *source* note is rendered
  as several takes (new noise, gain, onset) that share a fold and a group, like
  ESC-50's takes of one recording; 5-fold cross-validation.
- ``events``: multi-label; 1–3 of 8 event types (beep, chirp, click train,
  knock, whistle, siren, noise burst, buzz) at random times and levels over
  coloured background noise.
- ``detect``: binary; is a faint harmonic tone (−12 to +3 dB SNR) present in
  coloured noise?  Band-noise distractors appear in both classes.
- ``pitch_midi``: regression; the ``pitch`` generator's tones (their own draw),
  labelled with their fractional MIDI note number, 12·octave + pitch class +
  detune (35.75–83.25 semitones, continuous within ±0.25 of each note).  Clip
  ``i`` has pitch class ``i mod 12``, so splits are balanced over pitch classes
  (``per_class`` clips each) and octaves are drawn at random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from evalbench.data import synth_sounds as S
from evalbench.data.builders import BuildOutput, DatasetBuilder
from evalbench.errors import SpecError
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.task import TaskSpec
from evalbench.utils.console import progress
from evalbench.utils.hashing import sha256_json
from evalbench.utils.io import DATA_ADVICE, atomic_write_wav

GENERATOR_VERSION = 1
PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
TIMBRE_CLASSES = ["additive", "square", "saw", "triangle", "pluck", "fm", "noise_band", "bell"]
EVENT_CLASSES = ["beep", "chirp", "clicks", "knock", "whistle", "siren", "hiss", "buzz"]
DETECT_CLASSES = ["absent", "present"]
CLASSES = {
    "pitch": PITCH_CLASSES,
    "timbre": TIMBRE_CLASSES,
    "events": EVENT_CLASSES,
    "detect": DETECT_CLASSES,
}
KIND_CODE = {"pitch": 1, "timbre": 2, "events": 3, "detect": 4, "pitch_midi": 5}
REGRESSION = {"pitch_midi": "pitch"}  # regression kind -> the classification kind whose generator and strata it shares


@dataclass(frozen=True)
class SyntheticOptions:
    """Options of the ``synthetic`` builder (``dataset.options`` in the task YAML).

    Attributes:
        kind: Which generator.
        per_class: Clips per class (``timbre``: source notes per class;
            ``events``: total clips / number of classes; ``pitch_midi``: clips
            per pitch class).
        takes: Takes per source note (``timbre`` only).
        seed: Generation seed.
    """

    kind: Literal["pitch", "timbre", "events", "detect", "pitch_midi"]
    per_class: int
    takes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_class < 5:
            raise ValueError(f"per_class: need at least 5 for train/valid/test, got {self.per_class}")
        if self.takes < 1:
            raise ValueError(f"takes: must be at least 1, got {self.takes}")


@dataclass
class Clip:
    """One generated clip: audio, labels, group."""

    audio: np.ndarray
    labels: list[str]
    group: str


def _noise_bed(n: int, rng: np.random.Generator) -> np.ndarray:
    return S.colored_noise(n, rng, rng.uniform(0.0, 2.0))


def _pitch(index: int, n: int, sr: int, rng: np.random.Generator, midi: bool = False) -> Clip:
    """A harmonic tone of pitch class ``index mod 12``, labelled by class or (``midi``) by its MIDI note number."""
    pc = index % 12
    octave = rng.integers(3, 7)  # MIDI 36..83
    note = 12 * octave + pc + rng.uniform(-0.25, 0.25)
    f0 = S.midi_to_hz(note)
    n_partials = int(rng.integers(1, 13))
    amps = np.arange(1, n_partials + 1, dtype=float) ** -rng.uniform(0.5, 2.5)
    amps *= 10 ** (rng.uniform(-6, 6, n_partials) / 20)
    if rng.random() < 0.25:
        amps[1::2] = 0.0
    phase = S.phase_of(f0, n, sr, rng.uniform(0, 30), rng)
    tone = S.additive(phase, f0, amps, rng.uniform(0, 2e-4)) * S.envelope(n, sr, rng)
    audio = S.mix_snr(tone, _noise_bed(n, rng), rng.uniform(0, 25))
    label = repr(float(note)) if midi else PITCH_CLASSES[pc]  # repr: the float round-trips exactly
    return Clip(S.to_peak(audio, rng.uniform(0.2, 0.9)), [label], f"p{index}")


def _timbre_source(family: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f0 = S.midi_to_hz(rng.uniform(45, 76))
    if family in ("square", "saw", "triangle"):
        amps = S.waveform_amps(family, 60)
        return S.additive(S.phase_of(f0, n, sr, rng.uniform(0, 15), rng), f0, amps) * S.envelope(n, sr, rng)
    if family == "additive":
        k = int(rng.integers(3, 10))
        amps = rng.uniform(0.1, 1.0, k) * np.arange(1, k + 1) ** -0.5
        return S.additive(S.phase_of(f0, n, sr, rng.uniform(0, 15), rng), f0, amps) * S.envelope(n, sr, rng)
    if family == "pluck":
        return S.karplus_strong(f0, n, sr, rng)
    if family == "fm":
        return S.fm_tone(f0, n, sr, rng) * S.envelope(n, sr, rng, percussive=rng.random() < 0.5)
    if family == "noise_band":
        band = S.band_noise(n, sr, rng, rng.uniform(300, 4000), rng.uniform(0.2, 1.0))
        return band * S.envelope(n, sr, rng)
    if family == "bell":
        return S.bell(f0, n, sr, rng)
    raise ValueError(family)


def _timbre(index: int, n: int, sr: int, rng: np.random.Generator, takes: int, seed: int) -> Clip:
    source, _take = divmod(index, takes)
    family = TIMBRE_CLASSES[source % len(TIMBRE_CLASSES)]
    src_rng = np.random.default_rng([seed, KIND_CODE["timbre"], 10**6 + source])
    tone = _timbre_source(family, n, sr, src_rng)
    shift = int(rng.integers(0, sr // 10))
    tone = np.concatenate([np.zeros(shift), tone[: n - shift]])
    audio = S.mix_snr(tone, _noise_bed(n, rng), rng.uniform(5, 30))
    return Clip(S.to_peak(audio, rng.uniform(0.2, 0.9)), [family], f"source{source}")


def _event(kind: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "beep":
        return np.sin(2 * np.pi * rng.uniform(500, 2500) * t) * np.clip(t / 0.005, 0, 1)
    if kind == "chirp":
        f_a, f_b = sorted(rng.uniform(300, 5000, 2))
        f = f_a * (f_b / f_a) ** (t / t[-1])
        return np.sin(2 * np.pi * np.cumsum(f) / sr)
    if kind == "clicks":
        out = np.zeros(n)
        out[:: max(1, int(sr / rng.uniform(15, 60)))] = 1.0
        return np.convolve(out, np.exp(-np.arange(40) / 6.0) * rng.standard_normal(40), mode="same")
    if kind == "knock":
        out = np.zeros(n)
        for start in rng.integers(0, max(1, n - sr // 20), int(rng.integers(2, 5))):
            seg = S.band_noise(sr // 20, sr, rng, rng.uniform(150, 600), 1.0) * np.exp(
                -np.arange(sr // 20) / (sr * 0.008)
            )
            out[start : start + len(seg)] += seg[: n - start]
        return out
    if kind == "whistle":
        f0 = rng.uniform(800, 2500)
        return S.additive(S.phase_of(f0, n, sr, rng.uniform(20, 80), rng), f0, np.array([1.0, 0.3, 0.1]))
    if kind == "siren":
        f = rng.uniform(500, 900) + rng.uniform(200, 600) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
        return np.sin(2 * np.pi * np.cumsum(f) / sr)
    if kind == "hiss":
        return S.band_noise(n, sr, rng, rng.uniform(3000, 6000), rng.uniform(0.5, 1.5))
    if kind == "buzz":
        f0 = rng.uniform(90, 220)
        return S.additive(S.phase_of(f0, n, sr), f0, S.waveform_amps("saw", 30) * np.exp(-np.arange(30) / 8.0))
    raise ValueError(kind)


def _events(index: int, n: int, sr: int, rng: np.random.Generator) -> Clip:
    background = _noise_bed(n, rng)
    audio = background.copy()
    count = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    present = sorted(rng.choice(len(EVENT_CLASSES), size=count, replace=False).tolist())
    for k in present:
        length = int(rng.uniform(0.15, 0.8) * sr)
        start = int(rng.integers(0, n - length))
        fade = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.01 * sr))
        event = _event(EVENT_CLASSES[k], length, sr, rng) * fade
        gain = S.rms(background) / S.rms(event) * 10 ** (rng.uniform(-6, 12) / 20)
        audio[start : start + length] += gain * event
    return Clip(S.to_peak(audio, rng.uniform(0.2, 0.9)), [EVENT_CLASSES[k] for k in present], f"e{index}")


def _detect(index: int, n: int, sr: int, rng: np.random.Generator) -> Clip:
    present = index % 2 == 1
    audio = _noise_bed(n, rng)
    if rng.random() < 0.5:
        band = S.band_noise(n, sr, rng, rng.uniform(200, 3000), rng.uniform(0.1, 0.4))
        audio = audio + band * 10 ** (rng.uniform(-18, -3) / 20)
    if present:
        f0 = rng.uniform(120, 1000)
        amps = np.arange(1, int(rng.integers(2, 9)), dtype=float) ** -1.0
        tone = S.additive(S.phase_of(f0, n, sr, rng.uniform(0, 20), rng), f0, amps) * S.envelope(n, sr, rng)
        audio = audio + tone * (S.rms(audio) / S.rms(tone)) * 10 ** (rng.uniform(-12, 3) / 20)
    return Clip(S.to_peak(audio, rng.uniform(0.2, 0.9)), [DETECT_CLASSES[int(present)]], f"d{index}")


def _assign(kind: str, index: int, opts: SyntheticOptions) -> dict[str, object]:
    """Split or fold of clip ``index`` (balanced per class, deterministic)."""
    if kind == "timbre":
        source = index // opts.takes
        instance = source // len(TIMBRE_CLASSES)
        return {"fold": instance % 5 + 1}
    strata = len(CLASSES[REGRESSION.get(kind, kind)])
    share = index % 10 if kind == "events" else (index // strata) * 10 // opts.per_class
    return {"split": "train" if share < 6 else "valid" if share < 8 else "test"}


class SyntheticBuilder(DatasetBuilder):
    """Builder of the embedded synthetic datasets (generated on first use)."""

    embedded = True

    def _options(self, task: TaskSpec) -> SyntheticOptions:
        opts = parse(SyntheticOptions, task.dataset.options, task.source_path or task.name, "dataset.options")
        if (opts.kind in REGRESSION) != (task.labels.type == "regression"):
            raise SpecError(
                f"{task.source_path}: labels.type: synthetic kind '{opts.kind}' needs "
                f"{'regression' if opts.kind in REGRESSION else 'a classification label type'}, "
                f"got '{task.labels.type}'"
            )
        if opts.kind in REGRESSION:
            return opts
        if task.labels.classes is not None and list(task.labels.classes) != CLASSES[opts.kind]:
            raise SpecError(
                f"{task.source_path}: labels.classes: must be {CLASSES[opts.kind]} for synthetic kind '{opts.kind}'"
            )
        return opts

    def source_fingerprint(self, task: TaskSpec, source: Path | None) -> str:
        """Hash of the generator version, options, rate and clip length."""
        opts = self._options(task)
        return sha256_json(
            {
                "generator": GENERATOR_VERSION,
                "options": to_dict(opts),
                "sr": task.audio.sample_rate,
                "seconds": task.audio.clip_seconds,
            }
        )

    def build(self, task: TaskSpec, dest: Path, source: Path | None) -> BuildOutput:
        """Generate every clip as 16-bit WAV under ``dest/audio`` and return the metadata."""
        opts = self._options(task)
        sr, n = task.audio.sample_rate, round(task.audio.clip_seconds * task.audio.sample_rate)
        total = (
            opts.per_class
            * len(CLASSES[REGRESSION.get(opts.kind, opts.kind)])
            * (opts.takes if opts.kind == "timbre" else 1)
        )
        makers: dict[str, Callable[[int, np.random.Generator], Clip]] = {
            "pitch": lambda i, r: _pitch(i, n, sr, r),
            "timbre": lambda i, r: _timbre(i, n, sr, r, opts.takes, opts.seed),
            "events": lambda i, r: _events(i, n, sr, r),
            "detect": lambda i, r: _detect(i, n, sr, r),
            "pitch_midi": lambda i, r: _pitch(i, n, sr, r, midi=True),
        }
        audio_dir = dest / "audio"
        audio_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in progress(range(total), desc=f"generate {task.name}", unit="clip", leave=False):
            clip = makers[opts.kind](i, np.random.default_rng([opts.seed, KIND_CODE[opts.kind], i]))
            name = f"{opts.kind}_{i:05d}.wav"
            atomic_write_wav(audio_dir / name, clip.audio, sr, DATA_ADVICE)
            rows.append(
                {
                    "file_name": name,
                    "label": ",".join(clip.labels),
                    **_assign(opts.kind, i, opts),
                    "group": clip.group,
                }
            )
        return BuildOutput(pd.DataFrame(rows), "audio", sr, {"generator_version": GENERATOR_VERSION})
