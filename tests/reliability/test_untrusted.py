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


# --- HEAR modules are imported only when an encoder names them --------------------------------------------------

HEAR_MARKED = '''
"""A HEAR module whose import leaves a marker file: evidence of exactly when it is imported."""
from pathlib import Path

Path({marker!r}).write_text("imported\\n")

from hear_toy import get_scene_embeddings, get_timestamp_embeddings, load_model  # noqa: E402, F401

__version__ = "1.0"
'''


def test_a_hear_module_is_imported_only_when_an_encoder_names_it(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses
    import importlib
    import json

    from evalbench.cli import main
    from tests.conftest import REPO

    marker, mods, encoders = tmp_path / "hear-imported", tmp_path / "mods", tmp_path / "encoders"
    mods.mkdir()
    encoders.mkdir()
    (mods / "hear_marked_probe.py").write_text(HEAR_MARKED.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(REPO / "tests" / "fixtures" / "hear_toy"))
    monkeypatch.syspath_prepend(str(mods))
    monkeypatch.delitem(sys.modules, "hear_marked_probe", raising=False)
    importlib.invalidate_caches()
    (encoders / "marked.yaml").write_text(
        "name: marked\nadapter: hear\ndescription: a HEAR module that marks its import\npooling: mean\n"
        "options: {module: hear_marked_probe}\n"
    )
    env = dataclasses.replace(env, encoders=encoders)
    dirs = ["--encoders-dir", str(encoders)]
    untouched = [
        ["encoders", "list", *dirs],  # lists marked.yaml among the built-in specs
        ["encoders", "validate", *dirs],  # parses and validates every spec's options, marked.yaml's too
        ["encoders", "show", "logmel", *dirs],
        env.cli("run", "--encoder", "logmel", "--tasks", "synth_pitch", "--seeds", "1"),
        ["leaderboard", "--results-dir", str(env.results)],
    ]
    for argv in untouched:
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        assert not marker.exists(), f"`evalbench {' '.join(argv[:2])}` imported a HEAR module nobody named"
        assert "hear_marked_probe" not in sys.modules
    assert "marked" in capsys.readouterr().out  # it was listed, so it was seen, without being imported
    assert main(env.cli("run", "--encoder", "marked", "--tasks", "synth_pitch", "--seeds", "1")) == 0
    assert marker.read_text() == "imported\n"  # naming it imports it (and the run scores it)
    record = json.loads((env.results / "marked" / "synth_pitch.linear.json").read_text())
    assert record["encoder"]["name"] == "marked"
