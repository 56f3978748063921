"""Contract of every encoder YAML and adapter: shapes, dtype, finiteness, determinism, batch invariance, rates.

Encoder YAMLs that reference a checkpoint file (official weights or our own
pretraining output, absent from the repository) are exercised by building a
random-initialised instance from the same options, exporting its weights with
the adapter's ``export_checkpoint`` and loading them back through the spec:
this also checks that every adapter reads the format it writes.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.adapters.pooling import pooled_dim
from evalbench.embed.extract import LoadedEncoder, load_encoder_model
from evalbench.registry import ADAPTERS, POOLINGS
from evalbench.specs.encoder import CheckpointSpec, encoder_files, parse_encoder_file
from tests.adapters.helpers import clips

REPO = Path(__file__).resolve().parents[2]
SPECS = [parse_encoder_file(p) for p in encoder_files(REPO / "encoders")]
DYNAMIC_ADAPTERS = {"hear"}  # named on the command line (hear:<module>), covered by tests/adapters/test_hear.py


@cache
def loaded(name: str, tmp: str) -> LoadedEncoder:
    spec = next(s for s in SPECS if s.name == name)
    if spec.checkpoint is not None:
        random_init = ADAPTERS.get(spec.adapter).from_options(spec.typed_options(), None)
        path = Path(tmp) / f"{name}.pth"
        random_init.export_checkpoint(path)
        spec = dataclasses.replace(spec, checkpoint=CheckpointSpec(path=str(path)))
    return load_encoder_model(spec, torch.device("cpu"))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("checkpoints"))


def _fit_if_needed(enc: LoadedEncoder) -> None:
    if enc.model.needs_fit and not enc.model.fitted_state():
        wav, lengths = clips(enc.model.sample_rate, [1.0, 0.5])
        enc.model.fit(w[:n] for w, n in zip(wav, lengths.tolist(), strict=True))


def _embed(enc: LoadedEncoder, wav: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return POOLINGS.get(enc.spec.pooling)(enc.model.encode(wav, lengths)).numpy()


def test_every_adapter_has_an_encoder_yaml() -> None:
    assert set(ADAPTERS.names()) - DYNAMIC_ADAPTERS <= {s.adapter for s in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_output_contract(spec, ckpt_dir: str) -> None:
    enc = loaded(spec.name, ckpt_dir)
    _fit_if_needed(enc)
    sr = enc.model.sample_rate
    wav, lengths = clips(sr, [1.0, 0.6, 1.3])
    with torch.inference_mode():
        frames = enc.model.encode(wav, lengths)
    b, t, d = frames.embeddings.shape
    assert (b, d) == (3, enc.model.embed_dim)
    assert frames.embeddings.dtype == torch.float32 and frames.mask.dtype == torch.bool
    assert frames.mask.shape == (b, t) and bool(frames.mask.any(dim=1).all())
    pooled = _embed(enc, wav, lengths)
    assert pooled.shape == (3, pooled_dim(spec.pooling, enc.model.embed_dim)) == (3, enc.dim)
    assert np.isfinite(pooled).all()
    np.testing.assert_array_equal(pooled, _embed(enc, wav, lengths))  # deterministic
    assert not np.allclose(pooled[0], pooled[1])  # different clips, different embeddings


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_batch_invariance(spec, ckpt_dir: str) -> None:
    """A clip's embedding does not depend on the other clips in its batch (padding is masked)."""
    enc = loaded(spec.name, ckpt_dir)
    _fit_if_needed(enc)
    wav, lengths = clips(enc.model.sample_rate, [0.7, 1.5, 0.3])
    together = _embed(enc, wav, lengths)
    for i in range(3):
        alone = _embed(enc, wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_sample_rate_is_declared(spec, ckpt_dir: str) -> None:
    enc = loaded(spec.name, ckpt_dir)
    assert enc.model.sample_rate in (16000, 22050, 32000, 44100, 48000)
    assert 0 < enc.model.hop_seconds <= 5.0


@pytest.mark.parametrize("spec", [s for s in SPECS if s.checkpoint is not None], ids=lambda s: s.name)
def test_exported_checkpoints_reload_exactly(spec, ckpt_dir: str) -> None:
    """The adapter reads back what it writes: same weights, weights-only loadable."""
    enc = loaded(spec.name, ckpt_dir)
    state, _ = load_checkpoint(Path(ckpt_dir) / f"{spec.name}.pth")
    assert state, "exported checkpoint holds weights"
    again = ADAPTERS.get(spec.adapter).from_options(spec.typed_options(), Path(ckpt_dir) / f"{spec.name}.pth")
    for (k, a), (_, b) in zip(sorted(enc.model.state_dict().items()), sorted(again.state_dict().items()), strict=True):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_audio_at_another_rate_is_resampled_to_the_declared_one(spec, ckpt_dir: str, tmp_path: Path) -> None:
    """A 44.1 kHz file decoded through the pipeline embeds like the same sound made at the encoder's rate."""
    import soundfile as sf

    from evalbench.data.audio import Resampler, load_clip

    enc = loaded(spec.name, ckpt_dir)
    _fit_if_needed(enc)
    sr = enc.model.sample_rate

    def tone(rate: int) -> np.ndarray:
        t = np.arange(rate) / rate
        return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)

    sf.write(tmp_path / "tone.wav", tone(44100), 44100, subtype="FLOAT")
    wav, valid = load_clip(tmp_path / "tone.wav", "tone.wav", 1.0, sr, "start", 0, Resampler())
    assert wav.shape == (sr,) and valid == sr
    via_pipeline = _embed(enc, torch.from_numpy(wav)[None], torch.tensor([valid]))[0]
    direct = _embed(enc, torch.from_numpy(tone(sr))[None], torch.tensor([sr]))[0]
    assert np.linalg.norm(via_pipeline - direct) < 0.02 * np.linalg.norm(direct)
