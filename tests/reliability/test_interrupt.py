"""``kill -9`` in the middle of work, then a rerun (issue 14, interrupted work).

A real ``python -m evalbench`` process is started, and killed with SIGKILL
(with anything it started: it runs in its own session) at a seeded random
delay into one stage, several times in a row on the same folders:

(a) extraction in ``evalbench run``: ``logmel`` on a 720-clip ``synth_pitch``
    (its three parts take about 3 s on this 2-core machine);
(b) probe training in ``evalbench run``: the same task under ``--protocol evar``
    with 8 seeds (Adam probes, about 3 s);
(c) ``evalbench pretrain byola`` (a tiny BYOL-A v1 network, 24 steps, a
    checkpoint every 4 steps, about 7 s of training).

Each delay is drawn from ``random.Random(SEED)`` within ``WITHIN`` (5-75 %) of
the stage's span as measured by an uninterrupted reference run of the same
command, and counted from the log line that starts the stage in the killed
process itself (the debug log of ``-v``), so that start-up time, which varies
most on a shared machine, does not move the kill out of the stage.  A kill
that lands after the stage anyway is allowed once per test (the stage then
completed; its results must still be whole and equal).  After every kill nothing corrupt may be present
or readable: every cache manifest verifies against its array's SHA-256 and the
array equals the reference run's; every JSON under ``results/`` parses and every
record validates; no record exists while its work is unfinished; every
pretraining checkpoint (``state.pt``, ``init.pt``, ``encoder.pt``) loads, at a
checkpoint step, never behind the previous one.  Then a rerun completes and
must (1) resume: the cache entries completed before are read (``cache hit``
lines; the record's ``parts_cached`` and ``clips_embedded``), the pretrain says
``resuming ... at step S`` for the last checkpoint's S; and (2) equal an
uninterrupted run: record scores and per-run numbers within ``SCORE_TOL``
(both runs probe the same float32 embeddings with the same seeded code in the
same order, so anything beyond rounding is a wrong number; they are in
practice identical), cached embeddings within ``EMB_RTOL``, the pretrained
weights, the whole method state and every step's loss within ``WEIGHT_RTOL`` /
``WEIGHT_ATOL`` (the pretrain base claims a bit-identical resume on CPU; the
tolerance only allows the float noise a different batching could bring).

Things a kill leaves that are expected and harmless: ``.lock`` files (the
kernel releases the ``flock``), ``.tmp-*`` files of an interrupted atomic write
(never read: no reader matches their names), and an array without its manifest
(reported and recomputed, tests/reliability/test_cache_corruption.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.pretrain.state import load_state
from evalbench.results.schema import load_record
from evalbench.utils.hashing import sha256_file
from tests.conftest import ENCODERS, Env, shrink_tasks
from tests.data.helpers import write_audio
from tests.reliability.helpers import assert_same_numbers, start_evalbench

SEED = 14
KILLS = 3
ATTEMPTS = 8  # a kill that comes too late (the stage already over on a busy machine) is tried again, sooner
WITHIN = (0.05, 0.75)  # kill delays as fractions of the stage's measured span: a margin for a faster machine
MIN_SPAN = 0.4
"""Seconds a stage must last in the reference run for kills at 5-75 % of it to be meaningful (the log line that
starts the stage is seen within milliseconds).  An idle 2-core machine measured 0.99 s of extraction (3 s on a
busy one): a 1 s floor failed there for being fast."""
SCORE_TOL = 1e-9
EMB_RTOL = 1e-6
WEIGHT_RTOL, WEIGHT_ATOL = 1e-6, 1e-7

TASK, PER_CLASS = "synth_pitch", 60  # 12 classes × 60 = 720 clips: 432 train, 144 valid, 144 test
PARTS = ("train", "valid", "test")  # the order extraction goes through them
RUN = ["--encoder", "logmel", "--tasks", TASK, "--protocol", "evar", "--seeds", "8", "--workers", "0"]
MISS = re.compile(rf"cache miss logmel/{TASK}/(\w+) ")
HIT = re.compile(rf"cache hit logmel/{TASK}/(\w+):")
WRITE = re.compile(rf"cache write logmel/{TASK}/(\w+):")
RECORD = re.compile(rf"logmel × {TASK}: .* → ")

STEPS, EVERY = 24, 4
PRETRAIN = [
    "pretrain", "byola", "--preset", "smoke", "--workers", "0", "--batch-size", "2", "--steps", str(STEPS),
    "--set", "options.version=v1", "--set", "options.feature_d=512", "--set", "options.hidden=32",
    "--set", "options.projection=16", "--set", "options.norm_clips=8", "--set", "options.mixup_bank=16",
    "--set", f"train.checkpoint_every={EVERY}", "--name", "killed",
]  # fmt: skip
TRAINING = re.compile(r"pretrain byola: \d+ steps of batch")
RESUMING = re.compile(r"resuming \S+ at step (\d+) of (\d+)")
FINISHED = re.compile(r"pretrain byola: \d+ steps, final loss")


class Child:
    """``python -m evalbench -v ARGS`` in its own session; a thread time-stamps its output lines."""

    def __init__(self, args: list[str]) -> None:
        self.began = time.monotonic()
        self.proc = start_evalbench(["-v", *args], new_session=True)
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.began, line.rstrip("\n")))

    @property
    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 120) -> re.Match[str]:
        """The first output line matching ``pattern``, waiting for it; fails if the process ends first."""
        deadline, seen = time.monotonic() + timeout, 0
        while True:
            while seen < len(self.lines):
                found = pattern.search(self.lines[seen][1])
                seen += 1
                if found:
                    return found
            if not self.reader.is_alive() and seen == len(self.lines):
                pytest.fail(f"ended (exit {self.proc.wait()}) before /{pattern.pattern}/:\n{self.output[-3000:]}")
            assert time.monotonic() < deadline, f"no /{pattern.pattern}/ in {timeout} s:\n{self.output[-3000:]}"
            time.sleep(0.005)

    def at(self, pattern: re.Pattern[str], last: bool = False) -> float:
        """Seconds from start to the first (or last) line matching ``pattern``."""
        times = [t for t, line in self.lines if pattern.search(line)]
        assert times, f"no /{pattern.pattern}/ in:\n{self.output[-3000:]}"
        return times[-1] if last else times[0]

    def found(self, pattern: re.Pattern[str]) -> list[str]:
        """First groups of every line matching ``pattern``."""
        return [m.group(1) for _, line in self.lines if (m := pattern.search(line))]

    def kill(self) -> None:
        """SIGKILL to the process and everything in its session (a no-op if it already ended)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # unreaped, its pid (= its group id) stays ours
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=30)

    def finish(self, timeout: float = 180) -> str:
        """Wait for a normal end; asserts exit status 0."""
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=30)
        assert self.proc.returncode == 0, self.output[-3000:]
        return self.output


@dataclass
class Reference:
    """An uninterrupted run: its folders, results and the measured stage timings (s since start)."""

    env: Env
    record: dict
    arrays: dict[str, np.ndarray]
    rows: dict[str, int]
    miss: dict[str, float] = field(default_factory=dict)
    write: dict[str, float] = field(default_factory=dict)
    done: float = 0.0  # the record line

    def extraction_left(self, first_part: str) -> float:
        """Seconds of extraction from the start of ``first_part`` to the last part's end."""
        return self.write[PARTS[-1]] - self.miss[first_part]

    @property
    def probe_span(self) -> float:
        """Seconds from the last part's end to the record."""
        return self.done - self.write[PARTS[-1]]


def folders(root: Path, world: Env) -> Env:
    return Env(world.tasks, ENCODERS, world.data, root / "cache", root / "results")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """Task specs with a 720-clip synth_pitch, prepared (its cache and results folders unused)."""
    from evalbench.data.prepare import prepare
    from evalbench.specs.task import load_task

    root = tmp_path_factory.mktemp("killworld")
    tasks = shrink_tasks(root / "tasks")
    spec = tasks / f"{TASK}.yaml"
    spec.write_text(re.sub(r"per_class: \d+", f"per_class: {PER_CLASS}", spec.read_text()))
    prepare(load_task(TASK, tasks), root / "data")
    return Env(tasks, ENCODERS, root / "data", root / "cache", root / "results")


@pytest.fixture(scope="module")
def reference(world: Env, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    env = folders(tmp_path_factory.mktemp("reference"), world)
    child = Child(env.cli("run", *RUN))
    child.finish()
    (path,) = record_files(env.results)
    arrays = verified_entries(env.cache)
    assert sorted(arrays) == sorted(PARTS)
    ref = Reference(env, load_record(path), arrays, {p: len(a) for p, a in arrays.items()})
    assert ref.record["timings"]["parts_computed"] == len(PARTS)
    for part in PARTS:
        ref.miss[part] = child.at(re.compile(rf"cache miss logmel/{TASK}/{part} "))
        ref.write[part] = child.at(re.compile(rf"cache write logmel/{TASK}/{part}:"))
    ref.done = child.at(RECORD)
    spans = (ref.extraction_left(PARTS[0]), ref.probe_span)
    assert min(spans) > MIN_SPAN, (ref.miss, ref.write, ref.done)
    return ref


def start_over(env: Env) -> None:
    """Empty the cache and results folders (after a kill that came too late to interrupt anything)."""
    for folder in (env.cache, env.results):
        shutil.rmtree(folder)
        folder.mkdir()


def record_files(results: Path) -> list[Path]:
    return sorted((results / "logmel").glob(f"{TASK}.*.json")) if (results / "logmel").is_dir() else []


def verified_entries(cache: Path) -> dict[str, np.ndarray]:
    """Part -> array of every cache entry that has a manifest; asserts each manifest verifies its array."""
    found: dict[str, np.ndarray] = {}
    folder = cache / "logmel" / TASK
    for manifest in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        meta = json.loads(manifest.read_text())  # a manifest present is whole (atomic) and verifies
        npy = manifest.with_suffix(".npy")
        assert meta["sha256"] == sha256_file(npy) and meta["nbytes"] == npy.stat().st_size, manifest
        array = np.load(npy, allow_pickle=False)
        assert list(array.shape) == meta["shape"] and array.dtype == np.float32, manifest
        part = manifest.name.split(".")[0]
        assert part not in found, f"two entries of {part}"
        found[part] = array
    return found


def check_after_kill(env: Env, ref: Reference) -> tuple[dict[str, np.ndarray], list[Path]]:
    """The verified cache entries (equal to the reference's) and the records (valid, equal to the reference)."""
    entries = verified_entries(env.cache)
    for part, array in entries.items():
        np.testing.assert_allclose(array, ref.arrays[part], rtol=EMB_RTOL, atol=0)
    for path in env.results.rglob("*.json"):
        json.loads(path.read_text())  # every JSON parses
    records = record_files(env.results)
    for path in records:
        assert_same_record(load_record(path), ref.record)  # validates; a record present is the finished result
    return entries, records


def assert_same_record(got: dict, want: dict) -> None:
    for section in ("scores", "runs"):
        assert_same_numbers(got[section], want[section], SCORE_TOL)


@pytest.mark.slow
def test_kill_during_extraction_then_rerun_resumes_and_equals_an_uninterrupted_run(
    world: Env, reference: Reference, tmp_path: Path
) -> None:
    env = folders(tmp_path, world)
    rng = random.Random(SEED)
    done: dict[str, np.ndarray] = {}
    landed, trail, scale = 0, [], 1.0
    for _ in range(ATTEMPTS):
        child = Child(env.cli("run", *RUN))
        first = child.wait_for(MISS).group(1)  # extraction of the first part not yet cached has begun
        assert first == PARTS[len(done)] and set(child.found(HIT)) == set(done)  # completed parts are read
        delay = scale * rng.uniform(*WITHIN) * reference.extraction_left(first)
        time.sleep(delay)
        child.kill()
        entries, records = check_after_kill(env, reference)
        trail.append(f"killed {delay:.2f} s into {first}: entries {sorted(entries)}, {len(records)} record(s)")
        assert set(done) <= set(entries) and set(child.found(WRITE)) <= set(entries)  # nothing done is lost
        assert set(entries) == set(PARTS[: len(entries)])
        done = entries
        if len(entries) == len(PARTS):  # the process got past extraction before the kill (a slow reference)
            if landed >= 2:
                break
            start_over(env)  # kill again, sooner, from an empty cache
            done, scale = {}, scale / 2
            continue
        landed += 1
        assert records == []  # no record while its embeddings are unfinished
        if landed == KILLS:
            break
    assert landed >= 2, f"only {landed} kills landed in extraction: {trail}"

    finished = bool(records)  # the last killed run even wrote its record: the rerun finds it up to date
    out = Child(env.cli("run", *RUN)).finish()
    entries, (path,) = check_after_kill(env, reference)
    assert sorted(entries) == sorted(PARTS)
    if not finished:  # resumed: the finished parts are read, only the others computed
        assert sorted(m.group(1) for m in HIT.finditer(out)) == sorted(done)
        timings = load_record(path)["timings"]
        assert timings["parts_cached"] == len(done)
        assert timings["clips_embedded"] == sum(reference.rows[p] for p in PARTS if p not in done)


@pytest.mark.slow
def test_kill_during_probe_training_then_rerun_resumes_and_equals_an_uninterrupted_run(
    world: Env, reference: Reference, tmp_path: Path
) -> None:
    env = folders(tmp_path, world)
    rng = random.Random(SEED + 1)
    landed, trail, scale = 0, [], 1.0
    for i in range(ATTEMPTS):
        child = Child(env.cli("run", *RUN))
        child.wait_for(re.compile(rf"cache (write|hit) logmel/{TASK}/{PARTS[-1]}:"))  # probes start now
        if i:  # the embeddings of the killed runs before are read, not recomputed
            assert sorted(child.found(HIT)) == sorted(PARTS) and child.found(WRITE) == []
        delay = scale * rng.uniform(*WITHIN) * reference.probe_span
        time.sleep(delay)
        child.kill()
        entries, records = check_after_kill(env, reference)
        trail.append(f"killed {delay:.2f} s into probing: {len(records)} record(s)")
        assert sorted(entries) == sorted(PARTS)
        if records:  # the probes finished before the kill; the record is whole and equal to the reference
            if landed >= 2:
                break
            shutil.rmtree(env.results)  # kill again, sooner, with no record (the cached embeddings stay)
            env.results.mkdir()
            scale /= 2
            continue
        landed += 1
        if landed == KILLS:
            break
    assert landed >= 2, f"only {landed} kills landed in probe training: {trail}"

    rerun = Child(env.cli("run", *RUN))
    out = rerun.finish()
    (path,) = record_files(env.results)
    assert_same_record(load_record(path), reference.record)
    if landed == KILLS:  # no killed run finished: the rerun probes the cached embeddings
        assert sorted(rerun.found(HIT)) == sorted(PARTS) and rerun.found(WRITE) == [], out[-3000:]
        timings = load_record(path)["timings"]
        assert timings["parts_cached"] == len(PARTS) and timings["clips_embedded"] == 0


def pretrain_args(env: Env, encoders: Path, clips: Path) -> list[str]:
    return [
        *PRETRAIN, "--data", str(clips), "--encoders-dir", str(encoders), "--data-root", str(env.data),
        "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks),
    ]  # fmt: skip


def private_encoders(root: Path) -> Path:
    (root / "recipes").mkdir(parents=True)
    for recipe in (ENCODERS / "recipes").glob("*.yaml"):
        shutil.copy(recipe, root / "recipes" / recipe.name)
    return root


def check_pretrain_folder(out: Path, before: int) -> int:
    """Assert every checkpoint in ``out`` loads and is consistent; the step of ``state.pt`` (0 if none)."""
    if (out / "init.pt").exists():
        assert load_checkpoint(out / "init.pt")[0]
    if (out / "encoder.pt").exists():
        assert load_checkpoint(out / "encoder.pt")[0]
    if not (out / "state.pt").exists():
        assert before == 0, "a checkpoint disappeared"
        return 0
    state = load_state(out / "state.pt")
    step = int(state["step"])
    assert step % EVERY == 0 or step == STEPS, step  # written only at checkpoint steps and at the end
    assert before <= step <= STEPS  # never behind the checkpoint the killed run resumed from
    assert [int(r[0]) for r in state["history"]] == list(range(step))
    if (out / "loss.csv").exists():
        assert (out / "loss.csv").read_text().startswith("step,loss,lr,seconds")
    return step


@pytest.mark.slow
def test_kill_during_pretraining_then_rerun_resumes_and_equals_an_uninterrupted_run(world: Env, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for i in range(8):
        write_audio(clips / f"c{i}.wav", 1.2, 16000, freq=150.0 * (i + 1), seed=i)
    ref_env = folders(tmp_path / "reference", world)
    ref_encoders = private_encoders(tmp_path / "reference" / "encoders")
    ref = Child(pretrain_args(ref_env, ref_encoders, clips))
    ref.finish()
    span = ref.at(FINISHED) - ref.at(TRAINING)
    assert span > 2.0, span

    env = folders(tmp_path / "killed", world)
    encoders = private_encoders(tmp_path / "killed" / "encoders")
    out = encoders / "checkpoints" / "pretrain" / "killed"
    rng = random.Random(SEED + 2)
    step, landed, trail = 0, 0, []
    for _ in range(KILLS):
        child = Child(pretrain_args(env, encoders, clips))
        child.wait_for(TRAINING)
        resumed = RESUMING.search(child.output)
        assert (int(resumed.group(1)) if resumed else 0) == step, child.output[-3000:]  # from the last checkpoint
        delay = rng.uniform(*WITHIN) * span * (STEPS - step) / STEPS
        time.sleep(delay)
        child.kill()
        after = check_pretrain_folder(out, step)
        trail.append(f"killed {delay:.2f} s into training from step {step}: checkpoint at step {after}")
        step = after
        if step == STEPS:
            break  # it finished training (the last checkpoint) before the kill
        landed += 1
    assert landed >= 2 and step > 0, f"{landed} of {KILLS} kills landed in training: {trail}"

    rerun = Child(pretrain_args(env, encoders, clips))
    rerun.finish()
    assert f"resuming {out / 'state.pt'} at step {step} of {STEPS}" in rerun.output
    assert check_pretrain_folder(out, step) == STEPS

    want_dir = ref_encoders / "checkpoints" / "pretrain" / "killed"
    got, want = load_checkpoint(out / "encoder.pt")[0], load_checkpoint(want_dir / "encoder.pt")[0]
    assert got.keys() == want.keys() and got
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL, msg=k)
    got_state, want_state = load_state(out / "state.pt"), load_state(want_dir / "state.pt")
    assert got_state["method"].keys() == want_state["method"].keys()
    for k in want_state["method"]:  # online and target networks, statistics, the mixup bank
        torch.testing.assert_close(got_state["method"][k], want_state["method"][k], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
    losses = np.array([r[1] for r in got_state["history"]])
    np.testing.assert_allclose(losses, [r[1] for r in want_state["history"]], rtol=WEIGHT_RTOL, atol=WEIGHT_ATOL)
