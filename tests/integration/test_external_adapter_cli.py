"""End to end: `evalbench run` with an encoder whose adapter is a file beside its YAML (no change to evalbench)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from evalbench.cli import main
from tests.conftest import REPO, Env
from tests.integration.test_cli import _error, run_cli

EXAMPLE = REPO / "docs" / "examples" / "energy_adapter.py"
SPEC = (
    "name: myenc\nadapter: ./energy_adapter.py:EnergyEncoder\ndescription: one-file adapter\n"
    "pooling: mean_std\noptions: {frame: 320}\n"
)
ARGS = ("--encoder", "myenc", "--tasks", "synth_detect", "--seeds", "1")


@pytest.fixture
def mine(env: Env, tmp_path: Path) -> Env:
    """``env`` whose encoders folder holds only ``myenc.yaml`` and the adapter file it names."""
    folder = tmp_path / "my encoders"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "energy_adapter.py")
    (folder / "myenc.yaml").write_text(SPEC)
    return dataclasses.replace(env, encoders=folder)


def numbers(tree: Any) -> list[float]:
    """Every number in a JSON tree."""
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in numbers(v)]
    return [float(tree)] if isinstance(tree, int | float) and not isinstance(tree, bool) else []


def test_run_scores_an_adapter_from_a_file(mine: Env, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(mine, *ARGS) == 0
    path = mine.results / "myenc" / "synth_detect.linear.json"
    rec = json.loads(path.read_text())
    assert rec["encoder"]["adapter"] == "./energy_adapter.py:EnergyEncoder"
    assert rec["encoder"]["embedding_dim"] == 4  # mean_std of 2 features
    scores = numbers(rec["scores"])
    assert scores and all(math.isfinite(x) for x in scores)
    assert 0.0 <= rec["scores"]["test"]["accuracy"]["mean"] <= 1.0
    capsys.readouterr()

    assert run_cli(mine, *ARGS) == 0
    assert "0 record(s) written, 1 up to date" in capsys.readouterr().out

    adapter = mine.encoders / "energy_adapter.py"
    adapter.write_text(adapter.read_text() + "\n# edited: the file's SHA-256 is part of the cache key\n")
    assert run_cli(mine, *ARGS) == 0
    assert "1 record(s) written, 0 up to date" in capsys.readouterr().out
    again = json.loads(path.read_text())
    assert again["encoder"]["fingerprint"] != rec["encoder"]["fingerprint"]
    assert again["timings"]["parts_cached"] == 0  # embeddings recomputed, not read from the cache
    assert again["scores"] == rec["scores"]  # the edit was a comment: same numbers


def test_validate_and_run_report_a_broken_adapter_on_one_line(mine: Env, capsys: pytest.CaptureFixture) -> None:
    assert main(["encoders", "validate", "--encoders-dir", str(mine.encoders)]) == 0
    capsys.readouterr()
    (mine.encoders / "myenc.yaml").write_text(SPEC.replace("EnergyEncoder", "EnergyEncodr"))
    err = _error(mine, capsys, *ARGS)
    assert "myenc.yaml: adapter: './energy_adapter.py:EnergyEncodr': " in err
    assert "energy_adapter.py defines no 'EnergyEncodr'; did you mean 'EnergyEncoder'?" in err
    code = main(["encoders", "validate", "--encoders-dir", str(mine.encoders)])
    out = capsys.readouterr()
    assert code == 2 and "INVALID" in out.out and "EnergyEncodr" in out.out
