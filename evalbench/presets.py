"""Protocol presets: named, versioned probe protocols that every run record carries and the leaderboard groups by.

A preset fixes everything downstream of the cached embeddings that can move a
score: the probe's algorithm and hyperparameters and the default seeds.  Its
protocol id, ``<preset>-<probe>-v<version>``, names the table a record belongs
to.  A run with any probe option off the preset's values gets the id
``<preset>-<probe>-v<version>+<hash>`` (the SHA-256 of the differing options), a
distinct table and a distinct record file, so an exploratory setting never sits
in the standard table unannounced.  The version rises whenever a preset's
values or the code that applies them change meaning.

- ``evalbench`` (v2): the linear head solved to convergence (L-BFGS, L2
  strength chosen on validation, :mod:`evalbench.probes.lbfgs`), train-only
  standardisation, seeds 42–46.  v1 was the reference harness's Adam budget
  with a learning-rate grid, which under-trained low-dimensional probes
  (issue 10).

Seeds are not part of the id: records store them and the leaderboard prints how
many each cell averages.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError
from evalbench.registry import PROBES
from evalbench.utils.hashing import sha256_json

FIXED = ("random_state", "device", "label_type", "metric", "n_classes")  # set per run by the protocol, not options


@dataclass(frozen=True)
class ProtocolPreset:
    """One named protocol.

    Attributes:
        name: Preset name (``--protocol``).
        version: Bumped whenever the preset's values or their meaning change.
        probe_options: Per probe name, the options that differ from the probe class's defaults.
        seeds: Default probe seeds.
        description: One line for ``--help`` and the leaderboard.
    """

    name: str
    version: int
    probe_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (42, 43, 44, 45, 46)
    description: str = ""


PRESETS: dict[str, ProtocolPreset] = {
    "evalbench": ProtocolPreset(
        name="evalbench",
        version=2,
        probe_options={"linear": {"solver": "lbfgs"}},
        seeds=(42, 43, 44, 45, 46),
        description="linear head solved to convergence (L-BFGS), L2 strength chosen on validation; seeds 42-46",
    ),
}
DEFAULT_PRESET = "evalbench"


def get_preset(name: str) -> ProtocolPreset:
    """The preset called ``name``; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise EvalbenchError(f"--protocol {name}: unknown protocol preset; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def _plain(value: Any) -> Any:
    """JSON-comparable form of an option value (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def class_defaults(probe: str) -> dict[str, Any]:
    """The probe class's own defaults, without the per-run arguments."""
    params = inspect.signature(PROBES.get(probe).__init__).parameters
    empty = inspect.Parameter.empty
    return {k: _plain(p.default) for k, p in params.items() if p.default is not empty and k not in FIXED}


def probe_config(preset: ProtocolPreset, probe: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The probe's full configuration: class defaults, then the preset's values, then the run's overrides."""
    config = {**class_defaults(probe), **{k: _plain(v) for k, v in preset.probe_options.get(probe, {}).items()}}
    unknown = sorted(set(overrides or {}) - set(config))
    if unknown:
        raise EvalbenchError(f"probe '{probe}': unknown option(s) {', '.join(unknown)}; known: {', '.join(config)}")
    return {**config, **{k: _plain(v) for k, v in (overrides or {}).items()}}


def identity(preset: ProtocolPreset, probe: str, config: dict[str, Any]) -> dict[str, Any]:
    """Protocol id, preset, version and the options off the preset (module docstring)."""
    standard = probe_config(preset, probe)
    deviations = {k: v for k, v in sorted(config.items()) if standard.get(k) != v}
    base = f"{preset.name}-{probe}-v{preset.version}"
    suffix = f"+{sha256_json(deviations)[:8]}" if deviations else ""
    return {"protocol": base + suffix, "preset": preset.name, "version": preset.version, "deviations": deviations}


def record_name(task: str, probe: str, ident: dict[str, Any]) -> str:
    """Record file name: ``<task>.<probe>.json`` for the default preset as published, else with the preset/hash."""
    tag = ident["protocol"].removeprefix(f"{ident['preset']}-{probe}-v{ident['version']}")
    if ident["preset"] == DEFAULT_PRESET and not tag:
        return f"{task}.{probe}.json"
    return f"{task}.{probe}.{ident['preset']}{tag}.json"


def record_file(results_dir: Path, encoder: str, task: str, probe: str, ident: dict[str, Any]) -> Path:
    """Where the record of (encoder, task, probe, protocol) lives."""
    return Path(results_dir) / encoder / record_name(task, probe, ident)


__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ProtocolPreset",
    "class_defaults",
    "get_preset",
    "identity",
    "probe_config",
    "record_file",
    "record_name",
]
