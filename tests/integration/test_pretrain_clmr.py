"""`evalbench pretrain clmr`, then `evalbench run --encoder clmr` exactly as written; exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from tests.conftest import ENCODERS, Env

TINY = ["--preset", "smoke", "--workers", "0", "--batch-size", "4", "--set", "train.checkpoint_every=1"]


def clmr(env: Env, *args: str) -> int:
    return main(
        ["pretrain", "clmr", *TINY, *args, "--encoders-dir", str(env.encoders), "--data-root", str(env.data),
         "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks)]
    )  # fmt: skip


def test_pretrain_then_run_by_the_family_name(penv: Env, tmp_path: Path, capsys, caplog) -> None:
    shutil.copy(ENCODERS / "clmr.yaml", penv.encoders / "clmr.yaml")
    assert clmr(penv, "--data", str(tmp_path / "clips"), "--steps", "2") == 0
    assert "registered encoder 'clmr-smoke'" in capsys.readouterr().out
    with caplog.at_level("WARNING"):
        assert main(penv.cli("run", "--encoder", "clmr", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert "scoring 'clmr-smoke'" in caplog.text  # says which checkpoint the plain name scored
    assert (penv.results / "clmr-smoke" / "synth_detect.linear.json").is_file()


def test_resume_is_exact(penv: Env, tmp_path: Path) -> None:
    clips = str(tmp_path / "clips")
    assert clmr(penv, "--data", clips, "--steps", "2", "--name", "straight") == 0
    assert clmr(penv, "--data", clips, "--steps", "1", "--name", "resumed") == 0
    assert clmr(penv, "--data", clips, "--steps", "2", "--name", "resumed") == 0
    folder = penv.encoders / "checkpoints" / "pretrain"
    a, b = load_checkpoint(folder / "straight" / "encoder.pt")[0], load_checkpoint(folder / "resumed" / "encoder.pt")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same computation on CPU: bit-identical
