"""The README's examples run as written, so the documentation cannot rot.

Blocks marked ``<!-- example: NAME -->`` in README.md are executed by ``bash`` in a
fresh working folder (``HOME`` is that folder, so ``~/emotions`` is made here), with
evalbench's data root, cache and results in temporary folders and the shrunken
synthetic tasks as ``./tasks``.  Two things are added, never changed: the files an
example assumes you have (a folder of labelled audio, a weights file), and for the
pretraining block, flags that make each smoke run one step on eight clips.  Every
other ``evalbench`` line of every bash block is parsed by the real argument parser.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalbench.cli import build_parser
from tests.conftest import Env
from tests.data.helpers import write_audio

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLE = re.compile(r"<!-- example: ([\w-]+)[^>]*-->\n```(\w*)\n(.*?)\n```", re.S)
BLOCKS = {m.group(1): m.group(3) for m in EXAMPLE.finditer(README)}
SMOKE_ONE_STEP = "--data ~/clips --steps 1 --batch-size 4 --workers 0"  # appended after `--preset smoke`


@pytest.fixture
def home(env: Env, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder that is also ``HOME``; ``./tasks`` holds the tiny synthetic specs (a user overlay)."""
    work = tmp_path / "work"
    shutil.copytree(env.tasks, work / "tasks")
    shutil.copytree(env.data, tmp_path / "data")
    variables = {k: v for k, v in os.environ.items() if not k.startswith("EVALBENCH_")}
    variables.update(
        HOME=str(work),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(REPO),
        OMP_NUM_THREADS="1",
        EVALBENCH_DATA=str(tmp_path / "data"),
        EVALBENCH_CACHE=str(env.cache),
        EVALBENCH_RESULTS=str(env.results),
    )
    return work, variables


def bash(script: str, work: Path, variables: dict[str, str]) -> str:
    """Run ``script`` with ``bash -e`` in ``work``; its output (the test fails with it on a non-zero exit)."""
    proc = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=work,
        env=variables,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"$ {script}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def row(out: str, encoder: str, task: str) -> str:
    """The line of ``run``'s closing table for ``encoder`` × ``task`` (the test fails if there is none)."""
    found = [line for line in out.splitlines() if line.split()[:2] == [encoder, task]]
    assert found, f"no summary row for {encoder} × {task} in:\n{out[-2000:]}"
    return found[-1]


def test_every_marked_example_is_found() -> None:
    expected = {"own-data", "own-model-yaml", "own-model-yaml-run", "own-model-hear", "own-model-hear-run"}
    assert expected | {"own-model-adapter", "pretrain"} <= set(BLOCKS)


def _command_lines() -> list[str]:
    """Every evalbench command of every bash block, continuations joined, after `&&`, env and torchrun."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)\n```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|\|", line.split(" #")[0]):
                words = shlex.split(part, comments=True)
                while words and "=" in words[0] and not words[0].startswith("-"):
                    words.pop(0)  # PYTHONPATH=. evalbench ...
                if words[:1] == ["torchrun"] and "evalbench" in words:
                    words = words[words.index("evalbench") :]
                if words[:1] == ["evalbench"]:
                    commands.append(shlex.join(words[1:]))
    return commands


def test_every_evalbench_command_in_the_readme_parses() -> None:
    commands = _command_lines()
    assert len(commands) > 30
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command))
        except SystemExit as exc:  # argparse's way of refusing
            if exc.code != 0:
                raise AssertionError(f"README: `evalbench {command}` does not parse") from None


def test_own_data_example(home: tuple[Path, dict[str, str]]) -> None:
    work, variables = home
    for label, freq in (("angry", 300.0), ("calm", 900.0)):
        for i in range(12):
            write_audio(work / "emotions" / label / f"actor{i % 4}" / f"{i}.wav", 1.0, 16000, freq=freq, seed=i)
    out = bash(BLOCKS["own-data"], work, variables)
    assert "imported 'emo'" in out and (work / "tasks" / "emo.yaml").is_file()
    assert row(out, "logmel", "emo").endswith("written")


def test_own_model_examples(home: tuple[Path, dict[str, str]]) -> None:
    from evalbench.registry import ADAPTERS
    from evalbench.specs.encoder import parse_encoder_file

    work, variables = home
    yaml_path = work / "encoders" / "my-byola.yaml"
    yaml_path.parent.mkdir()
    yaml_path.write_text(BLOCKS["own-model-yaml"] + "\n", encoding="utf-8")
    spec = parse_encoder_file(yaml_path)  # the weights you would have: a file of that architecture
    ADAPTERS.get(spec.adapter).from_options(spec.typed_options(), None).export_checkpoint(
        work / "encoders" / "checkpoints" / "my-byola.pth"
    )
    out = bash(BLOCKS["own-model-yaml-run"], work, variables)
    assert row(out, "my-byola", "synth_detect") and row(out, "logmel", "synth_detect")
    assert "byola-v1-512@my-byola-" in out  # the same file, without a YAML, under its own name

    (work / "my_hear.py").write_text(BLOCKS["own-model-hear"] + "\n", encoding="utf-8")
    out = bash(BLOCKS["own-model-hear-run"], work, variables)
    assert "hear:my_hear: conforms to the HEAR API" in out and "WARN" not in out and "FAIL" not in out
    assert row(out, "hear-my_hear", "synth_detect").endswith("written")

    shutil.copytree(REPO / "docs", work / "docs")
    out = bash(BLOCKS["own-model-adapter"], work, variables)
    assert row(out, "energy", "synth_detect").endswith("written")


def test_pretrain_example(home: tuple[Path, dict[str, str]]) -> None:
    """Each smoke line runs (one step on eight clips); the paper-scale lines are parsed above, not run."""
    work, variables = home
    for i in range(8):
        write_audio(work / "clips" / f"c{i}.wav", 1.2, 16000, freq=150.0 * (i + 1), seed=i)
    lines = [line for line in BLOCKS["pretrain"].splitlines() if "--preset smoke" in line or "run --encoder" in line]
    assert len(lines) >= 6
    script = "\n".join(line.replace("--preset smoke", f"--preset smoke {SMOKE_ONE_STEP}") for line in lines)
    out = bash(script, work, variables)
    for name in ("byola-smoke", "clmr-smoke", "msn-smoke", "clar-smoke"):
        assert (work / "encoders" / f"{name}.yaml").is_file(), name  # registered in ./encoders, not the package
    assert row(out, "byola-smoke", "synth_pitch")
