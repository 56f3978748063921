"""End-to-end CLI runs on the tiny synthetic suite, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from evalbench.cli import main
from tests.conftest import REPO, Env


def run_cli(env: Env, *args: str) -> int:
    return main(env.cli("run", *args))


def test_run_writes_records_and_leaderboard(env: Env, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(env, "--encoder", "logmel,randproj", "--tasks", "synth", "--seeds", "2") == 0
    records = sorted(p.relative_to(env.results).as_posix() for p in env.results.glob("*/*.json"))
    tasks = ["synth_detect", "synth_events", "synth_pitch", "synth_pitch_reg", "synth_timbre"]
    assert records == [f"{e}/{t}.linear.json" for e in ("logmel", "randproj") for t in tasks]
    rec = json.loads((env.results / "logmel" / "synth_timbre.linear.json").read_text())
    assert rec["schema_version"] == 2 and rec["seeds"] == [42, 43]
    assert rec["task"]["version"] == 1 and rec["task"]["classes"][0] == "additive"
    assert len(rec["runs"]) == 2 * 5 and {r["fold"] for r in rec["runs"]} == {1, 2, 3, 4, 5}
    assert rec["probe"]["protocol"] == "evalbench-linear-v3" and rec["probe"]["config"]["solver"] == "newton"
    assert rec["probe"]["preset"] == "evalbench" and rec["probe"]["deviations"] == {}
    assert all(r["chosen"]["converged"] for r in rec["runs"])  # each chosen probe solved to tolerance
    assert len(rec["encoder"]["fingerprint"]) == 64 and rec["encoder"]["embedding_dim"] == 128
    assert set(rec["timings"]) >= {"extract_s", "probe_s"} and rec["environment"]["device"] == "cpu"
    score = rec["scores"]["test"]["accuracy"]
    assert 0.0 <= score["mean"] <= 1.0 and len(score["seed_means"]) == 2 and "fold_std" in score
    ci = score["ci95"]
    assert ci["low"] < score["mean"] < ci["high"] and ci["high"] - ci["low"] < 0.3 and ci["n_boot"] == 1000
    events = json.loads((env.results / "logmel" / "synth_events.linear.json").read_text())
    assert events["task"]["primary_metric"] == "map" and events["scores"]["test"]["roc_auc"]["mean"] > 0.5

    assert main(["leaderboard", "--results-dir", str(env.results)]) == 0
    board = (env.results / "leaderboard.md").read_text()
    assert "| logmel" in board and "| randproj" in board and "synth_events v1<br>map" in board
    table = pd.read_csv(env.results / "leaderboard.csv")
    assert len(table) == 10 and set(table.encoder) == {"logmel", "randproj"}  # 2 encoders x 5 tasks
    assert (env.results / "leaderboard.png").stat().st_size > 1000


def test_second_run_is_up_to_date_and_overwrite_hits_the_cache(env: Env, capsys: pytest.CaptureFixture) -> None:
    args = ("--encoder", "logmel", "--tasks", "synth_pitch,synth_detect", "--seeds", "1")
    assert run_cli(env, *args) == 0
    first = json.loads((env.results / "logmel" / "synth_pitch.linear.json").read_text())
    assert first["timings"]["parts_computed"] == 3 and first["timings"]["parts_cached"] == 0
    capsys.readouterr()
    assert run_cli(env, *args) == 0
    assert "0 record(s) written, 2 up to date" in capsys.readouterr().out
    assert run_cli(env, *args, "--overwrite") == 0
    second = json.loads((env.results / "logmel" / "synth_pitch.linear.json").read_text())
    assert second["timings"]["parts_cached"] == 3 and second["timings"]["parts_computed"] == 0
    assert second["scores"] == first["scores"]  # same seeds, same cached embeddings: same numbers


def _error(env: Env, capsys: pytest.CaptureFixture, *args: str) -> str:
    code = run_cli(env, *args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("evalbench: error: ")
    assert not env.results.exists() or not any(env.results.rglob("*.json"))
    return err


def test_user_mistakes_give_one_line_errors_and_write_nothing(
    env: Env, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    assert "did you mean 'logmel'" in _error(env, capsys, "--encoder", "logmell", "--tasks", "synth")
    assert "did you mean 'synth_pitch'" in _error(env, capsys, "--encoder", "logmel", "--tasks", "synth_pich")
    assert "--seeds" in _error(env, capsys, "--encoder", "logmel", "--tasks", "synth", "--seeds", "x")
    assert "unknown probe" in _error(env, capsys, "--encoder", "logmel", "--tasks", "synth", "--probe", "nope")
    assert "known: evalbench" in _error(env, capsys, "--encoder", "logmel", "--tasks", "synth", "--protocol", "nope")
    reg = ("--encoder", "logmel", "--tasks", "synth_pitch,synth_pitch_reg")  # refused before any work
    assert "--probe linear under --protocol evar cannot fit" in _error(env, capsys, *reg, "--protocol", "evar")

    bad = tmp_path / "badtasks"
    shutil.copytree(env.tasks, bad)
    text = (bad / "synth_pitch.yaml").read_text().replace("type: fixed", "type: fixd")
    (bad / "synth_pitch.yaml").write_text(text)
    env.tasks = bad
    err = _error(env, capsys, "--encoder", "logmel", "--tasks", "synth_pitch")
    assert f"{bad / 'synth_pitch.yaml'}: splits.type: 'fixd' is not one of 'fixed', 'folds'" in err

    (bad / "custom.yaml").write_text(
        "name: custom\nversion: 1\ndescription: mine\ndataset: {builder: manifest}\n"
        "audio: {sample_rate: 16000, clip_seconds: 1.0}\nlabels: {type: single}\nsplits: {type: fixed}\n"
        "metrics: [accuracy]\n"
    )
    err = _error(env, capsys, "--encoder", "logmel", "--tasks", "custom")
    assert "dataset 'custom' is not prepared" in err and "evalbench data prepare custom --source DIR" in err


def test_manifest_dataset_prepare_then_run(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A custom dataset in canonical form: prepare (idempotent) then run."""
    src_meta = pd.read_csv(env.data / "synth_detect" / "metadata.csv")
    source = tmp_path / "mydata"
    shutil.copytree(env.data / "synth_detect" / "audio", source)
    src_meta.to_csv(source / "metadata.csv", index=False)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "mine.yaml").write_text(
        "name: mine\nversion: 1\ndescription: mine\ndataset: {builder: manifest}\n"
        "audio: {sample_rate: 16000, clip_seconds: 1.0}\nlabels: {type: binary, classes: [absent, present]}\n"
        "splits: {type: fixed}\nmetrics: [accuracy, roc_auc]\n"
    )
    env.tasks = tasks
    prep = [
        "data",
        "prepare",
        "mine",
        "--source",
        str(source),
        "--tasks-dir",
        str(tasks),
        "--data-root",
        str(tmp_path / "d"),
    ]
    assert main(prep) == 0 and "prepared" in capsys.readouterr().out
    assert main(prep) == 0 and "already prepared" in capsys.readouterr().out
    env.data = tmp_path / "d"
    assert run_cli(env, "--encoder", "logmel", "--tasks", "mine", "--seeds", "1") == 0
    assert (env.results / "logmel" / "mine.linear.json").is_file()


def test_list_and_validate_commands(env: Env, capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "synth_timbre" in out and "5-fold (holdout)" in out and "synth" in out
    assert main(["tasks", "validate"]) == 0 and main(["encoders", "validate"]) == 0
    assert main(["tasks", "show", "synth_events"]) == 0
    assert "type: multilabel" in capsys.readouterr().out
    assert main(["encoders", "show", "logmel"]) == 0
    assert "n_mels: 64" in capsys.readouterr().out


def test_console_script_entry_point(env: Env) -> None:
    """The installed `python -m evalbench` works in a subprocess, without torch for listing."""
    code = (
        "import sys, runpy; sys.argv=['evalbench','tasks','list']; runpy.run_module('evalbench', run_name='__main__')"
    )
    probe = (
        "import evalbench.cli, sys; [evalbench.cli.main(c.split()) for c in "
        "('tasks list', 'tasks validate', 'encoders list', 'encoders validate')]; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, cwd=REPO)
    assert out.returncode == 0 and "synth_pitch" in out.stdout
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ, cwd=REPO)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
