"""``evalbench.hear``: evalbench encoders as a HEAR-API module.

Checked through evalbench's own consumer of HEAR modules (the ``hear``
adapter and its conformance check): an encoder scored through
``hear:evalbench.hear`` gives the embeddings it gives when scored directly.
Tolerance: 1e-6 relative to each vector's largest entry (the two paths run the
same adapter code on the same samples; they agree to the last bit here).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

import evalbench.hear as hear
from evalbench.adapters.checkpoints import save_checkpoint
from evalbench.adapters.hear import HearEncoder, conformance_check
from evalbench.adapters.options.hear import HearOptions
from evalbench.adapters.pooling import pool_mean
from evalbench.embed.encoder import load_encoder_model
from evalbench.errors import EvalbenchError
from evalbench.registry import ADAPTERS
from evalbench.specs.encoder import hear_spec, load_encoder, parse_encoder_file
from evalbench.specs.fields import to_dict
from evalbench.utils.hashing import sha256_file
from tests.conftest import ENCODERS

CPU = torch.device("cpu")


def sounds(n: int, seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    """``n`` seeded noisy tones of equal length."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * sr)) / sr
    tones = torch.stack([0.3 * torch.sin(2 * torch.pi * 220 * (i + 1) * t) for i in range(n)])
    return tones + 0.05 * torch.randn(tones.shape, generator=gen)


def direct(name: str, fit_on: torch.Tensor | None = None):
    """The encoder as ``evalbench run`` loads it (fitted on ``fit_on``'s sounds when it needs statistics)."""
    enc = load_encoder_model(load_encoder(name, ENCODERS), CPU)
    if enc.model.needs_fit:
        enc.model.fit(iter(fit_on))
    return enc


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    a, b = a.detach(), b.detach()
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    scale = b.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    assert float(((a - b).abs() / scale).max()) <= 1e-6


@pytest.fixture(autouse=True)
def spec_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names resolve in the repository's encoders folder, whatever the environment says."""
    monkeypatch.setenv("EVALBENCH_ENCODERS_DIR", str(ENCODERS))
    monkeypatch.delenv(hear.ENV_ENCODER, raising=False)


# --- the same embeddings, directly and through HEAR -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["logmel", "byola-random", "sup-vgg-random"])
def test_scene_and_timestamp_embeddings_equal_the_direct_encoder(name: str) -> None:
    model = hear.load_model(str(ENCODERS / f"{name}.yaml"))
    audio = sounds(3, 2.3, model.sample_rate)
    enc = direct(name, fit_on=audio)
    if model.pending_fit:
        hear.fit_input_statistics(audio, model)
        assert model.input_statistics() == enc.model.fitted_state()
    lengths = torch.full((3,), audio.shape[1])

    assert_same(hear.get_scene_embeddings(audio, model), enc.pooled(audio, lengths))
    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    frames = enc.model.encode(audio, lengths)
    assert frames.mask.all()  # equal-length sounds: every frame of the adapter is a clip frame
    assert_same(emb, frames.embeddings)
    assert stamps.shape == emb.shape[:2] and (stamps == stamps[:1]).all()
    assert (model.scene_embedding_size, model.timestamp_embedding_size) == (enc.dim, enc.model.embed_dim)


@pytest.mark.parametrize("name", ["logmel", "byola-random"])
def test_through_evalbench_hear_adapter(name: str) -> None:
    """``hear:evalbench.hear:<spec>`` (timestamp frames, mean-pooled) and the ``scene`` option, against the encoder."""
    path = str(ENCODERS / f"{name}.yaml")
    audio = sounds(4, 1.5, 16000, seed=1)
    lengths = torch.full((4,), audio.shape[1])
    enc = direct(name, fit_on=audio)

    # The hear adapter probes the hop on 2 s of silence at load time: that call must not freeze the statistics, so
    # the first real call (these 4 sounds, in one HEAR batch) fits them, as `enc` was fitted.
    via = load_encoder_model(hear_spec(f"hear:evalbench.hear:{path}"), CPU)
    assert via.model.hop_seconds == pytest.approx(enc.model.hop_seconds)
    frames = enc.model.encode(audio, lengths)
    assert_same(via.pooled(audio, lengths), pool_mean(frames))
    assert_same(via.model.encode(audio, lengths).embeddings, frames.embeddings)

    scene = HearEncoder(HearOptions(module="evalbench.hear", embedding="scene"), weights=path)
    assert_same(scene.encode(audio, lengths).embeddings[:, 0], enc.pooled(audio, lengths))


def test_embeddings_are_a_function_of_each_sound() -> None:
    model = hear.load_model("", encoder="byola-random", norm_mean=-6.0, norm_std=4.0)
    audio = sounds(3, 1.2, 16000, seed=2)
    together = hear.get_scene_embeddings(audio, model)
    alone = torch.cat([hear.get_scene_embeddings(audio[i : i + 1], model) for i in range(3)])
    assert_same(alone, together)


# --- the HEAR contract ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logmel", "byola-random"])
def test_conformance_check_passes(name: str) -> None:
    checks = conformance_check("evalbench.hear", str(ENCODERS / f"{name}.yaml"))
    assert [c for c in checks if c.status == "fail"] == []
    assert len(checks) >= 21


@pytest.mark.slow
def test_msn_windows_break_the_uniform_hop_at_some_lengths() -> None:
    """MSN's last window absorbs a short tail (module docstring): its centre is off the grid, which HEAR forbids.

    4.0 s is 401 log-mel frames: windows of 96 from 0, the tail of 17 merged into the window from 288.
    """
    model = hear.load_model("", encoder="msn-random-pad", norm_mean=-6.0, norm_std=4.0)
    times = hear.frame_times(model.encoder, "msn", 64000, 4) * 1000
    assert times.round(3).tolist() == [475.0, 1435.0, 2395.0, 3440.0]
    checks = conformance_check("evalbench.hear", str(ENCODERS / "msn-random-pad.yaml"))
    failed = [c.name for c in checks if c.status == "fail"]
    assert failed == ["timestamp embeddings on 2 × 4 s: uniform hop within 1 ms"]


def test_model_attributes_and_outputs() -> None:
    model = hear.load_model("", encoder="logmel")
    assert isinstance(model, torch.nn.Module) and not model.training
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (16000, 128, 64)
    audio = sounds(2, 1.0, 16000)
    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 101, 64) and stamps.dtype == torch.float32
    assert stamps[0, :3].tolist() == [0.0, 10.0, 20.0] and float(stamps[0, -1]) == 1000.0
    empty = hear.get_scene_embeddings(torch.zeros(0, 16000), model)
    assert empty.shape == (0, 128)
    with pytest.raises(EvalbenchError, match=r"\(n_sounds, n_samples\)"):
        hear.get_scene_embeddings(torch.zeros(16000), model)


# --- frame times ----------------------------------------------------------------------------------------------------

# (encoder, seconds of audio): each adapter's rule, on clips long enough for several frames where it has several.
FRAME_CASES = [
    ("logmel", 2.0),
    ("randproj", 1.0),
    ("byola-random", 3.0),
    ("msn-random-pad", 2.0),
    ("clmr-random", 6.0),
    ("clar-random", 3.0),
    ("clar1d-random", 0.3),
    ("sup-vgg-random", 3.0),
    ("sup-kumar-random", 5.0),
    ("sup-cnn-random", 7.0),
]


@pytest.mark.parametrize(("name", "seconds"), FRAME_CASES)
def test_frame_times_locate_the_frames(name: str, seconds: float) -> None:
    """A 10-ms burst at frame j's stated centre changes frame j more than any other frame (relative change)."""
    model = hear.load_model("", encoder=name, **({"norm_mean": -6.0, "norm_std": 4.0} if model_fits(name) else {}))
    sr = model.sample_rate
    base = 0.05 * torch.randn(1, round(seconds * sr), generator=torch.Generator().manual_seed(3))
    emb0, stamps = hear.get_timestamp_embeddings(base, model)
    n_frames = emb0.shape[1]
    assert float(stamps.min()) >= 0.0 and float(stamps.max()) <= seconds * 1000.0
    for j in sorted({0, n_frames // 2, n_frames - 1}):
        centre, half = round(float(stamps[0, j]) / 1000.0 * sr), round(0.005 * sr)
        burst = base.clone()
        lo, hi = max(0, centre - half), min(base.shape[1], centre + half)
        burst[0, lo:hi] += torch.randn(hi - lo, generator=torch.Generator().manual_seed(j))
        emb1, _ = hear.get_timestamp_embeddings(burst, model)
        change = (emb1 - emb0)[0].norm(dim=1) / emb0[0].norm(dim=1).clamp_min(1e-9)
        k = int(change.argmax())  # exact, unless frames are closer together than the burst is wide (CLAR 1-D)
        assert k == j or abs(float(stamps[0, k] - stamps[0, j])) < 5.0, (j, k, change.tolist())


def model_fits(name: str) -> bool:
    return bool(ADAPTERS.get(parse_encoder_file(ENCODERS / f"{name}.yaml").adapter).needs_fit)


def test_every_adapter_states_its_frame_times_or_says_it_cannot() -> None:
    """A new family shows up here: give it a rule in ``evalbench.hear`` (or it has no timestamp embeddings)."""
    assert set(ADAPTERS.names()) - set(hear._FRAME_TIMES) == {"hear"}
    model = hear.load_model("", encoder="logmel")
    with pytest.raises(EvalbenchError, match="adapter 'newfamily' does not state its frame times"):
        hear.frame_times(model.encoder, "newfamily", 16000, 101)
    with pytest.raises(EvalbenchError, match="gave 3 frame\\(s\\) for 22050 samples but its frame-time rule counts 1"):
        hear.frame_times(SimpleNamespace(sample_rate=22050), "clmr", 22050, 3)


# --- naming an encoder ----------------------------------------------------------------------------------------------


@pytest.fixture
def pretrained(tmp_path: Path) -> Path:
    """A fake ``evalbench pretrain`` output: ``encoders/tiny.yaml``, ``tiny-init.yaml`` and their folder."""
    encoders = tmp_path / "encoders"
    out = encoders / "checkpoints" / "pretrain" / "tiny"
    out.mkdir(parents=True)
    options = {"version": "v1", "feature_d": 512}
    spec = {"name": "tiny", "adapter": "byola", "description": "tiny", "pooling": "mean_max", "options": options}
    net = ADAPTERS.get("byola").from_options(
        parse_encoder_file(write_yaml(encoders / "tiny.yaml", spec)).typed_options(), None
    )
    for file, steps in (("init.pt", 0), ("encoder.pt", 10)):
        with torch.no_grad():
            for p in net.net.parameters():
                p.mul_(1.0 + 0.01 * steps)  # "training"
        save_checkpoint(out / file, net.net, "byola", to_dict(net.options), meta={"data": "fp1", "steps": steps})
    fitted = {"norm_mean": -3.5, "norm_std": 2.25}  # what `pretrain` normalised its training input with
    torch.save(
        {"format": "evalbench-pretrain-state", "data": {"fingerprint": "fp1"}, "fitted": fitted}, out / "state.pt"
    )
    for name, file in (("tiny", "encoder.pt"), ("tiny-init", "init.pt")):
        checkpoint = {"path": f"checkpoints/pretrain/tiny/{file}", "sha256": sha256_file(out / file)}
        write_yaml(encoders / f"{name}.yaml", {**spec, "name": name, "checkpoint": checkpoint})
    return encoders


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_pretrain_folder_alone_names_its_registered_encoder(pretrained: Path, tmp_path: Path) -> None:
    folder = pretrained / "checkpoints" / "pretrain" / "tiny"
    model = hear.load_model(str(folder))
    assert model.spec.name == "tiny" and model.spec.source_path == str(pretrained / "tiny.yaml")
    assert model.norm_source.startswith("evalbench pretrain") and not model.pending_fit
    assert model.input_statistics() == {"mean": -3.5, "std": 2.25}
    assert hear.load_model(str(folder / "init.pt")).spec.name == "tiny-init"
    # The YAML is found in the spec folders too when the folder was moved away from it.
    moved = shutil.copytree(folder, tmp_path / "elsewhere" / "tiny")
    text = (pretrained / "tiny.yaml").read_text()
    (pretrained / "tiny.yaml").write_text(
        text.replace("checkpoints/pretrain/tiny/encoder.pt", str(moved / "encoder.pt"))
    )
    assert hear.load_model(str(moved), encoders_dir=str(pretrained)).spec.name == "tiny"


def test_a_spec_yaml_a_name_and_a_checkpoint_with_its_family(pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert hear.load_model(str(pretrained / "tiny.yaml")).spec.name == "tiny"
    assert hear.load_model("", encoder="tiny", encoders_dir=str(pretrained)).spec.name == "tiny"
    monkeypatch.setenv(hear.ENV_ENCODER, "logmel")
    assert hear.load_model().spec.name == "logmel"  # a harness calling load_model() bare
    weights = pretrained / "checkpoints" / "pretrain" / "tiny" / "encoder.pt"
    renamed = weights.with_name("other.pt")
    shutil.copy(weights, renamed)
    model = hear.load_model(str(renamed), encoder="byola-v1-512", norm="first_call")
    assert model.spec.name.startswith("byola-v1-512@other-") and model.pending_fit


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "no encoder named"),
        (("{tmp}/missing.yaml",), {}, "no such file or folder"),
        (("{enc}/tiny.yaml",), {"encoder": "logmel"}, "give one of them"),
        (("{tmp}/unfinished",), {}, "the run has not finished"),
        (("{tmp}/loose.pt",), {}, "no encoder YAML registers"),
        (("",), {"encoder": "logmel", "norm_mean": 1.0, "norm_std": 1.0}, "fits no input statistics"),
        (("",), {"encoder": "byola-random", "norm_mean": 1.0}, "together"),
        (("",), {"encoder": "byola-random", "norm": "pretrain"}, "no pretraining statistics"),
        (("",), {"encoder": "byola-random", "norm": "often"}, "use one of auto, pretrain, first_call"),
        (("",), {"encoder": "hear:evalbench.hear"}, "import that module directly"),
    ],
)
def test_errors_say_what_to_give(pretrained: Path, tmp_path: Path, args: tuple, kwargs: dict, message: str) -> None:
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "state.pt").write_bytes(b"")
    (tmp_path / "loose.pt").write_bytes(b"")
    args = tuple(a.format(tmp=tmp_path, enc=pretrained) for a in args)
    with pytest.raises(EvalbenchError, match=message):
        hear.load_model(*args, **kwargs)


# --- input statistics -----------------------------------------------------------------------------------------------


def test_first_call_statistics_skip_silence_then_freeze(caplog: pytest.LogCaptureFixture) -> None:
    model = hear.load_model("", encoder="byola-random")
    assert model.norm_source == "first_call" and model.pending_fit
    hear.get_timestamp_embeddings(torch.zeros(1, 16000), model)  # a harness's probe
    assert model.pending_fit
    first, later = sounds(2, 1.0, 16000, seed=4), 3.0 * sounds(2, 1.0, 16000, seed=5)
    with caplog.at_level(logging.WARNING, logger="evalbench.hear"):
        hear.get_scene_embeddings(first, model)
    assert not model.pending_fit and "keeps them for every later call" in caplog.text
    stats = model.input_statistics()
    hear.get_scene_embeddings(later, model)
    assert model.input_statistics() == stats == direct("byola-random", fit_on=first).model.fitted_state()


def test_explicit_statistics_win(pretrained: Path) -> None:
    folder = pretrained / "checkpoints" / "pretrain" / "tiny"
    model = hear.load_model(str(folder), norm_mean=-1.0, norm_std=2.0)
    assert model.input_statistics() == {"mean": -1.0, "std": 2.0} and model.norm_source.startswith("load_model")
    with pytest.raises(EvalbenchError, match=r"fixed by load_model.*norm='first_call'"):
        hear.fit_input_statistics(sounds(1, 1.0, 16000), model)
    own = hear.load_model(str(folder), norm="first_call")
    assert own.pending_fit
    audio = sounds(2, 1.0, 16000)
    hear.get_scene_embeddings(audio, own)
    first = own.input_statistics()
    assert hear.fit_input_statistics(3.0 * audio, own) != first and own.norm_source.startswith("fit_input")
    assert hear.fit_input_statistics(audio, hear.load_model("", encoder="logmel")) == {}


def test_pretrain_statistics_need_matching_data(pretrained: Path) -> None:
    state = pretrained / "checkpoints" / "pretrain" / "tiny" / "state.pt"
    obj = torch.load(state, weights_only=True)
    torch.save({**obj, "data": {"fingerprint": "another corpus"}}, state)
    assert hear.pretrain_statistics(parse_encoder_file(pretrained / "tiny.yaml")) is None
    assert hear.load_model(str(pretrained / "tiny.yaml")).norm_source == "first_call"
