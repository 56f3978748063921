"""Where evalbench reads specs and writes data, caches and results.

Data and embedding caches live in per-user cache folders (never inside the
package), overridable by flags and by ``EVALBENCH_DATA`` / ``EVALBENCH_CACHE``.
Specs (``tasks/``, ``encoders/``) and ``results/`` live in the project root: the
checkout that holds them (``EVALBENCH_HOME`` overrides the search).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
    """The folder holding ``tasks/``, ``encoders/`` and ``results/``.

    ``EVALBENCH_HOME`` if set; else the checkout this package was installed from
    (editable installs); else the current directory.
    """
    if os.environ.get("EVALBENCH_HOME"):
        return Path(os.environ["EVALBENCH_HOME"]).expanduser()
    checkout = PACKAGE_DIR.parent
    if (checkout / "tasks").is_dir() and (checkout / "encoders").is_dir():
        return checkout
    return Path.cwd()


def tasks_dir(flag: str | os.PathLike | None = None) -> Path:
    """Folder of task specs (``--tasks-dir`` > ``EVALBENCH_TASKS_DIR`` > ``<project>/tasks``)."""
    return _pick(flag, "EVALBENCH_TASKS_DIR", project_root() / "tasks")


def encoders_dir(flag: str | os.PathLike | None = None) -> Path:
    """Folder of encoder specs (``--encoders-dir`` > ``EVALBENCH_ENCODERS_DIR`` > ``<project>/encoders``)."""
    return _pick(flag, "EVALBENCH_ENCODERS_DIR", project_root() / "encoders")


def results_dir(flag: str | os.PathLike | None = None) -> Path:
    """Folder of run records and leaderboards (``--results-dir`` > ``EVALBENCH_RESULTS`` > ``<project>/results``)."""
    return _pick(flag, "EVALBENCH_RESULTS", project_root() / "results")
