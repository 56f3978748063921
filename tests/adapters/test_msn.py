"""The ``msn`` adapter: window geometry end to end, batch invariance, checkpoints, stems, seeds, options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torchvision.models.vision_transformer import VisionTransformer

from evalbench.adapters.checkpoints import save_checkpoint
from evalbench.adapters.msn import MSNEncoder
from evalbench.adapters.options.msn import MSNOptions
from evalbench.errors import EvalbenchError, SpecError
from evalbench.specs.encoder import parse_encoder_file
from evalbench.specs.fields import parse

REPO = Path(__file__).resolve().parents[2]
SR = 16000
# A tiny ViT on the real 224-px, patch-32 geometry (7×7 grid), built by the same code path as ViT-B/32.
TINY = {"hidden_dim": 32, "num_layers": 2, "num_heads": 2, "mlp_dim": 64, "norm_mean": -6.0, "norm_std": 4.0}


def tiny(**changes: object) -> MSNOptions:
    return MSNOptions(**{**TINY, **changes})  # type: ignore[arg-type]


def samples_for(valid_frames: int) -> int:
    """Samples giving ``valid_frames`` log-mel frames (hop 160: a clip of L >= 1024 samples has 1 + L // 160)."""
    return (valid_frames - 1) * 160


def clips(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    wav = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        t = torch.arange(n) / SR
        wav[i, :n] = 0.3 * torch.sin(2 * torch.pi * 300 * (i + 1) * t) + 0.05 * torch.randn(n, generator=gen)
    return wav, torch.tensor(lengths)


def encode(model: MSNEncoder, wav: torch.Tensor, lengths: torch.Tensor):
    with torch.inference_mode():
        return model.encode(wav, lengths)


@pytest.mark.parametrize("geometry", ["resize", "pad"])
@pytest.mark.parametrize("output", ["cls", "mean_patches"])
def test_shapes_and_windows(geometry: str, output: str) -> None:
    model = MSNEncoder.from_options(tiny(geometry=geometry, output=output), None)
    assert model.hop_seconds == pytest.approx(0.96) and model.embed_dim == 32 and model.sample_rate == SR
    wav, lengths = clips([samples_for(250), samples_for(57), samples_for(197)])
    frames = encode(model, wav, lengths)
    assert frames.embeddings.shape == (3, 3, 32) and frames.embeddings.dtype == torch.float32
    # 250 frames -> 96 + 96 + 58; 57 -> one window; 197 -> 96 + 101 (a 5-frame tail is merged)
    assert frames.mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    assert bool(torch.isfinite(frames.embeddings).all())
    assert bool((frames.embeddings[~frames.mask] == 0).all())
    # each window is exactly its own frames encoded on their own
    with torch.inference_mode():
        spec = model.normalizer(model._logmel(wav[:1, : lengths[0]]))[0]
        third = model.embed_windows([spec[:, 192:250]])
    torch.testing.assert_close(frames.embeddings[0, 2], third[0], atol=1e-5, rtol=0)


def test_geometries_and_outputs_differ() -> None:
    wav, lengths = clips([samples_for(120)])
    out = {
        (g, o): encode(MSNEncoder.from_options(tiny(geometry=g, output=o), None), wav, lengths).embeddings
        for g in ("resize", "pad")
        for o in ("cls", "mean_patches")
    }
    assert not torch.allclose(out["resize", "cls"], out["pad", "cls"], atol=1e-3)
    assert not torch.allclose(out["resize", "cls"], out["resize", "mean_patches"], atol=1e-3)


@pytest.mark.parametrize("geometry", ["resize", "pad"])
@pytest.mark.parametrize("output", ["cls", "mean_patches"])
def test_batch_invariance(geometry: str, output: str) -> None:
    model = MSNEncoder.from_options(tiny(geometry=geometry, output=output), None)
    lengths_list = [samples_for(70), samples_for(250), 4800, samples_for(97), 700]  # 700 samples < one FFT window
    wav, lengths = clips(lengths_list, seed=1)
    together = encode(model, wav, lengths)
    for i, n in enumerate(lengths_list):
        alone = encode(model, wav[i : i + 1, :n], lengths[i : i + 1])
        k = int(alone.mask.sum())
        assert int(together.mask[i].sum()) == k
        torch.testing.assert_close(together.embeddings[i, :k], alone.embeddings[0, :k], atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    opts = tiny(seed=3)
    model = MSNEncoder.from_options(opts, None)
    path = tmp_path / "msn.pth"
    model.export_checkpoint(path)
    other = dataclasses.replace(opts, seed=4)  # a different init, overwritten by the checkpoint
    loaded = MSNEncoder.from_options(other, path)
    wav, lengths = clips([samples_for(150), 9000])
    torch.testing.assert_close(encode(loaded, wav, lengths).embeddings, encode(model, wav, lengths).embeddings)
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "msn" and payload["options"]["hidden_dim"] == 32
    # bare backbone state dicts load too, also with a "backbone." prefix (a training wrapper's keys)
    state = model.backbone.state_dict()
    torch.save(state, tmp_path / "bare.pth")
    torch.save({f"backbone.{k}": v for k, v in state.items()}, tmp_path / "prefixed.pth")
    for name in ("bare.pth", "prefixed.pth"):
        again = MSNEncoder.from_options(other, tmp_path / name)
        for k, v in again.backbone.state_dict().items():
            assert torch.equal(v, state[k]), k


def test_wrong_keys_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "two_layers.pth"
    MSNEncoder.from_options(tiny(), None).export_checkpoint(path)
    with pytest.raises(EvalbenchError) as err:
        MSNEncoder.from_options(tiny(num_layers=3), path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "missing keys: encoder.layers.encoder_layer_2.ln_1.bias" in message
    with pytest.raises(
        EvalbenchError, match=r"missing keys: conv_proj\.bias, conv_proj\.weight; unexpected keys: conv_"
    ):
        MSNEncoder.from_options(tiny(stem="1ch"), path)
    with pytest.raises(
        EvalbenchError,
        match=r"wrong shapes: encoder\.layers\.encoder_layer_0\.mlp\.0\.bias \(64,\) \(expected \(128,\)\)",
    ):
        MSNEncoder.from_options(tiny(mlp_dim=128), path)
    save_checkpoint(tmp_path / "byola.pth", MSNEncoder.from_options(tiny(), None).backbone, "byola", {})
    with pytest.raises(EvalbenchError, match="family 'byola'"):
        MSNEncoder.from_options(tiny(), tmp_path / "byola.pth")


def _torchvision_file(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(5)
    rgb = VisionTransformer(224, 32, 2, 2, 32, 64, num_classes=10)
    state = {k: v.clone() for k, v in rgb.state_dict().items()}
    torch.save(state, tmp_path / "vit_imagenet.pth")
    return tmp_path / "vit_imagenet.pth", state


def test_imagenet_initialisation_from_a_local_file(tmp_path: Path) -> None:
    path, state = _torchvision_file(tmp_path)
    three = MSNEncoder.from_options(tiny(imagenet_weights=str(path)), None)
    stem = three.backbone.conv_proj
    assert torch.equal(stem[1].weight, state["conv_proj.weight"]) and torch.equal(stem[1].bias, state["conv_proj.bias"])
    assert torch.equal(stem[0].weight, torch.ones(3, 1, 1, 1)) and torch.equal(stem[0].bias, torch.zeros(3))
    assert torch.equal(three.backbone.encoder.pos_embedding, state["encoder.pos_embedding"])
    one = MSNEncoder.from_options(tiny(imagenet_weights=str(path), stem="1ch"), None)
    assert one.backbone.conv_proj.weight.shape == (32, 1, 32, 32)
    wav, lengths = clips([samples_for(100)])
    # replicating one channel into RGB == summing the RGB kernels
    torch.testing.assert_close(encode(one, wav, lengths).embeddings, encode(three, wav, lengths).embeddings)
    # the file enters cache keys by content, not path
    key = tiny(imagenet_weights=str(path)).identity()["imagenet_weights"]
    torch.save({k: v + 1 for k, v in state.items()}, path)
    assert set(key) == {"sha256"} and tiny(imagenet_weights=str(path)).identity()["imagenet_weights"] != key
    # a torchvision file given as `checkpoint` is refused with a pointer to imagenet_weights
    with pytest.raises(EvalbenchError, match="imagenet_weights"):
        MSNEncoder.from_options(tiny(), path)
    with pytest.raises(EvalbenchError, match="wrong shapes"):
        MSNEncoder.from_options(tiny(imagenet_weights=str(path), hidden_dim=64), None)


def test_stems() -> None:
    three = MSNEncoder.from_options(tiny(), None).backbone.conv_proj
    assert three[0].weight.shape == (3, 1, 1, 1) and three[0].bias.shape == (3,)
    assert three[1].weight.shape == (32, 3, 32, 32) and three[1].stride == (32, 32)
    one = MSNEncoder.from_options(tiny(stem="1ch"), None).backbone.conv_proj
    assert one.weight.shape == (32, 1, 32, 32) and one.stride == (32, 32)


def test_random_init_per_seed() -> None:
    state = torch.random.get_rng_state()
    a, b, c = (MSNEncoder.from_options(tiny(seed=s), None) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    wav, lengths = clips([samples_for(100)])
    ea, eb, ec = (encode(m, wav, lengths).embeddings for m in (a, b, c))
    assert torch.equal(ea, eb)
    assert (ea - ec).abs().max() > 1e-3


def test_fit_and_fitted_state() -> None:
    model = MSNEncoder.from_options(tiny(norm_mean=None, norm_std=None), None)
    assert model.needs_fit and model.fitted_state() == {}
    wav, lengths = clips([SR, SR // 2])
    with pytest.raises(RuntimeError, match="before fit"):
        model.encode(wav, lengths)
    model.fit(w[:n] for w, n in zip(wav, lengths.tolist(), strict=True))
    state = model.fitted_state()
    assert set(state) == {"mean", "std"} and -20 < state["mean"] < 5 and state["std"] > 0.5
    fresh = MSNEncoder.from_options(tiny(norm_mean=None, norm_std=None), None)
    fresh.load_fitted_state(state)
    torch.testing.assert_close(encode(fresh, wav, lengths).embeddings, encode(model, wav, lengths).embeddings)
    fixed = MSNEncoder.from_options(tiny(), None)
    assert not fixed.needs_fit and fixed.fitted_state() == {"mean": -6.0, "std": 4.0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"geometry": "crop"}, "geometry: 'crop' is not one of"),
        ({"num_heads": 5}, "hidden_dim: 768 is not divisible by num_heads 5"),
        ({"min_tail_frames": 97}, "min_tail_frames: must lie in 0..window_frames"),
        ({"image_size": 200}, "image_size: must be a positive multiple of the patch size 32"),
        ({"norm_mean": -5.0}, "norm_std: give norm_mean and norm_std together"),
        ({"stem": "rgb"}, "stem: 'rgb' is not one of"),
    ],
)
def test_option_errors(options: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse(MSNOptions, options, "encoders/x.yaml", "options")


def test_encoder_yamls() -> None:
    specs = {n: parse_encoder_file(REPO / "encoders" / f"{n}.yaml") for n in ("msn", "msn-random", "msn-random-pad")}
    opts = {n: s.typed_options() for n, s in specs.items()}
    assert opts["msn"].geometry == opts["msn-random"].geometry == "resize"
    assert opts["msn-random-pad"].geometry == "pad"
    assert all(o.vit == (32, 12, 12, 768, 3072) and o.output == "cls" for o in opts.values())
    assert all(s.pooling == "mean" for s in specs.values())
    assert specs["msn"].checkpoint is not None and specs["msn"].checkpoint.path == "checkpoints/msn.pth"
    assert specs["msn-random"].checkpoint is None and specs["msn-random-pad"].checkpoint is None


def test_vit_b_32_smoke() -> None:
    """The real backbone: ViT-B/32 with the 1→3 stem, one short clip, both geometries."""
    model = MSNEncoder.from_options(MSNOptions(norm_mean=-6.0, norm_std=4.0), None)
    # torchvision vit_b_32 without its 1000-class head, plus the 1×1 Conv2d(1→3) (3 weights + 3 biases)
    assert sum(p.numel() for p in model.backbone.parameters()) == 88_224_232 - (768 * 1000 + 1000) + 6
    assert len(model.backbone.encoder.layers) == 12 and model.backbone.encoder.pos_embedding.shape == (1, 50, 768)
    wav, lengths = clips([8000])
    frames = encode(model, wav, lengths)
    assert frames.embeddings.shape == (1, 1, 768) and frames.mask.tolist() == [[True]]
    assert bool(torch.isfinite(frames.embeddings).all())
    model.options = dataclasses.replace(model.options, geometry="pad")
    padded = encode(model, wav, lengths)
    assert padded.embeddings.shape == (1, 1, 768) and not torch.allclose(padded.embeddings, frames.embeddings)
