"""The ``hear`` adapter: name resolution, the encoder contract, errors, the conformance check, a CLI run.

The HEAR-API module under test is ``tests/fixtures/hear_toy/hear_toy.py``;
broken variants are written to ``tmp_path`` per test.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.hear import HearEncoder, conformance_check, hear_batch_size
from evalbench.adapters.options.hear import HearOptions, hear_encoder_name, parse_hear_name
from evalbench.adapters.pooling import pool_mean
from evalbench.cli import main
from evalbench.embed.extract import load_encoder_model, static_identity, verify_checkpoint
from evalbench.errors import EvalbenchError, SpecError, UnknownNameError
from evalbench.specs.encoder import hear_spec, load_encoder, resolve_encoders, with_checkpoint
from evalbench.utils.hashing import sha256_file
from tests.conftest import ENCODERS, REPO, Env

TOY_DIR = REPO / "tests" / "fixtures" / "hear_toy"
SR = 16000
CPU = torch.device("cpu")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch):
    """``hear_toy`` importable for this test."""
    monkeypatch.syspath_prepend(str(TOY_DIR))
    return importlib.import_module("hear_toy")


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, code: str) -> str:
    """Write an importable module ``name`` into ``tmp_path`` and return its name."""
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
    return name


def toy_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    """A module re-exporting ``hear_toy`` with ``get_timestamp_embeddings`` post-processed by ``body``."""
    code = (
        "from hear_toy import load_model, get_scene_embeddings\n"
        "from hear_toy import get_timestamp_embeddings as _toy\n\n"
        "def get_timestamp_embeddings(audio, model):\n"
        "    emb, ts = _toy(audio, model)\n"
        "    ts = ts.clone()\n" + textwrap.indent(textwrap.dedent(body), "    ") + "    return emb, ts\n"
    )
    return write_module(tmp_path, monkeypatch, name, code)


def clips(seconds: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded noisy tones, zero-padded to the longest."""
    gen = torch.Generator().manual_seed(0)
    n = [round(s * SR) for s in seconds]
    wav = torch.zeros(len(n), max(n))
    for i, k in enumerate(n):
        t = torch.arange(k) / SR
        wav[i, :k] = 0.3 * torch.sin(2 * torch.pi * 300 * (i + 1) * t) + 0.05 * torch.randn(k, generator=gen)
    return wav, torch.tensor(n)


def encoder(name: str = "hear:hear_toy"):
    return load_encoder_model(hear_spec(name), CPU)


def toy_weights(tmp_path: Path, scale: float, stem: str = "proj") -> Path:
    path = tmp_path / f"{stem}.pt"
    torch.save({"weight": scale * torch.eye(16), "bias": torch.zeros(16)}, path)
    return path


# --- names and specs ---------------------------------------------------------------------------------------------


def test_hear_names_parse_and_map_to_safe_folder_names() -> None:
    assert parse_hear_name("hear:hearbaseline") == ("hearbaseline", "")
    assert parse_hear_name("hear:pkg.sub:/w/a:b.pt") == ("pkg.sub", "/w/a:b.pt")
    assert hear_encoder_name("pkg.sub") == "hear-pkg.sub"
    assert hear_encoder_name("m", "/x/my weights (v2).ckpt") == "hear-m@my_weights_v2"
    for bad in ("hear:", "hear:1abc", "hear:a-b"):
        with pytest.raises(UnknownNameError, match="hear:<module>"):
            parse_hear_name(bad)
    with pytest.raises(ValueError, match="module"):
        HearOptions(module="not a module")


def test_resolve_builds_in_memory_specs_in_mixed_lists(toy, tmp_path: Path) -> None:
    logmel, hear = resolve_encoders("logmel, hear:hear_toy", ENCODERS)
    assert (logmel.name, hear.name, hear.adapter, hear.pooling) == ("logmel", "hear-hear_toy", "hear", "mean")
    assert hear.options == {"module": "hear_toy"} and hear.checkpoint is None
    assert "hear_toy 1.0" in hear.description
    identity = static_identity(hear, None)
    assert identity["options"] == {"module": "hear_toy", "module_version": "1.0", "embedding": "timestamp"}

    weights = toy_weights(tmp_path, 2.0)
    (spec,) = resolve_encoders(f"hear:hear_toy:{weights}", ENCODERS)
    assert spec.name == "hear-hear_toy@proj" and spec.options["weights"] == str(weights)
    assert spec.checkpoint.path == str(weights) and verify_checkpoint(spec) == sha256_file(weights)
    assert static_identity(spec, "x")["options"] == identity["options"]  # the path is not identity; its hash is


def test_module_version_is_part_of_the_identity(toy, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = hear_spec("hear:hear_toy")
    before = static_identity(spec, None)
    monkeypatch.setattr(toy, "__version__", "2.0")
    assert static_identity(spec, None)["options"]["module_version"] == "2.0" and static_identity(spec, None) != before


def test_with_checkpoint_renames_hear_specs(toy, tmp_path: Path) -> None:
    weights = toy_weights(tmp_path, 1.0, stem="other")
    spec = with_checkpoint(hear_spec(f"hear:hear_toy:{toy_weights(tmp_path, 2.0)}"), str(weights))
    assert spec.name == "hear-hear_toy@other" and spec.options["weights"] == str(weights)
    assert spec.checkpoint.path == str(weights) and spec.checkpoint.sha256 is None


def test_hear_encoders_can_also_be_written_as_yaml(toy, tmp_path: Path) -> None:
    weights = toy_weights(tmp_path, 2.0)
    text = "name: my_hear\nadapter: hear\ndescription: d\noptions: {module: hear_toy, weights: w.pt}\n"
    (tmp_path / "my_hear.yaml").write_text(text)
    with pytest.raises(
        SpecError, match=re.escape("options.weights: give the weights file as 'checkpoint: {path: ...}'")
    ):
        load_encoder("my_hear", tmp_path)
    (tmp_path / "my_hear.yaml").write_text(
        text.replace(", weights: w.pt", "") + f"checkpoint: {{path: {weights.name}}}\n"
    )
    enc = load_encoder_model(load_encoder("my_hear", tmp_path), CPU)
    assert enc.checkpoint_sha256 == sha256_file(weights)
    wav, lengths = clips([0.5])
    torch.testing.assert_close(
        enc.model.encode(wav, lengths).embeddings, 2 * encoder().model.encode(wav, lengths).embeddings
    )


# --- errors -------------------------------------------------------------------------------------------------------


def test_missing_and_non_compliant_modules_give_one_line_errors(
    toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownNameError, match=r"'no_such_hear_mod' is not installed; pip install"):
        resolve_encoders("hear:no_such_hear_mod", ENCODERS)
    write_module(tmp_path, monkeypatch, "hear_needs_dep", "import no_such_dependency_xyz\n")
    with pytest.raises(UnknownNameError, match="needs module 'no_such_dependency_xyz'"):
        hear_spec("hear:hear_needs_dep")
    write_module(tmp_path, monkeypatch, "hear_crashes", "raise RuntimeError('no GPU found')\n")
    with pytest.raises(EvalbenchError, match=r"'hear_crashes' failed to import \(RuntimeError: no GPU found\)"):
        hear_spec("hear:hear_crashes")
    write_module(tmp_path, monkeypatch, "hear_partial", "def load_model(model_file_path=''):\n    return None\n")
    with pytest.raises(EvalbenchError, match="lacks get_timestamp_embeddings, get_scene_embeddings"):
        hear_spec("hear:hear_partial")
    with pytest.raises(EvalbenchError, match=r"--encoder hear:hear_toy:/nowhere/w\.pt: file /nowhere/w\.pt not found"):
        hear_spec("hear:hear_toy:/nowhere/w.pt")

    api = "def get_timestamp_embeddings(a, m): pass\ndef get_scene_embeddings(a, m): pass\n"
    no_rate = (
        "import torch\nclass M(torch.nn.Module):\n    scene_embedding_size = 4\n    timestamp_embedding_size = 4\n"
    )
    write_module(
        tmp_path, monkeypatch, "hear_no_rate", no_rate + "def load_model(model_file_path=''):\n    return M()\n" + api
    )
    with pytest.raises(EvalbenchError, match=r"the model lacks sample_rate \(HEAR API"):
        encoder("hear:hear_no_rate")
    bad_rate = no_rate + "    sample_rate = 8000\ndef load_model(model_file_path=''):\n    return M()\n" + api
    write_module(tmp_path, monkeypatch, "hear_bad_rate", bad_rate)
    with pytest.raises(EvalbenchError, match="sample_rate 8000 is not one of 16000, 22050"):
        encoder("hear:hear_bad_rate")
    fake_tf = "class Module:\n    pass\nModule.__module__ = 'tensorflow.python.module.module'\n"
    write_module(
        tmp_path, monkeypatch, "hear_tf", fake_tf + "def load_model(model_file_path=''):\n    return Module()\n" + api
    )
    with pytest.raises(EvalbenchError, match="TensorFlow models are not supported here"):
        encoder("hear:hear_tf")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EvalbenchError, match=r"load_model\('.*garbage\.pt'\) failed"):
        encoder(f"hear:hear_toy:{garbage}")


# --- the encoder contract -----------------------------------------------------------------------------------------


def test_shapes_hop_and_mask_follow_the_valid_lengths(toy) -> None:
    enc = encoder()
    assert (enc.model.sample_rate, enc.model.embed_dim, enc.dim) == (16000, 16, 16)
    assert enc.model.hop_seconds == pytest.approx(0.025)
    wav, lengths = clips([1.0, 0.5, 0.3])
    frames = enc.model.encode(wav, lengths)
    assert frames.embeddings.shape == (3, 40, 16) and frames.embeddings.dtype == torch.float32
    assert frames.mask.sum(1).tolist() == [40, 20, 12]  # centres 12.5 + 25 t ms within 1000, 500, 300 ms
    assert not frames.embeddings[1, 20:].any() and not frames.embeddings[2, 12:].any()


def test_frames_centred_beyond_the_clip_are_masked(toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = """
    import torch
    emb = torch.cat([emb, emb[:, -1:] + 100.0], dim=1)
    ts = torch.cat([ts, ts[:, -1:] + 25.0], dim=1)
    """
    enc = encoder(f"hear:{toy_variant(tmp_path, monkeypatch, 'hear_overshoot', body)}")
    wav, lengths = clips([0.5])
    frames = enc.model.encode(wav, lengths)
    assert frames.embeddings.shape[1] == 21 and frames.mask[0].tolist() == [True] * 20 + [False]
    reference = encoder().model.encode(wav, lengths)
    torch.testing.assert_close(pool_mean(frames), pool_mean(reference))  # the extra frame never counts


@torch.no_grad()
def test_batch_invariance_and_no_padding_seen(toy) -> None:
    """A clip's embedding equals the module's own output on the trimmed clip, whatever its batch."""
    enc = encoder()
    wav, lengths = clips([0.7, 1.5, 0.3, 0.7])
    together = pool_mean(enc.model.encode(wav, lengths))
    for i in range(4):
        alone = pool_mean(enc.model.encode(wav[i : i + 1, : lengths[i]], lengths[i : i + 1]))
        np.testing.assert_allclose(together[i].numpy(), alone[0].numpy(), atol=1e-4)
        trimmed = wav[i : i + 1, : lengths[i]]
        direct = toy.get_scene_embeddings(trimmed, enc.model.model)  # scene = time mean of all frames
        np.testing.assert_allclose(together[i].numpy(), direct[0].numpy(), atol=1e-4)
    padded = toy.get_scene_embeddings(wav[2:3], enc.model.model)  # what zero padding would have given
    assert not np.allclose(together[2].numpy(), padded[0].numpy(), atol=1e-2)
    np.testing.assert_array_equal(together.numpy(), pool_mean(enc.model.encode(wav, lengths)).numpy())


def test_scene_mode_and_weights(toy, tmp_path: Path) -> None:
    wav, lengths = clips([1.0, 0.4])
    scene = HearEncoder.from_options(HearOptions(module="hear_toy", embedding="scene"), None)
    frames = scene.encode(wav, lengths)
    assert frames.embeddings.shape == (2, 1, 16) and frames.mask.all()
    expected = toy.get_scene_embeddings(wav[1:, : lengths[1]], scene.model)
    torch.testing.assert_close(frames.embeddings[1], expected)
    default = encoder().model.encode(wav, lengths)
    doubled = encoder(f"hear:hear_toy:{toy_weights(tmp_path, 2.0)}").model.encode(wav, lengths)
    torch.testing.assert_close(doubled.embeddings, 2 * default.embeddings)


def test_hear_batch_size_heuristic() -> None:
    assert hear_batch_size(1.0, 16000) == 84
    assert hear_batch_size(30.0, 16000) == 2
    assert hear_batch_size(600.0, 48000) == 1


# --- conformance check --------------------------------------------------------------------------------------------


def test_conformance_passes_for_the_toy(toy) -> None:
    checks = conformance_check("hear_toy")
    assert [c for c in checks if c.status != "pass"] == []
    assert len(checks) == 21 and any("uniform hop" in c.name for c in checks)


@pytest.mark.parametrize(
    ("name", "body", "failing"),
    [
        ("hear_uneven", "ts[:, 1::2] += 5.0\n", "uniform hop within 1 ms"),
        ("hear_float64", "emb = emb.double()\n", "float32"),
        ("hear_late", "ts = ts + 40.0\n", "last timestamp within the audio"),
    ],
)
def test_conformance_fails_for_broken_modules(
    toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str, failing: str
) -> None:
    checks = conformance_check(toy_variant(tmp_path, monkeypatch, name, body))
    failed = {c.name.split(": ", 1)[1] for c in checks if c.status == "fail"}
    assert failed == {failing}
    assert sum(c.status == "fail" for c in checks) == 3  # once per duration (1.07, 1.98, 4.0 s)


def test_check_command(toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    name = toy_variant(tmp_path, monkeypatch, "hear_uneven_cli", "ts[:, 1::2] += 5.0\n")
    assert main(["encoders", "check", f"hear:{name}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  timestamp embeddings on 2 × 1.07 s: uniform hop within 1 ms" in out
    assert out.strip().endswith("3 check(s) failed (21 checks, 0 warning(s))")
    assert main(["encoders", "check", "hear:no_such_hear_mod"]) == 1
    assert "is not installed; pip install" in capsys.readouterr().out
    assert main(["encoders", "check", "logmel"]) == 2
    assert "give a HEAR module as hear:<module>" in capsys.readouterr().err


def test_check_command_in_a_subprocess() -> None:
    """The documented way to check an installed module: the module found through PYTHONPATH."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TOY_DIR), str(REPO)])}
    cmd = [sys.executable, "-m", "evalbench", "encoders", "check", "hear:hear_toy"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("PASS  ") == 21 and "hear:hear_toy: conforms to the HEAR API" in out.stdout


# --- end to end ---------------------------------------------------------------------------------------------------


def test_run_scores_a_hear_module(toy, env: Env, capsys: pytest.CaptureFixture) -> None:
    args = env.cli("run", "--encoder", "hear:hear_toy", "--tasks", "synth_detect", "--seeds", "1")
    assert main(args) == 0
    record = json.loads((env.results / "hear-hear_toy" / "synth_detect.linear.json").read_text())
    assert record["encoder"]["name"] == "hear-hear_toy" and record["encoder"]["adapter"] == "hear"
    assert record["encoder"]["embedding_dim"] == 16 and record["encoder"]["checkpoint_sha256"] is None
    assert record["encoder"]["identity_static"]["options"]["module_version"] == "1.0"
    assert record["scores"]["test"]["accuracy"]["mean"] > 0.5  # a tone in noise is audible in band energies
    capsys.readouterr()
    assert main(args) == 0 and "0 record(s) written, 1 up to date" in capsys.readouterr().out
