"""An encoder spec made runnable: its checkpoint verified, its adapter built, its identity known.

The identity (:meth:`LoadedEncoder.identity`) is what every cache key and run
record carries: the spec's options, the adapter's code ``VERSION``, the
checkpoint's SHA-256 and, for adapters fitted on task audio, what they were
fitted from; and, when it is not float32 on CPU, the device type and
precision (:mod:`evalbench.utils.precision`).  :meth:`LoadedEncoder.pooled`
is the one place a batch is encoded and pooled, under the run's precision.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evalbench.adapters.base import Encoder, Frames
from evalbench.adapters.pooling import pooled_dim
from evalbench.errors import EvalbenchError
from evalbench.registry import ADAPTERS, POOLINGS
from evalbench.specs.encoder import EncoderSpec, pretrained_alternatives
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
        "adapter_version": ADAPTERS.get(spec.adapter).VERSION,
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
) -> LoadedEncoder:
    """Instantiate ``spec``'s adapter on ``device`` after verifying its checkpoint (``precision``: its forward)."""
    digest = checkpoint_sha256 if checkpoint_sha256 is not None else verify_checkpoint(spec)
    path = spec.checkpoint_path()
    model = ADAPTERS.get(spec.adapter).from_options(spec.typed_options(), path)
    model.to(device).eval()
    return LoadedEncoder(spec, model, digest, device, precision=precision, tf32=tf32)


__all__ = ["LoadedEncoder", "load_encoder_model", "static_identity", "verify_checkpoint"]
