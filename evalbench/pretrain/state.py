"""Pretraining checkpoints: everything needed to continue a run exactly.

A checkpoint (``<out>/state.pt``) holds the method's whole state dict (online
and target networks, heads, fitted statistics, the mixup memory bank), the
optimiser and scheduler states, the step, every RNG state (Python, NumPy,
torch CPU, CUDA, and the augmentation generator), the loss history, the
resolved recipe with its hash, and the corpus fingerprint.  The sampler needs
no state: batch membership and crops are pure functions of (seed, step).

Files are written atomically and read with ``torch.load(weights_only=True)``
(plain tensors and containers, never pickled code).  A checkpoint made under
another recipe or corpus is refused by :func:`check_compatible`, naming each
field that differs.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench.errors import EvalbenchError
from evalbench.utils.io import PRETRAIN_ADVICE, atomic_write_bytes

STATE_FORMAT = "evalbench-pretrain-state"
STATE_VERSION = 1


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every RNG state the loop touches, in weights-only-loadable form."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(key, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "augment": generator.get_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any], generator: torch.Generator) -> None:
    """Restore :func:`rng_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    generator.set_state(states["augment"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_state(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (an interrupted write leaves the previous one intact).

    Raises:
        DiskFullError: No room for it; the previous checkpoint is unchanged, so the same command resumes from it.
    """
    buf = io.BytesIO()
    torch.save({"format": STATE_FORMAT, "version": STATE_VERSION, **payload}, buf)
    atomic_write_bytes(Path(path), buf.getvalue(), PRETRAIN_ADVICE)


def load_state(path: Path) -> dict[str, Any]:
    """Read a checkpoint (weights-only).

    Raises:
        EvalbenchError: Unreadable, unsafe or not a pretraining checkpoint.
    """
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalbenchError(
            f"{path}: not a readable pretraining checkpoint ({first[:200]}); remove it or pass --restart"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT:
        raise EvalbenchError(f"{path}: not an evalbench pretraining checkpoint; remove it or pass --restart")
    return obj


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: checkpoint {a!r}, now {b!r}"]


def check_compatible(state: dict[str, Any], recipe: dict[str, Any], data: dict[str, Any], path: Path) -> None:
    """Refuse to resume ``state`` under another recipe or corpus, naming what differs.

    Only ``train.steps``/``train.epochs`` may grow (continuing a finished run
    for longer is a resume); every other recipe field and the corpus must match.

    Raises:
        EvalbenchError: With one ``key: checkpoint X, now Y`` per difference.
    """
    old = {**state["recipe"], "train": {**state["recipe"]["train"]}}
    new = {**recipe, "train": {**recipe["train"]}}
    for key in ("steps", "epochs"):
        old["train"].pop(key, None)
        new["train"].pop(key, None)
    diffs = _diff(old, new) + _diff({"data": state["data"]["fingerprint"]}, {"data": data["fingerprint"]})
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs)} in all)" if len(diffs) > 6 else "")
        raise EvalbenchError(
            f"{path}: was trained with another recipe or data ({shown}); pass --restart to start over, "
            "or --name to train a separate encoder"
        )


__all__ = ["check_compatible", "load_state", "rng_states", "save_state", "set_rng_states"]
