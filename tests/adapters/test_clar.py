"""The CLAR adapter: both front ends, 2-D and 1-D ResNet-18, batch invariance, seeding, checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torchvision

from evalbench.adapters.base import encode_per_length
from evalbench.adapters.clar import ClarEncoder, ResNet2d18, build_network
from evalbench.adapters.clar_frontend import ClarFrontEnd, log_frequency_kernel
from evalbench.adapters.options.clar import ClarOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.adapters.resnet1d import ResNet1d18
from evalbench.cli import main
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.fields import parse
from tests.adapters.helpers import clips
from tests.conftest import Env

SR = 16000


def _clips(seconds: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return clips(SR, seconds, 330.0, seed)


def _pooled(enc: ClarEncoder, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return pool_mean(enc.encode(wav, lengths))


@pytest.fixture(scope="module")
def enc2d() -> ClarEncoder:
    return ClarEncoder.from_options(ClarOptions(), None)


@pytest.fixture(scope="module")
def enc1d() -> ClarEncoder:
    return ClarEncoder.from_options(ClarOptions(encoder="resnet1d"), None)


# --- front ends ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["code", "paper"])
def test_frontend_shape_is_3x128x126_for_one_second(kind: str) -> None:
    image = ClarFrontEnd(kind)(torch.randn(2, SR))
    assert image.shape == (2, 3, 128, 126)  # centred frames: 1 + 16000 // 128
    assert torch.isfinite(image).all()
    assert image[:, 1].abs().max() <= math.pi + 1e-6  # channel 1 is a phase


def test_code_frontend_log_bins_levels_and_floors() -> None:
    kernel, freqs = log_frequency_kernel()
    assert kernel.shape == (2048, 256)
    ratio = (8000 / 40) ** (1 / 128)
    assert freqs[0] == pytest.approx(40.0) and freqs[-1] == pytest.approx(40 * ratio**127, rel=1e-5)
    torch.testing.assert_close(freqs[1:] / freqs[:-1], torch.full((127,), ratio), rtol=1e-5, atol=0)
    # a cosine of amplitude 0.5 at bin 64: |X| = 0.5 · sum(hann)/2 = 256 → 20·log10(256) − 20 = 28.16 dB
    # (version 2: the official amplitude_to_DB(x, 20, 1e-5, 1) subtracts 20 dB; version 1 gave 48.16)
    t = torch.arange(SR) / SR
    image = ClarFrontEnd("code")(0.5 * torch.cos(2 * math.pi * float(freqs[64]) * t)[None])
    middle = image[0, 0, :, 40:80]
    assert (middle.argmax(dim=0) == 64).all()
    assert middle[64].mean().item() == pytest.approx(20 * math.log10(256) - 20, abs=0.05)
    silence = ClarFrontEnd("code")(torch.zeros(1, SR))
    assert silence[0, 0].max().item() == pytest.approx(-100.0)  # 20·log10(√1e-8) − 20
    assert silence[0, 2].max().item() == pytest.approx(-60.0)  # 10·log10(1e-5) − 10 (version 1: −100)


def test_code_frontend_floors_on_a_zero_padded_clip() -> None:
    """The official features of a clip zero-padded on the right: silent frames sit exactly at the code's floors."""
    t = torch.arange(SR // 2) / SR
    wav = torch.nn.functional.pad(0.3 * torch.sin(2 * math.pi * 440 * t), (0, SR // 2))[None]  # 0.5 s tone + 0.5 s
    image = ClarFrontEnd("code")(wav)
    # frame j covers samples [128·j − 1024, 128·j + 1024) (centred, reflected at the end): silent from j = 71 on
    silent = image[0, :, :, 71:]
    torch.testing.assert_close(silent[0], torch.full_like(silent[0], -100.0))  # magnitude: √(0 + 1e-8) → −80 − 20
    torch.testing.assert_close(silent[1], torch.zeros_like(silent[1]))  # phase of +0 + 0j
    torch.testing.assert_close(silent[2], torch.full_like(silent[2], -60.0))  # mel: max(0, 1e-5) → −50 − 10
    assert image[0, 2, :, :55].max() > -60.0 + 40  # the tone is well above the mel floor
    # in between, a frame straddling the clip's end is above the floors and never below them
    assert (image[0, 0] >= -100.0 - 1e-4).all() and (image[0, 2] >= -60.0 - 1e-4).all()


def test_paper_frontend_uses_16ms_window_and_power_db() -> None:
    fe = ClarFrontEnd("paper")
    assert (fe.n_fft, fe.hop) == (256, 128)
    # a 1 kHz cosine (amplitude 0.5) lands in FFT bin 16 at 10·log10((0.5·128/2)²) = 30.1 dB
    t = torch.arange(SR) / SR
    image = fe(0.5 * torch.cos(2 * math.pi * 1000 * t)[None])
    assert (image[0, 0, :, 20:100].argmax(dim=0) == 16).all()
    assert image[0, 0, 16, 20:100].mean().item() == pytest.approx(20 * math.log10(32), abs=0.05)


# --- encoders ------------------------------------------------------------------------------------------------


def test_parameter_counts_match_resnet18() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(ResNet2d18()) == 11_689_512 - 513_000  # torchvision ResNet-18 without its 1000-way fc
    assert count(ResNet1d18()) == 11_176_512 - 3 * 64 * 49 + 64 * 7  # same taps; only the stem differs
    assert "fc.weight" not in ResNet2d18().state_dict() and "layer4.1.conv2.weight" in ResNet1d18().state_dict()


def test_resnet2d_frames_mean_is_torchvision_resnet18_output(enc2d: ClarEncoder) -> None:
    wav, lengths = _clips([1.0])
    with torch.inference_mode():
        frames = enc2d.encode(wav, lengths)
        reference = torchvision.models.resnet18(weights=None)
        reference.fc = torch.nn.Identity()
        reference.load_state_dict(enc2d.net.state_dict())
        expected = reference.eval()(enc2d.frontend(wav))
    assert frames.embeddings.shape == (1, 4, 512)  # 126 spectrogram frames / 32
    assert enc2d.hop_seconds == pytest.approx(0.256) and enc2d.embed_dim == 512 and enc2d.sample_rate == SR
    torch.testing.assert_close(pool_mean(frames), expected, rtol=1e-5, atol=1e-5)


def test_resnet1d_frames(enc1d: ClarEncoder) -> None:
    wav, lengths = _clips([1.0, 0.5])
    with torch.inference_mode():
        frames = enc1d.encode(wav, lengths)
    assert frames.embeddings.shape == (2, 500, 512) and frames.mask.sum(1).tolist() == [500, 250]
    assert enc1d.hop_seconds == pytest.approx(0.002)
    assert not frames.embeddings[1, 250:].any()  # frames beyond the clip are zero and masked


@pytest.mark.parametrize("which", ["code", "paper", "resnet1d"])
def test_batch_invariance(which: str, enc2d: ClarEncoder, enc1d: ClarEncoder) -> None:
    enc = {"code": enc2d, "resnet1d": enc1d}.get(which) or ClarEncoder.from_options(ClarOptions(frontend="paper"), None)
    scale = 0.25 if which == "resnet1d" else 1.0  # the 1-D network costs ~10 GFLOP per second of audio
    wav, lengths = _clips([0.7 * scale, 1.5 * scale, 0.3 * scale, 0.7 * scale], seed=3)
    together = _pooled(enc, wav, lengths)
    for i in range(4):
        alone = _pooled(enc, wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
        torch.testing.assert_close(together[i], alone[0], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0], together[1], atol=1e-3)
    torch.testing.assert_close(together, _pooled(enc, wav, lengths), rtol=0, atol=0)  # deterministic


def test_per_length_groups_and_short_clips() -> None:
    calls = []

    def run(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return x[:, :, None].repeat(1, 1, 2)[:, ::100]  # one 2-d frame per 100 samples

    frames = encode_per_length(torch.ones(4, 1000), torch.tensor([1000, 300, 1000, 50]), run, min_samples=200)
    assert sorted(calls) == [(1, 200), (1, 300), (2, 1000)]  # 50 samples zero-padded to the minimum
    assert frames.mask.sum(1).tolist() == [10, 3, 10, 2] and frames.embeddings.shape == (4, 10, 2)
    enc = ClarEncoder.from_options(ClarOptions(), None)
    with torch.inference_mode():
        tiny = enc.encode(torch.randn(2, 4000), torch.tensor([4000, 100]))
    assert tiny.mask.sum(1).tolist() == [1, 1] and torch.isfinite(tiny.embeddings).all()


# --- seeding, eval mode, checkpoints -------------------------------------------------------------------------


def test_seeded_random_twin(enc2d: ClarEncoder) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = ClarEncoder.from_options(ClarOptions(seed=0), None)
    assert torch.equal(torch.rand(3), expected)  # building a twin leaves the global RNG alone
    for (k, a), b in zip(enc2d.net.state_dict().items(), again.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    other = ClarEncoder.from_options(ClarOptions(seed=1), None)
    assert not torch.equal(other.net.conv1.weight, enc2d.net.conv1.weight)
    wav, lengths = _clips([1.0])
    assert not torch.allclose(_pooled(other, wav, lengths), _pooled(enc2d, wav, lengths), atol=1e-3)


def test_always_eval_mode(enc2d: ClarEncoder) -> None:
    enc2d.train()
    assert not enc2d.training and not enc2d.net.bn1.training


@pytest.mark.parametrize("encoder", ["resnet2d", "resnet1d"])
def test_export_and_reload_give_identical_embeddings(encoder: str, tmp_path: Path) -> None:
    src = ClarEncoder.from_options(ClarOptions(encoder=encoder, seed=7), None)
    with torch.no_grad():  # non-trivial BN statistics, so that buffers are really round-tripped
        for name, t in src.net.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
    src.export_checkpoint(tmp_path / "clar.pth")
    torch.save(src.net.state_dict(), tmp_path / "bare.pth")
    wav, lengths = _clips([0.3, 0.2])
    expected = _pooled(src, wav, lengths)
    for name in ("clar.pth", "bare.pth"):
        loaded = ClarEncoder.from_options(ClarOptions(encoder=encoder, seed=0), tmp_path / name)
        assert not loaded.training
        torch.testing.assert_close(_pooled(loaded, wav, lengths), expected, rtol=0, atol=0)


def test_wrong_architecture_lists_keys(tmp_path: Path) -> None:
    torch.save(build_network("resnet1d").state_dict(), tmp_path / "w1d.pth")
    with pytest.raises(EvalbenchError) as err:
        ClarEncoder.from_options(ClarOptions(encoder="resnet2d"), tmp_path / "w1d.pth")
    msg = str(err.value)
    assert str(tmp_path / "w1d.pth") in msg and "clar" in msg and len(msg.splitlines()) == 1
    assert "conv1.weight (64, 1, 7) (expected (64, 3, 7, 7))" in msg
    state = build_network("resnet2d").state_dict()
    state["fc.weight"] = torch.zeros(1000, 512)
    del state["layer4.1.bn2.running_mean"]
    torch.save(state, tmp_path / "w2d.pth")
    with pytest.raises(
        EvalbenchError, match=r"missing keys: layer4\.1\.bn2\.running_mean; unexpected keys: fc\.weight"
    ):
        ClarEncoder.from_options(ClarOptions(), tmp_path / "w2d.pth")


def test_options_are_validated() -> None:
    assert parse(ClarOptions, {}, "x.yaml") == ClarOptions(frontend="code", encoder="resnet2d", seed=0)
    with pytest.raises(SpecError, match=r"x\.yaml: frontend: 'spectrogram' is not one of 'code', 'paper'"):
        parse(ClarOptions, {"frontend": "spectrogram"}, "x.yaml")
    with pytest.raises(SpecError, match="seed: must be non-negative"):
        parse(ClarOptions, {"seed": -1}, "x.yaml")


def test_end_to_end_smoke(env: Env) -> None:
    assert main(env.cli("run", "--encoder", "clar-random", "--tasks", "synth_detect", "--seeds", "1")) == 0
    rec = json.loads((env.results / "clar-random" / "synth_detect.linear.json").read_text())
    assert rec["encoder"]["embedding_dim"] == 512
    assert 0.0 <= rec["scores"]["test"]["accuracy"]["mean"] <= 1.0
