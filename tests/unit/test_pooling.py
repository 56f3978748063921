"""Masked pooling ignores padded frames."""

from __future__ import annotations

import torch

from evalbench.adapters.base import Frames, valid_frames
from evalbench.adapters.pooling import pool_max, pool_mean, pool_mean_max, pool_mean_std


def test_pooling_ignores_masked_frames() -> None:
    x = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, -100.0]]])
    frames = Frames(x, torch.tensor([[True, True, False]]))
    torch.testing.assert_close(pool_mean(frames), torch.tensor([[2.0, 4.0]]))
    torch.testing.assert_close(pool_max(frames), torch.tensor([[3.0, 6.0]]))
    torch.testing.assert_close(pool_mean_max(frames), torch.tensor([[5.0, 10.0]]))
    torch.testing.assert_close(pool_mean_std(frames), torch.tensor([[2.0, 4.0, 1.0, 2.0]]))


def test_valid_frames_counts_every_frame_of_the_clip_framed_alone() -> None:
    # hop 160, window 1024: a clip of L samples framed alone has 1 + max(L, 1024) // 160 centred frames,
    # the last ones reaching into the reflection of its own end (true audio, not padding)
    mask = valid_frames(torch.tensor([16000, 1000, 10]), n_frames=101, hop=160, win=1024)
    assert mask.sum(1).tolist() == [101, 1 + 1024 // 160, 1 + 1024 // 160]
