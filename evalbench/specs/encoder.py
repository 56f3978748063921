"""Encoder specs: one YAML per checkpoint in ``encoders/``.

An encoder spec names the adapter (code, registered in
:data:`evalbench.registry.ADAPTERS`), its options (validated by the adapter's
option dataclass), the pooling step that turns frame embeddings into one clip
vector, and optionally a checkpoint file.  Checkpoints are data: the file's
content hash, not its path, enters the cache key and the run record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench.errors import SpecError, UnknownNameError
from evalbench.registry import ADAPTER_OPTIONS, ADAPTERS, POOLINGS
from evalbench.specs.fields import parse, to_dict
from evalbench.specs.yaml_io import load_yaml, spec_file, spec_hash

_INTERNAL = {"internal": True}


@dataclass(frozen=True)
class CheckpointSpec:
    """A weights file.

    Attributes:
        path: File path; relative paths are resolved against the YAML's folder.
        sha256: Expected SHA-256 of the file; verified before use when given.
        source: Where to obtain the file (URL or citation); evalbench never
            downloads weights at run time.
    """

    path: str
    sha256: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.sha256 is not None and (len(self.sha256) != 64 or not set(self.sha256) <= set("0123456789abcdef")):
            raise ValueError(f"sha256: expected 64 lower-case hex digits, got '{self.sha256}'")


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder checkpoint, parsed from ``encoders/<name>.yaml``.

    Attributes:
        name: Encoder name (equals the file name).
        adapter: Registered adapter implementing the encoder protocol.
        description: One line for listings.
        pooling: Registered pooling from frames to one clip vector.
        options: Adapter options (validated by the adapter's option dataclass).
        checkpoint: Optional weights file.
        citation: Paper or repository the encoder comes from.
    """

    name: str
    adapter: str
    description: str
    pooling: str = "mean"
    options: dict[str, Any] = field(default_factory=dict)
    checkpoint: CheckpointSpec | None = None
    citation: str = ""
    source_path: str = field(default="", metadata=_INTERNAL)
    sha256: str = field(default="", metadata=_INTERNAL)

    def __post_init__(self) -> None:
        for key, registry, value in (
            ("adapter", ADAPTERS, self.adapter),
            ("pooling", POOLINGS, self.pooling),
        ):
            if value not in registry:
                raise ValueError(f"{key}: {registry.unknown(value)}")

    def typed_options(self) -> Any:
        """The adapter's option dataclass filled from ``options`` (validated)."""
        return parse(ADAPTER_OPTIONS.get(self.adapter), self.options, self.source_path or self.name, "options")

    def checkpoint_path(self) -> Path | None:
        """Absolute checkpoint path, resolved against the YAML's folder."""
        if self.checkpoint is None:
            return None
        path = Path(self.checkpoint.path).expanduser()
        if not path.is_absolute() and self.source_path:
            path = Path(self.source_path).parent / path
        return path

    def config_for_fingerprint(self) -> dict[str, Any]:
        """Everything of the spec that can change embeddings (not name, description or citation)."""
        return {
            "adapter": self.adapter,
            "pooling": self.pooling,
            "options": to_dict(self.typed_options()),
        }


def encoder_files(encoders_dir: Path) -> list[Path]:
    """Encoder YAML files at the top level of ``encoders_dir``."""
    return sorted(p for p in Path(encoders_dir).glob("*.yaml") if not p.name.startswith("_"))


def parse_encoder_file(path: Path) -> EncoderSpec:
    """Parse and validate one encoder YAML file, including its adapter options."""
    data = load_yaml(path)
    spec = parse(EncoderSpec, data, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: '{spec.name}' must equal the file name '{path.stem}'")
    spec = dataclasses.replace(spec, source_path=str(path), sha256=spec_hash(data))
    spec.typed_options()
    return spec


def load_encoder(name: str, encoders_dir: Path) -> EncoderSpec:
    """Load the encoder called ``name`` from ``encoders_dir``.

    Raises:
        UnknownNameError: No such encoder (with a close-match suggestion).
        SpecError: The file is malformed.
    """
    known = [p.stem for p in encoder_files(encoders_dir)]
    return parse_encoder_file(spec_file(encoders_dir, name, "encoder", known, "evalbench encoders list"))


def resolve_encoders(selector: str, encoders_dir: Path) -> list[EncoderSpec]:
    """Expand a comma-separated list of encoder names into specs (order kept, duplicates dropped)."""
    names = list(dict.fromkeys(n.strip() for n in selector.split(",") if n.strip()))
    if not names:
        raise UnknownNameError("no encoder given; pass --encoder NAME[,NAME...]")
    return [load_encoder(n, encoders_dir) for n in names]
