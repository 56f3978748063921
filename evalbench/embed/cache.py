"""On-disk cache of clip embeddings.

One entry per (encoder fingerprint, task, part), where a part is a split
(train/valid/test) or a fold.  The key hashes everything upstream of the probe
and nothing else (PROTOCOL.md §4, flaw 5): adapter, adapter code version,
adapter options, pooling, checkpoint *content* hash, fitted input statistics,
task name and version, the dataset fingerprint, the part's file list, and the
audio preprocessing (rate, unit, crop policy and seed).  Probe settings and
batch sizes never enter it.

Layout: ``<root>/<encoder>/<task>/<part>.<key16>.npy`` (float32, memory-mappable)
plus ``.json`` manifest.  The array is written first and the manifest last, both
atomically; an entry counts only if its manifest exists and matches the array's
size, so an interrupted write is a miss, never a half-read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.utils.hashing import sha256_json
from evalbench.utils.io import atomic_save_npy, atomic_write_json

CACHE_FORMAT = 1
log = logging.getLogger(__name__)


class EmbeddingCache:
    """A folder of cached embedding arrays.

    Args:
        root: Cache root folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @staticmethod
    def key(payload: dict[str, Any]) -> str:
        """Cache key: SHA-256 of the canonical JSON of ``payload`` plus the format version."""
        return sha256_json({"cache_format": CACHE_FORMAT, **payload})

    def _paths(self, encoder: str, task: str, part: str, key: str) -> tuple[Path, Path]:
        stem = self.root / encoder / task / f"{part}.{key[:16]}"
        return stem.with_suffix(".npy"), stem.with_suffix(".json")

    def load(self, encoder: str, task: str, part: str, payload: dict[str, Any]) -> np.ndarray | None:
        """The cached array for ``payload``, memory-mapped, or None on a miss.

        A manifest whose key, shape or byte count disagrees with the array is
        treated as a miss (and the entry is rewritten by the next store).
        """
        key = self.key(payload)
        npy, manifest = self._paths(encoder, task, part, key)
        if not manifest.is_file():
            return None
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            if meta.get("key") != key or npy.stat().st_size != meta.get("nbytes"):
                raise ValueError("manifest does not match the array")
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
            if list(array.shape) != meta["shape"] or array.dtype != np.float32:
                raise ValueError("array shape or dtype differs from the manifest")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring broken cache entry %s (%s)", npy, exc)
            return None
        return array

    def load_state(self, encoder: str, task: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """A cached fitted encoder state (e.g. input statistics) for ``payload``, or None."""
        key = self.key(payload)
        path = self.root / encoder / task / f"fit.{key[:16]}.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta.get("state") if meta.get("key") == key else None

    def store_state(self, encoder: str, task: str, payload: dict[str, Any], state: dict[str, Any]) -> None:
        """Cache a fitted encoder state for ``payload`` (atomic JSON)."""
        key = self.key(payload)
        path = self.root / encoder / task / f"fit.{key[:16]}.json"
        atomic_write_json(path, {"key": key, "payload": payload, "state": state})

    def store(self, encoder: str, task: str, part: str, payload: dict[str, Any], array: np.ndarray) -> Path:
        """Write ``array`` (float32) for ``payload``; returns the array path."""
        key = self.key(payload)
        npy, manifest = self._paths(encoder, task, part, key)
        manifest.unlink(missing_ok=True)
        array = np.ascontiguousarray(array, dtype=np.float32)
        atomic_save_npy(npy, array)
        atomic_write_json(
            manifest,
            {
                "key": key,
                "shape": list(array.shape),
                "dtype": "float32",
                "nbytes": npy.stat().st_size,
                "payload": payload,
            },
        )
        return npy
