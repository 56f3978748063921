"""Parse plain YAML data into typed, frozen dataclasses with actionable errors.

One small recursive converter serves every spec type (tasks, suites, encoders,
later pretraining recipes).  It supports nested dataclasses, ``Literal`` enums,
``Optional``/``X | None``, ``list``/``tuple``, ``dict[str, ...]``, ``Any`` and the
scalars ``str``/``int``/``float``/``bool``.  Every error names the file, the dotted
key and the offending value, e.g.::

    tasks/esc50.yaml: splits.type: 'fold' is not one of 'fixed', 'folds'

Unknown keys are rejected with a close-match suggestion.  Dataclass fields whose
metadata has ``internal=True`` are filled by loaders, never read from YAML.
Cross-field checks live in each dataclass's ``__post_init__``, which raises
``ValueError("key: problem")``; the converter prefixes the path.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from evalbench.errors import SpecError
from evalbench.registry import suggestion

T = TypeVar("T")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in (str, int, float, bool):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}[tp.__name__]
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def public_fields(cls: type) -> list[dataclasses.Field]:
    """The dataclass fields that may appear in YAML (excludes ``internal`` ones)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def parse(cls: type[T], data: Any, where: str, path: str = "") -> T:
    """Convert ``data`` (from ``yaml.safe_load``) into an instance of dataclass ``cls``.

    Args:
        cls: Target dataclass type.
        data: Parsed YAML value (expected to be a mapping).
        where: File name (or other origin) used to prefix error messages.
        path: Dotted key path of ``data`` inside the file ("" for the top level).

    Returns:
        A fully typed instance of ``cls``.

    Raises:
        SpecError: On unknown keys, missing required keys, wrong types or values,
            or a failed cross-field check.
    """
    return _convert(cls, data, where, path)


def _fail(where: str, path: str, message: str) -> SpecError:
    return SpecError(f"{where}: {path or '<top level>'}: {message}")


def _convert(tp: Any, value: Any, where: str, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        non_none = [o for o in options if o is not type(None)]
        errors = []
        for option in non_none:
            try:
                return _convert(option, value, where, path)
            except SpecError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join(_type_name(o) for o in non_none)
        raise _fail(where, path, f"expected {names}, got {_show(value)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            allowed = ", ".join(repr(c) for c in choices)
            raise _fail(where, path, f"{_show(value)} is not one of {allowed}")
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _fail(where, path, f"expected a list, got {_show(value)}")
        item_tp = (get_args(tp) or (Any,))[0]
        items = [_convert(item_tp, v, where, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, path, f"expected a mapping, got {_show(value)}")
        val_tp = (get_args(tp) or (str, Any))[1]
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _fail(where, f"{path}.{k}", "keys must be strings")
            out[k] = _convert(val_tp, v, where, f"{path}.{k}" if path else k)
        return out
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, path, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, path, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, path, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, path, f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"unsupported spec field type {tp!r} at {path}")  # a bug in a spec class


def _convert_dataclass(cls: type, value: Any, where: str, path: str) -> Any:
    if not isinstance(value, dict):
        raise _fail(where, path, f"expected a mapping, got {_show(value)}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in public_fields(cls)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        key = unknown[0]
        hint = suggestion(str(key), list(fields), f"allowed keys: {', '.join(fields)}")
        raise _fail(where, f"{path}.{key}" if path else str(key), f"unknown key; {hint}")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _fail(where, sub, f"missing required key ({_type_name(hints[name])})")
            continue
        kwargs[name] = _convert(hints[name], value[name], where, sub)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        if message:
            raise _fail(where, f"{path}.{key}" if path else key, message) from None
        raise _fail(where, path, str(exc)) from None


def to_dict(obj: Any) -> Any:
    """Convert a spec dataclass back to plain data (tuples become lists; internal fields dropped)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in public_fields(type(obj))}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


__all__ = ["parse", "public_fields", "to_dict"]
