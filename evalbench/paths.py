"""Where evalbench reads specs and writes data, caches and results.

Data and embedding caches live in per-user cache folders (never inside the
package), overridable by flags and by ``EVALBENCH_DATA`` / ``EVALBENCH_CACHE``.
Specs are an overlay (:func:`task_dirs`, :func:`encoder_dirs`): the built-in
catalog shipped with the package, then the user's folders.  ``results/`` lives
in the project root: the checkout (``EVALBENCH_HOME`` overrides the search).
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

from evalbench.errors import EvalbenchError

PACKAGE_DIR = Path(__file__).resolve().parent


def user_cache_dir() -> Path:
    """Return the platform's per-user cache folder for evalbench.

    Linux/BSD: ``$XDG_CACHE_HOME/evalbench`` (default ``~/.cache/evalbench``);
    macOS: ``~/Library/Caches/evalbench``; Windows: ``%LOCALAPPDATA%/evalbench``.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "evalbench"


def _pick(flag: str | os.PathLike | None, env: str, default: Path) -> Path:
    if flag:
        return Path(flag).expanduser()
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    return default


def data_root(flag: str | os.PathLike | None = None) -> Path:
    """Root under which datasets are prepared (``--data-root`` > ``EVALBENCH_DATA`` > user cache)."""
    return _pick(flag, "EVALBENCH_DATA", user_cache_dir() / "data")


def cache_root(flag: str | os.PathLike | None = None) -> Path:
    """Root of the embedding cache (``--cache-dir`` > ``EVALBENCH_CACHE`` > user cache)."""
    return _pick(flag, "EVALBENCH_CACHE", user_cache_dir() / "embeddings")


def project_root() -> Path:
    """The folder holding ``results/`` (and, in a checkout, ``tasks/`` and ``encoders/``).

    ``EVALBENCH_HOME`` if set; else the checkout this package was installed from
    (editable installs); else the current directory.
    """
    if os.environ.get("EVALBENCH_HOME"):
        return Path(os.environ["EVALBENCH_HOME"]).expanduser()
    checkout = PACKAGE_DIR.parent
    if (checkout / "tasks").is_dir() and (checkout / "encoders").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


def builtin_catalog() -> Path:
    """The folder holding the built-in ``tasks/`` and ``encoders/`` specs.

    A wheel ships them as package data under ``evalbench/_catalog`` (copied there
    at build time, ``setup.py``); a checkout (editable install, or ``PYTHONPATH``)
    reads them from the checkout's own top-level folders.
    """
    shipped = Path(str(resources.files("evalbench") / "_catalog"))
    if (shipped / "tasks").is_dir():
        return shipped
    return PACKAGE_DIR.parent


def is_builtin(path: str | os.PathLike) -> bool:
    """Whether a spec file belongs to the built-in catalog (its ``tasks/`` or ``encoders/`` folder)."""
    path = Path(path).resolve()
    return any(path.is_relative_to((builtin_catalog() / kind).resolve()) for kind in ("tasks", "encoders"))


def _overlay(kind: str, flag: str | os.PathLike | None, env: str) -> list[Path]:
    """``[built-in, ./<kind>, $ENV, --flag]``, lowest priority first, without repeats.

    Raises:
        EvalbenchError: ``--<kind>-dir`` or the variable names a folder that does not exist.
    """
    folders = [builtin_catalog() / kind, Path.cwd() / kind]
    for given, what in ((os.environ.get(env), env), (flag, f"--{kind}-dir")):
        if not given:
            continue
        folder = Path(given).expanduser()
        if not folder.is_dir():
            raise EvalbenchError(f"{what} {given}: no such folder; create it or point to the folder of your specs")
        folders.append(folder)
    out: list[Path] = []
    for folder in folders:
        if folder.is_dir() and all(not folder.samefile(f) for f in out):
            out.append(folder)
    return out


def task_dirs(flag: str | os.PathLike | None = None) -> list[Path]:
    """Task spec folders, lowest priority first.

    The built-in catalog, ``./tasks``, ``$EVALBENCH_TASKS_DIR``, ``--tasks-dir``.
    Later folders overlay earlier ones: they add tasks and suites, and a spec of
    the same name overrides the built-in one (:mod:`evalbench.specs.catalog`).
    """
    return _overlay("tasks", flag, "EVALBENCH_TASKS_DIR")


def encoder_dirs(flag: str | os.PathLike | None = None) -> list[Path]:
    """Encoder spec folders, lowest priority first (as :func:`task_dirs`, with ``encoders``)."""
    return _overlay("encoders", flag, "EVALBENCH_ENCODERS_DIR")


def user_tasks_dir(flag: str | os.PathLike | None = None) -> Path:
    """Where evalbench writes task specs it makes (``data import``).

    ``--tasks-dir`` > ``$EVALBENCH_TASKS_DIR`` > ``./tasks``; never the installed package.
    """
    return _pick(flag, "EVALBENCH_TASKS_DIR", Path.cwd() / "tasks")


def user_encoders_dir(flag: str | os.PathLike | None = None) -> Path:
    """Where evalbench writes encoder specs it makes (``pretrain``).

    ``--encoders-dir`` > ``$EVALBENCH_ENCODERS_DIR`` > ``./encoders``; never the installed package.
    """
    return _pick(flag, "EVALBENCH_ENCODERS_DIR", Path.cwd() / "encoders")


def results_dir(flag: str | os.PathLike | None = None) -> Path:
    """Folder of run records and leaderboards (``--results-dir`` > ``EVALBENCH_RESULTS`` > ``<project>/results``)."""
    return _pick(flag, "EVALBENCH_RESULTS", project_root() / "results")
