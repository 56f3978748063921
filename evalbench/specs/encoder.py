"""Encoder specs: one YAML per checkpoint in ``encoders/``.

An encoder spec names the adapter (code, registered in
:data:`evalbench.registry.ADAPTERS`, or a class in the user's own file or module,
``adapter: ./my_adapter.py:MyEncoder`` / ``some.module:MyEncoder``, see
:mod:`evalbench.adapters.external`), its options (validated by the adapter's
option dataclass), the pooling step that turns frame embeddings into one clip
vector, and optionally a checkpoint file.  Checkpoints are data: the file's
content hash, not its path, enters the cache key and the run record; so does an
external adapter's source file.

Two ways to name an encoder without writing YAML (see :func:`resolve_encoders`):

- ``hear:<module>[:<weights path>]`` builds an in-memory spec for any installed
  HEAR-API module (:mod:`evalbench.adapters.options.hear`);
- :func:`with_checkpoint` (``evalbench run --checkpoint PATH``) swaps a spec's
  weights file and derives a distinct name, ``<name>@<file stem>``, so the
  record of the official checkpoint is never overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench import paths
from evalbench.adapters.external import ExternalAdapter, check_reference, is_external, load_external
from evalbench.adapters.options.hear import (
    hear_encoder_name,
    is_hear_name,
    module_version,
    parse_hear_name,
    safe_stem,
)
from evalbench.errors import EvalbenchError, SpecError, UnknownNameError
from evalbench.registry import ADAPTER_OPTIONS, ADAPTERS, POOLINGS, suggestion
from evalbench.specs.catalog import Dirs, as_dirs, find_spec, spec_map
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.yaml_io import load_yaml, spec_hash
from evalbench.utils.hashing import sha256_file

_INTERNAL = {"internal": True}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointSpec:
    """A weights file.

    Attributes:
        path: File path; relative paths are resolved against the YAML's folder.
        sha256: Expected SHA-256 of the file; verified before use when given.
        source: Where to obtain the file (URL or citation); evalbench never
            downloads weights at run time.
        pretrained: The family has no official weights: when ``path`` is
            missing, the encoder's plain name scores the newest checkpoint that
            ``evalbench pretrain`` registered for this adapter (and says which).
    """

    path: str
    sha256: str | None = None
    source: str = ""
    pretrained: bool = False

    def __post_init__(self) -> None:
        if self.sha256 is not None and (len(self.sha256) != 64 or not set(self.sha256) <= set("0123456789abcdef")):
            raise ValueError(f"sha256: expected 64 lower-case hex digits, got '{self.sha256}'")


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder checkpoint, parsed from ``encoders/<name>.yaml``.

    Attributes:
        name: Encoder name (equals the file name).
        adapter: Registered adapter implementing the encoder protocol, or
            ``<file.py or module>:<ClassName>`` naming one outside the package
            (:mod:`evalbench.adapters.external`; a relative file is resolved
            against the YAML's folder).
        description: One line for listings.
        pooling: Registered pooling from frames to one clip vector.
        options: Adapter options (validated by the adapter's option dataclass).
        checkpoint: Optional weights file.
        citation: Paper or repository the encoder comes from.
        pretrain: Provenance written by ``evalbench pretrain`` (method, recipe,
            data fingerprint, steps, final loss, commit) and ``trained_on``: the
            file listing the content hashes of every training clip, which
            ``run``'s contamination guard reads.
    """

    name: str
    adapter: str
    description: str
    pooling: str = "mean"
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: CheckpointSpec | None = None
    citation: str = ""
    pretrain: dict[str, Any] = field(default_factory=dict)
    source_path: str = field(default="", metadata=_INTERNAL)
    sha256: str = field(default="", metadata=_INTERNAL)

    def __post_init__(self) -> None:
        if is_external(self.adapter):
            check_reference(self.adapter)  # syntax only: the file is resolved once the YAML's folder is known
        elif self.adapter not in ADAPTERS:
            names = ADAPTERS.names()
            known = f"known: {', '.join(names)}; or name your own class as 'my_adapter.py:ClassName'"
            raise ValueError(
                f"adapter: unknown {ADAPTERS.kind} '{self.adapter}'; {suggestion(self.adapter, names, known)}"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling: {POOLINGS.unknown(self.pooling)}")
        if self.adapter == "hear" and self.options.get("weights") and self.checkpoint is None:
            raise ValueError(
                "options.weights: give the weights file as 'checkpoint: {path: ...}' instead, "
                "so that its SHA-256 is verified and recorded"
            )

    def typed_options(self) -> Any:
        """The adapter's option dataclass filled from ``options`` (validated).

        An external adapter without an ``Options`` dataclass gets a plain dict.
        """
        external = self.external_adapter()
        if external is not None:
            return external.parse_options(self.options, self.source_path or self.name)
        return parse(ADAPTER_OPTIONS.get(self.adapter), self.options, self.source_path or self.name, "options")

    def _adapter_dir(self) -> Path:
        """The folder a relative adapter file is resolved against: the YAML's (the working folder without one)."""
        return Path(self.source_path).parent if self.source_path else Path.cwd()

    def external_adapter(self) -> ExternalAdapter | None:
        """The loaded class of an ``adapter: <file or module>:<class>`` (None for a registered adapter).

        Loading executes the user's file (:func:`~evalbench.adapters.external.load_external`).

        Raises:
            ExternalAdapterError: The file, module or class is missing or unusable.
        """
        if not is_external(self.adapter):
            return None
        return load_external(self.adapter, self._adapter_dir(), self.source_path or self.name)

    def adapter_class(self) -> type:
        """The adapter class (imports it, hence torch)."""
        external = self.external_adapter()
        return external.cls if external is not None else ADAPTERS.get(self.adapter)

    def adapter_version(self) -> Any:
        """The adapter's code version for the cache key.

        A registered adapter's ``VERSION``; for an external one, its ``VERSION``
        and the SHA-256 of its source file
        (:meth:`~evalbench.adapters.external.ExternalAdapter.identity`), so an
        edit of the file invalidates cached embeddings and records.
        """
        external = self.external_adapter()
        return external.identity() if external is not None else ADAPTERS.get(self.adapter).VERSION

    def adapter_key(self) -> str:
        """What tells specs' adapters apart without loading them: the registered name, or resolved file and class."""
        if not is_external(self.adapter):
            return self.adapter
        return check_reference(self.adapter).key(self._adapter_dir())

    def checkpoint_path(self) -> Path | None:
        """Absolute checkpoint path; a relative one is resolved against the YAML's folder.

        A built-in spec (shipped inside the package) names weights the user
        downloads: its relative path is looked up first in the user's encoders
        folders (``$EVALBENCH_ENCODERS_DIR``, then ``./encoders``), never
        inside the installed package unless the file is there.
        """
        if self.checkpoint is None:
            return None
        path = Path(self.checkpoint.path).expanduser()
        if path.is_absolute() or not self.source_path:
            return path
        own = Path(self.source_path).parent / path
        if own.is_file():
            return own
        if paths.is_builtin(self.source_path):
            for folder in reversed(paths.encoder_dirs(None)):
                if (folder / path).is_file():
                    return folder / path
            return paths.user_encoders_dir(None) / path
        return own

    def trained_on_path(self) -> Path | None:
        """The file of training-clip content hashes recorded by ``evalbench pretrain`` (absolute), if any."""
        name = self.pretrain.get("trained_on")
        if not name:
            return None
        path = Path(name).expanduser()
        return path if path.is_absolute() or not self.source_path else Path(self.source_path).parent / path

    def config_for_fingerprint(self) -> dict[str, Any]:
        """Everything of the spec that can change embeddings (not name, description or citation).

        Option classes with an ``identity()`` method decide their own part
        (the ``hear`` options swap the weights path for the module version).
        An external adapter enters as ``external:<ClassName>``, not by its path:
        its code is identified by :meth:`adapter_version` (file content hash).
        """
        options = self.typed_options()
        identity = getattr(options, "identity", None)
        external = self.external_adapter()
        return {
            "adapter": self.adapter if external is None else f"external:{external.cls.__qualname__}",
            "pooling": self.pooling,
            "options": identity() if callable(identity) else to_dict(options),
        }


def encoder_files(encoders_dir: Dirs) -> list[Path]:
    """Encoder YAML files at the top level of a spec folder or overlay (:mod:`evalbench.specs.catalog`), by name."""
    return list(spec_map(encoders_dir).values())


def parse_encoder_file(path: Path) -> EncoderSpec:
    """Parse and validate one encoder YAML file, including its adapter options.

    An ``adapter: <file or module>:<class>`` is loaded here (the user's file is
    executed: they named it in their own YAML), so a missing file or class, an
    import error or a class that is not an ``Encoder`` is reported with the spec.
    """
    data = load_yaml(path)
    spec = parse(EncoderSpec, data, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: '{spec.name}' must equal the file name '{path.stem}'")
    spec = dataclasses.replace(spec, source_path=str(path), sha256=spec_hash(data))
    spec.typed_options()
    return spec


def _existing_file(text: str, context: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_file():
        raise EvalbenchError(f"{context}: file {path} not found; give the path of an existing weights file")
    return path


def hear_spec(selector: str) -> EncoderSpec:
    """The in-memory spec of ``hear:<module>[:<weights path>]`` (imports the module, hence torch).

    Adapter ``hear``, ``mean`` pooling of timestamp embeddings, options
    ``{module, weights}``; the weights file (absolute path) doubles as the
    spec's checkpoint, so its SHA-256 is taken and recorded like any other.

    Raises:
        UnknownNameError: Malformed name, or the module is not installed.
        EvalbenchError: The module lacks an API function, or the weights file is missing.
    """
    from evalbench.adapters.hear import import_hear_module

    module, weights = parse_hear_name(selector)
    import_hear_module(module)
    options: dict[str, Any] = {"module": module}
    checkpoint = None
    described = ""
    if weights:
        path = _existing_file(weights, f"--encoder {selector}")
        options["weights"] = str(path)
        checkpoint = CheckpointSpec(path=str(path), source=selector)
        described = f", weights {path.name}"
    version = module_version(module)
    data = {"name": hear_encoder_name(module, weights), "adapter": "hear", "pooling": "mean", "options": options}
    spec = EncoderSpec(
        **data,
        description=f"HEAR-API module {module}{f' {version}' if version else ''}{described}",
        checkpoint=checkpoint,
        citation="HEAR API: Turian et al., HEAR: Holistic Evaluation of Audio Representations, PMLR 176, 2022.",
        source_path=selector,
        sha256=spec_hash({**data, "checkpoint": options.get("weights")}),
    )
    spec.typed_options()
    return spec


def with_checkpoint(spec: EncoderSpec, checkpoint: str, given: str | None = None) -> EncoderSpec:
    """``spec`` scoring another weights file: absolute path, no expected hash, derived name.

    The name becomes ``<name>@<file stem>-<first 8 hex digits of its SHA-256>``
    (for ``hear:`` names, ``hear-<module>@<file stem>``), so two different files
    never share a results folder; the full content hash enters the cache key
    and the run record as for any checkpoint.

    Args:
        spec: The encoder.
        checkpoint: The weights file's path.
        given: How ``--checkpoint`` named it (``NAME=PATH``), for messages and
            the checkpoint's ``source``; default: the plain path.

    Raises:
        EvalbenchError: The file does not exist.
    """
    flag = "--checkpoint" if given is None else f"--checkpoint {given}"
    path = _existing_file(checkpoint, flag)
    options = spec.options
    if spec.adapter == "hear":
        options = {**spec.options, "weights": str(path)}
    if is_hear_name(spec.source_path):
        name = hear_encoder_name(spec.typed_options().module, path)
    else:
        name = f"{spec.name}@{safe_stem(path)}-{sha256_file(path)[:8]}"
    return dataclasses.replace(
        spec,
        name=name,
        description=f"{spec.description} [checkpoint {path.name}]",
        options=options,
        checkpoint=CheckpointSpec(path=str(path), source=f"--checkpoint {given if given is not None else checkpoint}"),
    )


def same_adapter_specs(spec: EncoderSpec, encoders_dir: Dirs | None = None) -> list[EncoderSpec]:
    """The other encoder specs with ``spec``'s adapter, by name, across the spec folders.

    Folders: ``encoders_dir`` (default: :func:`evalbench.paths.encoder_dirs`),
    lowest priority first, a later folder's spec overriding an earlier one of
    the same name, then ``spec``'s own folder if it is not among them (the
    ``--encoders-dir`` it came from).  ``spec``'s own file is left out;
    malformed specs are skipped.
    """
    folders = as_dirs(paths.encoder_dirs(None) if encoders_dir is None else encoders_dir)
    own = Path(spec.source_path).parent if spec.source_path and Path(spec.source_path).is_file() else None
    if own is not None and not any(f.is_dir() and f.samefile(own) for f in folders):
        folders = [*folders, own]
    files: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            files.update({p.stem: p for p in encoder_files(folder)})
    out = []
    own_file = Path(spec.source_path).resolve() if spec.source_path and Path(spec.source_path).is_file() else None
    for _, path in sorted(files.items()):
        if own_file is not None and path.resolve() == own_file:
            continue
        try:
            other = parse_encoder_file(path)
        except EvalbenchError:
            continue
        if other.adapter_key() == spec.adapter_key():
            out.append(other)
    return out


def pretrained_alternatives(spec: EncoderSpec, encoders_dir: Dirs | None = None) -> list[EncoderSpec]:
    """Encoders registered by ``evalbench pretrain`` with the same adapter as ``spec``, newest first.

    Searched in ``encoders_dir`` (a folder or overlay) and the spec's own folder;
    without ``encoders_dir``, in the default overlay (:func:`evalbench.paths.encoder_dirs`).
    Only specs whose weights file exists count: a registered spec shipped without
    its weights (e.g. a built-in ``*-smoke`` spec in an installed package) is not a
    checkpoint anyone can score.
    """
    if not spec.source_path or not Path(spec.source_path).is_file():
        return []
    if encoders_dir is None:
        encoders_dir = paths.encoder_dirs(None)
    found = []
    for path in encoder_files([Path(spec.source_path).parent, *as_dirs(encoders_dir)]):
        try:
            other = parse_encoder_file(path)
        except SpecError:
            continue
        trained = other.pretrain and not other.pretrain.get("twin_of")  # a step-0 twin is not a trained checkpoint
        weights = other.checkpoint_path()
        exists = weights is not None and weights.is_file()
        if other.adapter_key() == spec.adapter_key() and trained and other.name != spec.name and exists:
            found.append((str(other.pretrain.get("created", "")), other.name, other))
    return [other for _, _, other in sorted(found, key=lambda t: (t[0], t[1]), reverse=True)]


def load_encoder(name: str, encoders_dir: Dirs) -> EncoderSpec:
    """Load the encoder called ``name`` from a spec folder or overlay, or build a ``hear:<module>[:<weights>]`` spec.

    A spec whose checkpoint is marked ``pretrained`` (a family with no official
    weights) and whose file is missing resolves to the newest encoder that
    ``evalbench pretrain`` registered for its adapter, with a notice naming it.

    Raises:
        UnknownNameError: No such encoder (with a close-match suggestion) or HEAR module.
        SpecError: The file is malformed.
    """
    if is_hear_name(name):
        return hear_spec(name)
    known = [p.stem for p in encoder_files(encoders_dir)]
    return newest_if_missing(
        parse_encoder_file(find_spec(encoders_dir, name, "encoder", known, "evalbench encoders list")), encoders_dir
    )


def newest_if_missing(spec: EncoderSpec, encoders_dir: Dirs | None = None) -> EncoderSpec:
    """``spec``, or, if its checkpoint is marked ``pretrained`` and missing, the newest one ``pretrain`` registered.

    A family with no official weights (``msn``, ``clmr``, ...) names a
    checkpoint it expects ``evalbench pretrain`` to have made; its plain name
    then scores the newest trained encoder of its adapter
    (:func:`pretrained_alternatives`), with a notice naming it.
    """
    path = spec.checkpoint_path()
    if spec.checkpoint is not None and spec.checkpoint.pretrained and path is not None and not path.is_file():
        newest = pretrained_alternatives(spec, encoders_dir)
        if newest:
            chosen = newest[0]
            log.warning(
                "encoder '%s': no weights at %s; scoring '%s', the newest checkpoint `evalbench pretrain` registered "
                "for this family (%s)",
                spec.name,
                path,
                chosen.name,
                chosen.source_path,
            )
            return chosen
    return spec


def resolve_encoders(selector: str, encoders_dir: Dirs) -> list[EncoderSpec]:
    """Expand a comma-separated list of encoder names into specs (order kept, duplicates dropped).

    Each name is an ``encoders/<name>.yaml`` or ``hear:<module>[:<weights path>]``.

    Raises:
        UnknownNameError: An unknown name, or none given.
        EvalbenchError: Two names map to the same results folder.
    """
    names = list(dict.fromkeys(n.strip() for n in selector.split(",") if n.strip()))
    if not names:
        raise UnknownNameError("no encoder given; pass --encoder NAME[,NAME...]")
    specs = [load_encoder(n, encoders_dir) for n in names]
    seen: dict[str, str] = {}
    for given, spec in zip(names, specs, strict=True):
        if spec.name in seen:
            raise EvalbenchError(
                f"--encoder: '{seen[spec.name]}' and '{given}' share the results folder '{spec.name}'; "
                "run them separately"
            )
        seen[spec.name] = given
    return specs
