"""On-disk cache of clip embeddings and fitted encoder state.

One entry per (encoder, task, part, key), where a part is a split
(train/valid/test) or a fold.  The key hashes everything upstream of the probe
and nothing else (docs/protocol.md §4, flaw 5): adapter, adapter code version,
adapter options, pooling, checkpoint *content* hash, what the input statistics
were fitted from, task name and version, the content hash of every clip of the
part, and the audio preprocessing (rate, unit, crop policy and seed).  Probe
settings and batch sizes never enter it.

Layout: ``<root>/<encoder>/<task>/<part>.<key[:16]>.npy`` (float32,
memory-mappable) plus ``<part>.<key[:16]>.json``, its manifest (full key, shape,
SHA-256 of the array file, the fitted state the array was computed with), so
entries of different keys sit side by side.  The array is written first and the
manifest last, both atomically; if the manifest cannot be written (a full disk:
:class:`~evalbench.errors.DiskFullError`), the array is removed again, so no
entry is ever half there and its space is given back.  A load verifies that the
manifest's full key is the one asked for and that the array file's SHA-256 matches the manifest; any
disagreement (an interrupted write, a damaged or replaced file) is reported as a
warning and treated as a miss, so the entry is recomputed, never read wrong.  So
is an array left without its manifest (a process killed between the two writes,
or a deleted manifest) once no other process is writing it (below), and a
manifest that is not a JSON object.

Concurrent runs: a miss takes an exclusive lock on ``<part>.<key[:16]>.lock``
(:mod:`evalbench.utils.locks`, ``flock``) and re-reads the entry; if another
process stored it while this one waited, that entry is returned, else the lock
is kept until :meth:`EmbeddingCache.store` writes the entry.  So two processes
needing the same entry compute it once.  A process that dies while holding the
lock releases it (the kernel drops ``flock`` locks), so the next run proceeds.
Under torchrun (``WORLD_SIZE`` > 1) the ranks coordinate by barriers instead,
and entry locks are not taken (a rank waiting on a lock would never reach the
barrier its holder waits at).

Fitted states (e.g. BYOL-A's log-mel statistics) are cached as
``fit.<key[:16]>.json`` and must be finite; a non-finite state is never stored.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import EvalbenchError
from evalbench.utils.hashing import sha256_file, sha256_json
from evalbench.utils.io import CACHE_ADVICE, atomic_save_npy, atomic_write_json
from evalbench.utils.locks import acquire, is_held, release
from evalbench.utils.memory import all_finite

CACHE_FORMAT = 2
FIT_RTOL = 1e-4  # fitted statistics recomputed elsewhere agree to ~1e-8; more means different data
log = logging.getLogger(__name__)


def states_agree(a: dict[str, Any], b: dict[str, Any], rtol: float = FIT_RTOL) -> bool:
    """True if two fitted states have the same keys and numbers equal within ``rtol``."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, int | float) and isinstance(y, int | float):
            if not math.isclose(x, y, rel_tol=rtol, abs_tol=rtol):
                return False
        elif x != y:
            return False
    return True


def _finite(state: Any) -> bool:
    if isinstance(state, dict):
        return all(_finite(v) for v in state.values())
    if isinstance(state, list | tuple):
        return all(_finite(v) for v in state)
    return not isinstance(state, float) or math.isfinite(state)


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

    def paths(self, encoder: str, task: str, part: str, key: str) -> tuple[Path, Path]:
        """Array and manifest paths of an entry (named by the part and the key's first 16 hex digits)."""
        folder = self.root / encoder / task
        return folder / f"{part}.{key[:16]}.npy", folder / f"{part}.{key[:16]}.json"

    def load(
        self, encoder: str, task: str, part: str, payload: dict[str, Any], fitted: dict[str, Any] | None = None
    ) -> np.ndarray | None:
        """The cached array for ``payload``, memory-mapped, or None on a miss.

        Args:
            encoder: Encoder name (folder).
            task: Task name (folder).
            part: Split or fold name.
            payload: Key inputs (see the module docstring).
            fitted: The encoder's current fitted state; an entry computed with a
                state that differs beyond :data:`FIT_RTOL` is a miss.

        A manifest whose key, checksum, shape or dtype disagrees with the array
        is reported and treated as a miss.
        """
        key = self.key(payload)
        # Unlocked, an array without its manifest may be another process's store in progress: said only
        # after taking the entry's lock (or at once without locks, under torchrun).
        array = self._read(encoder, task, part, key, fitted, orphan_is_damage=not self.locking)
        if array is not None or not self.locking:
            return array
        lock = self.lock_path(encoder, task, part, key)
        if is_held(lock):  # this process already owns the computation of this entry
            return None

        def waiting(who: str) -> None:
            log.info("%s/%s/%s: waiting for process %s, which is computing it", encoder, task, part, who)

        if acquire(lock, on_wait=waiting):
            array = self._read(encoder, task, part, key, fitted, orphan_is_damage=True)
            if array is not None:  # the other process stored it: computed once, read here
                release(lock)
                return array
        else:  # nobody else was writing it: an array without a manifest is a leftover, said
            self._orphan(*self.paths(encoder, task, part, key))
        return None  # the lock is kept until store() writes this entry

    @property
    def locking(self) -> bool:
        """Whether misses take entry locks (not under torchrun, whose ranks sync by barriers)."""
        try:
            return int(os.environ.get("WORLD_SIZE", "1")) <= 1
        except ValueError:
            return True

    def lock_path(self, encoder: str, task: str, part: str, key: str) -> Path:
        """The lock file guarding the computation of one entry."""
        return self.root / encoder / task / f"{part}.{key[:16]}.lock"

    def _read(
        self,
        encoder: str,
        task: str,
        part: str,
        key: str,
        fitted: dict[str, Any] | None,
        orphan_is_damage: bool = False,
    ) -> np.ndarray | None:
        """The verified entry of ``key``, memory-mapped, or None (see :meth:`load`).

        Every way an entry can be unusable is a warning naming its array file, so that damage
        is said, not silently recomputed.  ``orphan_is_damage``: an array without a manifest
        is reported too; only the caller knows whether another process may be between writing
        the two (the store writes the array first and the manifest last), so it says when not.
        A manifest that parses as JSON but is not an object (e.g. overwritten by ``[]``) is
        damage like any other, not an ``AttributeError`` that ends the run.
        """
        npy, manifest = self.paths(encoder, task, part, key)
        if not manifest.is_file():
            if not (orphan_is_damage and self._orphan(npy, manifest)):
                log.debug("cache miss %s/%s/%s (key %s)", encoder, task, part, key[:16])
            return None
        try:
            try:
                meta = json.loads(manifest.read_text(encoding="utf-8"))
            except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
                raise ValueError(f"its manifest {manifest.name} is not valid JSON: {exc}") from None
            if not isinstance(meta, dict):
                raise ValueError(f"its manifest {manifest.name} is not a JSON object")
            if meta.get("key") != key:
                raise ValueError("its manifest belongs to another key")
            if not npy.is_file():
                raise ValueError("its array file is missing")
            if npy.stat().st_size != meta.get("nbytes") or sha256_file(npy) != meta.get("sha256"):
                raise ValueError("the array's checksum does not match its manifest (damaged or replaced file)")
            if fitted is not None and not states_agree(meta.get("fitted") or {}, fitted):
                raise ValueError(f"it was computed with fitted state {meta.get('fitted')}, now {fitted}")
            array = np.load(npy, mmap_mode="r", allow_pickle=False)
            if list(array.shape) != meta["shape"] or array.dtype != np.float32:
                raise ValueError("array shape or dtype differs from the manifest")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cache entry %s is not usable (%s); recomputing it", npy, exc)
            return None
        log.debug("cache hit %s/%s/%s: %s %s", encoder, task, part, tuple(array.shape), npy)
        return array

    @staticmethod
    def _orphan(npy: Path, manifest: Path) -> bool:
        """True, with a warning, if the array ``npy`` lies without its ``manifest`` (never read: unverifiable)."""
        if manifest.is_file() or not npy.is_file():
            return False
        log.warning(
            "cache entry %s is not usable (it has no manifest %s: an interrupted write or a removed file); "
            "recomputing it",
            npy,
            manifest.name,
        )
        return True

    def store(
        self,
        encoder: str,
        task: str,
        part: str,
        payload: dict[str, Any],
        array: np.ndarray,
        fitted: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``array`` (float32, finite) for ``payload``; returns the array path.

        Raises:
            EvalbenchError: The array holds NaN or infinite values (never cached).
        """
        key = self.key(payload)
        try:
            return self._write(encoder, task, part, key, payload, array, fitted)
        finally:  # whether written or refused, another process may now take its turn
            release(self.lock_path(encoder, task, part, key))

    def abandon(self, encoder: str, task: str, part: str, payload: dict[str, Any]) -> None:
        """Give up computing the entry of ``payload`` (an error or interrupt): release its lock, write nothing."""
        release(self.lock_path(encoder, task, part, self.key(payload)))

    def _write(
        self,
        encoder: str,
        task: str,
        part: str,
        key: str,
        payload: dict[str, Any],
        array: np.ndarray,
        fitted: dict[str, Any] | None,
    ) -> Path:
        npy, manifest = self.paths(encoder, task, part, key)
        array = np.ascontiguousarray(array, dtype=np.float32)  # a memory-mapped float32 matrix stays mapped
        if not all_finite(array):
            raise EvalbenchError(f"refusing to cache non-finite embeddings for {encoder}/{task}/{part}")
        manifest.unlink(missing_ok=True)
        atomic_save_npy(npy, array, CACHE_ADVICE)
        try:
            atomic_write_json(
                manifest,
                {
                    "key": key,
                    "shape": list(array.shape),
                    "dtype": "float32",
                    "nbytes": npy.stat().st_size,
                    "sha256": sha256_file(npy),
                    "fitted": fitted or {},
                    "payload": payload,
                },
                advice=CACHE_ADVICE,
            )
        except BaseException:  # an array without its manifest is a miss anyway: give its space back
            npy.unlink(missing_ok=True)
            raise
        log.debug("cache write %s/%s/%s: %s %s", encoder, task, part, tuple(array.shape), npy)
        return npy

    def remove(self, encoder: str, task: str, part: str, payload: dict[str, Any]) -> None:
        """Delete the entry for ``payload`` if present (manifest first, so a half-removed entry is a miss)."""
        npy, manifest = self.paths(encoder, task, part, self.key(payload))
        manifest.unlink(missing_ok=True)
        npy.unlink(missing_ok=True)

    def _state_path(self, encoder: str, task: str, key: str) -> Path:
        return self.root / encoder / task / f"fit.{key[:16]}.json"

    def load_state(self, encoder: str, task: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """A cached fitted encoder state (e.g. input statistics) for ``payload``, or None."""
        key = self.key(payload)
        try:
            meta = json.loads(self._state_path(encoder, task, key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        state = meta.get("state") if meta.get("key") == key else None
        return state if state is not None and _finite(state) else None

    def store_state(self, encoder: str, task: str, payload: dict[str, Any], state: dict[str, Any]) -> None:
        """Cache a fitted encoder state for ``payload`` (atomic JSON).

        Raises:
            EvalbenchError: The state holds NaN or infinite values (never cached).
        """
        if not _finite(state):
            raise EvalbenchError(f"refusing to cache a non-finite fitted state {state} for {encoder}/{task}")
        key = self.key(payload)
        state_path = self._state_path(encoder, task, key)
        atomic_write_json(state_path, {"key": key, "payload": payload, "state": state}, advice=CACHE_ADVICE)
        log.debug("fitted state of %s on %s cached: %s", encoder, task, state)
