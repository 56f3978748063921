"""The encoder adapter protocol.

An adapter wraps one family of models behind a small interface (the X-ARES /
HEAR style, PROTOCOL.md §5): it declares ``sample_rate`` (the rate it expects;
the pipeline resamples), ``embed_dim`` (frame embedding width) and
``hop_seconds`` (frame hop), and maps a batch of waveforms plus their valid
lengths to frame embeddings ``(B, T, D)`` with a boolean validity mask
``(B, T)``.  Pooling to one vector per clip is a separate, named step
(:mod:`evalbench.adapters.pooling`) that ignores invalid frames, which fixes the
reference harness's padding pollution (PROTOCOL.md §4, flaw 6).

Adapters whose input normalisation is fitted on the downstream training audio
(BYOL-A, PROTOCOL.md §2.1 item 3) set ``needs_fit`` and implement :meth:`fit`;
the fitted state enters the embedding-cache key via :meth:`fitted_state`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class Frames:
    """Frame embeddings of a batch.

    Attributes:
        embeddings: ``(B, T, D)`` float32 frame embeddings.
        mask: ``(B, T)`` bool, True where the frame comes from real (unpadded) audio.
    """

    embeddings: torch.Tensor
    mask: torch.Tensor


class Encoder(nn.Module):
    """Base class of encoder adapters.

    Subclasses set the class attributes, implement :meth:`from_options` and
    :meth:`encode`, and bump ``VERSION`` whenever a code change can alter their
    outputs (it is part of the embedding-cache key).
    """

    VERSION: ClassVar[int] = 1
    needs_fit: ClassVar[bool] = False
    sample_rate: int
    embed_dim: int
    hop_seconds: float

    @classmethod
    def from_options(cls, options: Any, checkpoint: Path | None) -> Encoder:
        """Build the adapter from its typed options and an optional checkpoint path."""
        raise NotImplementedError

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        """Encode a batch.

        Args:
            waveforms: ``(B, N)`` float32 mono audio at :attr:`sample_rate`,
                zero-padded on the right beyond each clip's length.
            lengths: ``(B,)`` int64 number of valid samples per clip.

        Returns:
            Frame embeddings and validity mask.
        """
        raise NotImplementedError

    def fit(self, clips: Iterable[torch.Tensor]) -> None:
        """Fit input statistics on training audio (only if ``needs_fit``)."""

    def fitted_state(self) -> dict[str, Any]:
        """JSON-able fitted state (e.g. normalisation statistics) for the cache key."""
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore a state produced by :meth:`fitted_state` (cached fits skip re-reading audio)."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} has no fitted state to load")


def valid_frames(lengths: torch.Tensor, n_frames: int, hop: int, win: int) -> torch.Tensor:
    """Mask of centred STFT frames whose window lies inside the real signal.

    With centred frames (frame t spans ``t*hop - win/2 .. t*hop + win/2``), a frame
    is valid when its window ends at or before the clip's last real sample, so
    its values do not depend on what follows the clip (zero padding or a longer
    clip): encoding is batch-invariant.  The first frame is always kept.

    Args:
        lengths: ``(B,)`` valid samples per clip.
        n_frames: Number of frames T computed for the padded batch.
        hop: Hop in samples.
        win: Window (FFT) length in samples.

    Returns:
        ``(B, T)`` bool mask.
    """
    count = torch.div(lengths - win // 2, hop, rounding_mode="floor") + 1
    count = count.clamp(min=1, max=n_frames)
    return torch.arange(n_frames, device=lengths.device)[None, :] < count[:, None]
