"""Protocol presets: named, versioned probe protocols that every run record carries and the leaderboard groups by.

A preset fixes everything downstream of the encoder that can move a score:
how clips become embeddings beyond the task and encoder specs (crop by role,
padding in pooling), how the validation rows are drawn, the probe's algorithm
and hyperparameters, and the default seeds.  Its protocol id,
``<preset>-<probe>-v<version>``, names the table a record belongs to.  A run
with any probe option off the preset's values gets the id
``<preset>-<probe>-v<version>+<hash>`` (the SHA-256 of the differing options), a
distinct table and a distinct record file, so an exploratory setting never sits
in the standard table unannounced.  The version rises whenever a preset's
values or the code that applies them change meaning.

- ``evalbench`` (v3): the linear head solved to convergence (Newton-CG to a
  gradient of 1e-4 · l2, L2 strength chosen on validation,
  :mod:`evalbench.probes.newton`), train-only standardisation, the task's crop
  policy and validation rule, padding masked out of pooling, seeds 42–46.  v1
  was the reference harness's Adam budget with a learning-rate grid, which
  under-trained low-dimensional probes; v2 was L-BFGS to an absolute gradient
  of 1e-4, which under-solved the weak end of the strength path (issue 10).
  Its ``mlp`` probe searches 8 Optuna trials (TPE, median pruning) per
  rotation on that rotation's validation rows, and its ``knn`` probe chooses k
  on validation; both on standardised embeddings.
- ``hear`` (v1): HEAR's MLP protocol (docs/protocol.md §3; Turian et al., HEAR,
  PMLR 176, 2022): its default grid (8 of 16 points, no linear point), batch
  1024, ≤ 500 epochs checked every 3 with patience 20, embeddings as the
  encoder returns them (no standardisation), validation on the next fold,
  the grid searched on each seed's first fold and its winner retrained on
  the others, seed 42.
- ``evar`` (v1): the reference harness's linear evaluation as docs/protocol.md §2
  describes it, *without* evalbench's fixes, so that the same weights on the
  same data give the reference's number and published EVAR-protocol numbers
  can sit beside ours: Adam at a fixed learning rate (3e-4, or the published
  per-encoder / per-task value, :data:`EVAR_LR`), the loss −mean(one-hot ·
  log-softmax) (cross-entropy ÷ C), weight decay 1e-8, batch min(200, n),
  ≤ 200 epochs, patience 20 with ties counting as improvement; on k-fold
  tasks a random, ungrouped 10 % of the training folds validates, redrawn
  (up to 100 times) until every class is present; clips longer than the unit
  are cropped at a random start (drawn once) for training and validation and
  from the start for test; every output frame is pooled, padding included;
  seeds 42, 43, 44.  Input statistics (≤ 5,000 training clips) and train-only
  standardisation are shared with ``evalbench``.

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


ROLES = ("train", "valid", "test")


@dataclass(frozen=True)
class EmbeddingRecipe:
    """How a preset turns clips into embeddings, beyond what the task and encoder specs fix.

    Attributes:
        crop: Crop policy per role (``train``, ``valid``, ``test``) for clips
            longer than the unit; None: the task's ``audio.crop`` for every role.
        mask_padding: Leave padded frames out of pooling (evalbench's fix of
            docs/protocol.md §4, flaw 6); False pools every output frame, as the
            reference harness does.
    """

    crop: tuple[tuple[str, str], ...] | None = None
    mask_padding: bool = True

    def policy(self, role: str, task_policy: str) -> str:
        """Crop policy of ``role`` (``train``, ``valid`` or ``test``) given the task's own."""
        return task_policy if self.crop is None else dict(self.crop)[role]

    def as_record(self) -> dict[str, Any]:
        """Plain form for the run record and the cache key."""
        return {"crop": None if self.crop is None else dict(self.crop), "mask_padding": self.mask_padding}

    @property
    def is_default(self) -> bool:
        """True for the task's crop and masked pooling (no entry in cache keys, so caches stay valid)."""
        return self.crop is None and self.mask_padding


@dataclass(frozen=True)
class Override:
    """Probe options a preset sets for some encoders (and optionally only some tasks).

    Attributes:
        encoders: Encoder names it applies to.
        tasks: Task names it applies to; None: every task.
        options: Probe options (the preset's ``probe_options`` for this probe, then these).
    """

    encoders: tuple[str, ...]
    tasks: tuple[str, ...] | None
    options: dict[str, Any]

    def applies(self, encoder: str | None, task: str | None) -> bool:
        """True for ``encoder`` × ``task``."""
        return encoder in self.encoders and (self.tasks is None or task in self.tasks)


@dataclass(frozen=True)
class ProtocolPreset:
    """One named protocol.

    Attributes:
        name: Preset name (``--protocol``).
        version: Bumped whenever the preset's values or their meaning change.
        probe_options: Per probe name, the options that differ from the probe class's defaults.
        seeds: Default probe seeds.
        description: One line for ``--help`` and the leaderboard.
        embedding: Crop by role and pooling (:class:`EmbeddingRecipe`).
        validation: k-fold validation draw: None for the task's own rule, ``random`` for the reference
            harness's (:func:`evalbench.data.splits.random_holdout`).
        overrides: Per probe name, per-encoder / per-task probe options (published learning rates).
        standardize: z-score embeddings with training statistics (False: as the encoder returns them).
        search_rule: For searching probes: ``per_rotation`` (every rotation searches on its own validation
            rows) or ``first_rotation`` (search on the first, retrain that configuration on the others).
    """

    name: str
    version: int
    probe_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (42, 43, 44, 45, 46)
    description: str = ""
    embedding: EmbeddingRecipe = EmbeddingRecipe()
    validation: str | None = None
    overrides: dict[str, tuple[Override, ...]] = field(default_factory=dict)
    standardize: bool = True
    search_rule: str = "per_rotation"

    def as_record(self) -> dict[str, Any]:
        """The data-side settings of the preset, for the run record."""
        return {
            "embedding": self.embedding.as_record(),
            "validation": self.validation or "the task's rule",
            "standardize": "train-only z-score" if self.standardize else "none",
            "search_rule": self.search_rule,
        }


# The reference harness's learning rates (docs/protocol.md §2.2): 3e-4 by default, 3e-5 for M2D, M2D-CLAP and
# ATST-Frame, and the per-task values published with BYOL-A v2 (our encoder `byola`).
EVAR_LR = 3e-4
EVAR_OVERRIDES = (
    Override(("m2d", "m2d-clap", "atst-frame"), None, {"lrs": (3e-5,)}),
    Override(("byola",), ("esc50", "nsynth", "gtzan"), {"lrs": (1e-3,)}),
    Override(("byola",), ("us8k", "spcv2", "surge"), {"lrs": (3e-5,)}),
    Override(("byola",), ("vc1",), {"lrs": (4e-5,)}),
    Override(("byola",), ("voxforge",), {"lrs": (1e-4,)}),
)


PRESETS: dict[str, ProtocolPreset] = {
    "evalbench": ProtocolPreset(
        name="evalbench",
        version=3,
        probe_options={"linear": {"solver": "newton"}, "mlp": {"search": "optuna", "trials": 8}, "knn": {}},
        seeds=(42, 43, 44, 45, 46),
        description="linear head solved to convergence (Newton-CG), L2 strength chosen on validation; seeds 42-46",
    ),
    "evar": ProtocolPreset(
        name="evar",
        version=1,
        probe_options={"linear": {"solver": "adam", "lrs": (EVAR_LR,), "loss_scale": "per_class"}},
        seeds=(42, 43, 44),
        description="the reference harness's linear evaluation without evalbench's fixes (docs/protocol.md §2)",
        embedding=EmbeddingRecipe(
            crop=(("train", "random"), ("valid", "random"), ("test", "start")), mask_padding=False
        ),
        validation="random",
        overrides={"linear": EVAR_OVERRIDES},
    ),
    "hear": ProtocolPreset(
        name="hear",
        version=1,
        probe_options={
            "mlp": {
                "search": "grid",
                "add_linear_point": False,
                "batch_size": 1024,
                "max_epochs": 500,
                "check_every": 3,
                "patience": 20,
            },
        },
        seeds=(42,),
        description="HEAR's MLP protocol (docs/protocol.md §3): its grid, no standardisation, next-fold validation",
        validation="next_fold",
        standardize=False,
        search_rule="first_rotation",
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


def probe_config(
    preset: ProtocolPreset,
    probe: str,
    overrides: dict[str, Any] | None = None,
    encoder: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """The probe's full configuration for ``encoder`` × ``task``.

    Class defaults, then the preset's values, then the preset's per-encoder / per-task values, then the run's
    overrides.
    """
    if probe not in preset.probe_options:
        raise EvalbenchError(
            f"--protocol {preset.name} defines no '{probe}' probe; its probes: {', '.join(preset.probe_options)}"
        )
    config = {**class_defaults(probe), **{k: _plain(v) for k, v in preset.probe_options[probe].items()}}
    for rule in preset.overrides.get(probe, ()):
        if rule.applies(encoder, task):
            config.update({k: _plain(v) for k, v in rule.options.items()})
    unknown = sorted(set(overrides or {}) - set(config))
    if unknown:
        raise EvalbenchError(f"probe '{probe}': unknown option(s) {', '.join(unknown)}; known: {', '.join(config)}")
    return {**config, **{k: _plain(v) for k, v in (overrides or {}).items()}}


def identity(
    preset: ProtocolPreset, probe: str, config: dict[str, Any], encoder: str | None = None, task: str | None = None
) -> dict[str, Any]:
    """Protocol id, preset, version and the options off the preset for ``encoder`` × ``task`` (module docstring)."""
    standard = probe_config(preset, probe, encoder=encoder, task=task)
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
    "EVAR_LR",
    "PRESETS",
    "EmbeddingRecipe",
    "Override",
    "ProtocolPreset",
    "class_defaults",
    "get_preset",
    "identity",
    "probe_config",
    "record_file",
    "record_name",
]
