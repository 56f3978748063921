"""The CLMR adapter: SampleCNN shapes, chunking, batch invariance, seeding, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from evalbench.adapters.clmr import ClmrEncoder, SampleCNN, chunk_counts
from evalbench.adapters.options.clmr import CHUNK_SAMPLES, ClmrOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.cli import main
from evalbench.errors import EvalbenchError
from tests.adapters.helpers import clips
from tests.conftest import Env

SR = 22050


@pytest.fixture(scope="module")
def enc() -> ClmrEncoder:
    return ClmrEncoder.from_options(ClmrOptions(), None)


def _clips(seconds: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return clips(SR, seconds, 220.0, seed)


def test_samplecnn_layout_and_output() -> None:
    net = SampleCNN().eval()
    assert sum(p.numel() for p in net.parameters()) == 2_368_512
    keys = net.state_dict()
    assert keys["sequential.0.0.weight"].shape == (128, 1, 3) and keys["sequential.9.0.weight"].shape == (512, 256, 3)
    assert keys["sequential.10.0.weight"].shape == (512, 512, 3) and "sequential.11.0.weight" not in keys
    with torch.inference_mode():
        assert net(torch.randn(2, CHUNK_SAMPLES)).shape == (2, 512)  # 59,049 = 3^10 samples → length 1
    with pytest.raises(ValueError, match="59049-sample chunks"):
        net(torch.randn(1, 1000))


@pytest.mark.parametrize("length", [0, 1, 2, 3, 100, 9_841, 22_050, 44_100, CHUNK_SAMPLES - 1, CHUNK_SAMPLES])
def test_the_prefix_forward_equals_the_full_forward_of_a_zero_padded_chunk(length: int) -> None:
    """Only what the audio reaches is computed; the rest is the all-zero chunk's activation (exact up to rounding)."""
    torch.manual_seed(1)
    net = SampleCNN()
    for m in net.modules():  # BatchNorm statistics far from the identity, as after pretraining
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    x = torch.randn(3, CHUNK_SAMPLES) * (torch.arange(CHUNK_SAMPLES) < length)
    with torch.inference_mode():
        full = net(x)
        prefix = net.forward_prefix(x, length, net.zero_activations())
    torch.testing.assert_close(prefix, full, rtol=1e-5, atol=1e-5 * float(full.abs().max()))


def test_short_clips_take_the_prefix_path_and_match_one_full_chunk_each(enc: ClmrEncoder) -> None:
    wav, lengths = _clips([0.3, 1.0, 2.0, 3.0, 6.0])
    with torch.inference_mode():
        out = enc.encode(wav, lengths)
        for i, n in enumerate(lengths.tolist()):
            k = max(1, n // CHUNK_SAMPLES)
            own = torch.nn.functional.pad(wav[i, :n], (0, max(0, k * CHUNK_SAMPLES - n)))[: k * CHUNK_SAMPLES]
            ref = enc.net(own.reshape(k, CHUNK_SAMPLES))
            torch.testing.assert_close(out.embeddings[i, :k], ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_chunk_counts() -> None:
    seconds = torch.tensor([0.5, 2.0, 3.0, 6.0, 30.0])
    assert chunk_counts((seconds * SR).long()).tolist() == [1, 1, 1, 2, 11]  # whole chunks; tails dropped
    assert chunk_counts(torch.tensor([CHUNK_SAMPLES - 1, CHUNK_SAMPLES, 2 * CHUNK_SAMPLES - 1, 0])).tolist() == [
        1,
        1,
        1,
        1,
    ]


def test_frames_are_chunks_and_mean_is_chunk_average(enc: ClmrEncoder) -> None:
    wav, lengths = _clips([3.0, 6.0, 1.0])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        direct = enc.net(wav[1, : 2 * CHUNK_SAMPLES].reshape(2, CHUNK_SAMPLES))
        short = torch.nn.functional.pad(wav[2, :SR], (0, CHUNK_SAMPLES - SR))
        padded = enc.net(short[None])[0]
    assert frames.embeddings.shape == (3, 2, 512) and frames.mask.tolist() == [
        [True, False],
        [True, True],
        [True, False],
    ]
    assert (enc.sample_rate, enc.embed_dim) == (22050, 512) and enc.hop_seconds == pytest.approx(59049 / 22050)
    torch.testing.assert_close(frames.embeddings[1], direct)
    torch.testing.assert_close(pool_mean(frames)[1], direct.mean(0))  # CLMR's chunk averaging
    torch.testing.assert_close(frames.embeddings[2, 0], padded)  # a 1 s clip is zero-padded to one chunk
    assert not frames.embeddings[0, 1].any()


def test_batch_invariance_and_determinism(enc: ClmrEncoder) -> None:
    wav, lengths = _clips([0.7, 5.5, 2.9], seed=1)
    wav[0, lengths[0] :] = 1.0  # garbage beyond a clip's length must not leak into its padded chunk
    with torch.inference_mode():
        together = pool_mean(enc.encode(wav, lengths))
        again = pool_mean(enc.encode(wav, lengths))
        for i in range(3):
            alone = pool_mean(enc.encode(wav[i : i + 1, : lengths[i]], lengths[i : i + 1]))
            torch.testing.assert_close(together[i], alone[0], rtol=1e-4, atol=1e-4)
    assert torch.equal(together, again)
    assert (together[0] - together[2]).norm() > 0.01 * together[0].norm()  # the random twin tells clips apart


def test_seeded_random_twin_and_eval_mode(enc: ClmrEncoder) -> None:
    same = ClmrEncoder.from_options(ClmrOptions(seed=0), None)
    other = ClmrEncoder.from_options(ClmrOptions(seed=1), None)
    assert torch.equal(same.net.sequential[0][0].weight, enc.net.sequential[0][0].weight)
    assert not torch.equal(other.net.sequential[0][0].weight, enc.net.sequential[0][0].weight)
    other.train()
    assert not other.training and not other.net.sequential[3][1].training


def test_export_and_reload(enc: ClmrEncoder, tmp_path: Path) -> None:
    src = ClmrEncoder.from_options(ClmrOptions(seed=3), None)
    with torch.no_grad():
        for name, t in src.net.state_dict().items():
            if name.endswith("running_mean"):
                t.normal_(0, 0.1)
    src.export_checkpoint(tmp_path / "clmr.pth")
    torch.save({f"module.{k}": v for k, v in src.net.state_dict().items()}, tmp_path / "bare.pth")
    wav, lengths = _clips([3.0])
    with torch.inference_mode():
        expected = pool_mean(src.encode(wav, lengths))
        for name in ("clmr.pth", "bare.pth"):
            loaded = ClmrEncoder.from_options(ClmrOptions(), tmp_path / name)
            torch.testing.assert_close(pool_mean(loaded.encode(wav, lengths)), expected, rtol=0, atol=0)
            assert not torch.equal(loaded.net.sequential[0][0].weight, enc.net.sequential[0][0].weight)


def test_wrong_keys_are_listed(tmp_path: Path) -> None:
    state = SampleCNN().state_dict()
    state["projector.0.weight"] = torch.zeros(512, 512)
    del state["sequential.10.1.running_var"]
    state["sequential.0.0.weight"] = torch.zeros(128, 1, 5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(EvalbenchError) as err:
        ClmrEncoder.from_options(ClmrOptions(), tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing keys: sequential.10.1.running_var" in msg and "unexpected keys: projector.0.weight" in msg
    assert "sequential.0.0.weight (128, 1, 5) (expected (128, 1, 3))" in msg and "clmr" in msg


def test_end_to_end_smoke(env: Env) -> None:
    assert main(env.cli("run", "--encoder", "clmr-random", "--tasks", "synth_detect", "--seeds", "1")) == 0
    rec = json.loads((env.results / "clmr-random" / "synth_detect.linear.json").read_text())
    assert rec["encoder"]["embedding_dim"] == 512
    assert 0.0 <= rec["scores"]["test"]["accuracy"]["mean"] <= 1.0
