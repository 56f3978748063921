"""An encoder spec made runnable: its checkpoint verified, its adapter built, its identity known.

The identity (:meth:`LoadedEncoder.identity`) is what every cache key and run
record carries: the spec's options, the adapter's code ``VERSION`` (for an
adapter in the user's own file, also that file's SHA-256), the
checkpoint's SHA-256 and, for adapters fitted on task audio, what they were
fitted from; and, when it is not float32 on CPU, the device type and
precision (:mod:`evalbench.utils.precision`).  :meth:`LoadedEncoder.pooled`
is the one place a batch is encoded and pooled, under the run's precision.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalbench.adapters.base import Encoder, Frames
from evalbench.adapters.checkpoints import IGNORED_OPTIONS, KeyMismatch, build_unloaded, matching, read_checkpoint
from evalbench.adapters.pooling import pooled_dim
from evalbench.errors import EvalbenchError
from evalbench.registry import POOLINGS
from evalbench.specs.catalog import Dirs
from evalbench.specs.checkpoint_flag import from_checkpoint_flag
from evalbench.specs.encoder import EncoderSpec, pretrained_alternatives, same_adapter_specs
from evalbench.specs.fields import to_dict
from evalbench.utils.hashing import sha256_file, sha256_json
from evalbench.utils.precision import CHECK_CLIPS, TOLERANCE, autocast, compute_identity, deviation


@dataclass
class LoadedEncoder:
    """An instantiated encoder with its spec and identity.

    Attributes:
        spec: The encoder spec.
        model: The adapter module (in eval mode, on its device).
        checkpoint_sha256: Content hash of the checkpoint file, if any.
        device: Torch device.
        fit_key: Key of what the input statistics were fitted from (data
            content, rows, recipe) for the current task; None if nothing is fitted.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast of the forward pass).
        tf32: TF32 matmuls and convolutions were allowed (CUDA).
        deviations: Per task, the check batch's largest relative deviation from fp32 (reduced precision only).
    """

    spec: EncoderSpec
    model: Encoder
    checkpoint_sha256: str | None
    device: torch.device
    fit_key: str | None = None
    precision: str = "fp32"
    tf32: bool = False
    deviations: dict[str, float] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """Everything about the encoder that can change embeddings.

        Fitted statistics enter by what they were fitted *from* (:attr:`fit_key`),
        not by their values: the last bits of a float sum differ between
        machines, and an identity that hung on them would miss every cache
        entry and record made elsewhere.  The values are recorded beside the
        cache entries and compared with a tolerance (:func:`~evalbench.embed.cache.states_agree`).
        """
        return {**static_identity(self.spec, self.checkpoint_sha256, self.compute), "fit": self.fit_key}

    @property
    def compute(self) -> dict[str, Any]:
        """The computation's identity (:func:`~evalbench.utils.precision.compute_identity`)."""
        return compute_identity(self.device, self.precision, self.tf32)

    def pooled(
        self,
        waveforms: torch.Tensor,
        lengths: torch.Tensor,
        mask_padding: bool = True,
        timings: dict[str, float] | None = None,
    ) -> torch.Tensor:
        """Float32 clip embeddings ``(B, dim)`` of a batch on the encoder's device, at its precision.

        ``mask_padding=False`` pools every output frame, padding included (the reference harness's rule).
        ``timings`` accumulates ``encode`` and ``pool`` seconds (on CUDA, with a synchronisation each).
        """
        mark = time.perf_counter()
        with autocast(self.device, self.precision):
            frames = self.model.encode(waveforms, lengths)
        if timings is not None:
            _sync(self.device)
            timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - mark
        return self.pool(frames, mask_padding, timings)

    def pool(self, frames: Frames, mask_padding: bool = True, timings: dict[str, float] | None = None) -> torch.Tensor:
        """The spec's pooling of ``frames`` as float32 ``(B, dim)`` (``mask_padding=False``: every frame counts)."""
        mark = time.perf_counter()
        if not mask_padding:
            frames = Frames(frames.embeddings, torch.ones_like(frames.mask))
        out = POOLINGS.get(self.spec.pooling)(Frames(frames.embeddings.float(), frames.mask)).float()
        if timings is not None:
            _sync(self.device)
            timings["pool"] = timings.get("pool", 0.0) + time.perf_counter() - mark
        return out

    def check_finite(self, pooled: np.ndarray, files: list[str]) -> None:
        """Refuse non-finite embeddings of a batch whose clips are ``files``, naming the first bad file.

        Raises:
            EvalbenchError: A row holds NaN or an infinity.
        """
        bad = np.flatnonzero(~np.isfinite(pooled).all(1))
        if len(bad):
            raise EvalbenchError(f"encoder '{self.spec.name}' produced non-finite embeddings for {files[int(bad[0])]}")

    def verify_precision(self, waveforms: torch.Tensor, lengths: torch.Tensor, task: str) -> None:
        """At reduced precision, compare a check batch with fp32 once per task; refuse beyond :data:`TOLERANCE`.

        Raises:
            EvalbenchError: The deviation exceeds the tolerance (naming encoder, task, deviation, fix).
        """
        if self.precision == "fp32" or task in self.deviations:
            return
        wav, n = waveforms[:CHECK_CLIPS], lengths[:CHECK_CLIPS]
        reduced = self.pooled(wav, n)
        precision, self.precision = self.precision, "fp32"
        try:
            reference = self.pooled(wav, n)
        finally:
            self.precision = precision
        moved = deviation(reference, reduced)
        if not moved <= TOLERANCE:
            raise EvalbenchError(
                f"--precision {precision} moves encoder '{self.spec.name}' embeddings on task '{task}' by {moved:.3g} "
                f"(largest per-clip relative deviation from fp32 on a check batch of {len(wav)} clips), more than "
                f"the tolerance {TOLERANCE:g}; use --precision fp32"
            )
        self.deviations[task] = moved

    @property
    def fingerprint(self) -> str:
        """SHA-256 of :meth:`identity`."""
        return sha256_json(self.identity())

    @property
    def dim(self) -> int:
        """Width of the pooled clip embedding."""
        return pooled_dim(self.spec.pooling, self.model.embed_dim)


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so a stage's time is its own (nothing on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def static_identity(
    spec: EncoderSpec, checkpoint_sha256: str | None, compute: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Encoder identity known before any data is seen: config, adapter code version, weights hash, computation.

    ``compute`` is :func:`~evalbench.utils.precision.compute_identity` (empty for float32 on CPU).
    """
    return {
        **spec.config_for_fingerprint(),
        "adapter_version": spec.adapter_version(),  # an external adapter's also hashes its source file
        "checkpoint_sha256": checkpoint_sha256,
        **(compute or {}),
    }


def verify_checkpoint(spec: EncoderSpec) -> str | None:
    """SHA-256 of the spec's checkpoint file (None without one), checked against the spec.

    Raises:
        EvalbenchError: The checkpoint is missing or its SHA-256 differs from the spec.
    """
    path = spec.checkpoint_path()
    digest = None
    if path is not None:
        if not path.is_file():
            hint = f" (obtain it from {spec.checkpoint.source})" if spec.checkpoint and spec.checkpoint.source else ""
            trained = [other.name for other in pretrained_alternatives(spec)]
            if trained:
                hint += f"; encoders of this family that `evalbench pretrain` produced: {', '.join(trained)}"
            raise EvalbenchError(f"{spec.source_path}: checkpoint.path: file {path} not found{hint}")
        digest = sha256_file(path)
        expected = spec.checkpoint.sha256 if spec.checkpoint else None
        if expected and expected != digest:
            raise EvalbenchError(
                f"{spec.source_path}: checkpoint.sha256: {path} has SHA-256 {digest}, expected {expected}; "
                "the file changed or is the wrong one"
            )
    return digest


def load_encoder_model(
    spec: EncoderSpec,
    device: torch.device,
    checkpoint_sha256: str | None = None,
    precision: str = "fp32",
    tf32: bool = False,
    encoders_dir: Dirs | None = None,
) -> LoadedEncoder:
    """Instantiate ``spec``'s adapter on ``device`` after verifying its checkpoint (``precision``: its forward).

    A checkpoint that does not load into the spec's network is tried against
    the other specs of the same adapter (in ``encoders_dir``, default the spec
    folders of :func:`evalbench.paths.encoder_dirs`), and the error names the
    one it fits (:func:`checkpoint_hint`).

    Raises:
        EvalbenchError: The checkpoint is missing, differs from the spec's
            SHA-256, or does not load (with the hint).
    """
    digest = checkpoint_sha256 if checkpoint_sha256 is not None else verify_checkpoint(spec)
    path = spec.checkpoint_path()
    adapter = spec.adapter_class()
    try:
        model = adapter.from_options(spec.typed_options(), path)
    except EvalbenchError as exc:
        if path is None or not hasattr(adapter, "load_weights"):
            raise
        raise _load_error(spec, path, exc, encoders_dir) from exc
    model.to(device).eval()
    return LoadedEncoder(spec, model, digest, device, precision=precision, tf32=tf32)


HINT_LISTED = 8  # candidate names shown when the file matches none


def _option_key(options: Any) -> str:
    """Options that can shape a network (all but :data:`~evalbench.adapters.checkpoints.IGNORED_OPTIONS`), as text."""
    return json.dumps(
        {k: v for k, v in to_dict(options).items() if k not in IGNORED_OPTIONS}, sort_keys=True, default=str
    )


def _is_this_file(other: EncoderSpec, digest: str) -> bool:
    """Whether ``other``'s own checkpoint is the file of SHA-256 ``digest``."""
    if other.checkpoint is None:
        return False
    if other.checkpoint.sha256:
        return other.checkpoint.sha256 == digest
    own = other.checkpoint_path()
    return own is not None and own.is_file() and sha256_file(own) == digest


def _builder(adapter: type, options: Any) -> Callable[[], Any]:
    """Build ``adapter(options)`` without weights, when called (:func:`~evalbench.adapters.checkpoints.matching`)."""
    return lambda: build_unloaded(adapter, options)


def checkpoint_matches(
    spec: EncoderSpec,
    path: Path,
    encoders_dir: Dirs | None = None,
    read: tuple[dict, dict] | None = None,
) -> tuple[list[str], list[str]]:
    """Which other specs of ``spec``'s adapter would load the checkpoint ``path``: ``(matches, candidates)``.

    Cheap and safe: the file is read once, weights only
    (:func:`~evalbench.adapters.checkpoints.read_checkpoint`); each candidate's
    network is built with its seeded initial weights, and its own loader checks
    keys, shapes, family and options without loading anything and without
    running the network (:func:`~evalbench.adapters.checkpoints.matching`).
    Specs whose options differ only in
    :data:`~evalbench.adapters.checkpoints.IGNORED_OPTIONS` share one build.

    Returns:
        ``matches``, best first: a spec whose own checkpoint is this very file,
        then specs with weights of their own, then random twins and specs
        without a checkpoint (by name within each); and every candidate, by name.

    Raises:
        EvalbenchError: The file cannot be read as a weights-only state dict.
    """
    read = read if read is not None else read_checkpoint(path)
    candidates = same_adapter_specs(spec, encoders_dir)
    adapter = spec.adapter_class()
    groups: dict[str, list[EncoderSpec]] = {}
    for other in candidates:
        groups.setdefault(_option_key(other.typed_options()), []).append(other)
    builders = {key: _builder(adapter, members[0].typed_options()) for key, members in groups.items()}
    verdicts = matching(path, builders, read)
    fits = [other for key, members in groups.items() if verdicts[key] is None for other in members]
    digest = sha256_file(path) if fits else ""

    def rank(other: EncoderSpec) -> tuple[int, str]:
        if _is_this_file(other, digest):
            return 0, other.name
        official = other.checkpoint is not None and not other.pretrain.get("twin_of")
        return (1 if official else 2), other.name

    return [o.name for o in sorted(fits, key=rank)], [o.name for o in candidates]


def checkpoint_hint(
    spec: EncoderSpec,
    path: Path,
    encoders_dir: Dirs | None = None,
    read: tuple[dict, dict] | None = None,
) -> str:
    """For a checkpoint that does not load into ``spec``: which encoder of the same adapter it fits.

    Returns:
        ``this file matches `X`; use `--encoder X``` (naming other matches
        too), ``it matches none of A, B, ...``, or ``""`` when the adapter has
        no other spec.
    """
    matches, candidates = checkpoint_matches(spec, path, encoders_dir, read)
    if matches:
        best, rest = matches[0], matches[1:]
        also = f" (also {', '.join(f'`{m}`' for m in rest)})" if rest else ""
        advice = f"`--encoder {best}`"
        named = _named_flag(spec)
        if named is not None:
            advice += f" and `--checkpoint {best}={named}`"
        return f"this file matches `{best}`{also}; use {advice}"
    if candidates:
        shown = ", ".join(candidates[:HINT_LISTED]) + (", …" if len(candidates) > HINT_LISTED else "")
        return f"it matches none of {shown} either"
    return ""


def _base_name(spec: EncoderSpec) -> str:
    """The encoder name before ``--checkpoint`` derived ``<name>@<file>`` from it."""
    return spec.name.partition("@")[0]


def _named_flag(spec: EncoderSpec) -> str | None:
    """The path of ``--checkpoint NAME=PATH`` that gave ``spec`` its weights; None for a plain path or the spec's own.

    A plain path never starts with ``NAME=`` of its encoder
    (:func:`~evalbench.specs.checkpoint_flag.parse_checkpoint_flag`).
    """
    given = from_checkpoint_flag(spec)
    if given is None:
        return None
    left, eq, path = given.partition("=")
    return path if eq and left in (_base_name(spec), spec.name) else None


def _load_error(spec: EncoderSpec, path: Path, exc: EvalbenchError, encoders_dir: Dirs | None) -> EvalbenchError:
    """``exc`` of a checkpoint that failed to load, made short and told which encoder the file fits.

    A file that cannot be read at all keeps its own message (no other encoder can read it either).
    """
    try:
        read = read_checkpoint(path)
    except EvalbenchError:
        return exc
    hint = checkpoint_hint(spec, path, encoders_dir, read)
    given = from_checkpoint_flag(spec)
    if given is None:
        who, name = f"{spec.source_path}: checkpoint.path", spec.name
    else:
        who, name = ("--checkpoint" if _named_flag(spec) is None else f"--checkpoint {given}"), _base_name(spec)
    if isinstance(exc, KeyMismatch):
        reason = exc.brief
    else:
        reason = str(exc)
        prefix = f"{path}: "
        reason = reason[len(prefix) :] if reason.startswith(prefix) else reason
    message = f"{who}: {path} does not load into encoder '{name}' ({reason})"
    return EvalbenchError(f"{message}; {hint}" if hint else message)


__all__ = [
    "LoadedEncoder",
    "checkpoint_hint",
    "checkpoint_matches",
    "load_encoder_model",
    "static_identity",
    "verify_checkpoint",
]
