"""Spec folders as an overlay: the built-in catalog, then the user's folders, later ones winning by name.

Task and encoder specs are looked up in a list of folders, lowest priority
first (:func:`evalbench.paths.task_dirs`, :func:`evalbench.paths.encoder_dirs`):
the catalog shipped inside the package, ``./tasks`` or ``./encoders`` in the
working folder, the ``EVALBENCH_*_DIR`` variable, then ``--tasks-dir`` or
``--encoders-dir``.  A user folder adds specs and overrides a built-in spec of
the same name, so a custom task runs beside ``esc50`` in one command.  Which
folder each spec came from is shown by ``tasks list`` and ``encoders list``
(:func:`origin`).

Includes (``include: _base/...``) stay relative to the including file; a user
spec can reach the built-in bases through the path ``evalbench tasks list``
prints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from evalbench.errors import UnknownNameError
from evalbench.paths import is_builtin
from evalbench.registry import suggestion

Dirs = Path | str | os.PathLike | Sequence[Path | str | os.PathLike]
"""One spec folder or an overlay of them, lowest priority first."""


def as_dirs(dirs: Dirs) -> list[Path]:
    """The overlay as a list of folders, lowest priority first."""
    if isinstance(dirs, str | os.PathLike):
        return [Path(dirs)]
    return [Path(d) for d in dirs]


def spec_map(dirs: Dirs, subfolder: str = "") -> dict[str, Path]:
    """``{name: file}`` of the ``*.yaml`` specs in ``<dir>/<subfolder>`` of every folder, later folders winning.

    ``_``-prefixed files are includes, not specs.  Sorted by name.
    """
    found: dict[str, Path] = {}
    for folder in as_dirs(dirs):
        for path in sorted(Path(folder, subfolder).glob("*.yaml")):
            if not path.name.startswith("_"):
                found[path.stem] = path
    return dict(sorted(found.items()))


def find_spec(dirs: Dirs, name: str, kind: str, known: list[str], list_command: str, subfolder: str = "") -> Path:
    """The file of spec ``name`` in the overlay (the highest-priority folder holding it).

    Raises:
        UnknownNameError: No folder holds it; the message names the folders and suggests a close known name.
    """
    files = spec_map(dirs, subfolder)
    if name in files and not name.startswith("_"):
        return files[name]
    where = ", ".join(str(Path(d, subfolder)) for d in as_dirs(dirs)) or "no spec folder"
    hint = suggestion(name, known, f"run '{list_command}' to see them")
    raise UnknownNameError(f"unknown {kind} '{name}' (no {name}.yaml in {where}); {hint}")


def origin(path: Path | str) -> str:
    """Where a spec file comes from, for listings: ``built-in`` or its folder."""
    return "built-in" if is_builtin(path) else str(Path(path).resolve().parent)


def overridden(dirs: Dirs, subfolder: str = "") -> dict[str, Path]:
    """``{name: hidden file}`` of specs that a later folder overrides (for listings and warnings)."""
    seen: dict[str, Path] = {}
    hidden: dict[str, Path] = {}
    for folder in as_dirs(dirs):
        for path in sorted(Path(folder, subfolder).glob("*.yaml")):
            if path.name.startswith("_"):
                continue
            if path.stem in seen:
                hidden[path.stem] = seen[path.stem]
            seen[path.stem] = path
    return hidden


__all__ = ["Dirs", "as_dirs", "find_spec", "origin", "overridden", "spec_map"]
