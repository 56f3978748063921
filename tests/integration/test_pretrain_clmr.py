"""`evalbench pretrain clmr`, then `evalbench run --encoder clmr` exactly as written; exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

from evalbench.cli import main
from tests.conftest import ENCODERS, Env
from tests.integration.pretrain_helpers import assert_resume_is_exact, pretrain_method

TINY = ["--preset", "smoke", "--workers", "0", "--batch-size", "4", "--set", "train.checkpoint_every=1"]


def clmr(env: Env, *args: str) -> int:
    return pretrain_method("clmr", env, *TINY, *args)


def test_pretrain_then_run_by_the_family_name(penv: Env, tmp_path: Path, capsys, caplog) -> None:
    shutil.copy(ENCODERS / "clmr.yaml", penv.encoders / "clmr.yaml")
    assert clmr(penv, "--data", str(tmp_path / "clips"), "--steps", "2") == 0
    assert "registered encoder 'clmr-smoke'" in capsys.readouterr().out
    with caplog.at_level("WARNING"):
        assert main(penv.cli("run", "--encoder", "clmr", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert "scoring 'clmr-smoke'" in caplog.text  # says which checkpoint the plain name scored
    assert (penv.results / "clmr-smoke" / "synth_detect.linear.json").is_file()


def test_resume_is_exact(penv: Env, tmp_path: Path) -> None:
    assert_resume_is_exact(clmr, penv, str(tmp_path / "clips"))  # bit-identical on CPU
