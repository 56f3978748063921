"""What evalbench tells the person at the terminal, and how much.

One verbosity for the whole process, set once by the command line (``--quiet`` /
``--verbose`` on every command) or by a library caller:

- ``quiet``: errors only.  No progress bars, no status lines; a command whose
  job is to print something (``tasks list``, ``encoders show``, ``bench``)
  still prints it.
- ``normal`` (the default): status lines on stdout, warnings on stderr, and
  progress bars on stderr *only when stderr is a terminal*, so CI logs and
  redirected output stay readable (tqdm's ``disable=None``).
- ``verbose``: also evalbench's debug log on stderr (which cache entries,
  record checks, fitted statistics), timestamped.

Every long step goes through :func:`progress`, every status line through
:func:`say`, so the rule lives here and nowhere else.  Importing this module
imports neither tqdm nor anything heavy (the up-to-date path of ``run`` must
stay free of torch, numpy and pandas).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, Literal

Level = Literal["quiet", "normal", "verbose"]
_LEVEL: Level = "normal"
_HANDLER: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a message is written (test captures swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(level: Level) -> None:
    """Set the process-wide verbosity and route evalbench's log to stderr accordingly."""
    global _LEVEL, _HANDLER
    if level not in ("quiet", "normal", "verbose"):
        raise ValueError(f"verbosity must be quiet, normal or verbose, got {level!r}")
    _LEVEL = level
    logger = logging.getLogger("evalbench")
    if _HANDLER is None:
        _HANDLER = _StderrHandler()
        logger.addHandler(_HANDLER)
    fmt = "%(asctime)s %(name)s: %(message)s" if level == "verbose" else "evalbench: %(message)s"
    _HANDLER.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    logger.setLevel({"quiet": logging.ERROR, "normal": logging.WARNING, "verbose": logging.DEBUG}[level])


def level() -> Level:
    """The current verbosity."""
    return _LEVEL


def say(message: str = "") -> None:
    """A status line on stdout, unless quiet."""
    if _LEVEL != "quiet":
        print(message, flush=True)


def detail(message: str) -> None:
    """A line on stderr only under ``--verbose``."""
    if _LEVEL == "verbose":
        print(message, file=sys.stderr, flush=True)


def progress(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr that respects the verbosity.

    Quiet: never shown.  Otherwise shown only when stderr is a terminal
    (tqdm's ``disable=None``), unless the caller disables it explicitly.
    Accepts tqdm's keyword arguments; usable as an iterator or a context manager.
    """
    from tqdm import tqdm

    if _LEVEL == "quiet":
        kwargs["disable"] = True
    else:
        kwargs.setdefault("disable", None)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, **kwargs)
