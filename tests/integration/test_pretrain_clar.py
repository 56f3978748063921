"""`evalbench pretrain clar`, then `evalbench run --encoder clar` exactly as written; exact resume; labels."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from tests.conftest import ENCODERS, Env

TINY = ["--preset", "smoke", "--workers", "0", "--batch-size", "4"]  # the final checkpoint is the one resumed


def clar(env: Env, *args: str) -> int:
    return main(
        ["pretrain", "clar", *TINY, *args, "--encoders-dir", str(env.encoders), "--data-root", str(env.data),
         "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks)]
    )  # fmt: skip


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
    clips = str(tmp_path / "clips")
    assert clar(penv, "--data", clips, "--steps", "2", "--name", "straight") == 0
    assert clar(penv, "--data", clips, "--steps", "1", "--name", "resumed") == 0
    assert clar(penv, "--data", clips, "--steps", "2", "--name", "resumed") == 0
    folder = penv.encoders / "checkpoints" / "pretrain"
    a, b = load_checkpoint(folder / "straight" / "encoder.pt")[0], load_checkpoint(folder / "resumed" / "encoder.pt")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same computation on CPU: bit-identical


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
