"""The run-record schema: one JSON document per (encoder, task, probe).

A record carries everything needed to audit and reproduce a score: schema and
evalbench versions, git commit, encoder name, adapter and fingerprint
(checkpoint content hash included), task name, version and spec hash, dataset
fingerprint, class order, protocol id with the probe's fixed and chosen
hyperparameters, per-run (seed × fold) scores with sample counts and the hash
of each validation draw, mean ± std summaries, timings (extraction vs probe)
and the software environment.

Every record is validated on load and before it is written (:func:`validate`):
a non-finite or out-of-range score is refused, so a wrong number never
reaches the leaderboard.  Records of older schema versions are upgraded on load by :data:`MIGRATIONS`.
Version 1 grew by added keys that older records lack (:mod:`evalbench.results.record`
says which).  Version 2 adds ``excluded``, the clips ``run --skip-bad`` left out.
That key is bumped because an evalbench unaware of it would show such a record's
score as the full task's; older versions refuse version 2 records instead.

The structure of a record is also published as a JSON Schema,
``results/schema.json`` (:func:`json_schema`), generated from the typed record
dataclasses of :mod:`evalbench.results.record` and regenerated with
``python -m evalbench.results.schema`` (``--check`` compares instead).
:func:`schema_errors` checks a record against it with the subset of JSON Schema
(draft 2020-12) that the file uses, without a dependency.  Bumping
:data:`SCHEMA_VERSION` means a migration in :data:`MIGRATIONS` from the previous
version and a frozen record of it under ``tests/data/records/``
(``tests/unit/test_record_schema.py`` checks both).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from evalbench.errors import ResultsError
from evalbench.metric_info import RANGE

SCHEMA_VERSION = 2
REQUIRED = ("schema_version", "encoder", "task", "probe", "scores", "runs", "seeds")


def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: the version number only.

    Version 1 had no ``--skip-bad``, so a version 1 record scored every clip of its task and has no
    ``excluded``.  Its staleness key stays that of the current version: upgrading recomputes nothing.
    """
    return {**record, "schema_version": 2}


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}


def upgrade(record: dict[str, Any], where: str) -> dict[str, Any]:
    """Bring a record to :data:`SCHEMA_VERSION` or raise :class:`ResultsError`."""
    version = record.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise ResultsError(f"{where}: schema_version: missing or invalid ({version!r})")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{where}: schema_version {version} is newer than this evalbench understands ({SCHEMA_VERSION}); "
            "upgrade evalbench"
        )
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version = record["schema_version"]
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"{where}: missing key(s) {missing}; delete the file or re-run that evaluation")
    validate(record, where)
    return record


def _score(value: Any, where: str, key: str, bounds: tuple[float, float] = (0.0, 1.0)) -> None:
    """A score is null (undefined metric) or a finite number within the metric's range (``metric_info.RANGE``)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultsError(f"{where}: {key}: {value!r} is not a finite number; delete the file or re-run")
    low, high = bounds
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ResultsError(f"{where}: {key}: {value!r} is outside [{low:g}, {high:g}]; delete the file or re-run")


def validate(record: dict[str, Any], where: str) -> None:
    """Check the parts of a record that the leaderboard reads: every score finite, every metric present.

    Raises:
        ResultsError: Naming the file and the key; such a record is never written or shown.
    """
    try:
        metrics = list(record["task"]["metrics"])
        primary = record["task"]["primary_metric"]
        for split in ("test", "valid"):
            table = record["scores"][split]
            for name in metrics:
                entry, bounds = table[name], RANGE.get(name, (0.0, 1.0))
                _score(entry["mean"], where, f"scores.{split}.{name}.mean", bounds)
                _score(entry["std"], where, f"scores.{split}.{name}.std", (0.0, bounds[1] - bounds[0]))
                for i, v in enumerate(entry.get("seed_means", [])):
                    _score(v, where, f"scores.{split}.{name}.seed_means[{i}]", bounds)
        for i, run in enumerate(record["runs"]):
            for split in ("test", "valid"):
                for name in metrics:
                    _score(run[split][name], where, f"runs[{i}].{split}.{name}", RANGE.get(name, (0.0, 1.0)))
        if primary not in metrics:
            raise ResultsError(f"{where}: task.primary_metric: '{primary}' is not among task.metrics")
        _present = (record["encoder"]["name"], record["encoder"]["embedding_dim"], record["probe"]["protocol"])
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{where}: malformed record (missing or wrong {exc}); delete the file or re-run") from None


def _no_constants(name: str) -> float:
    raise ValueError(f"bare {name} is not valid JSON")


def load_record(path: Path) -> dict[str, Any]:
    """Read, upgrade and validate one run record (bare ``NaN``/``Infinity`` are refused)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable JSON run record ({exc}); delete it or re-run") from None
    if not isinstance(record, dict):
        raise ResultsError(f"{path}: not a JSON object; delete it or re-run")
    return upgrade(record, str(path))


# --- JSON Schema of a record -------------------------------------------------------------------------------------

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILE = "schema.json"
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a run record of :data:`SCHEMA_VERSION`, generated from :mod:`evalbench.results.record`.

    Every dataclass becomes an object with ``additionalProperties: false`` (the
    root inline, the others under ``$defs``), every field a property described
    by the class docstring's ``Attributes`` entry; fields without a default are
    ``required``.  ``X | None`` allows null, ``Literal`` becomes ``enum``,
    ``dict[K, V]`` an object whose keys follow ``K`` and values ``V``.

    Raises:
        TypeError: A record field without a description or of a type with no JSON form (a bug in ``record.py``).
    """
    from evalbench.results.record import RunRecord

    defs: dict[str, Any] = {}
    root = _object_schema(RunRecord, defs)
    return {
        "$schema": DIALECT,
        "title": f"evalbench run record (schema version {SCHEMA_VERSION})",
        "description": root.pop("description")
        + " Generated from evalbench/results/record.py by `python -m evalbench.results.schema`; do not edit.",
        **root,
        "$defs": defs,
    }


def _text(doc: str) -> str:
    """Docstring markup to plain text: ``code`` and :role:`~a.b.c` become `code` and `c`."""
    doc = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"`\1`", doc)
    doc = re.sub(r":\w+:`([^`]+)`", r"`\1`", doc)
    return doc.replace("``", "`")


def _attribute_docs(cls: type) -> tuple[str, dict[str, str]]:
    """The summary paragraph of ``cls``'s docstring and its Google-style ``Attributes`` entries."""
    doc = inspect.getdoc(cls) or ""
    summary = " ".join(doc.split("\n\n", 1)[0].split())
    entries: dict[str, str] = {}
    name = None
    for line in doc.partition("Attributes:")[2].splitlines():
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            name = match.group(1)
            entries[name] = match.group(2).strip()
        elif name and line.startswith("        "):
            entries[name] += " " + line.strip()
        elif line.strip():
            break
    return _text(summary), {k: _text(v) for k, v in entries.items()}


def _object_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    summary, docs = _attribute_docs(cls)
    hints = get_type_hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for f in dataclasses.fields(cls):
        if f.name not in docs:
            raise TypeError(f"{cls.__name__}.{f.name}: no entry in the class docstring's Attributes")
        text = docs[f.name] + (f" Absent {f.metadata['absent']}." if "absent" in f.metadata else "")
        properties[f.name] = {"description": text, **_type_schema(hints[f.name], defs)}
        if "const" in f.metadata:
            properties[f.name]["const"] = f.metadata["const"]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {
        "description": summary,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return {}
    if tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        members = [_type_schema(a, defs) for a in args]
        if all(list(m) == ["type"] for m in members):
            return {"type": [m["type"] for m in members]}
        return {"anyOf": members}
    if dataclasses.is_dataclass(tp):
        if tp.__name__ not in defs:
            defs[tp.__name__] = {}  # reserve the slot: parents come before their parts
            defs[tp.__name__] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is dict:
        out: dict[str, Any] = {"type": "object"}
        if get_origin(args[0]) is Literal:
            out["propertyNames"] = _type_schema(args[0], defs)
        if args[1] is not Any:
            out["additionalProperties"] = _type_schema(args[1], defs)
        return out
    raise TypeError(f"no JSON Schema form for the record field type {tp!r}")


def render_json_schema() -> str:
    """:func:`json_schema` as the text of ``results/schema.json`` (2-space indent, trailing newline)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_path(results_dir: str | Path | None = None) -> Path:
    """``<results>/schema.json`` (default folder: :func:`evalbench.paths.results_dir`)."""
    from evalbench import paths

    return paths.results_dir(results_dir) / SCHEMA_FILE


# --- A validator for the subset of JSON Schema that json_schema() emits -------------------------------------------

KEYWORDS = frozenset(
    {"$ref", "type", "enum", "const", "anyOf", "properties", "required", "additionalProperties", "propertyNames",
     "items"}
)  # fmt: skip
ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"})


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    kinds = {"null": type(None), "boolean": bool, "string": str, "array": list, "object": dict}
    if name not in kinds:
        raise ValueError(f"unknown JSON Schema type {name!r}")
    return isinstance(value, kinds[name])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 equals 1.0, but true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _resolve(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


def schema_errors(
    instance: Any, schema: dict[str, Any] | bool, root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    """Where ``instance`` breaks ``schema``: one ``"<json path>: <problem>"`` per violation (empty if valid).

    Supports the keywords :func:`json_schema` emits (``type``, ``enum``, ``const``, ``anyOf``, ``properties``,
    ``required``, ``additionalProperties``, ``propertyNames``, ``items``, local ``$ref``) with draft 2020-12
    semantics, and ignores annotations (``title``, ``description``...).

    Raises:
        ValueError: The schema uses a keyword outside that subset (never silently ignored).
    """
    if schema is True or schema is False:
        return [] if schema else [f"{path}: not allowed here"]
    root = schema if root is None else root
    unknown = set(schema) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(f"unsupported JSON Schema keyword(s) {sorted(unknown)} at {path}")
    errors = []
    if "$ref" in schema:
        errors += schema_errors(instance, _resolve(root, schema["$ref"]), root, path)
    if "type" in schema:
        names = [schema["type"]] if isinstance(schema["type"], str) else schema["type"]
        if not any(_is_type(instance, n) for n in names):
            return [*errors, f"{path}: {_show(instance)} is not of type {' or '.join(names)}"]
    if "const" in schema and not _same(instance, schema["const"]):
        errors.append(f"{path}: {_show(instance)} is not {_show(schema['const'])}")
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        errors.append(f"{path}: {_show(instance)} is not one of {', '.join(_show(v) for v in schema['enum'])}")
    if "anyOf" in schema and all(schema_errors(instance, s, root, path) for s in schema["anyOf"]):
        errors.append(f"{path}: {_show(instance)} matches none of the {len(schema['anyOf'])} allowed forms")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        errors += [f"{path}: missing required key '{k}'" for k in schema.get("required", []) if k not in instance]
        for key, value in instance.items():
            sub = f"{path}.{key}"
            if "propertyNames" in schema:
                errors += [f"{e} (a key)" for e in schema_errors(key, schema["propertyNames"], root, sub)]
            if key in properties:
                errors += schema_errors(value, properties[key], root, sub)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{sub}: unknown key")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += schema_errors(value, schema["additionalProperties"], root, sub)
    if isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            errors += schema_errors(value, schema["items"], root, f"{path}[{i}]")
    return errors


def main(argv: list[str] | None = None) -> int:
    """``python -m evalbench.results.schema [PATH] [--check]``: regenerate (or compare) ``results/schema.json``."""
    parser = argparse.ArgumentParser(
        prog="python -m evalbench.results.schema",
        description="Write the JSON Schema of a run record, generated from evalbench/results/record.py.",
    )
    parser.add_argument("path", nargs="?", type=Path, help="output file (default: <results>/schema.json)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generated schema")
    args = parser.parse_args(argv)
    path = args.path or schema_path()
    text = render_json_schema()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current != text:
            print(f"{path}: out of date; regenerate it with `python -m evalbench.results.schema`", file=sys.stderr)
            return 1
        print(f"{path}: up to date")
        return 0
    from evalbench.utils.io import atomic_write_text

    atomic_write_text(path, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
