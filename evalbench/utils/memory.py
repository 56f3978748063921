"""Keep extraction's memory flat in the number of clips: glibc's allocator told to hand large buffers back.

Extraction allocates and frees the same large buffers over and over: one
decoded clip (a 5 s clip at 44.1 kHz is 860 KiB of float32), its resampled
copy, a batch of waveforms, a batch of log-mel features.  glibc serves a
request above its mmap threshold (128 KiB at start) with its own ``mmap`` and
returns it to the system on ``free``; but each such ``free`` also *raises* the
threshold to the freed size (glibc's dynamic threshold, up to 32 MiB on 64-bit),
so from the first freed clip on, clip-sized buffers come from the heap, where
fragmentation keeps them: the process grows with the number of clips it has
seen although it never holds more than a few batches.

``evalbench bench scaling`` measured it (2 cores, BYOL-A v2, 300 vs 3,000 clips
of 5 s): peak RSS 1,439 → 1,791 MiB (×1.24), of which 428 MiB were freed memory
glibc kept; with the threshold fixed at 256 KiB, 1,166 → 1,193 MiB (×1.02) and
nothing kept, at no cost in time (docs/performance.md).  Setting the threshold
explicitly (``M_MMAP_THRESHOLD``) turns the dynamic adjustment off.  It is
process-wide and inherited by DataLoader workers; on other C libraries (macOS,
musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 256 * 1024
"""Buffers at least this large are mapped and unmapped on their own (glibc's default start is 128 KiB)."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt  # noqa: B018 (glibc only: musl and others lack it)
        libc.gnu_get_libc_version  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes (once per process); whether it took effect."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1)


def malloc_trim() -> bool:
    """Hand free heap memory back to the system now (glibc); whether anything could be asked."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


__all__ = ["MMAP_THRESHOLD_BYTES", "fix_mmap_threshold", "malloc_trim"]
