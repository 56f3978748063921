"""Atomic file writes, and a full disk reported as one clear error.

A write goes to a temporary file in the destination folder, is flushed and
fsynced, then renamed over the destination with :func:`os.replace` (atomic on
POSIX and Windows).  An interrupted process therefore leaves either the old file
or the new one, never half of one; stray ``.tmp-*`` files are ignored by readers.

A write that fails because the disk is full (``ENOSPC``), the user's quota is
used up (``EDQUOT``) or the file would exceed the file system's or the
process's size limit (``EFBIG``, ``ulimit -f``) removes its temporary file and
raises :class:`~evalbench.errors.DiskFullError` naming the destination and
saying what to do: the caller's ``advice`` (which flag moves that folder) when
it gives one.  Anything else is re-raised unchanged.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from evalbench.errors import DISK_FULL, DiskFullError

DEFAULT_ADVICE = "free space on that file system, or point evalbench at a folder on another one"
CACHE_ADVICE = (
    "free space there (cached embeddings and decoded audio may be deleted: they are recomputed), "
    "or point the cache elsewhere with --cache-dir or EVALBENCH_CACHE"
)
DATA_ADVICE = "free space there, or keep datasets elsewhere with --data-root or EVALBENCH_DATA"
RESULTS_ADVICE = "free space there, or write results elsewhere with --results-dir or EVALBENCH_RESULTS"
PRETRAIN_ADVICE = (
    "free space there and run the same command again (it resumes from the last checkpoint written), "
    "or train into another folder with --encoders-dir"
)


def is_disk_full(exc: BaseException) -> bool:
    """True for an :class:`OSError` meaning "no room": ``ENOSPC``, ``EDQUOT`` or ``EFBIG``."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def disk_full_error(path: Path | str, exc: OSError, advice: str | None = None) -> DiskFullError:
    """The :class:`DiskFullError` of a failed write of ``path``: what happened, that nothing was left, what to do."""
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return DiskFullError(
        f"cannot write {path}: {DISK_FULL.get(exc.errno or 0, exc.strerror)} ({code}); nothing partial was left "
        f"and any earlier file there is unchanged; {advice or DEFAULT_ADVICE}, then run again",
        str(path),
    )


def _umask() -> int:
    """The process's file-creation mask, read without changing it (Linux ``/proc``; else set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[IO[bytes]], None], advice: str | None = None, durable: bool = True) -> None:
    """Write ``path`` through a temporary file and a rename (``durable``: fsync before the rename)."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a shared cache or results folder needs the usual mode
        with os.fdopen(fd, "wb") as fh:  # a failed flush on close still closes the descriptor
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if is_disk_full(exc):
            raise disk_full_error(path, exc, advice) from None  # type: ignore[arg-type]
        raise


def atomic_write_bytes(path: Path, data: bytes, advice: str | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (``advice``: what to do if the disk is full; ``durable``: fsync)."""
    _atomic(path, lambda fh: fh.write(data), advice, durable)


def atomic_write_wav(path: Path, audio: np.ndarray, sample_rate: int, advice: str | None = None) -> None:
    """Write ``audio`` as a 16-bit PCM WAV to ``path`` atomically, without fsync (generated data is regenerated).

    The file is encoded in memory first: libsndfile reports a failed write
    without the operating system's errno, so a full disk could not be told from
    any other failure if it wrote the file itself.
    """
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, subtype="PCM_16", format="WAV")
    _atomic(path, lambda fh: fh.write(buf.getbuffer()), advice, durable=False)


def atomic_write_text(path: Path, text: str, advice: str | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), advice)


def atomic_write_json(path: Path, obj: Any, allow_nan: bool = True, advice: str | None = None) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically (``allow_nan=False``: strict JSON)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=allow_nan)
    atomic_write_text(path, text + "\n", advice)


def atomic_save_npy(path: Path, array: np.ndarray, advice: str | None = None) -> None:
    """Save ``array`` in ``.npy`` format (memory-mappable) to ``path`` atomically, fsynced before the rename."""
    _atomic(path, lambda fh: np.save(_Stream(fh), array, allow_pickle=False), advice)


class _Stream:
    """A file seen only through ``write``, so that :func:`numpy.save` writes through it.

    Given a real file, NumPy writes the data with ``ndarray.tofile``, which
    reports a short write as ``OSError("N requested and M written")`` without
    an errno: a full disk would not be recognised as one.  Through ``write``
    (16 MiB chunks), the operating system's error reaches us with its errno.
    """

    def __init__(self, fh: IO[bytes]) -> None:
        self.write = fh.write


def atomic_savez(path: Path, arrays: dict[str, np.ndarray], advice: str | None = None) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` to ``path`` atomically."""
    _atomic(path, lambda fh: np.savez(fh, **arrays), advice)
