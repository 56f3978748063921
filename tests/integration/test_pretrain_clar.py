"""`evalbench pretrain clar`, then `evalbench run --encoder clar` exactly as written; exact resume; labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from evalbench.cli import main
from tests.conftest import ENCODERS, Env
from tests.integration.pretrain_helpers import assert_resume_is_exact, pretrain_method

TINY = ["--preset", "smoke", "--workers", "0", "--batch-size", "4"]  # the final checkpoint is the one resumed


def clar(env: Env, *args: str) -> int:
    return pretrain_method("clar", env, *TINY, *args)


def test_pretrain_then_run_by_the_family_name(penv: Env, tmp_path: Path, capsys, caplog) -> None:
    shutil.copy(ENCODERS / "clar.yaml", penv.encoders / "clar.yaml")
    assert clar(penv, "--data", str(tmp_path / "clips"), "--steps", "2") == 0
    assert "registered encoder 'clar-smoke'" in capsys.readouterr().out
    spec = yaml.safe_load((penv.encoders / "clar-smoke.yaml").read_text())
    assert spec["adapter"] == "clar" and spec["options"] == {"frontend": "code", "encoder": "resnet2d"}
    with caplog.at_level("WARNING"):
        assert main(penv.cli("run", "--encoder", "clar", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert "scoring 'clar-smoke'" in caplog.text  # says which checkpoint the plain name scored
    assert (penv.results / "clar-smoke" / "synth_detect.linear.json").is_file()


def test_resume_is_exact(penv: Env, tmp_path: Path) -> None:
    assert_resume_is_exact(clar, penv, str(tmp_path / "clips"))  # bit-identical on CPU


def test_semi_supervised_run_on_a_fifth_of_the_labels(penv: Env, tmp_path: Path, capsys) -> None:
    args = ("--task", "synth_timbre", "--fold", "2", "--steps", "1", "--name", "semi")
    assert clar(penv, *args, "--set", "options.labelled_fraction=0.2") == 0
    out = capsys.readouterr().out
    assert "every fold but fold 2" in out and "registered encoder 'semi'" in out
    assert "the classifier's own accuracy on task synth_timbre, fold 2" in out  # CLAR's classifier, held-out fold
    recipe = yaml.safe_load((penv.encoders / "semi.yaml").read_text())["pretrain"]["recipe"]
    assert recipe["options"]["labelled_fraction"] == 0.2 and recipe["options"]["n_classes"] == 8
    assert clar(penv, "--data", str(tmp_path / "clips"), "--steps", "1", "--name", "nolabels",
                "--set", "options.labelled_fraction=0.2") == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--task" in err and "labelled_fraction=0" in err
