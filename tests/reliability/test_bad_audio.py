"""Bad audio: every format evalbench decodes is decoded to the right values, everything else is named.

Each case is either handled correctly (decoded, mixed down, resampled, with its
values checked against the signal that was written) or refused with the file's
path and the reason, by ``data verify`` (:func:`~evalbench.data.verify.check_file`)
and by every decode in ``run`` (:func:`~evalbench.data.audio.read_audio`).  An
evaluation never proceeds with a silently dropped or damaged clip: the CLI tests
at the end show ``data verify`` and ``run`` exiting non-zero, naming the clip,
and writing no record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from evalbench.cli import main
from evalbench.data.audio import Resampler, load_clip, read_audio
from evalbench.data.verify import check_file
from evalbench.errors import AudioDecodeError
from tests.data.helpers import ENCODERS, write_audio

SR = 16000
FREQ = 440.0


def sine(sr: int = SR, freq: float = FREQ, seconds: float = 1.0, amp: float = 0.9) -> np.ndarray:
    """A float32 sine of ``seconds`` at ``sr`` Hz: a signal whose decoded values are known exactly."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    """Frequency of the largest spectral peak (Hann window; 1 Hz bins for a 1 s clip)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


def can_write(fmt: str, subtype: str) -> bool:
    """True if this soundfile/libsndfile build can write (hence also read) ``fmt``/``subtype``."""
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


# --- formats that decode: values ------------------------------------------------------------------------------------

# (format, subtype, suffix, tolerance): PCM tolerates one quantisation step 2^-(bits-1) (libsndfile scales
# by 2^(bits-1)-1 on write and 2^(bits-1) on read, plus rounding: measured 0.5-1.0 step); float formats are exact.
LOSSLESS = [
    ("WAV", "PCM_U8", "wav", 2.0**-7),
    ("WAV", "PCM_16", "wav", 2.0**-15),
    ("WAV", "PCM_24", "wav", 2.0**-23),
    ("WAV", "PCM_32", "wav", 1e-7),  # below float32 resolution of the decoded samples
    ("WAV", "FLOAT", "wav", 0.0),
    ("WAV", "DOUBLE", "wav", 0.0),
    ("FLAC", "PCM_S8", "flac", 2.0**-7),
    ("FLAC", "PCM_16", "flac", 2.0**-15),
    ("FLAC", "PCM_24", "flac", 2.0**-23),
    ("AIFF", "PCM_16", "aiff", 2.0**-15),
]


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "tol"), LOSSLESS, ids=[f"{f}-{s}" for f, s, _, _ in LOSSLESS])
def test_lossless_formats_decode_to_the_written_samples(tmp_path: Path, fmt, subtype, suffix, tol) -> None:
    if not can_write(fmt, subtype):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype}")
    x = sine()
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    err = np.abs(y.astype(np.float64) - x)
    assert err.max() <= tol * 1.0001, f"max error {err.max():.3g} > one quantisation step {tol:.3g}"
    assert abs(float(np.mean(y) - np.mean(x))) <= max(tol, 1e-9)  # no offset (e.g. unsigned 8-bit read as signed)
    assert check_file(path, 0.5, 2.0) is None


# (format, subtype, suffix, rate, minimum SNR in dB): lossy codecs keep the tone, not the samples; measured
# 38 dB (Vorbis, MP3 at libsndfile's defaults) and 25 dB (Opus) for this 440 Hz sine.
LOSSY = [
    ("OGG", "VORBIS", "ogg", 16000, 25.0),
    ("MP3", "MPEG_LAYER_III", "mp3", 16000, 25.0),
    ("OGG", "OPUS", "opus", 48000, 15.0),
]


@pytest.mark.parametrize(("fmt", "subtype", "suffix", "rate", "snr_db"), LOSSY, ids=[f[2] for f in LOSSY])
def test_lossy_formats_decode_to_the_tone_that_was_encoded(tmp_path: Path, fmt, subtype, suffix, rate, snr_db) -> None:
    if not can_write(fmt, subtype):
        pytest.skip(
            f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}/{subtype} "
            "(MP3 needs libsndfile >= 1.1, i.e. soundfile >= 0.12 wheels)"
        )
    x = sine(rate)
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, x, rate, format=fmt, subtype=subtype)
    y, sr = read_audio(path)
    assert sr == rate and len(y) == len(x)  # gapless: encoder delay and padding are removed on decode
    noise = y.astype(np.float64) - x
    snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(noise**2))
    assert snr >= snr_db, f"SNR {snr:.1f} dB"
    assert abs(peak_hz(y, sr) - FREQ) <= 1.0
    assert check_file(path, 0.5, 2.0) is None


def test_eight_channels_are_averaged_to_mono(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = (0.1 * rng.standard_normal((SR // 4, 8))).astype(np.float32)
    data[:, 3] += 0.5  # one channel with a DC offset: the mean, not the first channel, must come out
    sf.write(tmp_path / "eight.wav", data, SR, subtype="FLOAT")
    mono, sr = read_audio(tmp_path / "eight.wav")
    assert sr == SR and mono.shape == (SR // 4,)
    np.testing.assert_allclose(mono, data.mean(axis=1), rtol=0, atol=1e-7)  # float32 summation order
    assert abs(float(mono.mean()) - 0.5 / 8) < 0.01


@pytest.mark.parametrize(("rate", "freq"), [(8000, 1000.0), (96000, 3000.0)])
def test_8k_and_96k_clips_are_resampled_to_the_task_rate(tmp_path: Path, rate: int, freq: float) -> None:
    x = sine(rate, freq, amp=0.5).astype(np.float64)
    if rate > SR:  # a 20 kHz partial above the target Nyquist: it must be filtered out, not folded to 4 kHz
        x += 0.3 * np.sin(2 * np.pi * 20000.0 * np.arange(rate) / rate)
    sf.write(tmp_path / "clip.wav", x.astype(np.float32), rate, subtype="FLOAT")
    wav, valid = load_clip(tmp_path / "clip.wav", "clip.wav", 1.0, SR, "start", 0, Resampler())
    assert wav.shape == (SR,) and valid == SR and wav.dtype == np.float32
    assert abs(peak_hz(wav, SR) - freq) <= 1.0
    rms = float(np.sqrt(np.mean(wav[200:-200].astype(np.float64) ** 2)))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.01  # amplitude kept within 2 %
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(SR)))
    assert spectrum[4000] < 1e-3 * spectrum.max()  # no alias of the 20 kHz partial (measured 3e-5)
    half, valid_half = load_clip(tmp_path / "clip.wav", "clip.wav", 2.0, SR, "start", 0, Resampler())
    assert half.shape == (2 * SR,) and valid_half == SR and not half[SR:].any()  # padded, padding masked


# --- files that must be refused: path and reason -------------------------------------------------------------------


def _truncate(path: Path, keep: float) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def _write_case(path: Path, case: str) -> Path:
    """Create the bad file ``case`` at ``path`` (suffix chosen here) and return its path."""
    x = sine(amp=0.5)
    if case == "corrupt":  # a RIFF/WAVE header followed by garbage
        path = path.with_suffix(".wav")
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    elif case == "text_named_wav":
        path = path.with_suffix(".wav")
        path.write_text("file_name,label\nthis is a CSV, not audio\n")
    elif case == "zero_length":
        path = path.with_suffix(".wav")
        path.write_bytes(b"")
    elif case == "no_samples":  # a valid header with an empty data chunk
        path = path.with_suffix(".wav")
        sf.write(path, np.zeros((0, 1), np.float32), SR)
    elif case == "directory_named_wav":
        path = path.with_suffix(".wav")
        path.mkdir()
    elif case == "missing":
        path = path.with_suffix(".wav")
    elif case.startswith("truncated_"):
        fmt = case.removeprefix("truncated_")
        suffix, kwargs = {
            "wav": ("wav", {"subtype": "PCM_16"}),
            "flac": ("flac", {}),
            "ogg": ("ogg", {"subtype": "VORBIS"}),
            "mp3": ("mp3", {}),
        }[fmt]
        path = path.with_suffix(f".{suffix}")
        sf.write(path, x, SR, **kwargs)
        _truncate(path, 0.5)  # header longer than data
    elif case in ("nan", "inf"):
        path = path.with_suffix(".wav")
        y = x.copy()
        y[1000:1010] = np.nan if case == "nan" else np.inf
        y[5000] = -np.inf if case == "inf" else y[5000]
        sf.write(path, y, SR, subtype="FLOAT")
    elif case == "huge":  # finite float32 samples near the type's limit: inf once two channels are summed
        path = path.with_suffix(".wav")
        sf.write(path, np.full((SR // 10, 2), 3e38, np.float32), SR, subtype="FLOAT")
    else:
        raise AssertionError(case)
    return path


# case → (kind reported by `data verify`, words the message of a decode in `run` contains)
REFUSED = {
    "corrupt": ("unreadable", "cannot decode audio"),
    "text_named_wav": ("unreadable", "cannot decode audio"),
    "zero_length": ("empty", "zero-length"),
    "no_samples": ("empty", "no samples"),
    "directory_named_wav": ("unreadable", "is a directory"),
    "missing": ("missing", "not found"),
    "truncated_wav": ("truncated", "data chunk declares"),
    "truncated_flac": ("unreadable", "cannot decode audio"),
    "truncated_ogg": ("unreadable", "cannot decode audio"),
    "truncated_mp3": ("truncated", "header declares"),
    "nan": ("nonfinite", "10 NaN or infinite"),
    "inf": ("nonfinite", "11 NaN or infinite"),
    "huge": ("implausible", "peak sample 3e+38"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_file_is_refused_with_its_path_and_reason(tmp_path: Path, case: str) -> None:
    if case == "truncated_mp3" and not can_write("MP3", "MPEG_LAYER_III"):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write MP3")
    path = _write_case(tmp_path / "bad", case)
    kind, words = REFUSED[case]
    problem = check_file(path, 0.0, None)
    assert problem is not None and problem.path == str(path) and problem.kind == kind, problem
    with pytest.raises(AudioDecodeError) as caught:
        read_audio(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert "\n" not in message and ("replace or exclude" in message or "restore it" in message), message
    with pytest.raises(AudioDecodeError, match=re.escape(str(path))):  # the path `run` takes: same refusal
        load_clip(path, path.name, 1.0, SR, "start", 0, Resampler())


def test_truncated_mp3_is_refused_at_any_cut(tmp_path: Path) -> None:
    """The MP3 decoder of libsndfile returns what is there without an error; the header's length catches the cut."""
    if not can_write("MP3", "MPEG_LAYER_III"):
        pytest.skip(f"this libsndfile ({sf.__libsndfile_version__}) cannot write MP3")
    noise = (0.3 * np.random.default_rng(0).standard_normal(4 * SR)).astype(np.float32)  # bytes spread evenly
    sf.write(tmp_path / "full.mp3", noise, SR)
    assert check_file(tmp_path / "full.mp3", 0.0, None) is None  # the intact file passes
    for keep in (0.3, 0.6, 0.9):  # a 10 % cut of 4 s is ~5,800 samples, beyond the 2-frame (2,304) slack
        cut = tmp_path / f"cut{keep}.mp3"
        cut.write_bytes((tmp_path / "full.mp3").read_bytes()[: int((tmp_path / "full.mp3").stat().st_size * keep)])
        problem = check_file(cut, 0.0, None)
        assert problem is not None and problem.kind in ("truncated", "unreadable"), (keep, problem)


def test_silent_clip_is_flagged_by_verify_and_decoded_as_zeros_by_run(tmp_path: Path) -> None:
    """Digital silence is valid audio (``run`` uses it as is) but ``verify`` lists it for a look."""
    sf.write(tmp_path / "silent.wav", np.zeros(SR, np.int16), SR, subtype="PCM_16")
    problem = check_file(tmp_path / "silent.wav", 0.0, None)
    assert problem is not None and problem.kind == "silent" and "every sample is zero" in problem.detail
    wav, sr = read_audio(tmp_path / "silent.wav")
    assert sr == SR and wav.shape == (SR,) and not wav.any()


def test_missing_codec_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A libsndfile without MP3 (older than 1.1) says what to install rather than 'format not recognised'."""
    bad = tmp_path / "song.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(64))  # an undecodable MP3
    formats = {k: v for k, v in sf.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(sf, "available_formats", lambda: formats)
    with pytest.raises(AudioDecodeError) as caught:
        read_audio(bad)
    message = str(caught.value)
    assert message.startswith(f"{bad}: ") and "MP3" in message and "pip install" in message, message


# --- end to end through the CLI -------------------------------------------------------------------------------------

TASK = (
    "name: mine\nversion: 1\ndescription: low or high tones\ndataset: {builder: manifest}\n"
    "audio: {sample_rate: 16000, clip_seconds: 1.0}\nlabels: {type: single, classes: [low, high]}\n"
    "splits: {type: fixed}\nmetrics: [accuracy]\n"
)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Task 'mine' over 24 one-second tones (16/4/4 split), prepared; private data, cache and results folders."""
    dirs = {k: tmp_path / k for k in ("source", "tasks", "data", "cache", "results")}
    for var, key in (("DATA", "data"), ("CACHE", "cache"), ("RESULTS", "results"), ("TASKS_DIR", "tasks")):
        monkeypatch.setenv(f"EVALBENCH_{var}", str(dirs[key]))
    rows = []
    for i in range(24):
        label = ("low", "high")[i % 2]
        name = f"audio/clip_{i:02d}.wav"
        write_audio(dirs["source"] / name, 1.0, SR, freq=(220.0, 1760.0)[i % 2] * (1 + 0.01 * i), seed=i)
        rows.append({"file_name": name, "label": label, "split": "train" if i < 16 else "valid" if i < 20 else "test"})
    pd.DataFrame(rows).to_csv(dirs["source"] / "metadata.csv", index=False)
    dirs["tasks"].mkdir()
    (dirs["tasks"] / "mine.yaml").write_text(TASK)
    return dirs


def _cli(dirs: dict[str, Path], *args: str) -> int:
    return main([*args, "--tasks-dir", str(dirs["tasks"]), "--data-root", str(dirs["data"])])


def _run(dirs: dict[str, Path]) -> int:
    args = ["run", "--encoder", "logmel", "--tasks", "mine", "--seeds", "1", "--encoders-dir", str(ENCODERS)]
    return _cli(dirs, *args, "--cache-dir", str(dirs["cache"]), "--results-dir", str(dirs["results"]))


@pytest.mark.parametrize("case", ["text_named_wav", "nan", "truncated_wav", "vanished"])
def test_cli_verify_and_run_name_the_bad_clip_and_write_no_record(folder, capsys, case: str) -> None:
    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 0
    victim = folder["source"] / "audio" / "clip_05.wav"  # a training clip
    good = victim.read_bytes()
    victim.unlink()
    if case != "vanished":  # "vanished": deleted between prepare and run
        assert _write_case(victim.with_suffix(""), case) == victim
    capsys.readouterr()
    assert _cli(folder, "data", "verify", "mine") == 2
    out = capsys.readouterr()
    assert str(victim) in out.out and "1 problem file(s) in mine" in out.err
    assert "Traceback" not in out.out + out.err
    assert _run(folder) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("evalbench: error: ")]
    assert len(errors) == 1 and str(victim) in errors[0] and "Traceback" not in err, err
    assert not (folder["results"] / "logmel" / "mine.linear.json").exists()
    if case == "text_named_wav":  # control: the same folder with the clip restored runs and records
        victim.write_bytes(good)
        assert _run(folder) == 0
        record = json.loads((folder["results"] / "logmel" / "mine.linear.json").read_text())
        assert record["task"]["name"] == "mine" and record["scores"]["test"]["accuracy"]["mean"] >= 0.5


def test_directory_named_wav_is_named_by_prepare_verify_and_run(folder, capsys) -> None:
    victim = folder["source"] / "audio" / "clip_07.wav"
    good = victim.read_bytes()
    victim.unlink()
    victim.mkdir()  # listed in metadata.csv, but a folder
    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 2
    assert str(victim) in capsys.readouterr().err
    victim.rmdir()
    victim.write_bytes(good)
    assert _cli(folder, "data", "prepare", "mine", "--source", str(folder["source"])) == 0
    victim.unlink()
    victim.mkdir()  # swapped for a folder after prepare
    capsys.readouterr()
    assert _cli(folder, "data", "verify", "mine") == 2
    assert f"unreadable {victim}: audio file is a directory, not an audio file" in capsys.readouterr().out
    assert _run(folder) == 2
    assert str(victim) in capsys.readouterr().err
    assert not (folder["results"] / "logmel" / "mine.linear.json").exists()
