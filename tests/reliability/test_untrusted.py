"""Weights files from elsewhere never run code (issue 14, untrusted files).

The payload is a pickle whose unpickling would create a marker file: if any
entry point unpickled it with ``weights_only=False``, the marker would exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.errors import EvalbenchError
from evalbench.pretrain.state import load_state


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    """A real torch zip checkpoint whose unpickling would run ``touch marker``."""
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _Payload(marker)}, path)
    return path


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    # the payload is live: loaded without the weights-only guard, it creates its marker
    probe = _evil_checkpoint(tmp_path / "probe.pth", tmp_path / "probe-ran")
    torch.load(probe, weights_only=False)
    assert (tmp_path / "probe-ran").exists()
    marker = tmp_path / "pwned"
    return _evil_checkpoint(tmp_path / "evil.pth", marker), marker


@pytest.mark.parametrize("loader", [load_checkpoint, load_state], ids=["encoder-checkpoint", "pretrain-state"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(evil: tuple[Path, Path], loader) -> None:
    path, marker = evil
    with pytest.raises(EvalbenchError) as exc:
        loader(path)
    assert str(path) in str(exc.value)
    assert not marker.exists()


def test_run_with_such_a_checkpoint_stops_with_one_line(evil: tuple[Path, Path], tmp_path: Path) -> None:
    path, marker = evil
    env = {**os.environ, "EVALBENCH_DATA": str(tmp_path / "data"), "EVALBENCH_CACHE": str(tmp_path / "cache")}
    env["EVALBENCH_RESULTS"] = str(tmp_path / "results")
    cmd = [sys.executable, "-m", "evalbench", "run", "--encoder", "byola", "--checkpoint", str(path)]
    done = subprocess.run([*cmd, "--tasks", "synth_pitch", "--seeds", "1"], env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and str(path) in done.stderr
    assert not marker.exists() and not list((tmp_path / "results").rglob("*.json"))
