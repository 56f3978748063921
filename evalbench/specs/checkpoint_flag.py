"""``--checkpoint``: one weights file for one encoder, or ``NAME=PATH,...`` for several.

``evalbench run --encoder byola --checkpoint my.pth`` scores another weights
file of the encoder's family (:func:`~evalbench.specs.encoder.with_checkpoint`
derives a distinct results name); with several encoders each file is named,
``--checkpoint byola-v1-512=a.pth,msn=b.pt``.  The reading is purely syntactic
(:func:`parse_checkpoint_flag`), so that any path can be given.
"""

from __future__ import annotations

import re

from evalbench.errors import EvalbenchError
from evalbench.specs.encoder import EncoderSpec, with_checkpoint


def from_checkpoint_flag(spec: EncoderSpec) -> str | None:
    """How ``--checkpoint`` gave ``spec``'s weights (``PATH`` or ``NAME=PATH``), or None if they are the spec's own."""
    source = spec.checkpoint.source if spec.checkpoint is not None else ""
    return source[len("--checkpoint ") :] if source.startswith("--checkpoint ") else None


def _name_like(text: str) -> bool:
    """Whether ``text`` could be an encoder name (not a path: no separators, no drive letter)."""
    return bool(re.fullmatch(r"[A-Za-z0-9_.@+-][A-Za-z0-9_.@:+-]*", text)) and not re.fullmatch(r"[A-Za-z]:", text)


def parse_checkpoint_flag(value: str, names: list[list[str]]) -> str | dict[int, tuple[str, str]]:
    r"""Read ``--checkpoint``: one plain path, or ``NAME=PATH[,NAME=PATH...]`` for several encoders.

    The reading is purely syntactic, so that any path can be given:

    - The value is in the *named* form exactly when the text before its first
      ``=`` is the name of one of the encoders.  Otherwise it is one plain path,
      taken whole: commas, ``=`` and drive letters included (``C:\w\a=1.pth``).
      A file whose name itself starts with ``NAME=`` is given as ``./NAME=...``.
    - In the named form, the value is cut at each comma followed by
      ``NAME=`` of an encoder, and each part at its first ``=``, so a path may
      hold ``=`` (``byola=run=3.pth``) and commas not followed by a name.

    Args:
        value: The option's text.
        names: Per encoder (in ``--encoder`` order), the names it answers to:
            as given to ``--encoder`` and as resolved.

    Returns:
        The plain path, or ``{encoder index: (path, "NAME=PATH" as given)}``.

    Raises:
        EvalbenchError: A plain path with several encoders, plain and named
            parts mixed, a name that is not among the encoders, or a name twice.
    """
    index = {alias: i for i, aliases in enumerate(names) for alias in aliases}
    listed = ", ".join(aliases[0] for aliases in names)

    def named(segment: str) -> str | None:
        left, eq, _ = segment.partition("=")
        return left if eq and left in index else None

    def unknown(left: str) -> EvalbenchError:
        return EvalbenchError(
            f"--checkpoint {value}: '{left}' is not among the encoders of --encoder ({listed}); "
            "name each weights file as ENCODER=PATH with an encoder of --encoder"
        )

    segments = value.split(",")
    if named(segments[0]) is None:
        if len(names) == 1:
            return value
        left, eq, _ = segments[0].partition("=")
        if eq and _name_like(left):
            raise unknown(left)
        if any(named(s) for s in segments[1:]):
            raise EvalbenchError(
                f"--checkpoint {value}: mixes a plain path with ENCODER=PATH parts; with several encoders "
                f"name every file, e.g. --checkpoint {names[0][0]}=PATH,{names[1][0]}=PATH"
            )
        raise EvalbenchError(
            f"--checkpoint needs exactly one --encoder, got {len(names)} ({listed}); with several encoders "
            f"name each file: --checkpoint {names[0][0]}=PATH,{names[1][0]}=PATH"
        )
    parts: list[str] = []
    for segment in segments:
        if named(segment) is not None:
            parts.append(segment)
        else:
            parts[-1] += "," + segment
    out: dict[int, tuple[str, str]] = {}
    for part in parts:
        left, _, path = part.partition("=")
        i = index[left]
        if i in out:
            raise EvalbenchError(f"--checkpoint {value}: encoder '{names[i][0]}' is given two weights files")
        if not path:
            raise EvalbenchError(f"--checkpoint {value}: '{left}=' gives no path; write {left}=PATH")
        out[i] = (path, part)
    return out


def _unnamed_parts(part: str, names: list[list[str]]) -> str:
    """Why a named ``--checkpoint`` part whose path is missing may be a mistake (comma-joined pieces), or ''."""
    pieces = part.partition("=")[2].split(",")[1:]
    known = {alias for aliases in names for alias in aliases}
    listed = ", ".join(aliases[0] for aliases in names)
    for piece in pieces:
        left, eq, _ = piece.partition("=")
        if eq and _name_like(left) and left not in known:
            return f"; '{left}' is not among the encoders of --encoder ({listed})"
        if not eq:
            return f"; if ',' separates files, '{piece}' needs its encoder: ENCODER=PATH"
    return ""


def apply_checkpoint_flag(specs: list[EncoderSpec], given: list[str], value: str) -> list[EncoderSpec]:
    """``specs`` with the weights files of ``--checkpoint`` (:func:`parse_checkpoint_flag`) swapped in.

    With one encoder, ``--checkpoint PATH`` or ``NAME=PATH``; with several,
    ``NAME=PATH,...`` for any of them (the others keep their own checkpoints).

    Args:
        specs: The resolved encoders, in ``--encoder`` order.
        given: The names as given to ``--encoder`` (same order).
        value: The option's text.

    Raises:
        EvalbenchError: A parse error (:func:`parse_checkpoint_flag`) or a missing file.
    """
    names = [list(dict.fromkeys([g, spec.name])) for g, spec in zip(given, specs, strict=True)]
    parsed = parse_checkpoint_flag(value, names)
    if isinstance(parsed, str):
        try:
            return [with_checkpoint(specs[0], parsed)]
        except EvalbenchError as exc:
            left, eq, _ = parsed.partition("=")
            if eq and _name_like(left) and left not in names[0]:
                raise EvalbenchError(f"{exc}; '{left}' is not the encoder of --encoder ({names[0][0]})") from None
            raise
    out = list(specs)
    for i, (path, part) in sorted(parsed.items()):
        try:
            out[i] = with_checkpoint(specs[i], path, given=part)
        except EvalbenchError as exc:
            raise EvalbenchError(f"{exc}{_unnamed_parts(part, names)}") from None
    return out


__all__ = ["apply_checkpoint_flag", "from_checkpoint_flag", "parse_checkpoint_flag"]
