"""Contract of every encoder YAML's adapter: shapes, dtype, finiteness, determinism, batch invariance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.pooling import pooled_dim
from evalbench.embed.extract import load_encoder_model
from evalbench.registry import ADAPTERS, POOLINGS
from evalbench.specs.encoder import encoder_files, parse_encoder_file

REPO = Path(__file__).resolve().parents[2]
SPECS = [parse_encoder_file(p) for p in encoder_files(REPO / "encoders")]


def _clips(sr: int, seconds: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = [round(s * sr) for s in seconds]
    wav = torch.zeros(len(n), max(n))
    for i, k in enumerate(n):
        t = torch.arange(k) / sr
        wav[i, :k] = 0.3 * torch.sin(2 * torch.pi * (220 * (i + 1)) * t) + 0.05 * torch.randn(k, generator=gen)
    return wav, torch.tensor(n)


def _embed(enc, wav: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return POOLINGS.get(enc.spec.pooling)(enc.model.encode(wav, lengths)).numpy()


def test_every_adapter_has_an_encoder_yaml() -> None:
    assert {s.adapter for s in SPECS} == set(ADAPTERS.names())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_output_contract(spec) -> None:
    enc = load_encoder_model(spec, torch.device("cpu"))
    sr = enc.model.sample_rate
    wav, lengths = _clips(sr, [1.0, 0.6, 1.3])
    with torch.inference_mode():
        frames = enc.model.encode(wav, lengths)
    b, t, d = frames.embeddings.shape
    assert (b, d) == (3, enc.model.embed_dim)
    assert frames.embeddings.dtype == torch.float32 and frames.mask.dtype == torch.bool
    assert frames.mask.shape == (b, t)
    # longer clips have at least as many valid frames; every clip has some
    valid = frames.mask.sum(1).tolist()
    assert valid[1] < valid[0] < valid[2] and min(valid) > 0
    pooled = _embed(enc, wav, lengths)
    assert pooled.shape == (3, pooled_dim(spec.pooling, enc.model.embed_dim)) == (3, enc.dim)
    assert np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled, _embed(enc, wav, lengths))  # deterministic


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_batch_invariance(spec) -> None:
    """A clip's embedding does not depend on the other clips in its batch (padding is masked)."""
    enc = load_encoder_model(spec, torch.device("cpu"))
    sr = enc.model.sample_rate
    wav, lengths = _clips(sr, [0.7, 1.5, 0.3])
    together = _embed(enc, wav, lengths)
    for i in range(3):
        alone = _embed(enc, wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_sample_rate_is_declared_and_used(spec) -> None:
    enc = load_encoder_model(spec, torch.device("cpu"))
    assert enc.model.sample_rate in (16000, 22050, 32000, 44100, 48000)
    assert 0 < enc.model.hop_seconds < 1
    wav, lengths = _clips(enc.model.sample_rate, [2.0])
    with torch.inference_mode():
        frames = enc.model.encode(wav, lengths)
    # frame count matches 2 s at the declared hop (within the analysis-window margin)
    assert abs(frames.embeddings.shape[1] * enc.model.hop_seconds - 2.0) < 0.1
