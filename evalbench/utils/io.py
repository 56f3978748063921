"""Atomic file writes.

A write goes to a temporary file in the destination folder, is flushed and
fsynced, then renamed over the destination with :func:`os.replace` (atomic on
POSIX and Windows).  An interrupted process therefore leaves either the old file
or the new one, never half of one; stray ``.tmp-*`` files are ignored by readers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def _atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    _atomic(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, allow_nan: bool = True) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically (``allow_nan=False``: strict JSON)."""
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=allow_nan)
    atomic_write_text(path, text + "\n")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` in ``.npy`` format (memory-mappable) to ``path`` atomically."""
    _atomic(path, lambda fh: np.save(fh, array, allow_pickle=False))


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` to ``path`` atomically."""
    _atomic(path, lambda fh: np.savez(fh, **arrays))
