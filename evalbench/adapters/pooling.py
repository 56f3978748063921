"""Masked temporal pooling from frame embeddings to one vector per clip.

Invalid (padded) frames never contribute: means divide by the count of valid
frames and maxima ignore invalid ones (docs/protocol.md §4, flaw 6).  Names are
registered in :data:`evalbench.registry.POOLINGS` and used in encoder YAML.

- ``mean``: time mean (wav2vec2/HuBERT context outputs, M2D, BEATs).
- ``max``: time maximum.
- ``mean_max``: element-wise *sum* of time mean and time max, BYOL-A's pooling
  (Niizumi et al., IJCNN 2021); the width stays D.
- ``mean_std``: concatenation of time mean and (population) standard deviation,
  the classic per-band summary of a log-mel spectrogram; width 2D.
"""

from __future__ import annotations

import torch

from evalbench.adapters.base import Frames


def _mean(frames: Frames) -> torch.Tensor:
    m = frames.mask.unsqueeze(-1).to(frames.embeddings.dtype)
    return (frames.embeddings * m).sum(1) / m.sum(1).clamp(min=1.0)


def _max(frames: Frames) -> torch.Tensor:
    x = frames.embeddings.masked_fill(~frames.mask.unsqueeze(-1), float("-inf"))
    return x.max(dim=1).values


def pool_mean(frames: Frames) -> torch.Tensor:
    """Masked time mean, ``(B, D)``."""
    return _mean(frames)


def pool_max(frames: Frames) -> torch.Tensor:
    """Masked time maximum, ``(B, D)``."""
    return _max(frames)


def pool_mean_max(frames: Frames) -> torch.Tensor:
    """Masked mean + max, summed element-wise (BYOL-A), ``(B, D)``."""
    return _mean(frames) + _max(frames)


def pool_mean_std(frames: Frames) -> torch.Tensor:
    """Masked mean and standard deviation, concatenated, ``(B, 2D)``."""
    mean = _mean(frames)
    m = frames.mask.unsqueeze(-1).to(frames.embeddings.dtype)
    var = (((frames.embeddings - mean.unsqueeze(1)) ** 2) * m).sum(1) / m.sum(1).clamp(min=1.0)
    return torch.cat([mean, var.clamp(min=0).sqrt()], dim=-1)


WIDTH_FACTOR = {"mean": 1, "max": 1, "mean_max": 1, "mean_std": 2}


def pooled_dim(pooling: str, embed_dim: int) -> int:
    """Width of the pooled clip vector for a frame width ``embed_dim``."""
    return WIDTH_FACTOR[pooling] * embed_dim
