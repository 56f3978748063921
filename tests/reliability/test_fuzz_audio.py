"""Fuzzing audio buffers: the exact unit at the target rate, or a decode error naming the path.

:func:`evalbench.data.audio.load_clip` gets random shapes (incl. 0 frames),
sample formats, rates 1–192 kHz, lengths and NaN/Inf, written with soundfile,
plus truncated, bit-flipped and garbage files.  Either a finite float32 mono
array of exactly the unit's length at the target rate whose content matches the
written samples, or an :class:`AudioDecodeError` naming the path.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import event, given
from hypothesis import strategies as st

from evalbench.data.audio import Resampler, crop_start, load_clip
from evalbench.errors import AudioDecodeError
from tests.reliability.fuzzing import FUZZ, fresh

COMMON_RATES = [1000, 8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000]
TARGET_RATES = [16000, 22050, 44100]
# A rate that is any multiple of 100 Hz keeps the resampling kernel small against every target (gcd ≥ 50);
# coprime rates such as 44,101 Hz need a kernel of several GB and are refused (tests/reliability/test_odd_rates.py).
rates = st.sampled_from(COMMON_RATES) | st.integers(10, 1920).map(lambda k: 100 * k)
FORMATS = {  # dtype -> (soundfile subtype, full-scale divisor of the decoded float)
    "int8": ("PCM_U8", 128.0),  # 8-bit WAV is unsigned: libsndfile maps the signed values onto it
    "int16": ("PCM_16", 32768.0),
    "int32": ("PCM_32", 2.0**31),
    "float32": ("FLOAT", 1.0),
    "float64": ("DOUBLE", 1.0),
}


@st.composite
def buffers(draw: st.DrawFn) -> dict[str, Any]:
    """A random buffer: dtype, frames (incl. 0), channels, 1-D or 2-D, rate, amplitude, NaN/Inf count."""
    dtype = draw(st.sampled_from(sorted(FORMATS)))
    frames = draw(st.sampled_from([0, 1, 2, 7]) | st.integers(0, 4000))
    channels = draw(st.integers(1, 3))
    return {
        "dtype": dtype,
        "frames": frames,
        "channels": channels,
        "flat": channels == 1 and draw(st.booleans()),
        "rate": draw(rates),
        "target": draw(st.sampled_from(TARGET_RATES)),
        "clip_seconds": draw(st.sampled_from([0.01, 0.05, 0.1, 0.25])),
        "policy": draw(st.sampled_from(["start", "center", "random"])),
        # float WAVs: |x| up to 1e6 (full scale is 1.0); larger: test_huge_finite_float_samples...
        "amplitude": draw(st.sampled_from([0.0, 1e-6, 0.5, 1.0, 300.0, 1e6])),
        "bad": draw(st.integers(0, 3)) if dtype.startswith("float") and frames else 0,
        "bad_kind": draw(st.sampled_from(["nan", "inf", "-inf"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _samples(b: dict[str, Any]) -> np.ndarray:
    """The buffer's samples, as written (integers for PCM, floats with NaN/Inf sprinkled)."""
    rng = np.random.default_rng(b["seed"])
    shape = (b["frames"], b["channels"])
    if b["dtype"].startswith("int"):
        info = np.iinfo(b["dtype"])
        x = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(b["dtype"])
    else:
        x = (rng.uniform(-1.0, 1.0, size=shape) * b["amplitude"]).astype(b["dtype"])
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, size=min(b["bad"], flat.size), replace=False)] = float(b["bad_kind"])
    return x


def _write(path: Path, x: np.ndarray, b: dict[str, Any]) -> None:
    subtype = FORMATS[b["dtype"]][0]
    data = x.astype(np.int16) << 8 if b["dtype"] == "int8" else x  # soundfile writes int8 as scaled int16
    sf.write(path, data[:, 0] if b["flat"] else data, b["rate"], subtype=subtype, format="WAV")


@FUZZ
@given(b=buffers())
def test_random_buffers_give_the_exact_unit_at_the_target_rate_or_a_decode_error(scratch: Path, b: dict) -> None:
    path = fresh(scratch, "audio") / "clip.wav"
    x = _samples(b)
    _write(path, x, b)
    sr, target, seconds = b["rate"], b["target"], b["clip_seconds"]
    try:
        out, valid = load_clip(path, "clip.wav", seconds, target, b["policy"], 0, Resampler())
    except AudioDecodeError as exc:
        assert str(path) in str(exc)
        assert b["frames"] == 0 or b["bad"] > 0, f"a good buffer was refused: {exc}"
        event("buffer refused")
        return
    event("buffer accepted, resampled" if b["rate"] != b["target"] else "buffer accepted, same rate")
    assert b["frames"] > 0 and b["bad"] == 0, "an empty or non-finite buffer was accepted"
    n_target = max(1, round(seconds * target))
    assert out.dtype == np.float32 and out.shape == (n_target,)
    assert np.isfinite(out).all()
    # the valid part is the cropped clip's duration at the target rate (to one sample), the rest is zero padding
    n_native = max(1, round(seconds * sr))
    kept = min(b["frames"], n_native)
    assert abs(valid - min(n_target, kept * target / sr)) <= 1
    assert not out[valid:].any()
    mono = (x.astype(np.float64) / FORMATS[b["dtype"]][1]).mean(axis=1)
    peak = float(np.abs(mono).max())
    if sr == target:  # no resampling: exactly the written samples of the crop (float32 mixing: 1e-6 relative)
        start = {"start": 0, "center": max(0, b["frames"] - n_native) // 2}.get(b["policy"])
        if start is None:
            start = crop_start(b["frames"], n_native, "random", "clip.wav", 0)
        np.testing.assert_allclose(out[:valid], mono[start : start + valid], rtol=1e-6, atol=1e-6 * peak + 1e-12)
    else:  # windowed-sinc ringing stays well within a few times the input's peak
        assert float(np.abs(out).max()) <= 3.0 * peak + 1e-6


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """``(suffix, bytes)``: a valid 16 kHz WAV or FLAC cut short or with flipped sample bytes, or random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "garbage"]))
    suffix = draw(st.sampled_from([".wav", ".flac"]))
    if kind == "garbage":
        # no random bytes after a whole RIFF/fmt header: a random rate field asks for a multi-GB kernel (report)
        head = draw(st.sampled_from([b"", b"RIFF", b"fLaC", b"ID3", b"OggS"]))
        return suffix, head + draw(st.binary(max_size=200))
    buf = io.BytesIO()
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    sf.write(buf, rng.uniform(-0.5, 0.5, 1600).astype(np.float32), 16000, format=suffix[1:].upper(), subtype="PCM_16")
    raw = bytearray(buf.getvalue())
    if kind == "truncate":
        return suffix, bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    # flip bytes after the first 64 (the header, whose rate field would ask for a multi-GB kernel: see report)
    for pos in draw(st.lists(st.integers(64, len(raw) - 1), min_size=1, max_size=8)):
        raw[pos] ^= draw(st.integers(1, 255))
    return suffix, bytes(raw)


@FUZZ
@given(case=damaged_files())
def test_damaged_files_give_a_finite_unit_or_a_decode_error_naming_the_path(scratch: Path, case) -> None:
    suffix, raw = case
    path = fresh(scratch, "damaged") / f"clip{suffix}"
    path.write_bytes(raw)
    try:
        out, valid = load_clip(path, path.name, 0.1, 16000, "start", 0, Resampler())
    except AudioDecodeError as exc:
        assert str(path) in str(exc)
        event("damaged file refused")
        return
    event("damaged file decoded")
    assert out.dtype == np.float32 and out.shape == (1600,) and np.isfinite(out).all()
    assert 0 < valid <= 1600 and not out[valid:].any()


@pytest.mark.parametrize(("channels", "rate"), [(2, 16000), (1, 44100)])
def test_huge_finite_float_samples_give_a_decode_error_or_finite_audio(tmp_path: Path, channels: int, rate: int):
    path = tmp_path / "clip.wav"
    sf.write(path, np.full((1600, channels), 3e38, np.float32), rate, subtype="FLOAT")
    try:
        out, _ = load_clip(path, "clip.wav", 0.1, 16000, "start", 0, Resampler())
    except AudioDecodeError:
        return
    assert np.isfinite(out).all()
