"""Safe checkpoint loading and saving shared by every learned adapter.

Two formats are read:

- *official* files as their authors publish them: a bare ``state_dict``
  (``{parameter name: tensor}``), e.g. the BYOL-A weights (METHODS.md §1.6);
- *evalbench* files written by :func:`save_checkpoint` (and by ``evalbench
  pretrain``): ``{"format": "evalbench-checkpoint", "version": 1, "family": ...,
  "state_dict": {...}, "meta": {...}}``.

Files are always opened with ``torch.load(..., weights_only=True)``: a file that
needs arbitrary unpickling is refused rather than executed.  Key layouts are
checked against the module before loading, and every missing, unexpected or
mis-shaped key is listed in the error.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalbench.errors import EvalbenchError
from evalbench.utils.io import atomic_write_bytes

FORMAT = "evalbench-checkpoint"
VERSION = 1


def load_checkpoint(path: Path, strip_prefixes: tuple[str, ...] = ("module.",)) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file safely.

    Args:
        path: Checkpoint file.
        strip_prefixes: Key prefixes removed when every key carries them
            (``module.`` from DataParallel/DDP).

    Returns:
        ``(state_dict, meta)``; ``meta`` is empty for official files and holds
        ``family``, ``options`` and provenance for evalbench files.

    Raises:
        EvalbenchError: Unreadable file, unsafe pickle, or not a state dict.
    """
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EvalbenchError(f"{path}: checkpoint file not found") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EvalbenchError(
            f"{path}: cannot load as a weights-only torch checkpoint ({first[:200]}); "
            "evalbench only loads plain tensors, never pickled code"
        ) from None
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
        obj = obj.get("state_dict")
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise EvalbenchError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    state = dict(obj)
    for prefix in strip_prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state, meta


def check_keys(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, family: str) -> None:
    """Raise if ``state`` does not match ``module``'s keys and shapes exactly, listing every difference."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes)):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{label}: {shown}")
        what = f"{path}: does not match the {family} architecture in the encoder options"
        raise EvalbenchError(f"{what}; " + "; ".join(parts))


# Options that never shape a network's input or architecture: a checkpoint may differ in them.  MSN's evaluation
# geometry (how a clip is cut into windows and read out) is chosen per encoder YAML, so weights trained by
# `evalbench pretrain msn` (64-frame windows) also load under msn.yaml's 96-frame windows or the `pad` geometry.
IGNORED_OPTIONS = frozenset(
    {"seed", "norm_mean", "norm_std", "imagenet_weights", "geometry", "window_frames", "min_tail_frames", "output"}
)


def option_differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """``key: checkpoint X, encoder Y`` for each option present in both that differs (recursively)."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        out = []
        for key in sorted(set(saved) & set(current)):
            if key not in IGNORED_OPTIONS:
                out += option_differences(saved[key], current[key], f"{prefix}{key}.")
        return out
    if isinstance(saved, list | tuple) and isinstance(current, list | tuple):
        saved, current = list(saved), list(current)
    return [] if saved == current else [f"{prefix.rstrip('.')}: checkpoint {saved!r}, encoder {current!r}"]


def load_into(
    module: nn.Module,
    path: Path,
    family: str,
    strip_prefixes: tuple[str, ...] = ("module.",),
    check: Callable[[Mapping[str, torch.Tensor]], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict:
    """Load a checkpoint file into ``module`` after an exact key/shape check; returns its meta.

    Args:
        module: Target module.
        path: Checkpoint file (official bare state dict or evalbench format).
        family: Adapter family; an evalbench checkpoint of another family is refused.
        strip_prefixes: Key prefixes removed when every key carries them.
        check: Optional family-specific test of the state dict, raising
            :class:`EvalbenchError` with advice (e.g. "this is an ImageNet file").
        options: The encoder's adapter options.  An evalbench checkpoint records
            the options it was trained with (front end, rates, mel bands, hops,
            version...); any that differ refuse the load, since equal shapes do
            not make equal inputs (a 128-mel, hop-320 network loads into a
            64-mel, hop-160 one only if its layers happen to fit).
    """
    state, meta = load_checkpoint(path, strip_prefixes)
    if check is not None:
        check(state)
    if meta.get("family") not in (None, family):
        raise EvalbenchError(f"{path}: an evalbench checkpoint of family '{meta['family']}', not '{family}'")
    check_keys(module, state, path, family)
    if options is not None and isinstance(meta.get("options"), Mapping):
        diffs = option_differences(meta["options"], options)
        if diffs:
            raise EvalbenchError(
                f"{path}: was saved with other input options than this encoder's ({'; '.join(diffs)}); "
                "set the encoder YAML's options to the checkpoint's"
            )
    module.load_state_dict(state, strict=True)
    return meta


def save_checkpoint(path: Path, module: nn.Module, family: str, options: dict, meta: dict | None = None) -> None:
    """Write ``module``'s weights as an evalbench checkpoint, atomically."""
    buf = io.BytesIO()
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "family": family,
        "options": options,
        "meta": meta or {},
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
