"""Export a trained network as an encoder that ``evalbench run`` scores, and register it.

On finish, ``evalbench pretrain`` writes into the run folder:

- ``encoder.pt``: the network the adapter loads, as an evalbench checkpoint
  (family, the adapter options that shape its input, provenance) with plain
  keys (no ``module.``, ``_orig_mod.`` or method prefixes);
- ``trained_on.txt``: the SHA-256 of every training clip, one per line, which
  ``run``'s contamination guard compares with each task's test clips;
- with ``--export-format safetensors``, also ``encoder.safetensors`` (and
  ``init.safetensors`` from ``init.pt``): the same tensors and metadata in a
  format read without any pickle and by other tools.  The YAMLs then register
  the safetensors files, so what ``run`` verifies (SHA-256) and loads is the
  pickle-free file.  The ``.pt`` files stay: the HEAR export
  (``evalbench.hear``) and earlier tools look for ``encoder.pt`` in the folder,
  and the format is a choice of what is registered, not of what can be read
  (:func:`~evalbench.adapters.checkpoints.read_checkpoint` reads both);

and ``<encoders dir>/<name>.yaml``: adapter, options, pooling, checkpoint path
and SHA-256, and the provenance (method, preset, resolved recipe, data
description and fingerprint, steps, final loss, git commit, date).

The random twin of a pretrained encoder is the same network at step 0: a fresh
run saves ``init.pt`` (the exported network after initialisation and any fitted
statistics, before the first optimiser step) and, on finish, registers it as
``<name>-init``, with the trained encoder's options.  Only training separates
the two, so "pretraining helps" is measured against exactly its starting point
(the adapters' ``*-random`` twins differ from some methods' initialisations:
CLMR and the supervised baselines initialise as their papers do, not with He).
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

import yaml

from evalbench.adapters.checkpoints import read_checkpoint, save_checkpoint
from evalbench.pretrain.base import PretrainMethod
from evalbench.specs.recipe import Recipe
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import PRETRAIN_ADVICE, atomic_write_text
from evalbench.utils.provenance import git_state

WEIGHTS, TRAINED_ON, INIT = "encoder.pt", "trained_on.txt", "init.pt"
SAFE_WEIGHTS, SAFE_INIT = "encoder.safetensors", "init.safetensors"
EXPORT_FORMATS = ("pt", "safetensors")  # what the encoder YAMLs register
TWIN_SUFFIX = "-init"


def plain_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Strip wrapper prefixes (``module.`` from DDP, ``_orig_mod.`` from ``torch.compile``) from every key."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive (Windows)
        return str(path.resolve())


def export_initial(method: PretrainMethod, recipe: Recipe, data: dict[str, Any], out_dir: Path) -> Path:
    """Save the network as initialised (step 0) to ``<out_dir>/init.pt``: the trained encoder's random twin."""
    meta = {"method": method.NAME, "preset": recipe.preset, "steps": 0, "data": data["fingerprint"]}
    path = Path(out_dir) / INIT
    save_checkpoint(
        path, _Plain(method.encoder_network()), method.FAMILY, method.encoder_options(), meta, PRETRAIN_ADVICE
    )
    return path


def export_encoder(
    method: PretrainMethod,
    recipe: Recipe,
    data: dict[str, Any],
    content_hashes: list[str],
    out_dir: Path,
    name: str,
    encoders_dir: Path,
    steps: int,
    final_loss: float,
    command: str,
    extra: dict[str, Any] | None = None,
    export_format: str = "pt",
) -> Path:
    """Write the weights, the training-clip fingerprint and ``<encoders_dir>/<name>.yaml``; returns the YAML path.

    ``export_format`` (:data:`EXPORT_FORMATS`): ``safetensors`` also writes
    ``encoder.safetensors`` and ``init.safetensors`` and registers those; ``pt``
    removes any left by an earlier export, whose weights may be of another step.
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"export format '{export_format}' is not one of {', '.join(EXPORT_FORMATS)}")
    out_dir, encoders_dir = Path(out_dir), Path(encoders_dir)
    network = method.encoder_network()
    options = method.encoder_options()
    meta = {"method": method.NAME, "preset": recipe.preset, "steps": steps, "data": data["fingerprint"]}
    weights = out_dir / WEIGHTS
    save_checkpoint(weights, _Plain(network), method.FAMILY, options, meta, PRETRAIN_ADVICE)
    if export_format == "safetensors":
        weights = out_dir / SAFE_WEIGHTS
        save_checkpoint(weights, _Plain(network), method.FAMILY, options, meta, PRETRAIN_ADVICE)
    else:
        for stale in (SAFE_WEIGHTS, SAFE_INIT):
            (out_dir / stale).unlink(missing_ok=True)
    atomic_write_text(out_dir / TRAINED_ON, "\n".join(sorted(set(content_hashes))) + "\n", PRETRAIN_ADVICE)
    spec = {
        "name": name,
        "adapter": method.FAMILY,
        "description": (
            f"{method.NAME} pretrained by evalbench ({recipe.preset} preset, {steps} steps on {data['description']})"
        ),
        "pooling": method.POOLING,
        "options": options,
        "checkpoint": {"path": _relative(weights, encoders_dir), "sha256": sha256_file(weights), "source": command},
        "citation": method.CITATION,
        "pretrain": {
            "method": method.NAME,
            "preset": recipe.preset,
            "recipe": recipe.resolved,
            "recipe_sha256": recipe.sha256,
            "data": data,
            "steps": steps,
            "final_loss": round(float(final_loss), 6),
            "git_commit": git_state().get("commit"),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "trained_on": _relative(out_dir / TRAINED_ON, encoders_dir),
            **{k: v for k, v in (extra or {}).items() if k == "classifier"},
        },
    }
    path = encoders_dir / f"{name}.yaml"
    header = f"# Written by `{command}`; running it again (it resumes, or --restart) rewrites this file.\n"
    atomic_write_text(
        path, header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110), PRETRAIN_ADVICE
    )
    if (out_dir / INIT).is_file():
        init = out_dir / INIT if export_format == "pt" else _as_safetensors(out_dir / INIT, out_dir / SAFE_INIT)
        _register_twin(spec, init, encoders_dir, header)
    return path


def _as_safetensors(source: Path, dest: Path) -> Path:
    """Rewrite the evalbench checkpoint ``source`` (``init.pt``) as ``dest`` in safetensors: same tensors and meta.

    Converted at export rather than saved at step 0, so that a run started
    without ``--export-format safetensors`` and finished with it still gets both.
    """
    state, meta = read_checkpoint(source)
    save_checkpoint(dest, _Fixed(state), meta["family"], meta["options"], meta["meta"], PRETRAIN_ADVICE)
    return dest


def _register_twin(spec: dict[str, Any], weights: Path, encoders_dir: Path, header: str) -> Path:
    """Write ``<name>-init.yaml``: the trained encoder's spec pointing at its step-0 weights."""
    name = spec["name"]
    twin = {
        **spec,
        "name": name + TWIN_SUFFIX,
        "description": f"{name} at step 0 (its initialisation, before any training): the random twin it must beat",
        "checkpoint": {**spec["checkpoint"], "path": _relative(weights, encoders_dir), "sha256": sha256_file(weights)},
        "pretrain": {**spec["pretrain"], "steps": 0, "final_loss": None, "twin_of": name},
    }
    twin["pretrain"].pop("classifier", None)
    path = encoders_dir / f"{name}{TWIN_SUFFIX}.yaml"
    atomic_write_text(
        path, header + yaml.safe_dump(twin, sort_keys=False, allow_unicode=True, width=110), PRETRAIN_ADVICE
    )
    return path


class _Fixed:
    """Adapter giving :func:`save_checkpoint` a state dict already read from a file."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, Any]:
        return self.state


class _Plain:
    """Adapter giving :func:`save_checkpoint` a module whose state dict has plain keys."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def state_dict(self) -> dict[str, Any]:
        return plain_keys(self.module.state_dict())


__all__ = [
    "EXPORT_FORMATS",
    "INIT",
    "SAFE_INIT",
    "SAFE_WEIGHTS",
    "TRAINED_ON",
    "TWIN_SUFFIX",
    "WEIGHTS",
    "export_encoder",
    "export_initial",
    "plain_keys",
]
