"""Shared test input for adapters: a right-zero-padded batch of distinct tone-plus-noise clips."""

from __future__ import annotations

import torch


def clips(sr: int, seconds: list[float], freq: float = 220.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(waveforms (B, N), lengths (B,))``: clip i is a tone at ``freq·(i+1)`` Hz plus noise, zero-padded."""
    gen = torch.Generator().manual_seed(seed)
    n = [round(s * sr) for s in seconds]
    wav = torch.zeros(len(n), max(n))
    for i, k in enumerate(n):
        t = torch.arange(k) / sr
        wav[i, :k] = 0.3 * torch.sin(2 * torch.pi * freq * (i + 1) * t) + 0.05 * torch.randn(k, generator=gen)
    return wav, torch.tensor(n)
