"""The supervised-baseline adapter: five networks, their front ends, frames, masks, Kumar's key layout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import torch

from evalbench.adapters.options.supervised import SupervisedOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.adapters.supervised import (
    KumarFrontEnd,
    ReportFrontEnd,
    SupervisedEncoder,
    frames_from_samples,
)
from evalbench.adapters.supervised_nets import ARCHITECTURES, CrnnNet, KumarNet, LstmNet
from evalbench.cli import main
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.fields import parse
from tests.adapters.helpers import clips
from tests.conftest import Env

SR = 44100
DIMS = {"cnn": 326, "vgg": 128, "lstm": 64, "crnn": 64, "kumar": 1024}


@cache
def encoder(arch: str, seed: int = 0) -> SupervisedEncoder:
    return SupervisedEncoder.from_options(SupervisedOptions(arch=arch, seed=seed), None)


def _clips(seconds: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return clips(SR, seconds, 220.0, seed)


def _pooled(enc: SupervisedEncoder, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return pool_mean(enc.encode(wav, lengths))


# --- front ends ----------------------------------------------------------------------------------------------


def test_front_end_shapes_and_frame_conversion() -> None:
    assert frames_from_samples(torch.tensor([220_500, 44_100, 255, 256])).tolist() == [862, 173, 1, 2]
    assert ReportFrontEnd()(torch.randn(1, 220_500)).shape == (1, 1, 64, 862)  # the report's [1, 64, 862]
    kumar = KumarFrontEnd()
    five = kumar(0.1 * torch.randn(1, 220_500))
    assert five.shape == (1, 1, 431, 128)  # 1 + 220,500 // 512 frames, time × mel
    assert five.min() >= five.max() - 80.0 - 1e-4  # librosa power_to_db top_db = 80
    one = kumar(0.1 * torch.randn(1, SR))
    assert one.shape == (1, 1, 128, 128) and not one[0, 0, 87:].any() and one[0, 0, :87].abs().min() > 0


# --- networks and frames -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(DIMS))
def test_dims_and_batch_invariance(arch: str) -> None:
    enc = encoder(arch)
    assert (enc.embed_dim, enc.sample_rate) == (DIMS[arch], SR) and not enc.training
    wav, lengths = _clips([0.7, 1.5, 0.3, 0.05], seed=2)
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
    assert frames.embeddings.shape[::2] == (4, DIMS[arch]) and frames.mask[:, 0].all()
    together = _pooled(enc, wav, lengths)
    for i in range(4):
        alone = _pooled(enc, wav[i : i + 1, : lengths[i]], lengths[i : i + 1])
        torch.testing.assert_close(together[i], alone[0], rtol=1e-4, atol=1e-4)
    assert torch.equal(together, _pooled(enc, wav, lengths))  # deterministic
    diff = (together[0] - together[1]).norm() / together[0].norm()
    assert diff > 0.01  # the random twin still tells clips apart


def test_cnn_windows_of_five_seconds() -> None:
    enc = encoder("cnn")
    assert enc.hop_seconds == 5.0
    wav, lengths = _clips([5.5, 1.0, 5.0])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        windows = torch.zeros(2, 220_500)
        windows[0], windows[1, :22_050] = wav[0, :220_500], wav[0, 220_500:242_550]
        expected = enc.net.embed(enc.frontend(windows))
    assert frames.mask.tolist() == [[True, True], [True, False], [True, False]]
    torch.testing.assert_close(frames.embeddings[0], expected)  # the tail window is zero-padded to 5 s
    assert (frames.embeddings[frames.mask] >= 0).all()  # the 326-d layer follows a ReLU


def test_vgg_frames_mean_is_global_average_pool() -> None:
    enc = encoder("vgg")
    wav, lengths = _clips([1.0])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        expected = enc.net.features(enc.frontend(wav)).mean(dim=(2, 3))
    assert frames.embeddings.shape == (1, 10, 128)  # 173 log-mel frames // 16
    torch.testing.assert_close(pool_mean(frames), expected)


def test_lstm_uses_the_last_valid_frame() -> None:
    enc = encoder("lstm")
    wav, lengths = _clips([1.0, 0.4])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        trimmed = enc.net.sequence(enc.frontend(wav[1:, :17_640]))[0, -1]  # run on the trimmed clip
        spec = enc.frontend(wav[1:, :17_640])
        garbage = torch.cat([spec, torch.full((1, 1, 64, 30), 5.0)], dim=-1)  # padded steps after the clip
        net_level = enc.net.embed(garbage, frames_from_samples(torch.tensor([17_640])))
    assert frames.embeddings.shape == (2, 1, 64) and frames.mask.all()  # one clip-level frame each
    assert int(frames_from_samples(torch.tensor([17_640]))[0]) == 69  # ⌊len / 256⌋ + 1 valid steps
    torch.testing.assert_close(pool_mean(frames)[1], trimmed)
    torch.testing.assert_close(net_level[0], trimmed)


def test_crnn_attention_masks_padded_steps() -> None:
    torch.manual_seed(0)
    net = CrnnNet().eval()
    spec = torch.randn(1, 1, 64, 100)
    with torch.inference_mode():
        garbage = torch.cat([spec, torch.full((1, 1, 64, 60), 9.0)], dim=-1)
        n_steps = int(CrnnNet.conv_frames(torch.tensor(100)))  # (100 − 20) // 8 + 1
        mask = torch.arange(int(CrnnNet.conv_frames(torch.tensor(160))))[None] < n_steps
        weights = net.attention_weights(net.sequence(garbage), mask)
        torch.testing.assert_close(net.embed(garbage, mask), net.embed(spec))
    assert n_steps == 11 and weights[0, n_steps:].sum() == 0 and weights.sum().item() == pytest.approx(1.0)
    enc = encoder("crnn")
    wav, lengths = _clips([1.0])
    with torch.inference_mode():
        torch.testing.assert_close(pool_mean(enc.encode(wav, lengths)), enc.net.embed(enc.frontend(wav)))


def test_kumar_layer18_frames_and_official_key_layout() -> None:
    enc = encoder("kumar")
    wav, lengths = _clips([5.0, 1.0])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
        expected = enc.net.embed(enc.frontend(wav[:1]))
    assert frames.mask.sum(1).tolist() == [5, 1]  # 431 frames → layer 18 is [1024, 5, 1]; 1 s is padded to 128
    torch.testing.assert_close(pool_mean(frames)[0], expected[0])
    prefixes = {k.rsplit(".", 1)[0] for k in KumarNet().state_dict()}
    conv = [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 18]
    assert prefixes == {f"layer{i}.{j}" for i in conv for j in (0, 1)} | {"layer19.0"}
    state = KumarNet().state_dict()
    assert state["layer18.0.weight"].shape == (1024, 512, 2, 2) and state["layer19.0.weight"].shape == (527, 1024, 1, 1)
    assert "layer1.0.bias" in state and "layer1.1.running_var" in state


def test_parameter_counts() -> None:
    counts = {a: sum(p.numel() for p in cls().parameters()) for a, cls in ARCHITECTURES.items() if a != "cnn"}
    assert counts == {"vgg": 300_162, "lstm": 36_530, "crnn": 91_995, "kumar": 5_002_047}
    assert sum(p.numel() for p in encoder("cnn").net.parameters()) == 110_983_506  # 20,904 × 5,226 dominates


# --- seeding, checkpoints, options ---------------------------------------------------------------------------


def test_seeds_differ() -> None:
    a, b = encoder("kumar"), encoder("kumar", seed=1)
    assert not torch.equal(a.net.layer1[0].weight, b.net.layer1[0].weight)
    wav, lengths = _clips([1.0])
    assert not torch.allclose(_pooled(a, wav, lengths), _pooled(b, wav, lengths), rtol=1e-2)


@pytest.mark.parametrize("arch", ["kumar", "lstm", "crnn", "vgg"])
def test_export_and_reload(arch: str, tmp_path: Path) -> None:
    src = SupervisedEncoder.from_options(SupervisedOptions(arch=arch, seed=5), None)
    src.export_checkpoint(tmp_path / "w.pth")
    loaded = SupervisedEncoder.from_options(SupervisedOptions(arch=arch), tmp_path / "w.pth")
    wav, lengths = _clips([1.2, 0.5])
    torch.testing.assert_close(_pooled(loaded, wav, lengths), _pooled(src, wav, lengths), rtol=0, atol=0)


def test_official_kumar_file_with_module_prefix_loads(tmp_path: Path) -> None:
    torch.manual_seed(1)
    official = KumarNet().eval()
    with torch.no_grad():
        for name, t in official.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
    torch.save({f"module.{k}": v for k, v in official.state_dict().items()}, tmp_path / "mx-h64-1024_0d3-1.17.pkl")
    enc = SupervisedEncoder.from_options(SupervisedOptions(arch="kumar"), tmp_path / "mx-h64-1024_0d3-1.17.pkl")
    wav, lengths = _clips([3.0])
    with torch.inference_mode():
        expected = official.layer18_features(enc.frontend(wav)).mean(dim=(2, 3))
    torch.testing.assert_close(_pooled(enc, wav, lengths), expected)


def test_wrong_keys_are_listed(tmp_path: Path) -> None:
    state = KumarNet().state_dict()
    state["layer3.0.weight"] = torch.zeros(1)
    del state["layer19.0.bias"]
    state["layer18.0.weight"] = torch.zeros(1024, 512, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(EvalbenchError) as err:
        SupervisedEncoder.from_options(SupervisedOptions(arch="kumar"), tmp_path / "bad.pth")
    msg = str(err.value)
    assert "missing keys: layer19.0.bias" in msg and "unexpected keys: layer3.0.weight" in msg
    assert "layer18.0.weight (1024, 512, 3, 3) (expected (1024, 512, 2, 2))" in msg
    torch.save(LstmNet().state_dict(), tmp_path / "lstm.pth")
    with pytest.raises(
        EvalbenchError, match=r"missing keys: attention\.0\.bias.*\(14 in all\); unexpected keys: lstm\.bias_hh_l0"
    ):
        SupervisedEncoder.from_options(SupervisedOptions(arch="crnn"), tmp_path / "lstm.pth")


def test_options() -> None:
    assert parse(SupervisedOptions, {"arch": "kumar"}, "e.yaml").classes == 527
    assert parse(SupervisedOptions, {"arch": "vgg"}, "e.yaml").classes == 50
    with pytest.raises(SpecError, match=r"e\.yaml: arch: missing required key"):
        parse(SupervisedOptions, {}, "e.yaml")
    with pytest.raises(SpecError, match=r"arch: 'resnet' is not one of 'cnn', 'vgg', 'lstm', 'crnn', 'kumar'"):
        parse(SupervisedOptions, {"arch": "resnet"}, "e.yaml")
    with pytest.raises(SpecError, match="n_classes: must be a positive integer"):
        parse(SupervisedOptions, {"arch": "cnn", "n_classes": 0}, "e.yaml")
    small = SupervisedEncoder.from_options(SupervisedOptions(arch="kumar", n_classes=10), None)
    assert small.net.layer19[0].weight.shape == (10, 1024, 1, 1)


def test_end_to_end_smoke(env: Env) -> None:
    assert main(env.cli("run", "--encoder", "sup-kumar-random", "--tasks", "synth_detect", "--seeds", "1")) == 0
    rec = json.loads((env.results / "sup-kumar-random" / "synth_detect.linear.json").read_text())
    assert rec["encoder"]["embedding_dim"] == 1024
    assert 0.0 <= rec["scores"]["test"]["accuracy"]["mean"] <= 1.0
