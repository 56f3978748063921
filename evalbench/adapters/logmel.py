"""The ``logmel`` baseline: BYOL-A log-mel frames, summarised per band by pooling.

With ``pooling: mean_std`` each clip becomes the time mean and standard deviation
of its 64 log-mel bands (128 values).  It has no learned parameters, so it is the
floor every learned encoder must beat on every task.
"""

from __future__ import annotations

from pathlib import Path

import torch

from evalbench.adapters.base import Encoder, Frames
from evalbench.adapters.frontend import LogMelFrontEnd
from evalbench.adapters.options import LogMelOptions
from evalbench.errors import SpecError


class LogMelStatsEncoder(Encoder):
    """Log-mel frames as frame embeddings (``embed_dim = n_mels``).

    Args:
        options: Adapter options.
    """

    VERSION = 1

    def __init__(self, options: LogMelOptions) -> None:
        super().__init__()
        self.frontend = LogMelFrontEnd(options.frontend)
        self.sample_rate = options.frontend.sample_rate
        self.embed_dim = options.frontend.n_mels
        self.hop_seconds = options.frontend.hop_length / options.frontend.sample_rate

    @classmethod
    def from_options(cls, options: LogMelOptions, checkpoint: Path | None) -> LogMelStatsEncoder:
        """Build from options; this adapter takes no checkpoint."""
        if checkpoint is not None:
            raise SpecError("the logmel adapter has no weights; remove 'checkpoint' from its encoder YAML")
        return cls(options)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Log-mel frames ``(B, T, n_mels)`` and their validity mask."""
        logmel = self.frontend(waveforms, lengths).transpose(1, 2)
        return Frames(logmel, self.frontend.frame_mask(lengths, logmel.shape[1]))
