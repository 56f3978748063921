"""End to end: `evalbench data import` a generated folder of WAVs, then `evalbench run` the new task."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from evalbench.cli import main

EMOTIONS = {"ANG": 220.0, "HAP": 330.0, "NEU": 495.0}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """An emotion corpus named by actor: ``corpus/Actor_NN/NN_<EMO>_<take>.wav``, 0.4 s at 16 kHz."""
    root = tmp_path / "corpus"
    sr = 16000
    t = np.arange(int(0.4 * sr)) / sr
    for actor in range(1, 7):
        for emo, freq in EMOTIONS.items():
            for take in range(2):
                rng = np.random.default_rng([actor, int(freq), take])
                pitch = freq * (1 + 0.03 * actor)
                x = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(len(t))
                path = root / f"Actor_{actor:02d}" / f"{actor:02d}_{emo}_{take}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, x.astype(np.float32), sr)
    return root


def dirs(tmp_path: Path) -> list[str]:
    return ["--tasks-dir", str(tmp_path / "tasks"), "--data-root", str(tmp_path / "data")]


def test_import_then_run_writes_a_record(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["data", "import", str(corpus), "--name", "myemo", "--folds", "3"]
    args += ["--label-from", r"_([A-Z]{3})_\d\.wav$", "--group-from", r"^Actor_(\d+)/"]
    assert main([*args, *dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "imported 'myemo' (version 1): 36 clips, 3 classes, 6 groups" in out
    assert "3 folds grouped by group, stratified by label (seed 0)" in out
    spec = tmp_path / "tasks" / "myemo.yaml"
    assert f"task:     {spec.resolve()} (valid)" in out
    printed = out.strip().splitlines()[-1].strip()
    assert printed == (
        f"evalbench run --encoder logmel --tasks myemo --tasks-dir {(tmp_path / 'tasks').resolve()} "
        f"--data-root {(tmp_path / 'data').resolve()}"
    )
    assert not list((tmp_path / "data" / "myemo").glob("**/*.wav"))  # referenced in place, not copied

    assert main(["tasks", "validate", str(spec), *dirs(tmp_path)]) == 0  # the same check the import ran
    assert "all given specs are valid" in capsys.readouterr().out

    results = tmp_path / "results"
    run = [*shlex.split(printed)[1:], "--seeds", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main([*run, "--results-dir", str(results)]) == 0
    record = json.loads((results / "logmel" / "myemo.linear.json").read_text())
    assert record["task"]["name"] == "myemo" and record["task"]["version"] == 1
    assert "myemo" in capsys.readouterr().out


def test_class_folders_with_defaults_run_too(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "animals"
    for c, freq in enumerate((200.0, 400.0, 800.0)):
        for i in range(10):
            x = np.sin(2 * np.pi * freq * (1 + 0.01 * i) * np.arange(4000) / 8000)
            path = root / f"class{c}" / f"{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, (0.2 * x).astype(np.float32), 8000)
    assert main(["data", "import", str(root), "--name", "animals", *dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train/valid/test 70/10/20 % (10 slots dealt 7/1/2) stratified by label" in out
    assert "train 21, valid 3, test 6" in out
    assert main(["data", "import", str(root), "--name", "animals", *dirs(tmp_path)]) == 2
    assert "already exists; choose another --name, or pass --force" in capsys.readouterr().err
    results = tmp_path / "results"
    run = ["run", "--encoder", "logmel", "--tasks", "animals", "--seeds", "1", *dirs(tmp_path)]
    assert main([*run, "--cache-dir", str(tmp_path / "cache"), "--results-dir", str(results)]) == 0
    assert (results / "logmel" / "animals.linear.json").is_file()
