"""Scalar log-mel normalisation fitted on valid frames only."""

from __future__ import annotations

import torch

from evalbench.adapters.normalize import LogMelNormalizer


def test_fit_uses_valid_frames_only() -> None:
    logmel = lambda wav: wav.reshape(1, 1, -1)  # noqa: E731  identity "front end": one band, one frame per sample
    clips = [torch.tensor([1.0, 3.0, 100.0]), torch.tensor([5.0, 7.0])]
    norm = LogMelNormalizer()
    norm.fit(clips, logmel, n_valid=lambda n, t: min(t, 2))  # the 100 is "padding"
    values = torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=torch.float64)
    assert abs(norm.mean - 4.0) < 1e-12 and abs(norm.std - float(values.std(unbiased=False))) < 1e-9
    out = norm(torch.tensor([4.0]))
    assert float(out) == 0.0
    other = LogMelNormalizer()
    other.load(norm.state())
    assert other.state() == norm.state()
