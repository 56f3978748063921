"""``evalbench run --encoder NAME --checkpoint PATH``: score any weights file of a family without YAML.

A throwaway adapter (``toyw``, defined here and registered for each test) reads
a weights file of 4 numbers and scales 4 per-frame statistics by them, so that
the weights visibly change the embeddings.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.base import Encoder, Frames
from evalbench.cli import main
from evalbench.errors import SpecError
from evalbench.registry import ADAPTER_OPTIONS, ADAPTERS
from evalbench.utils.hashing import sha256_file
from tests.conftest import ENCODERS, Env

FRAME = 400


@dataclass(frozen=True)
class ToyWeightsOptions:
    """Options of the throwaway adapter (none needed)."""

    frame: int = FRAME


class ToyWeightsEncoder(Encoder):
    """Per-frame RMS, mean, max and min, scaled element-wise by the 4 numbers of the weights file."""

    def __init__(self, weights: torch.Tensor, frame: int) -> None:
        super().__init__()
        self.register_buffer("weights", weights)
        self.frame = frame
        self.sample_rate, self.embed_dim, self.hop_seconds = 16000, 4, frame / 16000

    @classmethod
    def from_options(cls, options: ToyWeightsOptions, checkpoint: Path | None) -> ToyWeightsEncoder:
        if checkpoint is None:
            raise SpecError("toyw needs a checkpoint")
        return cls(torch.tensor(np.loadtxt(checkpoint), dtype=torch.float32), options.frame)

    def encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Frames:
        t = waveforms.shape[1] // self.frame
        x = waveforms[:, : t * self.frame].reshape(len(waveforms), t, self.frame)
        stats = torch.stack([x.pow(2).mean(-1).sqrt(), x.mean(-1), x.amax(-1), x.amin(-1)], dim=-1)
        mask = torch.arange(t)[None, :] < (lengths // self.frame).clamp(min=1)[:, None]
        return Frames(stats * self.weights, mask)


@pytest.fixture
def toyw(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """Register ``toyw`` and give it an encoder YAML with an "official" checkpoint in a temporary folder."""
    for registry, attr in ((ADAPTERS, "ToyWeightsEncoder"), (ADAPTER_OPTIONS, "ToyWeightsOptions")):
        monkeypatch.setitem(registry._targets, "toyw", f"{__name__}:{attr}")
        monkeypatch.setattr(registry, "_loaded", dict(registry._loaded))
    env.encoders = tmp_path / "encoders"
    env.encoders.mkdir()
    shutil.copy(ENCODERS / "logmel.yaml", env.encoders)
    (env.encoders / "official.txt").write_text("1 1 1 1\n")
    (env.encoders / "toyw.yaml").write_text(
        "name: toyw\nadapter: toyw\ndescription: throwaway\npooling: mean_max\ncheckpoint: {path: official.txt}\n"
    )
    return env


def run(env: Env, *args: str) -> int:
    return main(env.cli("run", "--tasks", "synth_detect", "--seeds", "1", *args))


def record(env: Env, encoder: str) -> dict:
    return json.loads((env.results / encoder / "synth_detect.linear.json").read_text())


def test_checkpoint_flag_writes_a_separate_record(toyw: Env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(toyw, "--encoder", "toyw") == 0
    official = (toyw.results / "toyw" / "synth_detect.linear.json").read_text()
    mine = tmp_path / "run 3.final.txt"
    mine.write_text("2 -1 0.5 3\n")

    assert run(toyw, "--encoder", "toyw", "--checkpoint", str(mine)) == 0
    name = f"toyw@run_3.final-{sha256_file(mine)[:8]}"
    rec = record(toyw, name)
    assert rec["encoder"]["name"] == name
    assert rec["encoder"]["checkpoint_sha256"] == sha256_file(mine)
    assert rec["encoder"]["identity_static"]["checkpoint_sha256"] == sha256_file(mine)
    assert rec["encoder"]["fingerprint"] != record(toyw, "toyw")["encoder"]["fingerprint"]
    assert (toyw.results / "toyw" / "synth_detect.linear.json").read_text() == official  # never overwritten

    capsys.readouterr()
    assert run(toyw, "--encoder", "toyw", "--checkpoint", str(mine)) == 0
    assert "0 record(s) written, 1 up to date" in capsys.readouterr().out

    mine.write_text("2 -1 0.5 4\n")  # same path, new content: a new encoder, computed, not served from the cache
    assert run(toyw, "--encoder", "toyw", "--checkpoint", str(mine)) == 0
    assert "1 record(s) written, 0 up to date" in capsys.readouterr().out
    again = record(toyw, f"toyw@run_3.final-{sha256_file(mine)[:8]}")
    assert again["encoder"]["checkpoint_sha256"] == sha256_file(mine) != rec["encoder"]["checkpoint_sha256"]
    assert again["timings"]["parts_computed"] == 3 and again["timings"]["parts_cached"] == 0
    assert record(toyw, name) == rec  # the first file's record is kept


def test_relative_checkpoint_paths_resolve_against_the_working_directory(
    toyw: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rel.txt").write_text("1 2 3 4\n")
    monkeypatch.chdir(tmp_path)
    assert run(toyw, "--encoder", "toyw", "--checkpoint", "rel.txt") == 0
    digest = sha256_file(tmp_path / "rel.txt")
    assert record(toyw, f"toyw@rel-{digest[:8]}")["encoder"]["checkpoint_sha256"] == digest


def _error(env: Env, capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert run(env, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("evalbench: error: ")
    assert not env.results.exists() or not any(env.results.rglob("*.json"))
    return err


def test_checkpoint_flag_mistakes_give_one_line_errors(
    toyw: Env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "nope.txt"
    err = _error(toyw, capsys, "--encoder", "toyw", "--checkpoint", str(missing))
    assert f"--checkpoint: file {missing} not found" in err
    (tmp_path / "w.txt").write_text("1 1 1 1\n")
    err = _error(toyw, capsys, "--encoder", "toyw,logmel", "--checkpoint", str(tmp_path / "w.txt"))
    assert "--checkpoint needs exactly one --encoder, got 2 (toyw, logmel)" in err
