"""Option dataclasses of the encoder adapters (torch-free, for validation).

Each adapter reads its ``options:`` mapping from ``encoders/<name>.yaml``
through one of these dataclasses, so ``evalbench encoders validate`` can check
every option without importing torch.  This package holds the shared log-mel
front end and the baselines' options; each learned family has its own module
(``options/byola.py``, ``options/msn.py``...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class LogMelFrontEndOptions:
    """Log-mel front end; the defaults are BYOL-A's (Niizumi et al., IJCNN 2021, docs/methods.md §1.1).

    16 kHz audio, STFT with a 1024-point (64 ms) Hann window and a 160-sample
    (10 ms) hop, centred frames, 64 mel bands on the Slaney scale with Slaney
    area normalisation between 60 and 7800 Hz, power 2, natural log with
    float32 machine epsilon.  NOTE: torchaudio's default HTK scale without norm
    does not match the published BYOL-A weights (docs/methods.md §1.7).

    Attributes:
        sample_rate: Input sample rate in Hz.
        n_fft: FFT size.
        win_length: Window length in samples.
        hop_length: Hop in samples.
        n_mels: Number of mel bands.
        f_min: Lowest band edge in Hz.
        f_max: Highest band edge in Hz.
        mel_scale: ``slaney`` or ``htk``.
        norm: ``slaney`` area normalisation, or null for none.
        eps: Added before the log.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    mel_scale: Literal["slaney", "htk"] = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    eps: float = FLOAT32_EPS

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length: must not exceed n_fft ({self.n_fft}), got {self.win_length}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"f_max: need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}..{self.f_max}")
        for key in ("n_fft", "hop_length", "n_mels", "sample_rate"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be positive")


@dataclass(frozen=True)
class LogMelOptions:
    """Options of the ``logmel`` baseline: log-mel frames, summarised per band by the pooling.

    Attributes:
        frontend: Log-mel front end (BYOL-A defaults).
    """

    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)


@dataclass(frozen=True)
class RandomProjectionOptions:
    """Options of the ``randproj`` floor: a fixed random linear map of log-mel frames.

    Attributes:
        frontend: Log-mel front end (BYOL-A defaults).
        dim: Output dimension of the projection.
        seed: Seed of the Gaussian projection matrix.
    """

    frontend: LogMelFrontEndOptions = field(default_factory=LogMelFrontEndOptions)
    dim: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dim <= 0:
            raise ValueError(f"dim: must be positive, got {self.dim}")


def check_norm_and_seed(norm_mean: float | None, norm_std: float | None, seed: int) -> None:
    """Validate optional fixed log-mel statistics (both or neither; finite; std > 0) and an init seed.

    Raises:
        ValueError: ``"key: problem"`` for the spec loader to prefix with file and path.
    """
    if (norm_mean is None) != (norm_std is None):
        raise ValueError("norm_std: give norm_mean and norm_std together, or neither (fit on the training split)")
    if norm_mean is not None and not math.isfinite(norm_mean):
        raise ValueError(f"norm_mean: must be finite, got {norm_mean}")
    if norm_std is not None and not (math.isfinite(norm_std) and norm_std > 0):
        raise ValueError(f"norm_std: must be a positive number, got {norm_std}")
    if seed < 0:
        raise ValueError(f"seed: must be non-negative, got {seed}")
