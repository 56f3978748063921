"""The ``randproj`` floor: a fixed random linear projection of log-mel frames.

Each log-mel frame is multiplied by a Gaussian matrix ``W`` of shape
``(n_mels, dim)`` with entries N(0, 1/n_mels), drawn from a fixed seed.  Mean
pooled, the clip vector is a random ``dim``-dimensional linear view of the band
means, strictly less information than the ``logmel`` baseline's per-band mean
and std: a deliberately weak encoder for checking that tasks separate good from
weak representations.
"""

from __future__ import annotations

from pathlib import Path

import torch

from evalbench.adapters.base import Encoder, Frames
from evalbench.adapters.frontend import LogMelFrontEnd
from evalbench.adapters.options import RandomProjectionOptions
from evalbench.errors import SpecError


class RandomProjectionEncoder(Encoder):
    """Random projection of log-mel frames (``embed_dim = dim``).

    Args:
        options: Adapter options.
    """

    VERSION = 1

    def __init__(self, options: RandomProjectionOptions) -> None:
        super().__init__()
        self.frontend = LogMelFrontEnd(options.frontend)
        n_mels = options.frontend.n_mels
        gen = torch.Generator().manual_seed(options.seed)
        weight = torch.randn(n_mels, options.dim, generator=gen) / n_mels**0.5
        self.register_buffer("weight", weight)
        self.sample_rate = options.frontend.sample_rate
        self.embed_dim = options.dim
        self.hop_seconds = options.frontend.hop_length / options.frontend.sample_rate

    @classmethod
    def from_options(cls, options: RandomProjectionOptions, checkpoint: Path | None) -> RandomProjectionEncoder:
        """Build from options; this adapter takes no checkpoint."""
        if checkpoint is not None:
            raise SpecError("the randproj adapter has no weights; remove 'checkpoint' from its encoder YAML")
        return cls(options)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Projected frames ``(B, T, dim)`` and their validity mask."""
        logmel = self.frontend(waveforms, lengths).transpose(1, 2)
        return Frames(logmel @ self.weight, self.frontend.frame_mask(lengths, logmel.shape[1]))
