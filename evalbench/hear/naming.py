"""Which encoder spec a HEAR ``model_file_path`` (and ``encoder=``) names: :func:`resolve_spec`.

**Naming an encoder through the one path argument** (:func:`resolve_spec`):

- ``model_file_path`` an encoder YAML: that spec, its checkpoint resolved
  against the YAML's folder (a ``pretrained`` family spec whose weights are
  missing resolves to the newest encoder ``evalbench pretrain`` registered
  for it, as ``run`` does);
- a folder: the output folder of ``evalbench pretrain``
  (``<encoders>/checkpoints/pretrain/<name>/``); its ``encoder.pt`` is
  scored under the YAML that ``pretrain`` registered for it, found beside the
  folder (``<encoders>/<name>.yaml``) or in the encoder spec folders;
- another file: a checkpoint, scored under the YAML that registers it (e.g.
  ``.../byola-smoke/init.pt`` → ``byola-smoke-init``) or, with
  ``encoder=NAME``, under that spec with its weights swapped (what
  ``evalbench run --encoder NAME --checkpoint PATH`` does);
- ``""`` (HEAR's default): the spec named by ``encoder=`` or, failing that,
  by ``$EVALBENCH_HEAR_ENCODER`` (for harnesses that call ``load_model()``
  bare), with its own checkpoint (none: the seeded random twin).

Names are looked up in :func:`evalbench.paths` spec folders, plus
``encoders_dir=`` when given.  Specs that wrap a HEAR module (``hear:`` names,
adapter ``hear``) are refused: import that module directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from evalbench.errors import EvalbenchError

ENV_ENCODER = "EVALBENCH_HEAR_ENCODER"
WEIGHTS, STATE = "encoder.pt", "state.pt"  # names in an `evalbench pretrain` output folder
YAML_SUFFIXES = (".yaml", ".yml")


def _encoder_dirs(extra: str | os.PathLike | None) -> list[Path]:
    """The encoder spec folders, lowest priority first (``extra`` last)."""
    from evalbench import paths

    return paths.encoder_dirs(extra)


def _load_named(name: str, encoders_dir: str | os.PathLike | None) -> Any:
    """The spec called ``name`` in the spec folders (:func:`~evalbench.specs.encoder.load_encoder`, as ``run``)."""
    from evalbench.specs.encoder import load_encoder

    return load_encoder(name, _encoder_dirs(encoders_dir))


def _load_yaml(path: Path) -> Any:
    """The spec in the YAML file ``path``; a missing ``pretrained`` checkpoint resolves as ``load_encoder`` does."""
    from evalbench.specs.encoder import newest_if_missing, parse_encoder_file

    return newest_if_missing(parse_encoder_file(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def registered_specs(checkpoint: Path, encoders_dir: str | os.PathLike | None = None) -> list[Any]:
    """The encoder YAMLs whose checkpoint is the file ``checkpoint``.

    Looked for in the folders above it (``evalbench pretrain`` writes
    ``<encoders>/checkpoints/pretrain/<name>/encoder.pt`` and registers
    ``<encoders>/<name>.yaml``), then in the encoder spec folders.  Files that
    do not parse are skipped.
    """
    from evalbench.specs.encoder import encoder_files, parse_encoder_file

    given = Path(checkpoint).expanduser().absolute()
    checkpoint = given.resolve()
    folders = [*given.parents[:4], *checkpoint.parents[:4], *_encoder_dirs(encoders_dir)]
    found: dict[tuple[str, str], Any] = {}  # one per (name, content): a copy of a spec is the same spec
    seen: list[Path] = []
    for folder in folders:
        if not folder.is_dir() or any(_same_file(folder, s) for s in seen):
            continue
        seen.append(folder)
        for path in encoder_files(folder):
            try:
                spec = parse_encoder_file(path)
            except Exception:  # any YAML that is not a valid encoder spec is not the one sought
                continue
            weights = spec.checkpoint_path()
            if weights is not None and _same_file(weights, checkpoint):
                found.setdefault((spec.name, spec.sha256), spec)
    return list(found.values())


def _registered(checkpoint: Path, what: str, encoders_dir: str | os.PathLike | None) -> Any:
    specs = registered_specs(checkpoint, encoders_dir)
    if len(specs) == 1:
        return specs[0]
    if not specs:
        raise EvalbenchError(
            f"load_model: {what}: no encoder YAML registers {checkpoint} (looked beside it and in the encoder spec "
            f"folders: {', '.join(map(str, _encoder_dirs(encoders_dir)))}); pass the YAML's path instead, name "
            "the family (load_model(path, encoder='byola'); hear-eval-kit: --model-options "
            "'{\"encoder\": \"byola\"}'), or give encoders_dir='FOLDER'"
        )
    names = ", ".join(f"{s.name} ({s.source_path})" for s in specs)
    raise EvalbenchError(f"load_model: {what}: several encoder YAMLs use {checkpoint}: {names}; pass one YAML's path")


def resolve_spec(
    model_file_path: str | os.PathLike = "", encoder: str | None = None, encoders_dir: str | os.PathLike | None = None
) -> Any:
    """The :class:`~evalbench.specs.encoder.EncoderSpec` that ``load_model(model_file_path, encoder=...)`` scores.

    See the module docstring for the rules.

    Raises:
        EvalbenchError: Nothing names an encoder, the path does not exist, a
            checkpoint is registered by no YAML (or by several) and no
            ``encoder`` is given, a YAML path is given with ``encoder``, or
            the spec wraps a HEAR module.
        UnknownNameError: No spec of that name.
    """
    from evalbench.specs.encoder import with_checkpoint

    text = str(model_file_path or "").strip()
    if not text:
        name = encoder or os.environ.get(ENV_ENCODER, "").strip()
        if not name:
            raise EvalbenchError(
                "load_model: no encoder named; give model_file_path (an encoder YAML, a checkpoint, or an "
                f"`evalbench pretrain` output folder), encoder='NAME', or set ${ENV_ENCODER}"
            )
        spec = _load_named(name, encoders_dir)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise EvalbenchError(f"load_model: {path}: no such file or folder")
        if path.is_file() and path.suffix.lower() in YAML_SUFFIXES:
            if encoder:
                raise EvalbenchError(
                    f"load_model: {path} is an encoder spec and encoder='{encoder}' names another; give one of them"
                )
            spec = _load_yaml(path)
        elif path.is_dir():
            weights = path / WEIGHTS
            if not weights.is_file():
                unfinished = " (it has a state.pt: the run has not finished)" if (path / STATE).is_file() else ""
                raise EvalbenchError(
                    f"load_model: {path} is a folder without {WEIGHTS}{unfinished}; give an `evalbench pretrain` "
                    "output folder, an encoder YAML or a checkpoint file"
                )
            if encoder:
                spec = with_checkpoint(_load_named(encoder, encoders_dir), str(weights))
            else:
                spec = _registered(weights, f"{path} (an `evalbench pretrain` folder)", encoders_dir)
        elif encoder:
            spec = with_checkpoint(_load_named(encoder, encoders_dir), str(path))
        else:
            spec = _registered(path, f"{path} (a checkpoint)", encoders_dir)
    if spec.adapter == "hear":
        raise EvalbenchError(
            f"load_model: encoder '{spec.name}' wraps the HEAR module '{spec.options.get('module')}'; "
            "import that module directly"
        )
    return spec
