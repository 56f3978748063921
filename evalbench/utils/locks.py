"""Exclusive per-file locks between processes (POSIX ``flock``).

Two uses: an embedding-cache entry (:mod:`evalbench.embed.cache`), so that two
``evalbench run`` processes needing the same entry compute it once (the second
waits, then reads what the first stored), and a pretraining output folder
(:mod:`evalbench.pretrain.run`), so that a second ``pretrain`` into the same
folder refuses at once instead of interleaving checkpoints.

Why ``flock`` on a ``.lock`` file rather than an ``O_EXCL`` marker: the kernel
drops the lock when the holding process dies (even by SIGKILL), so a crashed
run never leaves a stale lock that someone must break by hand.  The lock file
itself stays (it is empty apart from the holder's pid and host, written for the
error message) and is harmless.  Locks do not nest within one process: a path
locked here is remembered so a second request from the same process is a
programming error rather than a self-deadlock.

Only the standard library is imported (the no-torch up-to-date path uses this).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from evalbench.errors import DISK_FULL, EvalbenchError


class LockedError(EvalbenchError):
    """Another live process holds a lock that this one refuses to wait for."""


_HELD: dict[str, int] = {}  # resolved lock path -> open fd, for locks this process holds


def _key(path: Path) -> str:
    return str(Path(path).absolute())


def holder(path: Path) -> str:
    """The ``pid@host`` written into a lock file by its holder (``unknown`` when unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


def _open(path: Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _mark(fd: int) -> None:
    """Write this process's pid and host into the lock file (for the other side's message).

    Only informative: the ``flock`` is the lock.  On a full disk (or past the
    file-size limit) the mark is skipped, the holder then shows as ``unknown``,
    and the write the lock guards reports the full disk clearly itself.
    """
    os.ftruncate(fd, 0)
    try:
        os.pwrite(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode(), 0)
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise


def is_held(path: Path) -> bool:
    """True if this process currently holds the lock at ``path``."""
    return _key(path) in _HELD


def acquire(path: Path, on_wait: Callable[[str], None] | None = None, poll: float = 0.05) -> bool:
    """Take the exclusive lock at ``path``, waiting for another process to release it.

    Args:
        path: Lock file (created if missing).
        on_wait: Called once with the holder's ``pid@host`` if the lock is busy.
        poll: Seconds between attempts while waiting.

    Returns:
        False if the lock was taken at once, True if this call had to wait
        (so another process probably just did the work the lock guards).
    """
    key = _key(path)
    if key in _HELD:
        raise RuntimeError(f"lock {path} is already held by this process")
    fd = _open(path)
    waited = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait(holder(path))
                waited = True
                time.sleep(poll)
        _mark(fd)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = fd
    return waited


def try_acquire(path: Path, what: str) -> None:
    """Take the lock at ``path`` now or refuse.

    Raises:
        LockedError: Another process holds it; the message names ``what``, the
            holder's pid and host, and what to do.
    """
    key = _key(path)
    if key in _HELD:
        raise RuntimeError(f"lock {path} is already held by this process")
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(
            f"{what} is in use by another evalbench process (pid@host {holder(path)}, lock {path}); "
            "wait for it to finish or stop it, then run again (a crashed holder releases the lock by itself)"
        ) from None
    _mark(fd)
    _HELD[key] = fd


def release(path: Path) -> None:
    """Release the lock at ``path`` if this process holds it (no-op otherwise)."""
    fd = _HELD.pop(_key(path), None)
    if fd is None:
        return
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class refuse_if_locked:
    """Context manager: hold the lock at ``path`` for the block, or raise :class:`LockedError`."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = Path(path), what

    def __enter__(self) -> Path:
        try_acquire(self.path, self.what)
        return self.path

    def __exit__(self, *exc: object) -> None:
        release(self.path)


__all__ = ["LockedError", "acquire", "holder", "is_held", "refuse_if_locked", "release", "try_acquire"]
