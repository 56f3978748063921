"""Numerical precision of extraction and probes: part of a result's identity, never a silent default.

Three things decide how close two runs' embeddings are, beyond the code and the
weights: the device type (a CUDA convolution is not a CPU convolution, bit for
bit), reduced-precision autocast, and TF32.  evalbench treats them so:

- **TF32 off** unless asked for (``--tf32``).  On Ampere and later GPUs torch
  lets cuDNN convolutions use TF32 by default (10-bit mantissa): a run would
  silently compute at a precision the record does not state.
  :func:`set_matmul_policy` turns TF32 off for cuBLAS and cuDNN and sets float32
  matmul precision to ``highest`` (``high`` with ``--tf32``).
- **Autocast only when asked** (``--precision bf16|fp16``; default ``fp32``):
  :func:`autocast` wraps the encoder forward in ``torch.autocast`` on the
  run's device type.  Before a task is embedded at reduced precision, a check
  batch is embedded both ways (:func:`deviation`); the run is refused when the
  largest per-clip relative deviation exceeds :data:`TOLERANCE` (mixed
  precision that moves embeddings by more than 1 % is not the same
  measurement).  fp16 is offered on CUDA only (on CPU torch's fp16 autocast
  kernels are slow and coverage-dependent).
- **Identity**: the device type and precision enter the encoder identity, and
  with it every cache key and record staleness key, whenever they differ from
  the reference computation, float32 on CPU (:func:`compute_identity`; CPU
  float32 adds nothing, so keys made before this stay valid).  A GPU run
  therefore never reuses or mixes with CPU cache entries or records, and a
  bf16 run never with an fp32 one; records state them in ``environment``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from evalbench.errors import EvalbenchError

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
TOLERANCE = 1e-2  # largest per-clip ‖autocast − fp32‖ / ‖fp32‖ on the check batch
CHECK_CLIPS = 8  # clips of the check batch


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, and fp16 off CUDA.

    Raises:
        EvalbenchError: With the fix.
    """
    if precision not in PRECISIONS:
        raise EvalbenchError(f"--precision {precision}: not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise EvalbenchError(f"--precision fp16 needs a CUDA device (this run: {device}); use bf16 or fp32")


def set_matmul_policy(tf32: bool = False) -> dict[str, bool | str]:
    """Turn TF32 off (or on) for cuBLAS matmuls and cuDNN convolutions; the policy, for the record."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return {"tf32": tf32, "float32_matmul_precision": torch.get_float32_matmul_precision()}


def compute_identity(device: torch.device | str, precision: str = "fp32", tf32: bool = False) -> dict[str, object]:
    """What of the computation enters identities: nothing for float32 on CPU, else device type and precision."""
    kind = torch.device(device).type
    if kind == "cpu" and precision == "fp32":
        return {}
    return {"compute": {"device": kind, "precision": precision, "tf32": bool(tf32 and kind == "cuda")}}


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` at ``precision`` on ``device``'s type; nothing for fp32."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


def deviation(reference: torch.Tensor, other: torch.Tensor) -> float:
    """Largest per-row relative L2 deviation ``‖other − reference‖ / ‖reference‖`` (float64)."""
    ref, oth = reference.double().flatten(1), other.double().flatten(1)
    norm = ref.norm(dim=1).clamp_min(1e-12)
    return float(((oth - ref).norm(dim=1) / norm).max())


__all__ = [
    "CHECK_CLIPS",
    "PRECISIONS",
    "TOLERANCE",
    "autocast",
    "check_precision",
    "compute_identity",
    "deviation",
    "set_matmul_policy",
]
