"""Concurrent `evalbench run` / `pretrain` processes on shared folders (issue 14, concurrency).

Real processes are started at once on one cache and one results folder.  What
must hold: every process exits 0, no file is lost or half-written (no ``.tmp-*``
left), each cache entry is computed by exactly one process (counted from the
``cache write`` debug lines that ``-v`` prints), and the scores equal those of a
serial run in other folders.  Scores are compared with ``SCORE_TOL``: both runs
compute the same float32 embeddings and the same probe on them in the same
order, so any difference beyond rounding means a wrong number.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evalbench.cli import main
from evalbench.pretrain.state import load_state
from tests.conftest import ENCODERS, REPO, Env
from tests.data.helpers import write_audio
from tests.reliability.helpers import CHILD_ENV, start_evalbench

SCORE_TOL = 1e-9


def start_run(env: Env, encoder: str, tasks: str) -> subprocess.Popen[str]:
    """`evalbench -v run` as a separate process; stderr merged into stdout."""
    return start_evalbench(["-v", *env.cli("run", "--encoder", encoder, "--tasks", tasks, "--seeds", "1")])


def finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[str]:
    """Wait for every process; assert each exited 0; their outputs."""
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]
        outs.append(out)
    return outs


def scores(results: Path) -> dict[str, float]:
    """``encoder/task.probe`` -> test-split mean of every metric, from the records under ``results``."""
    found = {}
    for path in sorted(results.rglob("*.json")):
        record = json.loads(path.read_text())
        if "scores" not in record:
            continue
        name = str(path.relative_to(results))
        for metric, value in record["scores"]["test"].items():
            found[f"{name}:{metric}"] = value["mean"]
    return found


def serial_scores(env: Env, tmp_path: Path, runs: list[tuple[str, str]]) -> dict[str, float]:
    """The same runs one after another in private cache/results folders."""
    alone = Env(env.tasks, env.encoders, env.data, tmp_path / "serial-cache", tmp_path / "serial-results")
    for encoder, tasks in runs:
        assert main(alone.cli("run", "--encoder", encoder, "--tasks", tasks, "--seeds", "1")) == 0
    return scores(alone.results)


def writes(outs: list[str]) -> list[str]:
    """Every ``cache write <encoder>/<task>/<part>`` logged by the processes, one item per write."""
    return [m.group(1) for out in outs for m in re.finditer(r"cache write (\S+):", out)]


def assert_no_temp_files(*folders: Path) -> None:
    leftovers = [p for f in folders for p in f.rglob(".tmp-*")]
    assert leftovers == []


def assert_same_scores(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys() and got
    for k in want:
        assert abs(got[k] - want[k]) <= SCORE_TOL, (k, got[k], want[k])


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_runs_of_one_encoder_and_task_at_once_compute_each_entry_once(env: Env, tmp_path: Path, n: int) -> None:
    want = serial_scores(env, tmp_path, [("logmel", "synth_pitch")])
    outs = finish([start_run(env, "logmel", "synth_pitch") for _ in range(n)])
    written = writes(outs)
    # synth_pitch has three parts (train/valid/test): each written once, by whichever process got there first.
    assert sorted(written) == ["logmel/synth_pitch/test", "logmel/synth_pitch/train", "logmel/synth_pitch/valid"]
    assert_same_scores(scores(env.results), want)
    assert_no_temp_files(env.cache, env.results)
    assert len(list((env.cache / "logmel" / "synth_pitch").glob("*.npy"))) == 3


@pytest.mark.slow
def test_four_runs_of_different_and_overlapping_encoders_and_tasks(env: Env, tmp_path: Path) -> None:
    runs = [
        ("logmel", "synth_pitch"),
        ("logmel", "synth_timbre"),
        ("randproj", "synth_pitch"),
        ("logmel", "synth_pitch,synth_timbre"),
    ]
    want = serial_scores(env, tmp_path, runs)
    outs = finish([start_run(env, e, t) for e, t in runs])
    written = writes(outs)
    assert len(written) == len(set(written)), sorted(written)  # nothing computed twice
    assert {w.rsplit("/", 1)[0] for w in written} == {
        "logmel/synth_pitch",
        "logmel/synth_timbre",
        "randproj/synth_pitch",
    }
    assert_same_scores(scores(env.results), want)
    assert_no_temp_files(env.cache, env.results)


HOLD = """
import sys, time
from evalbench.utils.locks import acquire
acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_lock_of_a_killed_process_is_recovered_and_the_waiting_run_proceeds(env: Env, tmp_path: Path) -> None:
    # Learn the entry names from a first run, then drop the entries (their lock files stay, as after any run).
    assert main(env.cli("run", "--encoder", "logmel", "--tasks", "synth_pitch", "--seeds", "1")) == 0
    folder = env.cache / "logmel" / "synth_pitch"
    train_lock = next(folder.glob("train.*.lock"))
    for p in [
        *folder.glob("*.npy"),
        *folder.glob("*.json"),
        *env.results.rglob("*"),
        *(env.cache / "uptodate").glob("*"),
    ]:
        if p.is_file():
            p.unlink()

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(train_lock)], stdout=subprocess.PIPE, text=True, cwd=REPO, env=CHILD_ENV
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        run = start_run(env, "logmel", "synth_pitch")
        assert run.stdout is not None
        seen = []
        for line in run.stdout:  # the run reaches the held entry and says it waits, naming the holder's pid
            seen.append(line)
            if "waiting for process" in line:
                break
        assert any(f"waiting for process {holder.pid}@" in s for s in seen), "".join(seen)[-3000:]
        assert run.poll() is None  # still waiting
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the flock
        holder.wait()
    rest, _ = run.communicate(timeout=120)
    assert run.returncode == 0, rest[-3000:]
    assert "cache write logmel/synth_pitch/train" in rest
    assert (env.results / "logmel" / "synth_pitch.linear.json").is_file()
    assert_no_temp_files(env.cache, env.results)


TINY = [
    "--preset", "smoke", "--workers", "0", "--batch-size", "4",
    "--set", "options.hidden=32", "--set", "options.projection=16", "--set", "options.norm_clips=8",
    "--set", "options.mixup_bank=16", "--set", "train.checkpoint_every=10",
]  # fmt: skip


@pytest.mark.slow
def test_second_pretrain_into_the_same_folder_refuses_and_the_first_finishes_intact(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    encoders = tmp_path / "encoders"
    (encoders / "recipes").mkdir(parents=True)
    for recipe in (ENCODERS / "recipes").glob("*.yaml"):
        (encoders / "recipes" / recipe.name).write_bytes(recipe.read_bytes())
    for i in range(8):
        write_audio(tmp_path / "clips" / f"c{i}.wav", 1.2, 16000, freq=150.0 * (i + 1), seed=i)
    common = [
        "--data", str(tmp_path / "clips"), "--name", "shared", "--encoders-dir", str(encoders),
        "--data-root", str(env.data), "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks),
    ]  # fmt: skip
    out_dir = encoders / "checkpoints" / "pretrain" / "shared"
    lock = out_dir / ".pretrain.lock"
    first = start_evalbench(["pretrain", "byola", *TINY, "--steps", "60", *common])
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip()) and first.poll() is None:
        assert time.monotonic() < deadline, "the first pretrain never took its folder lock"
        time.sleep(0.1)
    assert first.poll() is None, "the first pretrain ended before the second could start"

    assert main(["pretrain", "byola", *TINY, "--steps", "2", *common]) == 2
    err = capsys.readouterr().err
    assert f"pretrain output folder {out_dir} is in use" in err and f"pid@host {first.pid}@" in err
    assert "Traceback" not in err

    out, _ = first.communicate(timeout=180)
    assert first.returncode == 0, out[-3000:]
    assert "60 steps, final loss" in out and (encoders / "shared.yaml").is_file()
    assert (out_dir / "encoder.pt").is_file()
    state = load_state(out_dir / "state.pt")
    assert state["step"] == 60  # the refused run wrote nothing over the first one's checkpoint
