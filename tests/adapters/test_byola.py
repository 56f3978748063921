"""The BYOL-A adapter: architectures, official key layout, checkpoint loading, normalisation, masking."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from evalbench.adapters.base import Frames
from evalbench.adapters.byola import ByolaEncoder
from evalbench.adapters.byola_nets import AudioNTT2020, AudioNTT2022, build_network
from evalbench.adapters.checkpoints import save_checkpoint
from evalbench.adapters.options.byola import ByolaOptions
from evalbench.adapters.pooling import pool_mean_max
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.fields import parse
from tests.adapters.helpers import clips

SR = 16000
CONFIGS = [("v1", 512), ("v1", 1024), ("v1", 2048), ("v2", 3072)]
FIXED = {"norm_mean": -5.0, "norm_std": 4.0}


def _opts(version: str = "v2", feature_d: int = 3072, **kw) -> ByolaOptions:
    return ByolaOptions(version=version, feature_d=feature_d, **{**FIXED, **kw})


def _clips(seconds: list[float], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return clips(SR, seconds, 330.0, seed)


def _randomised(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``net`` with random weights *and* BatchNorm statistics, in eval mode (so loading is really tested)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif t.is_floating_point():
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return net.eval()


# --- architectures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "d", "count"),
    [("v1", 512, 600_192), ("v1", 1024, 1_649_792), ("v1", 2048, 5_321_856), ("v2", 3072, 6_333_376)],
)
def test_parameter_counts(version: str, d: int, count: int) -> None:
    assert sum(p.numel() for p in build_network(version, d).parameters()) == count


def _official_keys(convs: tuple[int, ...]) -> set[str]:
    keys = {f"features.{i}.{p}" for i in convs for p in ("weight", "bias")}
    keys |= {f"features.{i + 1}.{p}" for i in convs for p in ("weight", "bias", "running_mean", "running_var")}
    keys |= {f"features.{i + 1}.num_batches_tracked" for i in convs}
    return keys | {f"fc.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}


def test_official_key_layout() -> None:
    v1, v2 = AudioNTT2020(512).state_dict(), AudioNTT2022().state_dict()
    assert set(v1) == _official_keys((0, 4, 8))
    assert set(v2) == _official_keys((0, 4))
    assert tuple(v1["fc.0.weight"].shape) == (512, 512) and tuple(v2["fc.0.weight"].shape) == (2048, 1024)
    assert tuple(v1["features.8.weight"].shape) == (64, 64, 3, 3) and tuple(v2["fc.3.weight"].shape) == (2048, 2048)


@pytest.mark.parametrize(("version", "d"), CONFIGS)
def test_output_shapes_on_the_training_unit(version: str, d: int) -> None:
    """[2, 1, 64, 96] (0.95 s): v1 gives 12 frames of d, v2 24 frames of 3072 (docs/methods.md §1.4)."""
    net = build_network(version, d).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 64, 96))
    assert tuple(out.shape) == ((2, 12, d) if version == "v1" else (2, 24, 3072))


def test_frame_layout_is_f_major_and_v2_concatenates_conv_then_mlp() -> None:
    """Frame feature f·64 + c is channel c at frequency f; v2's first 1024 values are those conv features."""
    net = _randomised(AudioNTT2022(), 1)
    x = torch.randn(1, 1, 64, 16)
    with torch.no_grad():
        conv = net.features(x)  # (1, 64, 16, 4)
        out = net(x)
    # the same convolution of the same input, then only a permute and reshape: exactly equal
    assert torch.equal(out[0, 2, 3 * 64 + 5], conv[0, 5, 3, 2])
    assert torch.equal(out[..., :1024].reshape(1, 4, 16, 64).permute(0, 3, 2, 1), conv)
    # the MLP re-applied to a strided slice, not the contiguous tensor forward() used: float32 matmuls over
    # 1024/2048 inputs may sum in another order (7e-7 seen on values of order 1), so allow 1e-5
    torch.testing.assert_close(out[..., 1024:], net.fc(out[..., :1024]), rtol=1e-5, atol=1e-5)


# --- checkpoints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "d"), [("v1", 512), ("v2", 3072)])
def test_official_checkpoint_loads_identically(tmp_path: Path, version: str, d: int) -> None:
    src = _randomised(build_network(version, d), seed=3)
    torch.save(src.state_dict(), tmp_path / "official.pth")  # bare state dict, as released
    enc = ByolaEncoder.from_options(_opts(version, d), tmp_path / "official.pth")
    assert not enc.net.training
    x = torch.randn(2, 1, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = src(x)
        torch.testing.assert_close(enc.net(x), expected, rtol=0, atol=0)
        assert tuple(pool_mean_max(Frames(expected, torch.ones(expected.shape[:2], dtype=torch.bool))).shape) == (2, d)
        # encode(): log-mel (computed independently here) → (x − μ)/σ → the same network
        wav, lengths = _clips([1.0, 1.0])
        mel = torchaudio.transforms.MelSpectrogram(
            SR, n_fft=1024, hop_length=160, f_min=60, f_max=7800, n_mels=64, mel_scale="slaney", norm="slaney"
        )
        logmel = torch.log(mel(wav) + float(np.finfo(np.float32).eps))
        manual = src(((logmel - FIXED["norm_mean"]) / FIXED["norm_std"]).unsqueeze(1))
        frames = enc.encode(wav, lengths)
    torch.testing.assert_close(frames.embeddings, manual, rtol=1e-5, atol=1e-5)


def test_evalbench_checkpoint_and_export_roundtrip(tmp_path: Path) -> None:
    src = ByolaEncoder.from_options(_opts("v1", 1024, seed=7), None)
    _randomised(src.net, seed=4)
    src.export_checkpoint(tmp_path / "export.pth")
    state = torch.load(tmp_path / "export.pth", weights_only=True)
    assert set(state) == _official_keys((0, 4, 8))  # bare, official layout
    save_checkpoint(tmp_path / "eb.pth", src.net, "byola", {"version": "v1", "feature_d": 1024})
    wav, lengths = _clips([1.2, 0.5])
    with torch.inference_mode():
        ref = src.encode(wav, lengths).embeddings
        for name in ("export.pth", "eb.pth"):
            loaded = ByolaEncoder.from_options(_opts("v1", 1024), tmp_path / name)
            torch.testing.assert_close(loaded.encode(wav, lengths).embeddings, ref, rtol=0, atol=0)


def test_mismatched_checkpoints_list_every_difference(tmp_path: Path) -> None:
    state = AudioNTT2020(512).state_dict()
    del state["features.5.running_var"]
    state["features.12.weight"] = torch.zeros(1)
    state["fc.3.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(EvalbenchError) as err:
        ByolaEncoder.from_options(_opts("v1", 512), tmp_path / "bad.pth")
    msg = str(err.value)
    assert str(tmp_path / "bad.pth") in msg and "\n" not in msg
    assert "missing keys: features.5.running_var" in msg and "unexpected keys: features.12.weight" in msg
    assert "fc.3.bias (7,) (expected (512,))" in msg
    # a v2 file under v1 options: the third block is missing and the MLP shapes differ
    torch.save(AudioNTT2022().state_dict(), tmp_path / "v2.pth")
    with pytest.raises(
        EvalbenchError,
        match=r"missing keys: features\.8\.bias.*wrong shapes: fc\.0\.weight \(2048, 1024\) \(expected \(2048, 512\)\)",
    ):
        ByolaEncoder.from_options(_opts("v1", 2048), tmp_path / "v2.pth")


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"features.0.weight": _Evil()}))
    with pytest.raises(EvalbenchError, match="weights-only"):
        ByolaEncoder.from_options(_opts(), tmp_path / "evil.pth")
    assert "executed" not in capsys.readouterr().out  # the payload never ran


# --- normalisation -------------------------------------------------------------------------------------------


def test_fit_gives_scalar_stats_of_valid_logmel_values() -> None:
    enc = ByolaEncoder.from_options(ByolaOptions(), None)  # v2, stats fitted
    assert enc.needs_fit and enc.fitted_state() == {}
    wav, lengths = _clips([0.5, 0.8, 0.3], seed=1)
    with pytest.raises(RuntimeError, match="before fit"):
        enc.encode(wav, lengths)
    clips = [wav[i, :n] for i, n in enumerate(lengths.tolist())]
    enc.fit(iter(clips))
    # independently: every centred frame of each clip framed alone, 1 + n // 160, the last ones included
    values = []
    for c in clips:
        spec = enc.frontend(c[None])[0].double()
        assert spec.shape[-1] == 1 + c.numel() // 160
        values.append(spec.flatten())
    v = torch.cat(values)
    assert v.numel() == 64 * (51 + 81 + 31)
    state = enc.fitted_state()
    assert set(state) == {"mean", "std"}
    assert math.isclose(state["mean"], float(v.mean()), rel_tol=1e-9)
    assert math.isclose(state["std"], float(v.std(unbiased=False)), rel_tol=1e-7)
    # round trip: a fresh encoder restored from the state encodes identically
    other = ByolaEncoder.from_options(ByolaOptions(), None)
    other.load_fitted_state(state)
    assert other.fitted_state() == state
    with torch.inference_mode():
        torch.testing.assert_close(other.encode(wav, lengths).embeddings, enc.encode(wav, lengths).embeddings)


def test_fixed_stats_skip_fitting() -> None:
    enc = ByolaEncoder.from_options(_opts(norm_mean=-9.660292, norm_std=4.7219563), None)
    assert not enc.needs_fit and ByolaEncoder.needs_fit
    enc.fit([torch.randn(16000)])
    assert enc.fitted_state() == {"mean": -9.660292, "std": 4.7219563}


# --- encoding and masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "d", "valid_1s", "hop"), [("v1", 512, 12, 0.08), ("v2", 3072, 25, 0.04)])
def test_dims_hop_and_valid_frames(version: str, d: int, valid_1s: int, hop: float) -> None:
    """1 s = 16,000 samples: all 101 log-mel frames are the clip's own; each block halves (floor)."""
    enc = ByolaEncoder.from_options(_opts(version, d), None)
    assert enc.embed_dim == d and enc.sample_rate == SR and math.isclose(enc.hop_seconds, hop)
    wav, lengths = _clips([1.0, 2.0, 0.02])
    with torch.inference_mode():
        frames = enc.encode(wav, lengths)
    assert frames.embeddings.shape == (3, int(201 * 0.01 / hop), d) and frames.embeddings.dtype == torch.float32
    # 2 s: 201 log-mel frames, all valid; 0.02 s: zero-extended to one window (7 frames), then to 2**blocks
    # frames, which gives one output frame, alone or batched
    expected_2s = {"v1": 25, "v2": 50}[version]
    assert frames.mask.sum(1).tolist() == [valid_1s, expected_2s, 1]
    assert frames.mask[:, 0].all() and torch.isfinite(frames.embeddings).all()


@pytest.mark.parametrize(("version", "d"), [("v1", 2048), ("v2", 3072)])
def test_batch_invariance(version: str, d: int) -> None:
    """A clip pools to the same vector alone or padded next to a longer and a shorter clip."""
    enc = ByolaEncoder.from_options(_opts(version, d, seed=2), None)
    _randomised(enc.net, seed=5)
    wav, lengths = _clips([0.9, 1.7, 0.4], seed=3)
    with torch.inference_mode():
        together = pool_mean_max(enc.encode(wav, lengths))
        for i, n in enumerate(lengths.tolist()):
            alone = pool_mean_max(enc.encode(wav[i : i + 1, :n], lengths[i : i + 1]))
            torch.testing.assert_close(together[i], alone[0], rtol=0, atol=1e-4)
        # without the mask the padded batch would differ: the mask is doing the work
        unmasked = enc.encode(wav, lengths).embeddings[0].mean(0)
        alone_all = enc.encode(wav[:1, : lengths[0]], lengths[:1]).embeddings[0].mean(0)
    assert float((unmasked - alone_all).abs().max()) > 1e-3


def test_determinism_seeding_and_eval_mode() -> None:
    wav, lengths = _clips([1.0, 0.6])
    rng_before = torch.random.get_rng_state()
    a, b = ByolaEncoder.from_options(_opts(seed=0), None), ByolaEncoder.from_options(_opts(seed=0), None)
    c = ByolaEncoder.from_options(_opts(seed=1), None)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # seeded init leaves the global RNG alone
    a.train()  # the network stays frozen: dropout off, BN running stats
    assert not a.training and not a.net.training and not a.net.fc[2].training
    with torch.inference_mode():
        ea = a.encode(wav, lengths).embeddings
        assert torch.equal(ea, a.encode(wav, lengths).embeddings)
        assert torch.equal(ea, b.encode(wav, lengths).embeddings)
        assert not torch.allclose(ea, c.encode(wav, lengths).embeddings)


def test_frontend_is_slaney_scale_with_slaney_norm() -> None:
    """The mel filterbank equals the Slaney (Auditory Toolbox / librosa default) definition (docs/methods.md §1.7)."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return np.where(f < 1000, f / (200 / 3), 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27))

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m < 15, m * (200 / 3), 1000 * np.exp((m - 15) * np.log(6.4) / 27))

    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(60.0)), hz_to_mel(np.array(7800.0)), 66))
    freqs = np.linspace(0, SR / 2, 513)
    lower = (freqs[None] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    upper = (edges[2:, None] - freqs[None]) / np.diff(edges)[1:, None]
    fb = np.maximum(0, np.minimum(lower, upper)) * (2 / (edges[2:] - edges[:-2]))[:, None]
    ours = ByolaEncoder(ByolaOptions()).frontend.melspec.mel_scale.fb.numpy().T
    np.testing.assert_allclose(ours, fb, rtol=1e-4, atol=1e-7)


# --- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"version": "v1"}, r"options\.feature_d: v1 \(AudioNTT2020\) outputs 512, 1024, 2048; got 3072"),
        ({"version": "v2", "feature_d": 2048}, r"options\.feature_d: v2 \(AudioNTT2022\) outputs 3072"),
        ({"norm_mean": -5.0}, r"options\.norm_std: give norm_mean and norm_std together"),
        ({"norm_mean": -5.0, "norm_std": 0}, r"options\.norm_std: must be a positive number"),
        ({"frontend": {"n_mels": 128}}, r"options\.frontend: BYOL-A networks take n_mels 64, got 128"),
        ({"version": "v3"}, r"options\.version: 'v3' is not one of 'v1', 'v2'"),
    ],
)
def test_option_errors_name_file_and_key(data: dict, pattern: str) -> None:
    with pytest.raises(SpecError, match=r"^encoders/x\.yaml: " + pattern):
        parse(ByolaOptions, data, "encoders/x.yaml", "options")


def test_options_module_is_torch_free() -> None:
    import ast

    import evalbench.adapters.options.byola as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.split(".")[0] in ("torch", "torchaudio") for m in imported)
