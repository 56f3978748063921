"""Per-frame RMS energy and zero-crossing rate: a complete evalbench encoder adapter in one file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evalbench.adapters.base import Encoder, Frames


@dataclass(frozen=True)
class EnergyOptions:
    """The YAML's ``options:`` (an unknown key is an error)."""

    frame: int = 400  # samples per frame: 25 ms at 16 kHz


class EnergyEncoder(Encoder):
    """Two features per non-overlapping frame: RMS energy and zero-crossing rate."""

    VERSION = 1  # bump when the outputs change; editing this file also invalidates the cache
    Options = EnergyOptions
    sample_rate = 16000  # the pipeline resamples every clip to this rate
    embed_dim = 2

    def __init__(self, options: EnergyOptions) -> None:
        super().__init__()
        self.frame = options.frame
        self.hop_seconds = options.frame / self.sample_rate

    @classmethod
    def from_options(cls, options: EnergyOptions, checkpoint: Path | None) -> EnergyEncoder:
        """Build from the parsed options; this encoder has no weights, so ``checkpoint`` is ignored."""
        return cls(options)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Frames ``(B, T, 2)``; a frame is valid if it lies within the clip (at least one per clip)."""
        n = max(waveforms.shape[1] // self.frame, 1)
        x = torch.nn.functional.pad(waveforms, (0, self.frame))[:, : n * self.frame].reshape(len(waveforms), n, -1)
        rms = x.pow(2).mean(-1).sqrt()
        zcr = (x[..., 1:] * x[..., :-1] < 0).float().mean(-1)
        mask = torch.arange(n, device=lengths.device)[None, :] < (lengths // self.frame).clamp(min=1)[:, None]
        return Frames(torch.stack([rms, zcr], dim=-1), mask)
