"""`evalbench bench`: the command runs its parts, prints the table, writes the JSON; mistakes exit 2.

No assertion here is on a timing or on a ratio's value: speed targets are what
the command prints, never what a test checks.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest

from evalbench.bench import PARTS, Figure, ratio_at_least, resolve_parts
from evalbench.cli import main
from evalbench.errors import UnknownNameError


def test_bench_pretrain_quick_prints_the_table_and_writes_the_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the default data/cache folder goes
    out = tmp_path / "out.json"
    assert main(["bench", "pretrain", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("figure"))
    assert header.split() == ["figure", "measured", "ratio", "target", "met"]
    ratio_row = next(line for line in printed.splitlines() if line.startswith("pretrain byola: steps/s, real data"))
    assert re.search(r"steps/s\s+\d+\.\d\d\s+ratio ≥ 0\.9\s+(yes|NO)$", ratio_row), ratio_row
    assert "pre-loaded tensors" in printed and "losses of all loops identical" in printed

    record = json.loads(out.read_text())
    assert record["parts"] == ["pretrain"] and record["quick"] is True
    assert {"torch", "threads", "cpu_count", "device"} <= set(record["machine"])
    assert record["machine"]["threads"] >= 1
    figures = {f["figure"]: f for f in record["figures"]}
    real = figures["pretrain byola: steps/s, real data path"]
    pre = figures["pretrain byola: steps/s, pre-loaded tensors"]
    assert real["baseline"] == pre["value"] and isinstance(real["met"], bool) and real["target"] == "ratio ≥ 0.9"
    for figure in record["figures"]:
        assert isinstance(figure["value"], float) and figure["value"] > 0, figure
    assert isinstance(real["ratio"], float) and real["ratio"] > 0
    assert not list(scratch.glob("evalbench-bench-*")), "the temporary data/cache folder was left behind"


def test_unknown_part_is_one_line_naming_the_known_parts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "pretrian"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("evalbench: error: unknown bench part 'pretrian'")
    assert "known parts: extract, load, long, pretrain" in err


def test_unknown_method_exits_2_before_any_timing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "pretrain", "--quick", "--methods", "byol", "--data-root", str(tmp_path / "d")]
    assert main([*args, "--cache-dir", str(tmp_path / "c")]) == 2
    assert "unknown pretraining method 'byol'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # nothing generated


def test_parts_and_figures() -> None:
    assert resolve_parts([]) == list(PARTS) and resolve_parts(["pretrain", "pretrain"]) == ["pretrain"]
    with pytest.raises(UnknownNameError, match="known parts: extract, load, long, pretrain"):
        resolve_parts(["nope"])
    met = ratio_at_least("x", 9.5, 10.0, "steps/s", 0.9)
    assert met.ratio == pytest.approx(0.95) and met.met is True and met.target == "ratio ≥ 0.9"
    assert ratio_at_least("x", 8.0, 10.0, "steps/s", 0.9).met is False
    plain = Figure("y", 1.5, "s")
    assert plain.ratio is None and plain.met is None and plain.as_dict()["ratio"] is None
