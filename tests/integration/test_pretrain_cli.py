"""`evalbench pretrain` end to end: register, score, resume exactly, refuse mismatches, guard contamination."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import yaml

from evalbench import paths
from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from evalbench.specs.encoder import load_encoder, pretrained_alternatives
from tests.conftest import ENCODERS, REPO, Env
from tests.data.helpers import write_audio
from tests.integration.pretrain_helpers import pretrain


def weights(env: Env, name: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(env.encoders / "checkpoints" / "pretrain" / name / "encoder.pt")[0]


def test_pretrain_registers_an_encoder_that_run_scores(penv: Env, tmp_path: Path, capsys) -> None:
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "3", "--name", "mine") == 0
    out = capsys.readouterr().out
    assert "data: folder" in out and "8 audio files" in out and "preset 'smoke'" in out
    assert "evalbench run --encoder mine" in out
    spec = yaml.safe_load((penv.encoders / "mine.yaml").read_text())
    assert spec["adapter"] == "byola" and spec["pooling"] == "mean_max" and spec["pretrain"]["steps"] == 3
    assert spec["pretrain"]["data"]["n_files"] == 8 and len(spec["checkpoint"]["sha256"]) == 64
    folder = penv.encoders / "checkpoints" / "pretrain" / "mine"
    assert {p.name for p in folder.iterdir()} >= {"encoder.pt", "state.pt", "loss.csv", "loss.png", "trained_on.txt"}
    assert all(not k.startswith(("module.", "_orig_mod.", "online.")) for k in weights(penv, "mine"))
    assert main(penv.cli("run", "--encoder", "mine", "--tasks", "synth_detect", "--seeds", "1")) == 0
    record = json.loads((penv.results / "mine" / "synth_detect.linear.json").read_text())
    assert record["encoder"]["embedding_dim"] == 3072


def test_the_random_twin_is_the_same_network_at_step_zero(penv: Env, tmp_path: Path, capsys) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "mine") == 0
    assert "evalbench run --encoder mine,mine-init" in capsys.readouterr().out
    spec, twin = (yaml.safe_load((penv.encoders / f"{n}.yaml").read_text()) for n in ("mine", "mine-init"))
    assert twin["pretrain"]["twin_of"] == "mine" and twin["pretrain"]["steps"] == 0
    assert twin["options"] == spec["options"] and twin["adapter"] == spec["adapter"]  # same input, same fitted stats
    folder = penv.encoders / "checkpoints" / "pretrain" / "mine"
    init, trained = load_checkpoint(folder / "init.pt")[0], weights(penv, "mine")
    assert init.keys() == trained.keys() and any(not torch.equal(init[k], trained[k]) for k in init)
    assert pretrain(penv, "--data", clips, "--steps", "1", "--name", "other") == 0
    start = load_checkpoint(penv.encoders / "checkpoints" / "pretrain" / "other" / "init.pt")[0]
    assert all(torch.equal(init[k], start[k]) for k in init)  # the seed fixes the start, whatever the run length
    assert main(penv.cli("run", "--encoder", "mine-init", "--tasks", "synth_detect", "--seeds", "1")) == 0
    shutil.copy(ENCODERS / "byola.yaml", penv.encoders / "byola.yaml")  # a twin is never "the newest pretrained"
    names = [s.name for s in pretrained_alternatives(load_encoder("byola", penv.encoders))]
    assert "mine" in names and "mine-init" not in names


def test_two_n_steps_equal_n_steps_then_resume(penv: Env, tmp_path: Path, capsys) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "straight") == 0
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "resumed") == 0
    capsys.readouterr()
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "resumed") == 0
    assert "resuming" in capsys.readouterr().out
    a, b = weights(penv, "straight"), weights(penv, "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same computation: bit-identical
    sa = torch.load(penv.encoders / "checkpoints/pretrain/straight/state.pt", weights_only=True)
    sb = torch.load(penv.encoders / "checkpoints/pretrain/resumed/state.pt", weights_only=True)
    assert all(torch.equal(sa["method"][k], sb["method"][k]) for k in sa["method"])  # target, bank, stats too
    assert [r[1] for r in sa["history"]] == [r[1] for r in sb["history"]]


def test_a_checkpoint_of_another_recipe_or_data_is_refused(penv: Env, tmp_path: Path, capsys) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "x") == 0
    capsys.readouterr()
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "x", "--set", "train.optimizer.lr=1e-3") == 2
    err = capsys.readouterr().err
    assert "train.optimizer.lr: checkpoint 0.0003, now 0.001" in err and "--restart" in err
    write_audio(tmp_path / "clips" / "extra.wav", 1.0, 16000, freq=3000.0)
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "x") == 2
    assert "data: checkpoint" in capsys.readouterr().err
    assert pretrain(penv, "--data", clips, "--steps", "2", "--name", "x", "--restart") == 0


def test_checkpoint_refuses_other_input_options(penv: Env, tmp_path: Path, capsys) -> None:
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "1", "--name", "hop") == 0
    path = penv.encoders / "hop.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["options"]["frontend"]["hop_length"] = 320
    path.write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert main(penv.cli("run", "--encoder", "hop", "--tasks", "synth_detect", "--seeds", "1")) == 2
    assert "frontend.hop_length: checkpoint 160, encoder 320" in capsys.readouterr().err


def test_contamination_guard(penv: Env, capsys) -> None:
    assert pretrain(penv, "--task", "synth_timbre", "--steps", "1", "--name", "timbre") == 2
    assert "--fold" in capsys.readouterr().err  # a k-fold task needs the held-out fold
    assert pretrain(penv, "--task", "synth_timbre", "--fold", "2", "--steps", "1", "--name", "timbre") == 0
    capsys.readouterr()
    args = ("--encoder", "timbre", "--tasks", "synth_timbre", "--seeds", "1")
    assert main(penv.cli("run", *args)) == 2
    err = capsys.readouterr().err
    assert "encoder 'timbre' was trained on" in err and "--allow-contaminated" in err
    assert not (penv.results / "timbre").exists()
    assert main(penv.cli("run", *args, "--allow-contaminated")) == 0
    record = json.loads((penv.results / "timbre" / "synth_timbre.linear.json").read_text())
    seen = record["contamination"]["test_clips_seen_in_training"]
    assert 0 < seen < record["contamination"]["test_clips"]  # every fold but fold 2 was seen
    assert main(["leaderboard", "--results-dir", str(penv.results)]) == 0
    assert "†" in (penv.results / "leaderboard.md").read_text()
    # A fixed-split task's test clips were never in its training split: no contamination.
    assert pretrain(penv, "--task", "synth_pitch", "--steps", "1", "--name", "pitch") == 0
    assert main(penv.cli("run", "--encoder", "pitch", "--tasks", "synth_pitch", "--seeds", "1")) == 0


def test_supervised_baseline_trains_on_the_training_folds_and_is_guarded(penv: Env, capsys) -> None:
    args = ["pretrain", "supervised", "--arch", "vgg", "--preset", "smoke", "--steps", "2", "--batch-size", "4",
            "--workers", "0", "--encoders-dir", str(penv.encoders), "--data-root", str(penv.data),
            "--cache-dir", str(penv.cache), "--tasks-dir", str(penv.tasks)]  # fmt: skip
    assert main(args) == 2
    assert "--task" in capsys.readouterr().err  # labels are needed
    assert main([*args, "--task", "synth_timbre", "--fold", "3", "--name", "sup"]) == 0
    out = capsys.readouterr().out
    assert "every fold but fold 3" in out and "the classifier's own accuracy on task synth_timbre, fold 3" in out
    spec = yaml.safe_load((penv.encoders / "sup.yaml").read_text())
    assert spec["options"] == {"arch": "vgg", "n_classes": 8} and 0 <= spec["pretrain"]["classifier"]["accuracy"] <= 1
    # its training folds are test folds of synth_timbre: scoring it there is contamination
    assert main(penv.cli("run", "--encoder", "sup", "--tasks", "synth_timbre", "--seeds", "1")) == 2
    assert "encoder 'sup' was trained on" in capsys.readouterr().err
    assert main(penv.cli("run", "--encoder", "sup", "--tasks", "synth_detect", "--seeds", "1")) == 0


def test_official_name_still_means_the_official_weights_and_names_the_pretrained_ones(
    penv: Env, tmp_path, capsys
) -> None:
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "1", "--name", "byola-mine") == 0
    shutil.copy(ENCODERS / "byola.yaml", penv.encoders / "byola.yaml")
    capsys.readouterr()
    assert main(penv.cli("run", "--encoder", "byola", "--tasks", "synth_detect", "--seeds", "1")) == 2
    err = capsys.readouterr().err
    assert "AudioNTT2022-BYOLA-64x96d2048.pth not found" in err and "byola-mine" in err


def test_a_family_without_official_weights_scores_the_newest_pretrained(
    penv: Env, tmp_path, caplog, monkeypatch
) -> None:
    catalog = tmp_path / "catalog"  # a built-in catalog without encoders: this checkout's own smoke checkpoints
    (catalog / "encoders").mkdir(parents=True)  # (made by run_all.sh) would otherwise be candidates too
    (catalog / "tasks").symlink_to(REPO / "tasks")
    monkeypatch.setattr(paths, "builtin_catalog", lambda: catalog)
    monkeypatch.chdir(tmp_path)  # nor ./encoders of the working folder, nor the variable pointing at it
    monkeypatch.delenv("EVALBENCH_ENCODERS_DIR")
    spec = yaml.safe_load((ENCODERS / "byola.yaml").read_text())
    spec["name"], spec["checkpoint"] = "fam", {"path": "checkpoints/none.pth", "pretrained": True}
    (penv.encoders / "fam.yaml").write_text(yaml.safe_dump(spec))
    assert main(penv.cli("run", "--encoder", "fam", "--tasks", "synth_detect", "--seeds", "1")) == 2  # none yet
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "1", "--name", "fam-a") == 0
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "1", "--name", "fam-b") == 0
    with caplog.at_level("WARNING"):
        assert main(penv.cli("run", "--encoder", "fam", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert "scoring 'fam-b'" in caplog.text
    assert (penv.results / "fam-b" / "synth_detect.linear.json").is_file()


def test_supervised_resume_is_exact(penv: Env) -> None:
    args = ["pretrain", "supervised", "--arch", "lstm", "--task", "synth_detect", "--preset", "smoke",
            "--set", "options.unit_seconds=1.0",
            "--batch-size", "4", "--workers", "0", "--set", "train.checkpoint_every=1",
            "--encoders-dir", str(penv.encoders), "--data-root", str(penv.data), "--cache-dir", str(penv.cache),
            "--tasks-dir", str(penv.tasks)]  # fmt: skip
    assert main([*args, "--steps", "2", "--name", "straight"]) == 0
    assert main([*args, "--steps", "1", "--name", "resumed"]) == 0
    assert main([*args, "--steps", "2", "--name", "resumed"]) == 0
    a, b = weights(penv, "straight"), weights(penv, "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # augmentations and sampler resumed too
