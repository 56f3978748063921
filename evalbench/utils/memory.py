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
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

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


SCRATCH_BYTES = 16 << 20
"""Embedding matrices at least this large are assembled in a memory-mapped scratch file (:func:`scratch_array`)."""

BLOCK_BYTES = 8 << 20
"""Bytes of float64 per block when a matrix is reduced or transformed block by block (:func:`row_blocks`)."""


def scratch_array(shape: tuple[int, int], folder: Path | None, min_bytes: int = SCRATCH_BYTES) -> np.ndarray:
    """An uninitialised float32 matrix: in RAM when small, else mapped on an unlinked file in ``folder``.

    A task's embedding matrix grows with its clips times the encoder's dimension (50,000 clips × 6,144 are
    1.2 GB) and must not have to fit in the process's private memory: a matrix of ``min_bytes`` or more is a
    shared mapping of a temporary file, which the kernel writes back and evicts under memory pressure, and which
    ``RLIMIT_DATA`` and ``ulimit -d`` do not count.  The file is unlinked at once, so nothing is left behind
    even after ``kill -9``; the mapping lives as long as the array.  ``folder`` should be on disk (the cache
    folder), not on a RAM-backed ``/tmp``; None keeps the matrix in RAM whatever its size.
    """
    nbytes = math.prod(shape) * 4
    if folder is None or nbytes < min_bytes:
        return np.empty(shape, dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=folder, prefix=".scratch-") as fh:
        fh.truncate(nbytes)
        return np.memmap(fh, dtype=np.float32, mode="r+", shape=shape)


def row_blocks(n: int, width: int, block_bytes: int = BLOCK_BYTES) -> Iterator[slice]:
    """Slices of ``n`` rows, each block of at most ``block_bytes`` as float64 (at least one row)."""
    step = max(1, block_bytes // (8 * max(1, width)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def proc_status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmData``, ``VmHWM``, ``VmRSS``...) in bytes; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            line = next((entry for entry in fh if entry.startswith(field + ":")), "")
        return int(line.split()[1]) * 1024 if line else None
    except (OSError, ValueError, IndexError):
        return None


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as a page-rounded 2^63 − 1


def _cgroup_folders() -> list[tuple[Path, Path, str, str]]:
    """``(controller root, group folder, limit file, usage file)`` of this process's memory cgroups, v1 and v2."""
    try:
        lines = PROC_CGROUP.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, group = [*line.split(":", 2), "", ""][:3]
        if controllers == "":  # v2 (unified); on a hybrid machine mounted under unified/
            for root in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
                found.append((root, root / group.lstrip("/"), "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):  # v1 memory controller
            root = CGROUP_ROOT / "memory"
            found.append((root, root / group.lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes"))
    return found


def _cgroup_headroom() -> int | None:
    """The least limit − usage of this process's memory cgroups (v1 or v2) and their parents; None if none.

    A limit may sit on a parent (a systemd slice, a Kubernetes pod) rather than on the process's own group.
    """
    rooms = []
    for root, folder, limit_file, usage_file in _cgroup_folders():
        while folder != root and root in folder.parents:
            try:
                limit = (folder / limit_file).read_text(encoding="ascii").strip()
                if limit != "max" and int(limit) < UNLIMITED:
                    rooms.append(int(limit) - int((folder / usage_file).read_text(encoding="ascii")))
            except (OSError, ValueError):
                pass
            folder = folder.parent
    return min(rooms) if rooms else None


def private_headroom() -> int | None:
    """Bytes this process may still allocate before an allocation is refused; None when nothing says.

    The tightest of: ``RLIMIT_DATA`` less what it counts now (``VmData``: anonymous and private mappings),
    ``RLIMIT_AS`` less ``VmSize``, a memory cgroup's limit less its usage (a container's limit; v1 or v2),
    and the machine's physical memory (``MemTotal``, fixed, so the answer does not move with other processes'
    use).  Shared file mappings (:func:`scratch_array`) count against none of the first two.
    """
    import resource  # POSIX only: elsewhere the limits below are unknown

    bounds = [_cgroup_headroom()]
    for limit, field in ((resource.RLIMIT_DATA, "VmData"), (resource.RLIMIT_AS, "VmSize")):
        soft, used = resource.getrlimit(limit)[0], proc_status(field)
        if soft != resource.RLIM_INFINITY and used is not None:
            bounds.append(soft - used)
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        bounds.append(pages * size)
    except (ValueError, OSError, AttributeError):
        pass
    known = [max(0, b) for b in bounds if b is not None]
    return min(known) if known else None


def allocation_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a refused allocation: numpy's ``MemoryError`` or torch's CPU allocator ``RuntimeError``."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def all_finite(x: np.ndarray) -> bool:
    """Whether every value of a 2-D ``x`` is finite, checked block by block (no ``x``-sized mask in RAM)."""
    return all(np.isfinite(x[rows]).all() for rows in row_blocks(len(x), x.shape[1] if x.ndim > 1 else 1))


__all__ = [
    "MMAP_THRESHOLD_BYTES",
    "SCRATCH_BYTES",
    "all_finite",
    "allocation_failed",
    "fix_mmap_threshold",
    "malloc_trim",
    "private_headroom",
    "proc_status",
    "row_blocks",
    "scratch_array",
]
