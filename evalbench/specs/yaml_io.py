"""Read spec YAML files: safe loading, ``include:`` inheritance, spec hashes.

A spec may start with ``include: <relative path>`` (or a list of paths): the
included files are loaded first (recursively) and the including file's keys
are deep-merged over them, so a variant states only its deltas (the
lm-evaluation-harness idiom).  Only PyYAML's safe loader is used: no Python in
specs (a ``!!python/...`` tag is an error).  Two more limits make a spec safe to
read from anyone: aliases (``*name``) are refused, since a few hundred bytes of
nested aliases expand to millions of nodes (the "billion laughs" attack), and
every mapping key must be text, so a spec always hashes to one canonical JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalbench.errors import SpecError, UnknownNameError
from evalbench.registry import suggestion
from evalbench.utils.hashing import sha256_json


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``invalid YAML at line L, column C: <problem>`` (1-based), for one-line error messages."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"invalid YAML{where}: {problem}"


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (anchors alone are harmless)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in specs; repeat the value or use include:", mark
            )
        return super().compose_node(parent, index)


def _non_text_key(data: Any, where: str = "") -> str:
    """Dotted path of the first mapping key that is not text, or ""."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        if isinstance(data, dict) and not isinstance(key, str):
            return f"{where}{key!r}"
        found = _non_text_key(value, f"{where}{key}.")
        if found:
            return found
    return ""


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a YAML mapping from ``path``, resolving ``include:`` chains.

    Raises:
        SpecError: If the file is missing, not valid YAML, not a mapping, or an
            include is missing or circular.
    """
    path = Path(path)
    if path.resolve() in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path.resolve()))
        raise SpecError(f"{path}: include: circular include ({chain})")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 (byte {exc.object[exc.start : exc.end]!r} at offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # _SpecLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: <top level>: expected a mapping of keys, got {type(data).__name__}")
    bad_key = _non_text_key(data)
    if bad_key:
        raise SpecError(f"{path}: {bad_key}: keys must be text; quote the key")
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise SpecError(f"{path}: include: expected a relative path or a list of them")
    merged: dict[str, Any] = {}
    for inc in includes:
        inc_path = path.parent / inc
        if not inc_path.is_file():
            raise SpecError(f"{path}: include: '{inc}' not found (looked for {inc_path})")
        merged = _deep_merge(merged, load_yaml(inc_path, (*_seen, path.resolve())))
    return _deep_merge(merged, data)


def spec_file(folder: Path, name: str, kind: str, known: list[str], list_command: str) -> Path:
    """Path of the spec ``<folder>/<name>.yaml``.

    Raises:
        UnknownNameError: No such file; the message suggests a close known name.
    """
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file() or name.startswith("_"):
        hint = suggestion(name, known, f"run '{list_command}' to see them")
        raise UnknownNameError(f"unknown {kind} '{name}' (no {path}); {hint}")
    return path


def spec_hash(data: dict[str, Any]) -> str:
    """SHA-256 of a resolved spec mapping (key order and formatting do not matter)."""
    return sha256_json(data)
