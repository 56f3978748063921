"""Name → implementation registries: lazy, duplicate-checked, with suggestions.

A :class:`Registry` maps a public name (used in YAML and on the command line)
to a ``"module:attribute"`` string.  Nothing is imported until :meth:`Registry.get`
is called, so listing and validating specs never imports torch.  Adding an
adapter, dataset builder, metric or probe is one new function or class plus one
``register`` line here.

Encoder adapters need not be registered: an encoder YAML may name a class in
the user's own file or module instead (``adapter: ./my_adapter.py:MyEncoder``,
:mod:`evalbench.adapters.external`), which works from an installed package.
Registered names never contain a colon, which is how the two are told apart.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from evalbench.errors import UnknownNameError


def suggestion(name: str, known: list[str], fallback: str = "") -> str:
    """``did you mean 'x'?`` for the closest known name, else ``fallback`` (default: the known names)."""
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return fallback or f"known: {', '.join(known)}"


class Registry:
    """A lazy mapping from names to ``module:attr`` targets.

    Args:
        kind: Human-readable kind of thing registered, used in error messages
            (e.g. ``"encoder adapter"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str) -> None:
        """Register ``name`` → ``"package.module:attr"``; duplicates are a bug and raise."""
        if name in self._targets:
            raise ValueError(f"duplicate {self.kind} name '{name}'")
        if ":" in name:
            raise ValueError(f"{self.kind} name '{name}' must not contain ':' (it marks 'file.py:Class')")
        if ":" not in target:
            raise ValueError(f"{self.kind} target must be 'module:attr', got '{target}'")
        self._targets[name] = target

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def unknown(self, name: str) -> str:
        """The message for an unknown ``name``: ``unknown <kind> '<name>'; did you mean ...``."""
        return f"unknown {self.kind} '{name}'; {suggestion(name, self.names())}"

    def check(self, name: str, context: str = "") -> None:
        """Raise :class:`UnknownNameError` with a close-match suggestion if ``name`` is unknown."""
        if name not in self._targets:
            raise UnknownNameError(f"{context}: {self.unknown(name)}" if context else self.unknown(name))

    def get(self, name: str) -> Any:
        """Import and return the object registered under ``name``."""
        self.check(name)
        if name not in self._loaded:
            module, _, attr = self._targets[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]


ADAPTERS = Registry("encoder adapter")
# Option dataclasses of each adapter, in torch-free modules so `validate` stays light.
ADAPTER_OPTIONS = Registry("encoder adapter")
for _name, _cls, _module, _options in (
    ("logmel", "LogMelStatsEncoder", "logmel", "evalbench.adapters.options:LogMelOptions"),
    ("randproj", "RandomProjectionEncoder", "randproj", "evalbench.adapters.options:RandomProjectionOptions"),
    ("byola", "ByolaEncoder", "byola", "evalbench.adapters.options.byola:ByolaOptions"),
    ("msn", "MSNEncoder", "msn", "evalbench.adapters.options.msn:MSNOptions"),
    ("clar", "ClarEncoder", "clar", "evalbench.adapters.options.clar:ClarOptions"),
    ("clmr", "ClmrEncoder", "clmr", "evalbench.adapters.options.clmr:ClmrOptions"),
    ("supervised", "SupervisedEncoder", "supervised", "evalbench.adapters.options.supervised:SupervisedOptions"),
    ("hear", "HearEncoder", "hear", "evalbench.adapters.options.hear:HearOptions"),
):
    ADAPTERS.register(_name, f"evalbench.adapters.{_module}:{_cls}")
    ADAPTER_OPTIONS.register(_name, _options)

BUILDERS = Registry("dataset builder")
BUILDERS.register("synthetic", "evalbench.data.synthetic:SyntheticBuilder")
BUILDERS.register("manifest", "evalbench.data.manifest:ManifestBuilder")
for _name, _target in (
    ("esc50", "esc50:ESC50Builder"),  # ESC-50 and its ESC-10 subset
    ("us8k", "us8k:UrbanSound8KBuilder"),
    ("speech_commands", "speech_commands:SpeechCommandsBuilder"),  # v0.01 and v0.02
    ("voxceleb1", "voxceleb:VoxCeleb1Builder"),
    ("voxforge", "voxforge:VoxForgeBuilder"),
    ("cremad", "cremad:CremaDBuilder"),
    ("gtzan", "gtzan:GTZANBuilder"),
    ("nsynth", "nsynth:NSynthBuilder"),
    ("surge", "surge:SurgeBuilder"),
    ("fsd50k", "fsd50k:FSD50KBuilder"),
    ("mtt", "mtt:MagnaTagATuneBuilder"),
    ("fsdd", "fsdd:FSDDBuilder"),
):
    BUILDERS.register(_name, f"evalbench.data.datasets.{_target}")

POOLINGS = Registry("pooling")
for _name in ("mean", "max", "mean_max", "mean_std"):
    POOLINGS.register(_name, f"evalbench.adapters.pooling:pool_{_name}")

METRICS = Registry("metric")
for _name in ("accuracy", "roc_auc", "map", "mae", "rmse", "r2", "spearman"):
    METRICS.register(_name, f"evalbench.metrics:{_name}")

PROBES = Registry("probe")
PROBES.register("linear", "evalbench.probes.linear:LinearProbe")
PROBES.register("knn", "evalbench.probes.knn:KNNProbe")
PROBES.register("mlp", "evalbench.probes.mlp:MLPProbe")
