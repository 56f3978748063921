"""Resampling with torchaudio's windowed-sinc kernels, and the cache of resampled clips.

:class:`Resampler` keeps one kernel per rate pair and refuses a pair whose
kernel would not fit in memory (:func:`kernel_elements`): a rate one hertz off
a standard one, typical of a damaged header, would otherwise allocate
gigabytes.  :class:`ResampleCache` stores each resampled clip once per target
rate with a CRC-32 of its bytes, so a damaged entry is noticed, said and
recomputed, like an embedding-cache entry (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from evalbench.errors import AudioDecodeError
from evalbench.utils.io import CACHE_ADVICE, atomic_write_bytes

log = logging.getLogger(__name__)

#: Largest windowed-sinc kernel (float32 elements, 128 MiB) a rate pair may need; see :func:`kernel_elements`.
MAX_KERNEL_ELEMENTS = 2**25


def kernel_elements(orig_sr: int, new_sr: int, zero_crossings: int = 6, rolloff: float = 0.99) -> int:
    """Number of float32 weights in torchaudio's sinc kernel for ``orig_sr`` → ``new_sr``.

    torchaudio reduces the rates by their gcd to ``o/n`` and builds one filter
    phase per output sample of a period: ``n`` phases of ``o + 2w`` taps, with
    ``w = ceil(zero_crossings · o / (rolloff · min(o, n)))`` (its defaults: 6
    zero crossings, roll-off 0.99).  Standard rates reduce well (44,100 → 16,000
    is 441/160: 76 k weights), but a rate one hertz off (44,101, typical of a
    damaged header) does not reduce at all: 16,000 phases × 44,135 taps, 2.8 GB.
    """
    g = math.gcd(orig_sr, new_sr)
    o, n = orig_sr // g, new_sr // g
    width = math.ceil(zero_crossings * o / (rolloff * min(o, n)))
    return n * (o + 2 * width)


class Resampler:
    """Resample 1-D float32 signals with torchaudio, caching one kernel per rate pair."""

    def __init__(self) -> None:
        self._kernels: dict[tuple[int, int], object] = {}

    def __call__(self, wav: np.ndarray, orig_sr: int, new_sr: int, source: str | Path = "") -> np.ndarray:
        """Return ``wav`` resampled from ``orig_sr`` to ``new_sr`` Hz.

        Raises:
            AudioDecodeError: The rate pair needs a kernel above :data:`MAX_KERNEL_ELEMENTS`
                (the message names ``source``, the file the samples came from).
        """
        if orig_sr == new_sr:
            return wav
        import torch
        import torchaudio

        key = (orig_sr, new_sr)
        size = kernel_elements(orig_sr, new_sr)
        if key not in self._kernels and size > MAX_KERNEL_ELEMENTS:
            raise AudioDecodeError(
                f"{source or 'audio'}: resampling {orig_sr} Hz to {new_sr} Hz needs a {size * 4 / 2**30:.1f} GiB "
                f"filter (the rates have no large common divisor); such a rate is usually a damaged header: check "
                f"the file, or convert it to a standard rate (e.g. 44100 or 48000 Hz) and run again"
            )
        if key not in self._kernels:
            self._kernels[key] = torchaudio.transforms.Resample(orig_sr, new_sr)
        with torch.inference_mode():
            return self._kernels[key](torch.from_numpy(np.ascontiguousarray(wav))).numpy()


class ResampleCache:
    """Resampled clips (cropped to the unit) stored once per target rate, losslessly, with a checksum.

    An entry is named by a hash of the clip's content hash, its relative path,
    the unit, the target rate and the crop policy and seed, so editing a file
    in place (new content hash) misses and only that clip is recomputed.  The
    samples are stored as raw little-endian float32 followed by the CRC-32 of
    those bytes (``.f32c``): exactly the values the computing run uses, so cold
    and warm runs are bit-identical, and nothing is rounded or clipped (a
    resampled clip may overshoot full scale: the sinc kernel rings).  A CRC-32
    detects every burst error up to 32 bits and any other damage but one in
    4·10⁹; it costs ~0.1 ms per 5 s clip, against ~2.5 ms to decode and
    resample it again.  An entry whose checksum, length or values are wrong is
    reported (a warning naming the file) and recomputed.

    Writes are atomic (temporary file, then rename) without fsync: a damaged
    entry is caught on reading, which is cheaper than an fsync per clip.

    Args:
        root: Cache folder (``<cache_dir>/audio``).
    """

    SUFFIX = ".f32c"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, name: tuple) -> Path:
        digest = hashlib.sha256(repr(name).encode()).hexdigest()
        return self.root / f"{name[3]}Hz" / digest[:2] / f"{digest[2:34]}{self.SUFFIX}"

    def get(self, name: tuple) -> np.ndarray | None:
        """The cached clip for ``name`` as float32, or None (missing, or damaged: said, then recomputed)."""
        path = self._path(name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("resampled-audio cache entry %s is not readable (%s); recomputing it", path, exc)
            return None
        body, tail = blob[:-4], blob[-4:]
        if len(blob) < 4 or len(body) % 4 or struct.unpack("<I", tail)[0] != zlib.crc32(body):
            log.warning("resampled-audio cache entry %s is damaged (checksum or length); recomputing it", path)
            return None
        data = np.frombuffer(body, dtype="<f4").astype(np.float32, copy=True)
        if not np.isfinite(data).all():
            log.warning("resampled-audio cache entry %s holds non-finite values; recomputing it", path)
            return None
        return data

    def put(self, name: tuple, wav: np.ndarray) -> None:
        """Store ``wav`` (float32) for ``name`` atomically (a full disk: :class:`~evalbench.errors.DiskFullError`)."""
        body = np.ascontiguousarray(wav, dtype="<f4").tobytes()
        atomic_write_bytes(self._path(name), body + struct.pack("<I", zlib.crc32(body)), CACHE_ADVICE, durable=False)
