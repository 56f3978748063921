"""Options of the ``hear`` adapter and the ``hear:<module>[:<weights>]`` encoder names (torch-free).

Any installed module that follows the HEAR API (docs/protocol.md §5) can be scored
without writing YAML::

    evalbench run --encoder hear:hearbaseline --tasks synth
    evalbench run --encoder hear:my_module:/path/to/weights.pt --tasks esc50

The name becomes an in-memory encoder spec (adapter ``hear``, mean pooling)
whose results folder is ``hear-<module>`` (``hear-<module>@<weights stem>``
with weights).  The same options may also be written in an encoder YAML, with
the weights under ``checkpoint:`` so that their SHA-256 is verified and recorded.

Cache identity: the module name, its version (``__version__``, else the version
of the installed distribution that provides it) and the weights file's SHA-256.
NOTE: editing the module's code without bumping its version is invisible to the
embedding cache and to the up-to-date check of run records; pass ``--overwrite``
and clear the cache (or bump the version) after such an edit.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from evalbench.errors import EvalbenchError, UnknownNameError

PREFIX = "hear:"
HEAR_SAMPLE_RATES = (16000, 22050, 32000, 44100, 48000)  # allowed by the HEAR 2021 rules
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class HearOptions:
    """Options of the ``hear`` adapter.

    Attributes:
        module: Importable module name following the HEAR API (e.g. ``hearbaseline``).
        weights: Weights file passed to ``load_model``; in YAML, give it as
            ``checkpoint: {path: ...}`` instead so its content hash is checked.
        embedding: ``timestamp`` (frames from ``get_timestamp_embeddings``,
            pooled by the spec's pooling over the clip's valid duration) or
            ``scene`` (one vector per clip from ``get_scene_embeddings``).
    """

    module: str
    weights: str = ""
    embedding: Literal["timestamp", "scene"] = "timestamp"

    def __post_init__(self) -> None:
        if not _MODULE.match(self.module):
            raise ValueError(f"module: '{self.module}' is not an importable module name (e.g. hearbaseline)")

    def identity(self) -> dict[str, Any]:
        """What of these options decides the embeddings, for cache keys and record staleness.

        The weights enter through the checkpoint's SHA-256, not their path; the
        module's version is looked up here (importing the module).
        """
        return {"module": self.module, "module_version": module_version(self.module), "embedding": self.embedding}


def is_hear_name(name: str) -> bool:
    """True for encoder names of the form ``hear:<module>[:<weights>]``."""
    return name.startswith(PREFIX)


def parse_hear_name(name: str) -> tuple[str, str]:
    """Split ``hear:<module>[:<weights path>]`` into ``(module, weights)`` (weights may be ``""``).

    Raises:
        UnknownNameError: The module part is empty or not a module name.
    """
    module, _, weights = name[len(PREFIX) :].partition(":")
    if not _MODULE.match(module):
        raise UnknownNameError(
            f"--encoder {name}: '{module}' is not a module name; write hear:<module>[:<weights path>], "
            "e.g. hear:hearbaseline"
        )
    return module, weights


def safe_stem(path: str | Path) -> str:
    """A weights file's stem made safe for folder names (other characters become ``_``)."""
    return _UNSAFE.sub("_", Path(path).stem).strip("_") or "weights"


def hear_encoder_name(module: str, weights: str | Path | None = None) -> str:
    """Results-folder name of a HEAR module: ``hear-<module>`` or ``hear-<module>@<weights stem>``."""
    name = f"hear-{module}"
    return f"{name}@{safe_stem(weights)}" if weights else name


def import_module(name: str) -> ModuleType:
    """Import a HEAR module by name, turning import failures into one-line errors.

    Raises:
        UnknownNameError: The module (or one of its dependencies) is not installed.
        EvalbenchError: The module's own code fails at import time.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise UnknownNameError(
                f"hear module '{name}' is not installed; pip install the package that provides it "
                f"(e.g. `pip install {name.partition('.')[0]}`)"
            ) from None
        raise UnknownNameError(
            f"hear module '{name}' needs module '{exc.name}', which is not installed; pip install it"
        ) from None
    except Exception as exc:  # any error raised by the module's own import-time code
        lines = str(exc).strip().splitlines()
        shown = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
        raise EvalbenchError(f"hear module '{name}' failed to import ({shown}); reinstall it with pip") from None


def module_version(module: str) -> str | None:
    """The module's ``__version__``, else its distribution's version, else None.

    Imports ``module`` (which usually imports torch); call it only when running.
    """
    mod = sys.modules.get(module) or import_module(module)
    version = getattr(mod, "__version__", None)
    if version is not None:
        return str(version)
    top = module.partition(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        try:
            return f"{dist} {importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None
