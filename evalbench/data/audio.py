"""Decode, mix down, resample and crop/pad audio.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, and MP3 with
libsndfile ≥ 1.1).  Channels are averaged to mono.  Resampling uses
torchaudio's windowed-sinc resampler, with one kernel per rate pair, and each
resampled clip is cached once per target rate (:class:`~evalbench.data.resample.ResampleCache`).
Measured on 2 cores: decoding a 5 s 44.1 kHz clip and resampling it to 16 kHz
takes 2.5 ms, decoding a 16 kHz copy 0.4 ms; extracting 800 one-second clips
stored at 44.1 instead of 16 kHz took 1.9 s instead of 1.15 s with ``logmel``
and 12.1 s instead of 9.7 s with BYOL-A (whose input statistics are a second
pass over the audio).  On-the-fly resampling is therefore not as fast, so
every encoder after the first at a rate (and every second pass) reads the
cached copy.

Crop/pad (docs/protocol.md §2.1 item 2, with the fix): a clip longer than the task's
unit is cropped at the native rate by the task's policy (``start``, ``center``
or a hash-seeded ``random`` start that is identical for every encoder and
seed), then resampled; a shorter clip is zero-padded on the right and its valid
length is kept so pooling can mask the padding.

Long files (more than :data:`LONG_VALUES` decoded values) are never held whole:
``data verify`` and ``run`` check them block by block (:func:`scan`) and ``run``
then reads only the crop (:func:`read_crop`), the same samples as the whole
decode.  An hour of 22.05 kHz mono went through ``data verify`` with 5 MiB of
peak RSS growth instead of 684 MiB, and through ``run`` (centre crop of 2 s,
resampled to 16 kHz) with 43 MiB, as much as with a 2 s clip in its place,
instead of 694 MiB (tests/reliability/test_memory_limits.py).  MP3 is decoded
whole (:func:`_blockwise`).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from evalbench.data.resample import ResampleCache, Resampler
from evalbench.errors import AudioDecodeError

RESAMPLE_METHOD = "torchaudio-sinc, float32 cached"  # part of the embedding-cache key


def wav_truncated(path: Path) -> str:
    """Describe a RIFF/WAVE file whose ``data`` chunk is cut short, or return "".

    Reads only the chunk headers, so it costs a few small reads whatever the
    file size.  libsndfile decodes such a file without complaint (it returns the
    samples that are there), which is why both ``data verify`` and every decode
    in ``run`` apply this check.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return ""
            size = os.fstat(fh.fileno()).st_size
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return ""
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"data":
                    have = size - fh.tell()
                    return f"data chunk declares {length} bytes, file holds {have}" if have < length else ""
                fh.seek(length + (length & 1), 1)
    except OSError:
        return ""


CODEC_FORMATS = {".mp3": "MP3", ".ogg": "OGG", ".oga": "OGG", ".opus": "OGG", ".flac": "FLAC"}
"""libsndfile format a compressed file's suffix needs; a build without it gets an install hint, not a codec error."""

MAX_ABS_SAMPLE = 1e9
"""Largest plausible |sample| (full scale is 1.0): a float file beyond it is mis-scaled or garbage, and values
near float32's limit (3.4e38) overflow to inf when channels are summed, resampled or squared into a spectrum."""

MP3_SLACK = 2 * 1152  # samples: two MPEG-1 Layer III frames, the most a header-less MP3's length estimate is off

LONG_VALUES = 1 << 22
"""Decoded values (frames × channels) above which ``run`` never holds a file whole (:func:`read_crop`): 16 MiB
of float32, 95 s of 44.1 kHz mono.  Shorter files are decoded in one read, the fastest way."""

BLOCK_FRAMES = 1 << 16
"""Frames per block when a file is scanned (:func:`scan`): 256 KiB of float32 per channel."""


def _open(path: Path) -> sf.SoundFile:
    """Open ``path`` for reading, refusing what cannot be audio with :func:`decode`'s messages."""
    if not path.is_file():
        what = "not found"
        if path.is_dir():
            what = "is a directory, not an audio file"
        elif path.exists():
            what = "is not a regular file"
        raise AudioDecodeError(f"{path}: audio file {what}; restore it, or re-run the dataset's prepare step")
    try:
        empty = path.stat().st_size == 0
    except OSError:  # vanished since is_file(): report it as missing
        empty = False
    if empty:
        raise AudioDecodeError(f"{path}: zero-length file (0 bytes); replace or exclude the file")
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # libsndfile raises several types for non-audio input
        raise AudioDecodeError(_decode_failure(path, exc)) from None


def _read(f: sf.SoundFile, path: Path, frames: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """Up to ``frames`` (-1: all remaining) float32 ``(n, channels)`` frames from the current position."""
    try:
        return f.read(frames, dtype="float32", always_2d=True, out=out)
    except Exception as exc:  # a stream damaged past its header fails here, not at open
        raise AudioDecodeError(_decode_failure(path, exc)) from None


def decode(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``(n, channels)`` with no checks on the content.

    Raises:
        AudioDecodeError: The file is missing, not a regular file, zero bytes
            long, or undecodable (with what to install when this libsndfile
            lacks the codec its suffix names).
    """
    path = Path(path)
    with _open(path) as f:
        return _read(f, path), int(f.samplerate)


def _decode_failure(path: Path, exc: Exception) -> str:
    """The one-line message for a file libsndfile refused: what to install, or its own reason."""
    fmt = CODEC_FORMATS.get(path.suffix.lower())
    if fmt is not None and fmt not in sf.available_formats():
        return (
            f"{path}: cannot decode audio: this libsndfile ({sf.__libsndfile_version__}) has no {fmt} support; "
            "install a soundfile whose libsndfile has it (pip install -U 'soundfile>=0.12': its wheels bundle "
            "libsndfile >= 1.1 with MP3, FLAC and Ogg), or convert the file to WAV or FLAC"
        )
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not path.exists():
        return f"{path}: audio file not found (it disappeared while being read); restore it"
    if "does not exist or is not a regular file" in msg:  # libsndfile's wording for an unparsable stream
        msg = "not a stream libsndfile can parse: damaged, truncated or not audio"
    return f"{path}: cannot decode audio ({msg[:200]}); replace or exclude the file"


def declared_shortfall(path: str | Path, n_decoded: int) -> str:
    """Describe a compressed file that decodes to fewer frames than its header declares, or return "".

    libsndfile's MP3 decoder returns the frames that are there when a file is
    cut short, without an error; its header (Xing/LAME, or a length estimated
    from the bitrate) still declares the full length.  WAV is checked by
    :func:`wav_truncated` (libsndfile clamps a WAV's declared length to the
    file).  A declared length of 2**62 or more means unknown (a stream).
    """
    try:
        declared = sf.info(str(path)).frames
    except Exception:  # vanished or unparsable since decoding: the decode's own result stands
        return ""
    slack = MP3_SLACK if Path(path).suffix.lower() == ".mp3" else 0
    if declared >= 2**62 or n_decoded >= declared - slack:
        return ""
    return f"header declares {declared} frames, only {n_decoded} decode"


@dataclass(frozen=True)
class AudioStats:
    """What the content checks need of a decoded file; gathered whole (:meth:`of`) or block by block (:func:`scan`).

    ``peak`` is the largest ``|sample|`` (meaningful only when ``nonfinite`` is 0, the only case it is checked);
    ``nonzero`` whether any sample is not zero (``data verify``'s silence check).
    """

    frames: int
    sample_rate: int
    nonfinite: int
    peak: float
    nonzero: bool

    @classmethod
    def of(cls, data: np.ndarray, sr: int) -> AudioStats:
        """The statistics of decoded ``(n, channels)`` samples."""
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        peak = float(np.abs(data).max()) if data.size and not bad else 0.0
        return cls(int(data.shape[0]), int(sr), bad, peak, bool(np.any(data)))


def scan(path: str | Path, block_frames: int = BLOCK_FRAMES) -> AudioStats:
    """Decode ``path`` block by block into :class:`AudioStats`: memory one block, whatever the file's length.

    The same decode and the same numbers as :meth:`AudioStats.of` of the whole file (a float32 hour at
    22.05 kHz would be 318 MB); ``data verify`` and a long clip in ``run`` check files this way.  MP3 is the
    exception, decoded whole (:func:`_blockwise`).

    Raises:
        AudioDecodeError: As :func:`decode`.
    """
    path = Path(path)
    with _open(path) as f:
        if not _blockwise(f):
            return AudioStats.of(_read(f, path), int(f.samplerate))
        buf = np.empty((max(1, min(block_frames, f.frames)), f.channels), dtype=np.float32)
        frames = bad = 0
        peak, nonzero = 0.0, False
        while len(block := _read(f, path, len(buf), out=buf)):
            frames += len(block)
            n_bad = int(block.size - np.count_nonzero(np.isfinite(block)))
            bad += n_bad
            if not n_bad:
                peak = max(peak, float(np.abs(block).max()))
            nonzero = nonzero or bool(np.any(block))
        return AudioStats(frames, int(f.samplerate), bad, peak if not bad else 0.0, nonzero)


def _blockwise(f: sf.SoundFile) -> bool:
    """Whether reading ``f`` block by block gives the samples one whole read gives.

    Not for MP3: soundfile re-seeks after every read, and libsndfile's MPEG seek is not sample-exact
    (measured with libsndfile 1.2.2: blocks of 65,536 frames of a 60 s 44.1 kHz MP3 differed from the whole
    decode by up to 0.95, a seek to frame 10^6 by 0.89), so an MP3 is always decoded whole.
    """
    return f.format != "MP3"


def content_problem(
    path: str | Path, data: np.ndarray, sr: int, min_seconds: float = 0.0, max_seconds: float | None = None
) -> tuple[str, str] | None:
    """The first reason decoded audio must not be used, as ``(kind, detail)``, or None (see :func:`stats_problem`)."""
    return stats_problem(path, AudioStats.of(data, sr), min_seconds, max_seconds)


def stats_problem(
    path: str | Path, stats: AudioStats, min_seconds: float = 0.0, max_seconds: float | None = None
) -> tuple[str, str] | None:
    """The first reason a decoded file must not be used, as ``(kind, detail)``, or None.

    The checks shared by ``data verify`` and every decode in ``run``: a WAV
    whose header declares more data than the file holds, or a compressed file
    (MP3) that decodes to fewer frames than its header declares (``truncated``), no
    samples (``empty``), NaN or infinite samples (``nonfinite``: they would
    poison fitted input statistics and every embedding), samples beyond
    :data:`MAX_ABS_SAMPLE` (``implausible``: finite, but inf after mixing,
    resampling or a power spectrum), and a duration outside
    the spec's ``dataset.min_seconds`` / ``max_seconds``.
    """
    if Path(path).suffix.lower() == ".wav":
        truncated = wav_truncated(Path(path))
        if truncated:
            return "truncated", truncated
    elif stats.frames:
        short = declared_shortfall(path, stats.frames)
        if short:
            return "truncated", short
    if stats.frames == 0:
        return "empty", "no samples"
    if stats.nonfinite:
        return "nonfinite", f"{stats.nonfinite} NaN or infinite sample(s)"
    if stats.peak > MAX_ABS_SAMPLE:
        return "implausible", f"peak sample {stats.peak:.3g} where full scale is 1.0; limit {MAX_ABS_SAMPLE:.0e}"
    seconds = stats.frames / stats.sample_rate
    if seconds < min_seconds:
        return "too_short", f"{seconds:.3f} s < {min_seconds} s"
    if max_seconds is not None and seconds > max_seconds:
        return "too_long", f"{seconds:.3f} s > {max_seconds} s"
    return None


def _refuse(path: str | Path, problem: tuple[str, str] | None) -> None:
    if problem is not None:
        kind, detail = problem
        raise AudioDecodeError(f"{path}: {kind.replace('_', ' ')} audio ({detail}); replace or exclude the file")


def _mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def read_audio(path: str | Path, min_seconds: float = 0.0, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32, refusing damaged audio.

    Args:
        path: Audio file.
        min_seconds: Shortest acceptable duration (the spec's ``dataset.min_seconds``).
        max_seconds: Longest acceptable duration, or None.

    Returns:
        ``(samples, sample_rate)`` with ``samples`` of shape ``(n,)``.

    Raises:
        AudioDecodeError: The file is missing, undecodable, truncated, empty,
            holds non-finite samples or has an implausible duration; the
            message names the file and the problem.
    """
    data, sr = decode(path)
    _refuse(path, content_problem(path, data, sr, min_seconds, max_seconds))
    return _mono(data), sr


def read_crop(
    path: str | Path,
    key: str,
    clip_seconds: float,
    policy: str,
    seed: int,
    bounds: tuple[float, float | None] = (0.0, None),
    long_values: int | None = None,
    block_frames: int = BLOCK_FRAMES,
) -> tuple[np.ndarray, int]:
    """The checked mono crop (at the native rate) of one clip, as :func:`read_audio` then :func:`crop_start`.

    A file of more than ``long_values`` (None: :data:`LONG_VALUES`) decoded values (frames × channels) is never
    held whole: it is checked by :func:`scan` (block by block), then only the crop's frames are read, after a
    seek.  Both ways return the same samples; an hour at 22.05 kHz then costs a block and the crop instead of
    318 MB of float32.  An MP3 is always decoded whole (:func:`_blockwise`).

    Returns:
        ``(samples, sample_rate)``: at most ``round(clip_seconds * sample_rate)`` samples.

    Raises:
        AudioDecodeError: As :func:`read_audio`.
    """
    path = Path(path)
    with _open(path) as f:
        long = f.frames * f.channels > (LONG_VALUES if long_values is None else long_values) and _blockwise(f)
    if not long:
        wav, sr = read_audio(path, *bounds)
        n = max(1, round(clip_seconds * sr))
        start = crop_start(len(wav), n, policy, key, seed)
        return wav[start : start + n], sr
    stats = scan(path, block_frames)
    _refuse(path, stats_problem(path, stats, *bounds))
    n = max(1, round(clip_seconds * stats.sample_rate))
    start = crop_start(stats.frames, n, policy, key, seed)
    with _open(path) as f:
        f.seek(start)
        return _mono(_read(f, path, n)), stats.sample_rate


def crop_start(n_have: int, n_want: int, policy: str, key: str, seed: int) -> int:
    """Start index of the crop of ``n_want`` samples from a clip of ``n_have``.

    Args:
        n_have: Clip length in samples.
        n_want: Unit length in samples.
        policy: ``start``, ``center`` or ``random``.
        key: Stable identifier of the clip (its relative path) for ``random``.
        seed: Seed of ``random``.
    """
    slack = n_have - n_want
    if slack <= 0 or policy == "start":
        return 0
    if policy == "center":
        return slack // 2
    if policy == "random":
        digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "little") % (slack + 1)
    raise ValueError(f"unknown crop policy '{policy}'")


def load_clip(
    path: str | Path,
    key: str,
    clip_seconds: float,
    target_sr: int,
    policy: str,
    seed: int,
    resampler: Resampler,
    cache: ResampleCache | None = None,
    content: str = "",
    bounds: tuple[float, float | None] = (0.0, None),
    timings: dict[str, float] | None = None,
) -> tuple[np.ndarray, int]:
    """Decode, check, mono-mix, crop, resample and pad one clip to the task unit.

    Args:
        path: Audio file.
        key: Stable identifier of the clip (its relative path), for the random crop.
        clip_seconds: Unit length.
        target_sr: Encoder sample rate.
        policy: Crop policy.
        seed: Seed of the random crop.
        resampler: Kernel cache.
        cache: Resampled-clip cache; when given (with ``content``), a clip that
            needs resampling is read from it or computed and stored losslessly.
        content: SHA-256 of the file's bytes (from the prepared dataset's content
            index); it names the cache entry, so a clip edited in place misses.
        bounds: Plausible duration ``(min_seconds, max_seconds)`` from the spec.
        timings: When given, seconds are added to its ``decode`` (reading the file or the resampled-clip cache,
            checks, mono mix, crop, padding) and ``resample`` (resampling and storing the result) entries.

    Returns:
        ``(samples, valid_length)``: ``samples`` has exactly
        ``round(clip_seconds * target_sr)`` float32 values; entries from
        ``valid_length`` on are zero padding.

    Raises:
        AudioDecodeError: The file is missing, undecodable or damaged (:func:`read_audio`).
    """
    begin = time.perf_counter()
    resampling = 0.0
    n_target = max(1, round(clip_seconds * target_sr))
    name = (content, key, clip_seconds, target_sr, policy, seed)
    use_cache = cache is not None and bool(content)
    cached = cache.get(name) if use_cache else None
    if cached is None:
        wav, sr = read_crop(path, key, clip_seconds, policy, seed, bounds)
        valid_native = len(wav)
        if sr != target_sr:
            mark = time.perf_counter()
            wav = resampler(wav, sr, target_sr, path)[: min(n_target, math.ceil(valid_native * target_sr / sr))]
            if use_cache:
                cache.put(name, wav)
            resampling = time.perf_counter() - mark
        cached = wav
    valid = min(n_target, len(cached))
    out = np.zeros(n_target, dtype=np.float32)
    out[:valid] = cached[:valid]
    if timings is not None:
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - begin - resampling
        timings["resample"] = timings.get("resample", 0.0) + resampling
    return out, valid
