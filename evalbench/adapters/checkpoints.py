"""Safe checkpoint loading and saving shared by every learned adapter.

Two formats are read:

- *official* files as their authors publish them: a bare ``state_dict``
  (``{parameter name: tensor}``), e.g. the BYOL-A weights (docs/methods.md §1.6);
- *evalbench* files written by :func:`save_checkpoint` (and by ``evalbench
  pretrain``): ``{"format": "evalbench-checkpoint", "version": 1, "family": ...,
  "state_dict": {...}, "meta": {...}}``.

Either may also be a ``.safetensors`` file (:func:`save_checkpoint` writes one
when the path ends so; ``evalbench pretrain --export-format safetensors``): the
tensors, with evalbench's fields as JSON strings in the header's metadata
(safetensors metadata maps strings to strings).  Reading one involves no pickle
at all, and other tools read the format.

Torch files are always opened with ``torch.load(..., weights_only=True)``: a
file that needs arbitrary unpickling is refused rather than executed.  Key layouts are
checked against the module before loading, and every missing, unexpected or
mis-shaped key is listed in the error (:class:`KeyMismatch`).

:func:`matching` answers "which of these encoders would load this file?"
without loading anything into them: the file is read once, and each
candidate's own ``load_weights`` runs inside :func:`probing`, which serves the
read state instead of reading the file again and stops before
``load_state_dict``.  Each candidate thus applies its family's real rules
(prefixes stripped, family and option checks), and nothing in the file is
executed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evalbench.errors import EvalbenchError
from evalbench.utils.io import atomic_write_bytes

FORMAT = "evalbench-checkpoint"
VERSION = 1
SAFETENSORS = ".safetensors"
_JSON_FIELDS = ("version", "family", "options", "meta")  # stored JSON-encoded in a safetensors header


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a checkpoint file safely, without stripping key prefixes (see :func:`load_checkpoint`).

    A ``.safetensors`` file is read by :func:`read_safetensors`, anything else
    with ``torch.load(weights_only=True)``.

    Raises:
        EvalbenchError: Unreadable file, unsafe pickle, or not a state dict.
    """
    if Path(path).suffix == SAFETENSORS:
        return read_safetensors(Path(path))
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
    return dict(obj), meta


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and evalbench metadata of a ``.safetensors`` file (no pickle involved).

    The whole file is parsed and checked by the safetensors library first, so a
    truncated or damaged file is refused before anything is used.  Without
    evalbench metadata (a file from another tool) the meta is empty, as for a
    bare state dict.

    Raises:
        EvalbenchError: Missing, truncated or damaged file, or malformed evalbench metadata (naming the file).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise EvalbenchError(f"{path}: checkpoint file not found") from None
    except OSError as exc:
        raise EvalbenchError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from None
    try:
        state = load(data)
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
        stored = header.get("__metadata__") or {}
        meta: dict[str, Any] = {}
        if stored.get("format") == FORMAT:
            meta = {"format": FORMAT, **{k: json.loads(stored[k]) for k in _JSON_FIELDS}}
    except (SafetensorError, ValueError, KeyError, AttributeError, TypeError) as exc:
        lines = str(exc).strip().splitlines()
        shown = lines[0][:200] if lines else type(exc).__name__
        raise EvalbenchError(
            f"{path}: not a readable safetensors checkpoint ({shown}); the file is truncated or damaged: "
            "export or download it again"
        ) from None
    return dict(state), meta


@dataclass(frozen=True)
class _Probe:
    path: Path
    state: dict[str, torch.Tensor]
    meta: dict


_PROBE: ContextVar[_Probe | None] = ContextVar("evalbench_checkpoint_probe", default=None)


def _probed(path: Path) -> _Probe | None:
    probe = _PROBE.get()
    if probe is None:
        return None
    same = Path(path) == probe.path or Path(path).resolve() == probe.path.resolve()
    return probe if same else None


@contextmanager
def probing(path: Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, a dry run for ``path``: every check of a load, no file read, no weights copied.

    :func:`load_checkpoint` of ``path`` returns ``(state, meta)`` (as
    :func:`read_checkpoint` gave them) instead of reading the file again, and
    :func:`load_into` does all its checks but leaves the module untouched.
    """
    token = _PROBE.set(_Probe(Path(path), dict(state), dict(meta)))
    try:
        yield
    finally:
        _PROBE.reset(token)


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
    probe = _probed(path)
    state, meta = (dict(probe.state), dict(probe.meta)) if probe is not None else read_checkpoint(path)
    for prefix in strip_prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state, meta


def _shown(items: list[str], limit: int = 12) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


class KeyMismatch(EvalbenchError):
    """A state dict whose keys or shapes differ from the module's; the message lists every difference.

    Attributes:
        missing: Keys of the module absent from the file.
        unexpected: Keys of the file the module does not have.
        shapes: ``key (file shape) (expected (module shape))`` for each mis-shaped key.
    """

    def __init__(self, message: str, missing: list[str], unexpected: list[str], shapes: list[str]) -> None:
        super().__init__(message)
        self.missing, self.unexpected, self.shapes = missing, unexpected, shapes

    @property
    def brief(self) -> str:
        """The differences in one short clause: counts, and the first of each kind."""
        parts = []
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected), ("mis-shaped", self.shapes)):
            if items:
                parts.append(f"{len(items)} {label} key{'s' if len(items) != 1 else ''}, e.g. {items[0]}")
        return "; ".join(parts)


def check_keys(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path, family: str) -> None:
    """Raise :class:`KeyMismatch` unless ``state`` has exactly ``module``'s keys and shapes (lists each difference)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [
            f"{label}: {_shown(items)}"
            for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes))
            if items
        ]
        what = f"{path}: does not match the {family} architecture in the encoder options"
        raise KeyMismatch(f"{what}; " + "; ".join(parts), missing, unexpected, shapes)


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

    Inside :func:`probing` for ``path``, every check runs but ``module`` is left untouched.

    Raises:
        KeyMismatch: Keys or shapes differ from ``module``'s (every difference listed).
        EvalbenchError: Unreadable or unsafe file, another family, other input options, or ``check`` refused it.
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
    if _probed(path) is None:
        module.load_state_dict(state, strict=True)
    return meta


def build_unloaded(adapter: type, options: Any) -> Any:
    """``adapter(options)``: the network with its seeded initial weights, no checkpoint, for :func:`matching`.

    (The meta device would spare the initialisation, but most adapters compute
    a mel filterbank or read a shape with ``.item()`` while being built, which
    the meta device cannot do; trying it first costs more than it saves.)
    """
    return adapter(options)


def matching(
    path: Path,
    candidates: Mapping[str, Callable[[], Any]],
    read: tuple[Mapping[str, torch.Tensor], Mapping[str, Any]] | None = None,
) -> dict[str, str | None]:
    """Which candidates would load the checkpoint ``path``, without loading it into any.

    Args:
        path: Checkpoint file.
        candidates: ``{name: build}``; ``build()`` returns an adapter without
            weights (:func:`build_unloaded`) whose ``load_weights(path)`` is the
            family's loader (:meth:`evalbench.adapters.base.FrozenEncoder.load_weights`).
        read: ``read_checkpoint(path)`` if already done (the file is read at most once).

    Returns:
        ``{name: None}`` for a candidate that would load the file (keys, shapes,
        family and options as its loader checks them), else ``{name: reason}``.

    Raises:
        EvalbenchError: The file cannot be read as a weights-only state dict.
    """
    state, meta = read if read is not None else read_checkpoint(path)
    out: dict[str, str | None] = {}
    with probing(path, state, meta):
        for name, build in candidates.items():
            try:
                build().load_weights(Path(path))
            except KeyMismatch as exc:
                out[name] = exc.brief
            except EvalbenchError as exc:
                out[name] = str(exc)
            except Exception as exc:  # a candidate that cannot even be built is no match; the hint must not fail
                out[name] = f"cannot be built ({type(exc).__name__}: {exc})"
            else:
                out[name] = None
    return out


def save_checkpoint(
    path: Path, module: nn.Module, family: str, options: dict, meta: dict | None = None, advice: str | None = None
) -> None:
    """Write ``module``'s weights as an evalbench checkpoint, atomically (``advice``: what to do on a full disk).

    A path ending in ``.safetensors`` gets that format: the same tensors (made
    contiguous, unshared: what safetensors stores), and ``family``, ``options``
    and ``meta`` as JSON strings in the header, which :func:`read_checkpoint`
    turns back into the same meta as a torch file's.
    """
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    fields = {"format": FORMAT, "version": VERSION, "family": family, "options": options, "meta": meta or {}}
    if Path(path).suffix == SAFETENSORS:
        from safetensors.torch import save

        header = {"format": FORMAT, **{k: json.dumps(fields[k], sort_keys=True) for k in _JSON_FIELDS}}
        tensors = {k: v.contiguous() for k, v in state.items()}
        atomic_write_bytes(Path(path), save(tensors, metadata=header), advice)
        return
    buf = io.BytesIO()
    torch.save({**fields, "state_dict": state}, buf)
    atomic_write_bytes(Path(path), buf.getvalue(), advice)
