"""`evalbench pretrain --monitor TASK`: the kNN curve beside the loss curve, carried through a resume."""

from __future__ import annotations

from pathlib import Path

import torch

from evalbench.adapters.checkpoints import load_checkpoint
from tests.conftest import Env
from tests.integration.pretrain_helpers import pretrain

MONITOR = ["--monitor", "synth_pitch", "--set", "train.monitor_every=2"]


def curve_steps(folder: Path) -> list[int]:
    lines = (folder / "monitor.csv").read_text().splitlines()
    assert lines[0] == "step,accuracy,seconds"
    return [int(line.split(",")[0]) for line in lines[1:]]


def test_monitor_scores_every_n_steps_and_survives_a_resume(penv: Env, tmp_path: Path, capsys) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, *MONITOR, "--steps", "4", "--name", "mon") == 0
    out = capsys.readouterr().out
    for step in (0, 2, 4):
        assert f"monitor synth_pitch @ step {step}: accuracy 0." in out
    assert "72 clips of the train split as memory, 24 of the valid split as queries" in out
    assert "pretrain byola: monitor synth_pitch @ step 4: accuracy" in out  # the summary line
    folder = penv.encoders / "checkpoints" / "pretrain" / "mon"
    assert curve_steps(folder) == [0, 2, 4] and (folder / "monitor.png").is_file()
    assert [r["step"] for r in torch.load(folder / "state.pt", weights_only=True)["monitor"]] == [0, 2, 4]
    monitored = load_checkpoint(folder / "encoder.pt")[0]
    # Resuming for longer keeps the curve (step 4 is not scored again) and extends it.
    assert pretrain(penv, "--data", clips, *MONITOR, "--steps", "6", "--name", "mon") == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "@ step 4:" not in out
    assert "monitor synth_pitch @ step 6: accuracy" in out
    assert curve_steps(folder) == [0, 2, 4, 6]
    # Monitoring never changes training: the same run without --monitor gives the same weights.
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "plain") == 0
    plain = load_checkpoint(folder.parent / "plain" / "encoder.pt")[0]
    assert plain.keys() == monitored.keys() and all(torch.equal(plain[k], monitored[k]) for k in plain)
