"""Decoding, mono mix-down, resampling and crop/pad policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.data.audio import Resampler, crop_start, load_clip, read_audio
from evalbench.errors import AudioDecodeError


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    stereo = np.stack([np.full(100, 0.5), np.full(100, -0.25)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 8000, subtype="FLOAT")
    mono, sr = read_audio(tmp_path / "s.wav")
    assert sr == 8000 and mono.shape == (100,)
    np.testing.assert_allclose(mono, 0.125)


def test_decode_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really")
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "zero.wav", np.zeros((0, 1)), 8000)
    for name in ("bad.wav", "empty.wav", "zero.wav", "missing.wav"):
        with pytest.raises(AudioDecodeError, match=str(tmp_path / name)):
            read_audio(tmp_path / name)


def test_crop_policies_are_deterministic() -> None:
    assert crop_start(100, 40, "start", "a", 0) == 0
    assert crop_start(100, 40, "center", "a", 0) == 30
    r = crop_start(100, 40, "random", "a.wav", 0)
    assert 0 <= r <= 60 and r == crop_start(100, 40, "random", "a.wav", 0)
    starts = {crop_start(10_000, 10, "random", f"{i}.wav", 0) for i in range(50)}
    assert len(starts) > 40  # depends on the key
    assert crop_start(30, 40, "random", "a", 0) == 0  # short clips are never cropped


def test_load_clip_pads_resamples_and_reports_valid_length(tmp_path: Path) -> None:
    sr = 44100
    sf.write(tmp_path / "short.wav", np.ones(sr // 2, dtype=np.float32) * 0.5, sr, subtype="FLOAT")
    wav, valid = load_clip(tmp_path / "short.wav", "short.wav", 1.0, 16000, "start", 0, Resampler())
    assert wav.shape == (16000,) and valid == 8000
    assert np.all(wav[valid:] == 0)
    assert abs(float(np.median(wav[1000:7000])) - 0.5) < 1e-3
    sf.write(tmp_path / "long.wav", np.linspace(-1, 1, 3 * 16000, dtype=np.float32), 16000, subtype="FLOAT")
    wav, valid = load_clip(tmp_path / "long.wav", "long.wav", 1.0, 16000, "center", 0, Resampler())
    assert valid == 16000
    np.testing.assert_allclose(wav[0], np.linspace(-1, 1, 48000, dtype=np.float32)[16000], atol=1e-6)


def test_resampled_clips_are_cached_once_and_identical_cold_and_warm(tmp_path: Path) -> None:
    from evalbench.data.audio import ResampleCache

    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", (0.3 * rng.standard_normal(44100)).astype(np.float32), 44100, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", (0.3 * rng.standard_normal(16000)).astype(np.float32), 16000, subtype="FLOAT")
    cache = ResampleCache(tmp_path / "cache")
    args = (1.0, 16000, "start", 0, Resampler(), cache, "sha-a")
    cold, valid = load_clip(tmp_path / "a.wav", "a.wav", *args)
    entries = list((tmp_path / "cache").rglob("*.f32c"))
    assert valid == 16000 and len(entries) == 1 and entries[0].parent.parent.name == "16000Hz"
    warm, valid2 = load_clip(tmp_path / "a.wav", "a.wav", *args)
    np.testing.assert_array_equal(cold, warm)  # the same stored float32 values, read back
    plain, _ = load_clip(tmp_path / "a.wav", "a.wav", 1.0, 16000, "start", 0, Resampler())
    np.testing.assert_array_equal(plain, cold)  # lossless: the cache stores exactly what was computed
    assert valid2 == valid
    (tmp_path / "a.wav").unlink()  # a hit never reads the source again
    again, _ = load_clip(tmp_path / "a.wav", "a.wav", *args)
    np.testing.assert_array_equal(again, cold)
    load_clip(tmp_path / "b.wav", "b.wav", 1.0, 16000, "start", 0, Resampler(), cache, "sha-b")  # native: not cached
    load_clip(tmp_path / "b.wav", "b.wav", 1.0, 22050, "start", 0, Resampler(), cache, "sha-b")  # another rate
    assert len(list((tmp_path / "cache").rglob("*.f32c"))) == 2
    with pytest.raises(AudioDecodeError, match="not found"):  # new content (edited in place) never shares entries
        load_clip(tmp_path / "a.wav", "a.wav", 1.0, 16000, "start", 0, Resampler(), cache, "sha-a-edited")


def test_resampled_clip_that_overshoots_full_scale_survives_the_cache(tmp_path: Path) -> None:
    """A full-scale square wave rings past ±1 when resampled (Gibbs); the cache must not clip or round it."""
    from evalbench.data.audio import ResampleCache

    t = np.arange(44100) / 44100
    square = np.sign(np.sin(2 * np.pi * 440 * t)).astype(np.float32) * 0.999
    sf.write(tmp_path / "sq.wav", square, 44100, subtype="FLOAT")
    plain, _ = load_clip(tmp_path / "sq.wav", "sq.wav", 1.0, 16000, "start", 0, Resampler())
    assert np.abs(plain).max() > 1.02  # the case the old 16-bit cache clamped
    cache = ResampleCache(tmp_path / "cache")
    cold, _ = load_clip(tmp_path / "sq.wav", "sq.wav", 1.0, 16000, "start", 0, Resampler(), cache, "sha")
    warm, _ = load_clip(tmp_path / "sq.wav", "sq.wav", 1.0, 16000, "start", 0, Resampler(), cache, "sha")
    np.testing.assert_array_equal(cold, plain)
    np.testing.assert_array_equal(warm, plain)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:100] + bytes([b[100] ^ 0x10]) + b[101:],  # one bit flipped in a sample
        lambda b: b[: len(b) // 2],  # truncated
        lambda b: b[:-4] + b"\0\0\0\0",  # checksum zeroed
        lambda b: b"",  # emptied
    ],
    ids=["bit-flipped", "truncated", "checksum-zeroed", "empty"],
)
def test_a_damaged_resampled_clip_is_said_and_recomputed(tmp_path: Path, caplog, damage) -> None:
    """The resampled-audio cache checks a CRC-32 of every entry it reads, like the embedding cache's SHA-256."""
    import logging

    from evalbench.data.audio import ResampleCache

    t = np.arange(44100) / 44100
    sf.write(tmp_path / "a.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100, subtype="FLOAT")
    cache = ResampleCache(tmp_path / "cache")
    args = ("a.wav", 1.0, 16000, "start", 0, Resampler(), cache, "sha-a")
    cold, _ = load_clip(tmp_path / "a.wav", *args)
    (entry,) = (tmp_path / "cache").rglob("*.f32c")
    entry.write_bytes(damage(entry.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="evalbench.data.resample"):
        again, _ = load_clip(tmp_path / "a.wav", *args)
    assert [r.getMessage() for r in caplog.records if str(entry) in r.getMessage() and "recomputing" in r.getMessage()]
    np.testing.assert_array_equal(again, cold)  # recomputed from the file: the same float32 values
    assert entry.stat().st_size == 4 * 16000 + 4  # and stored whole again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="evalbench.data.resample"):
        np.testing.assert_array_equal(load_clip(tmp_path / "a.wav", *args)[0], cold)
    assert not caplog.records  # a sound entry is read without a word
