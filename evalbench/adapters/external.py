"""Encoder adapters outside the package: ``adapter: ./my_adapter.py:MyEncoder`` in an encoder YAML.

The built-in adapters are registered by name in :mod:`evalbench.registry`; adding
one means editing the package.  An encoder YAML may instead name its adapter
class directly, which works from a pip-installed evalbench:

- ``adapter: path/to/file.py:ClassName`` — a Python file (relative to the YAML's
  folder, or absolute; ``~`` is expanded), loaded under a private module name.
  Only that one file is loaded: its folder is *not* put on ``sys.path``, so an
  adapter spread over several files should use the module form;
- ``adapter: some.module:ClassName`` — an importable module (installed, or on
  ``PYTHONPATH``); the adapter's file is the module's file.

A value without a colon is a registered name, exactly as before.

The class must subclass :class:`evalbench.adapters.base.Encoder`.  If it has a
class attribute ``Options`` that is a dataclass, the YAML's ``options:`` are
parsed into it by :func:`evalbench.specs.fields.parse` (unknown keys, wrong types
and failed checks are errors naming the YAML and the key); without ``Options``
the mapping is passed to ``from_options`` as a plain ``dict``.

**Identity.**  Embeddings and records are cached under a key that includes the
adapter's code version.  For an external adapter that is its ``VERSION``, the
class name and the SHA-256 of its source file (:meth:`ExternalAdapter.identity`),
so editing the file invalidates cached embeddings and records even if
``VERSION`` was not bumped.  The file's location is deliberately *not* part of
it: an identical copy elsewhere (or the same file named by a relative instead of
an absolute path) reuses the cache.  Only the named file is hashed; code it
imports from elsewhere is not, so bump ``VERSION`` when such code changes.

**When user code runs.**  :func:`check_reference` only checks the syntax.
:func:`load_external` first checks, without executing anything, that the file
exists and that its top level binds the class name (parsed with :mod:`ast`);
only then does it execute the file — the user named it in their own YAML, so
loading it to validate the spec (``evalbench encoders validate``, spec loading,
``encoders list``) is the same trust as running it.  Executing it is needed to
check that the class is an ``Encoder`` and to parse its ``Options``.  Every
failure is an :class:`ExternalAdapterError` (a :class:`~evalbench.errors.SpecError`)
on one line, naming the YAML and the ``adapter`` value.

This module imports neither torch nor the adapters, so parsing specs with
built-in adapters stays light; torch is imported when a user's file is loaded.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from evalbench.errors import SpecError
from evalbench.registry import suggestion

ENCODER_BASE = "evalbench.adapters.base.Encoder"
FORMS = "a registered adapter name, 'path/to/file.py:ClassName' or 'some.module:ClassName'"

# Files loaded in this process, by (resolved path, SHA-256 of the bytes executed).
_FILE_MODULES: dict[tuple[str, str], ModuleType] = {}
# SHA-256 of an imported module's file, taken when it was first resolved (the code that runs).
_MODULE_SHA: dict[str, str] = {}


class ExternalAdapterError(SpecError):
    """An encoder YAML's ``adapter: <file or module>:<class>`` cannot be used."""


def is_external(adapter: str) -> bool:
    """Whether an ``adapter`` value names a class in a file or module (it has a colon) rather than a registered name."""
    return ":" in adapter


@dataclass(frozen=True)
class AdapterReference:
    """A parsed ``<file.py or module>:<ClassName>`` value.

    Attributes:
        text: The value as written in the YAML.
        target: The part before the last colon: a ``.py`` path or a dotted module name.
        class_name: The part after it.
    """

    text: str
    target: str
    class_name: str

    @property
    def is_file(self) -> bool:
        """True for the ``path/to/file.py:Class`` form, False for ``module:Class``."""
        return self.target.endswith(".py")

    def file(self, base_dir: Path) -> Path:
        """The adapter file, a relative path resolved against ``base_dir`` (the YAML's folder); file form only."""
        path = Path(self.target).expanduser()
        return (path if path.is_absolute() else base_dir / path).resolve()

    def key(self, base_dir: Path) -> str:
        """What tells two specs' adapters apart without loading anything (resolved file, or the module name)."""
        return f"{self.file(base_dir)}:{self.class_name}" if self.is_file else self.text


def check_reference(adapter: str) -> AdapterReference:
    """Parse ``adapter`` (which contains a colon) without touching the file system.

    Raises:
        ValueError: ``"adapter: <problem>"`` (the spec parser prefixes the YAML's path).
    """
    target, _, class_name = adapter.rpartition(":")
    target = target.strip()
    problem = ""
    if not class_name.isidentifier():
        problem = f"'{class_name}' after the last colon is not a class name"
    elif not target:
        problem = "nothing before the colon"
    elif not target.endswith(".py") and not all(part.isidentifier() for part in target.split(".")):
        problem = f"'{target}' is neither a .py file nor a module name"
    if problem:
        raise ValueError(f"adapter: '{adapter}': {problem}; expected {FORMS}")
    return AdapterReference(adapter, target, class_name)


@dataclass(frozen=True)
class ExternalAdapter:
    """A loaded external adapter class.

    Attributes:
        reference: The ``adapter`` value it was loaded from.
        cls: The :class:`~evalbench.adapters.base.Encoder` subclass.
        source: Its source file.
        sha256: SHA-256 of that file's bytes (those executed, for the file form).
    """

    reference: str
    cls: type
    source: Path
    sha256: str

    @property
    def options_class(self) -> type | None:
        """The class's ``Options`` dataclass, or None (options are then passed as a plain dict)."""
        options = getattr(self.cls, "Options", None)
        return options if isinstance(options, type) and dataclasses.is_dataclass(options) else None

    def parse_options(self, options: dict[str, Any], where: str) -> Any:
        """The YAML ``options:`` mapping, parsed into :attr:`options_class` (validated), or a plain dict copy."""
        from evalbench.specs.fields import parse

        cls = self.options_class
        return dict(options) if cls is None else parse(cls, options, where, "options")

    def identity(self) -> dict[str, Any]:
        """The adapter's part of the cache key: class name, ``VERSION`` and source SHA-256 (not its location)."""
        return {"class": self.cls.__qualname__, "version": getattr(self.cls, "VERSION", 1), "sha256": self.sha256}


def load_external(adapter: str, base_dir: Path, where: str) -> ExternalAdapter:
    """Load the class named by ``adapter`` (``file.py:Class`` relative to ``base_dir``, or ``module:Class``).

    Executes the user's file or imports the module (see the module docstring);
    a file already loaded with the same content is not executed again.

    Args:
        adapter: The YAML's ``adapter`` value (with a colon).
        base_dir: The YAML's folder, against which a relative file path is resolved.
        where: The YAML's path (or the spec's name), to prefix errors.

    Raises:
        ExternalAdapterError: Malformed value, missing file or module, no such
            class, an exception while importing (its one-line message), a class
            that is not an ``Encoder``, or an ``Options`` that is not a dataclass.
    """
    try:
        ref = check_reference(adapter)
    except ValueError as exc:
        raise ExternalAdapterError(f"{where}: {exc}") from None

    def fail(problem: str) -> ExternalAdapterError:
        return ExternalAdapterError(f"{where}: adapter: '{adapter}': {problem}")

    if ref.is_file:
        module, source, digest = _load_file(ref, base_dir, fail)
    else:
        module, source, digest = _import_module(ref, fail)
    if not hasattr(module, ref.class_name):  # a star import did not bind it, or the file was checked when first loaded
        classes = [k for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__]
        raise fail(_no_such_class(source, ref.class_name, classes))
    cls = getattr(module, ref.class_name)
    from evalbench.adapters.base import Encoder  # torch; the user's file has imported it already

    if not isinstance(cls, type) or not issubclass(cls, Encoder):
        what = f"a class with bases {', '.join(b.__name__ for b in cls.__bases__)}" if isinstance(cls, type) else ""
        what = what or f"a {type(cls).__name__}"
        raise fail(f"'{ref.class_name}' in {source} is {what}, not a subclass of {ENCODER_BASE}")
    options = getattr(cls, "Options", None)
    if options is not None and not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise fail(f"{ref.class_name}.Options is not a dataclass; decorate it with @dataclass, or remove it")
    return ExternalAdapter(adapter, cls, source, digest)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _load_file(ref: AdapterReference, base_dir: Path, fail: Any) -> tuple[ModuleType, Path, str]:
    """Check, then execute, the adapter file: ``(module, path, sha256)``."""
    path = ref.file(base_dir)
    if not path.is_file():
        relative = (
            ""
            if Path(ref.target).expanduser().is_absolute()
            else f" (relative to the YAML's folder {base_dir.resolve()})"
        )
        raise fail(f"file {path} not found{relative}")
    source = path.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    cached = _FILE_MODULES.get((str(path), digest))
    if cached is not None:
        return cached, path, digest
    _check_defines(source, path, ref.class_name, fail)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"evalbench_adapter_{stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise fail(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing.get_type_hints look the module up by name
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # the bytes that were hashed
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise fail(f"importing {path} failed: {_first_line(exc)}") from None
    _FILE_MODULES[str(path), digest] = module
    return module, path, digest


def _import_module(ref: AdapterReference, fail: Any) -> tuple[ModuleType, Path, str]:
    """Import the module (its class checked first when the source can be found): ``(module, file, sha256)``."""
    if ref.target not in sys.modules:
        try:
            found = importlib.util.find_spec(ref.target)  # imports parent packages only
        except Exception as exc:
            raise fail(f"cannot import module '{ref.target}': {_first_line(exc)}") from None
        if found is None:
            raise fail(f"cannot import module '{ref.target}': no module of that name is installed or on sys.path")
        if found.origin and found.origin.endswith(".py") and Path(found.origin).is_file():
            _check_defines(Path(found.origin).read_bytes(), Path(found.origin), ref.class_name, fail)
    try:
        module = importlib.import_module(ref.target)
    except Exception as exc:
        raise fail(f"cannot import module '{ref.target}': {_first_line(exc)}") from None
    file = getattr(module, "__file__", None)
    if not file or not Path(file).is_file():
        raise fail(f"module '{ref.target}' has no source file to fingerprint; name a module with a .py file")
    path = Path(file).resolve()
    if ref.target not in _MODULE_SHA:
        _MODULE_SHA[ref.target] = hashlib.sha256(path.read_bytes()).hexdigest()
    return module, path, _MODULE_SHA[ref.target]


def _check_defines(source: bytes, path: Path, name: str, fail: Any) -> None:
    """Without running it, check that ``source``'s top level binds ``name`` (class, assignment or import).

    A star import could bind anything, so then the check is left to the import.
    """
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise fail(f"{path} line {exc.lineno}: SyntaxError: {exc.msg}") from None
    bound: set[str] = set()
    classes: list[str] = []
    statements = list(tree.body)
    while statements:
        node = statements.pop(0)
        if isinstance(node, ast.ClassDef):
            bound.add(node.name)
            classes.append(node.name)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(
                n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            )
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for block in ("body", "orelse", "finalbody", "handlers"):
                statements.extend(getattr(node, block, []))
        elif isinstance(node, ast.ExceptHandler):
            statements.extend(node.body)
    if name not in bound:
        raise fail(_no_such_class(path, name, classes))


def _no_such_class(path: Path, name: str, classes: list[str]) -> str:
    known = sorted(set(classes))
    hint = suggestion(name, known, f"classes in it: {', '.join(known)}") if known else "it defines no class"
    return f"{path} defines no '{name}'; {hint}"


__all__ = [
    "AdapterReference",
    "ExternalAdapter",
    "ExternalAdapterError",
    "check_reference",
    "is_external",
    "load_external",
]
