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
import torchaudio

from evalbench.adapters.base import Encoder, Frames
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


# The batch-invariance probe: clips of very different levels and lengths, so that per-batch
# normalisation (a dB floor or scale relative to the loudest clip in the batch, batch statistics)
# and leakage of padding into valid frames both change some clip's embedding.
MIXED_CLIPS = (  # (description, seconds); the loud clip is the longest, so every other clip is padded
    ("near-silent noise (1e-4)", 1.0),
    ("tone with 0.8 s of exact zeros", 1.2),
    ("loud tone (peak 0.99)", 1.5),
    ("short tone", 0.3),
    ("quiet tone", 0.7),
)
# Of the clip's embedding scale (max |value| of its embedding alone): float32 rounding between batch shapes
# stays near 1e-6 of it for every adapter (measured), while per-batch normalisation moves a quiet clip by ~20 %.
BATCH_INVARIANCE_RTOL = 1e-4


def mixed_level_batch(sr: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(waveforms (5, N), lengths (5,))`` of :data:`MIXED_CLIPS`, zero-padded on the right."""
    gen = torch.Generator().manual_seed(seed)
    n = [round(s * sr) for _, s in MIXED_CLIPS]

    def tone(k: int, freq: float, amp: float) -> torch.Tensor:
        t = torch.arange(k) / sr
        return amp * (torch.sin(2 * torch.pi * freq * t) + 0.1 * torch.randn(k, generator=gen))

    silent = tone(n[1], 330.0, 0.3)
    silent[round(0.2 * sr) : round(1.0 * sr)] = 0.0  # digital silence in the middle, sound on both sides
    loud = tone(n[2], 220.0, 1.0)
    parts = [
        1e-4 * torch.randn(n[0], generator=gen),
        silent,
        0.99 * loud / loud.abs().max(),
        tone(n[3], 880.0, 0.1),
        tone(n[4], 550.0, 0.03),
    ]
    wav = torch.zeros(len(n), max(n))
    for i, x in enumerate(parts):
        wav[i, : n[i]] = x
    return wav, torch.tensor(n)


def batch_invariance_violations(model: Encoder, pooling: str, rtol: float = BATCH_INVARIANCE_RTOL) -> list[str]:
    """Clips of :func:`mixed_level_batch` whose pooled embedding in the batch differs from it alone.

    Each clip is embedded alone (trimmed to its valid length) and in the mixed
    batch; the difference is measured as max |batched - alone| against ``rtol``
    times the clip's own embedding scale (max |alone|), so a near-silent clip
    whose embedding is small is held to the same relative standard as a loud one.

    Returns:
        One line per violating clip (empty if the adapter is batch-invariant).
    """
    pool = POOLINGS.get(pooling)
    wav, lengths = mixed_level_batch(model.sample_rate)
    with torch.inference_mode():
        together = pool(model.encode(wav, lengths)).numpy()
        problems = []
        for i, (what, _) in enumerate(MIXED_CLIPS):
            alone = pool(model.encode(wav[i : i + 1, : lengths[i]], lengths[i : i + 1])).numpy()[0]
            scale = float(np.abs(alone).max())
            diff = float(np.abs(together[i] - alone).max())
            if not diff <= rtol * scale:  # also catches NaN
                problems.append(f"clip {i} ({what}): max |batched - alone| = {diff:.3g} > {rtol:g} x {scale:.3g}")
    return problems


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_batch_invariance(spec, ckpt_dir: str) -> None:
    """A clip's embedding does not depend on the other clips in its batch (padding, levels, lengths)."""
    enc = loaded(spec.name, ckpt_dir)
    _fit_if_needed(enc)
    problems = batch_invariance_violations(enc.model, enc.spec.pooling)
    assert not problems, f"{spec.name} is not batch-invariant:\n" + "\n".join(problems)


class _ToyMFCC(Encoder):
    """A toy adapter: torchaudio MFCC frames at 16 kHz, keeping only frames whose window lies inside the clip.

    With ``log_mels=False`` (torchaudio's default) the mel power goes through
    ``AmplitudeToDB(top_db=80)``, whose floor is 80 dB below the loudest value of
    the whole *batch*: a per-batch normalisation that the contract must catch.
    With ``log_mels=True`` it is an element-wise log, and the adapter is well behaved.
    """

    sample_rate = 16000
    embed_dim = 40
    hop_seconds = 200 / 16000

    def __init__(self, log_mels: bool) -> None:
        super().__init__()
        self.mfcc = torchaudio.transforms.MFCC(self.sample_rate, log_mels=log_mels, melkwargs={"n_mels": 64})

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        frames = self.mfcc(waveforms).transpose(1, 2)  # (B, T, n_mfcc); n_fft 400, hop 200, centred
        inside = (torch.div(lengths - 200, 200, rounding_mode="floor") + 1).clamp(min=1)  # frame t: t·200 ± 200
        return Frames(frames, torch.arange(frames.shape[1])[None, :] < inside[:, None])


def test_batch_invariance_check_catches_per_batch_normalisation() -> None:
    """The contract's check fails an adapter whose dB floor follows the loudest clip of the batch."""
    assert batch_invariance_violations(_ToyMFCC(log_mels=True).eval(), "mean") == []
    problems = batch_invariance_violations(_ToyMFCC(log_mels=False).eval(), "mean")
    assert any("near-silent" in p for p in problems), problems


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
