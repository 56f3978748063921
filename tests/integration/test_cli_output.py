"""What the command line prints.

``--quiet`` / ``--verbose`` everywhere, the closing table of ``run``, progress bars only on a
terminal, and a reader that stops early (``| head``) ending quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalbench.cli import build_parser, main
from tests.conftest import Env

REPO = Path(__file__).resolve().parents[2]
RUN = ("run", "--encoder", "logmel", "--tasks", "synth_detect", "--seeds", "2")


def _parsers(parser: argparse.ArgumentParser, path: str = "evalbench") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, f"{path} {name}")
    return found


def test_every_command_takes_quiet_and_verbose() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) > 15  # run, embed, pretrain, data prepare/verify/import, tasks list/show, ...
    for path, parser in parsers:
        options = {o for a in parser._actions for o in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= options, path


def test_quiet_and_verbose_together_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "tasks", "list", "--verbose"]) == 2
    assert "--quiet and --verbose contradict" in capsys.readouterr().err


def test_run_ends_with_a_summary_table_read_from_the_records(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(env.cli(*RUN)) == 0
    out = capsys.readouterr().out
    record = json.loads((env.results / "logmel" / "synth_detect.linear.json").read_text())
    score = record["scores"]["test"]["accuracy"]
    table = out[out.index("encoder ") :]
    row = next(line for line in table.splitlines() if line.startswith("logmel"))
    assert row.split()[:4] == ["logmel", "synth_detect", "accuracy", f"{score['mean']:.4f}"]
    assert f"[{score['ci95']['low']:.4f}, {score['ci95']['high']:.4f}]" in row and row.endswith("written")
    assert "1 record(s) written, 0 up to date" in out

    assert main(env.cli(*RUN)) == 0  # up to date: the same table, from the same record
    again = capsys.readouterr().out
    assert next(line for line in again.splitlines() if line.startswith("logmel     synth_detect")).endswith(
        "up to date"
    )
    assert f"{score['mean']:.4f}" in again


def test_quiet_run_prints_nothing_and_verbose_shows_the_cache_at_work(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(env.cli(*RUN, "--quiet")) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    assert (env.results / "logmel" / "synth_detect.linear.json").is_file()  # quiet, not idle

    assert main(env.cli(*RUN, "--overwrite", "-v")) == 0
    loud = capsys.readouterr()
    assert "evalbench.embed.cache: cache hit logmel/synth_detect/train" in loud.err
    assert "evalbench.runner: device cpu" in loud.err
    assert "1 record(s) written" in loud.out


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "evalbench", *args], cwd=REPO, env=env, text=True, **kw)


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """``evalbench tasks list | head -1``: no traceback, the shell's SIGPIPE status.

    The reader is made certain to be gone before the table is written by closing the pipe's read end first.
    """
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = _cli("tasks", "list", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err
    assert err == ""


def test_progress_bars_stay_out_of_redirected_output(env: Env) -> None:
    """With stderr a file (as in CI): no bar, no carriage return, only status on stdout."""
    proc = _cli(*env.cli(*RUN), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "\r" not in err and "batch/s" not in err and "it/s" not in err
    assert "1 record(s) written" in out
