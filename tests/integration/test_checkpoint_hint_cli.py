"""Issue 13.3 end to end: ``evalbench run`` says which encoder a weights file fits.

It also takes ``--checkpoint NAME=PATH,...`` for several encoders.

The "official" BYOL-A v1 file is a miniature: the state dict of ``byola-v1-512``'s network with its seeded random
weights, saved under the official file name.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from evalbench.cli import main
from evalbench.embed.encoder import load_encoder_model
from evalbench.specs.encoder import parse_encoder_file
from evalbench.utils.hashing import sha256_file
from tests.conftest import ENCODERS, Env

V1_FILE = "AudioNTT2020-BYOLA-64x96d512.pth"


@pytest.fixture
def v1_file(tmp_path: Path) -> Path:
    spec = dataclasses.replace(parse_encoder_file(ENCODERS / "byola-v1-512.yaml"), checkpoint=None)
    net = load_encoder_model(spec, torch.device("cpu")).model.weights_module
    path = tmp_path / "downloads" / V1_FILE
    path.parent.mkdir()
    torch.save(net.state_dict(), path)
    return path


def run(env: Env, *args: str) -> int:
    return main(env.cli("run", "--tasks", "synth_detect", "--seeds", "1", *args))


def error(env: Env, capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert run(env, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("evalbench: error: ")
    assert not env.results.exists() or not any(env.results.rglob("*.json"))
    return err.removeprefix("evalbench: error: ")


def test_wrong_family_names_the_spec_it_fits(env: Env, v1_file: Path, capsys: pytest.CaptureFixture) -> None:
    err = error(env, capsys, "--encoder", "byola", "--checkpoint", str(v1_file))
    assert err.startswith(f"--checkpoint: {v1_file} does not load into encoder 'byola' (")
    assert err.endswith("this file matches `byola-v1-512`; use `--encoder byola-v1-512`")
    assert len(err) < 400  # not the list of every unexpected key and shape

    err = error(env, capsys, "--encoder", "byola,logmel", "--checkpoint", f"byola={v1_file}")
    assert err.endswith(f"use `--encoder byola-v1-512` and `--checkpoint byola-v1-512={v1_file}`")

    # Following the hint, with the named form and a second encoder that keeps its own (no) weights.
    assert run(env, "--encoder", "byola-v1-512,logmel", "--checkpoint", f"byola-v1-512={v1_file}") == 0
    name = f"byola-v1-512@AudioNTT2020-BYOLA-64x96d512-{sha256_file(v1_file)[:8]}"
    record = json.loads((env.results / name / "synth_detect.linear.json").read_text())
    assert record["encoder"]["checkpoint_sha256"] == sha256_file(v1_file)
    assert (env.results / "logmel" / "synth_detect.linear.json").is_file()


def test_a_specs_own_checkpoint_gets_the_hint(
    env: Env, v1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A user folder's ``byola.yaml`` (overriding the built-in one) whose file is really the v1 one."""
    folder = tmp_path / "encoders"
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(v1_file, folder / "checkpoints" / "AudioNTT2022-BYOLA-64x96d2048.pth")  # the wrong file, v2's name
    shutil.copy(ENCODERS / "byola.yaml", folder)
    env = dataclasses.replace(env, encoders=folder)
    err = error(env, capsys, "--encoder", "byola")
    assert err.startswith(f"{folder / 'byola.yaml'}: checkpoint.path: {folder / 'checkpoints'}")
    assert "does not load into encoder 'byola' (" in err
    assert err.endswith("this file matches `byola-v1-512`; use `--encoder byola-v1-512`")


def test_a_file_that_fits_no_spec_says_so(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    torch.save({"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, tmp_path / "linear.pt")
    err = error(env, capsys, "--encoder", "byola-v1-1024", "--checkpoint", str(tmp_path / "linear.pt"))
    assert "does not load into encoder 'byola-v1-1024' (" in err and "2 unexpected keys, e.g. bias" in err
    assert "it matches none of byola, " in err and "byola-v1-512" in err and err.endswith(" either")


def test_checkpoint_flag_mistakes(env: Env, v1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    two = ("--encoder", "byola-v1-512,logmel")
    err = error(env, capsys, *two, "--checkpoint", f"byola-v1-512={v1_file},clmr={v1_file}")
    assert "'clmr' is not among the encoders of --encoder (byola-v1-512, logmel)" in err
    err = error(env, capsys, *two, "--checkpoint", f"clmr={v1_file}")
    assert "'clmr' is not among the encoders of --encoder (byola-v1-512, logmel)" in err
    err = error(env, capsys, *two, "--checkpoint", f"byola-v1-512={tmp_path / 'nope.pth'}")
    assert f"--checkpoint byola-v1-512={tmp_path / 'nope.pth'}: file {tmp_path / 'nope.pth'} not found" in err
    err = error(env, capsys, *two, "--checkpoint", f"{v1_file},logmel={v1_file}")
    assert "mixes a plain path with ENCODER=PATH parts" in err
    err = error(env, capsys, *two, "--checkpoint", str(v1_file))
    assert "--checkpoint needs exactly one --encoder, got 2 (byola-v1-512, logmel); with several encoders name" in err
    err = error(env, capsys, *two, "--checkpoint", r"C:\weights\a.pth")  # a drive letter is no encoder name
    assert "--checkpoint needs exactly one --encoder, got 2" in err
    err = error(env, capsys, "--encoder", "byola-v1-512", "--checkpoint", r"C:\weights\a=1.pth")
    assert err.startswith("--checkpoint: file ") and err.split(" not found")[0].endswith(r"C:\weights\a=1.pth")


def test_paths_with_equals_and_commas(env: Env, v1_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``=`` and ``,`` in a path: plain with one encoder; named, split at the first ``=`` after the encoder name."""
    odd = tmp_path / "run=3,final.pth"
    shutil.copy(v1_file, odd)
    digest = sha256_file(odd)[:8]
    assert run(env, "--encoder", "byola-v1-512", "--checkpoint", str(odd), "--probe", "knn") == 0
    assert (env.results / f"byola-v1-512@run_3_final-{digest}" / "synth_detect.knn.json").is_file()
    capsys.readouterr()
    assert run(env, "--encoder", "logmel,byola-v1-512", "--checkpoint", f"byola-v1-512={odd}", "--probe", "knn") == 0
    out = capsys.readouterr().out
    assert f"byola-v1-512@run_3_final-{digest} × synth_detect: up to date" in out  # the same file, named
