"""A full disk while writing the cache, a checkpoint or a record (issue 14, resource limits).

Two ways of filling the disk without root:

- in-process, :class:`FullDisk` makes the files evalbench opens for writing
  (through :mod:`evalbench.utils.io`) whose temporary name matches a pattern
  accept a few bytes and then fail with ``ENOSPC``, exactly where the kernel
  would (a partial temporary file exists when the error comes);
- in a subprocess, ``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored makes the kernel
  itself fail every write past N bytes with ``EFBIG``.

What must hold: one ``evalbench: error:`` line naming the file and saying what
to do, exit status 2, no ``.tmp-*`` file, no cache manifest without its array
(nor an array without its manifest), no record; what was there before is
unchanged; and a rerun with room again completes with the numbers of a run
that never failed.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from evalbench.embed.cache import EmbeddingCache
from evalbench.errors import DiskFullError
from evalbench.pretrain.state import load_state
from evalbench.utils.io import atomic_write_text
from tests.conftest import REPO, Env
from tests.integration.pretrain_helpers import pretrain

SCORE_TOL = 1e-9  # same embeddings, same probe, same order: equal up to summation rounding
RUN = ("--encoder", "logmel", "--tasks", "synth_pitch", "--seeds", "1")


class _Limited:
    """A writable file that takes ``room`` bytes, then fails like a full disk (``ENOSPC``)."""

    def __init__(self, fh: IO[bytes], room: int) -> None:
        self._fh, self._room = fh, room

    def write(self, data: Any) -> int:
        data = memoryview(data).cast("B")
        if len(data) > self._room:
            self._fh.write(data[: self._room])  # the part that fitted: a partial temporary file
            self._fh.flush()
            self._room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._fh.write(data)

    def __enter__(self) -> _Limited:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class FullDisk:
    """While active, files opened by ``os.fdopen`` whose name matches ``pattern`` run out of room.

    Args:
        monkeypatch: The test's monkeypatch (undone at the end of the test, or by :meth:`restore`).
        pattern: Regular expression searched in the opened file's name (evalbench's temporary
            files are ``.tmp-<destination name>-<random>``).
        skip: Matching opens that still succeed before the disk "fills".
        room: Bytes accepted before ``ENOSPC``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pattern: str, skip: int = 0, room: int = 100) -> None:
        self.pattern, self.skip, self.room = re.compile(pattern), skip, room
        self.failed: list[str] = []  # temporary files that failed
        self.monkeypatch = monkeypatch
        real = os.fdopen

        def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
            name = os.readlink(f"/proc/self/fd/{fd}")
            fh = real(fd, *args, **kwargs)
            if not self.pattern.search(Path(name).name):
                return fh
            if self.skip > 0:
                self.skip -= 1
                return fh
            self.failed.append(name)
            return _Limited(fh, self.room)

        monkeypatch.setattr(os, "fdopen", fdopen)

    def restore(self) -> None:
        """Room again."""
        self.monkeypatch.undo()


def tmp_files(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob(".tmp-*")]


def entries(cache: Path) -> dict[str, set[str]]:
    """Per cache folder of logmel/synth_pitch: the parts with an array and those with a manifest."""
    folder = cache / "logmel" / "synth_pitch"
    parts = {"npy": set(), "json": set()}
    for p in folder.glob("*.*.*"):
        if p.suffix in (".npy", ".json") and not p.name.startswith("fit."):
            parts[p.suffix[1:]].add(p.name.split(".")[0])
    return parts


def scores(results: Path) -> dict[str, float]:
    """``encoder/task.probe:metric`` -> test mean, from every record under ``results``."""
    found = {}
    for path in sorted(results.rglob("*.json")):
        record = json.loads(path.read_text())
        for metric, value in record["scores"]["test"].items():
            found[f"{path.relative_to(results)}:{metric}"] = value["mean"]
    return found


def assert_same_scores(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys() and got
    for k in want:
        assert abs(got[k] - want[k]) <= SCORE_TOL, (k, got[k], want[k])


def error_line(err: str) -> str:
    """The one error line of a failed command (and nothing like a traceback)."""
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("evalbench: error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


@pytest.fixture
def uninterrupted(env: Env, tmp_path: Path) -> dict[str, float]:
    """The scores of ``run RUN`` in private folders, never failing."""
    alone = Env(env.tasks, env.encoders, env.data, tmp_path / "ref-cache", tmp_path / "ref-results")
    assert main(alone.cli("run", *RUN)) == 0
    return scores(alone.results)


# --- the write primitive --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG], ids=["ENOSPC", "EDQUOT", "EFBIG"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    path = tmp_path / "out" / "file.txt"
    atomic_write_text(path, "old\n")

    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(DiskFullError) as exc:
        atomic_write_text(path, "new\n" * 1000, advice="move it with --somewhere")
    message = str(exc.value)
    assert message.startswith(f"cannot write {path}: ") and errno.errorcode[code] in message
    assert "nothing partial was left" in message and "move it with --somewhere, then run again" in message
    assert exc.value.path == str(path)
    assert path.read_text() == "old\n" and tmp_files(tmp_path) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError) as exc:
        atomic_write_text(tmp_path / "f", "x")
    assert not isinstance(exc.value, DiskFullError) and exc.value.errno == errno.EIO
    assert tmp_files(tmp_path) == []


@pytest.mark.parametrize("which", ["npy", "json"])
def test_cache_store_leaves_no_half_entry_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    kept = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.store("enc", "task", "train", {"p": 1}, kept)
    disk = FullDisk(monkeypatch, rf"^\.tmp-test\.[0-9a-f]{{16}}\.{which}-")
    new = np.ones((50, 4), dtype=np.float32)
    assert cache.load("enc", "task", "test", {"p": 2}) is None  # takes the entry's lock, as a run does
    with pytest.raises(DiskFullError) as exc:
        cache.store("enc", "task", "test", {"p": 2}, new)
    npy, manifest = cache.paths("enc", "task", "test", cache.key({"p": 2}))
    assert f"cannot write {npy if which == 'npy' else manifest}: no space left" in str(exc.value)
    assert "--cache-dir" in str(exc.value) and len(disk.failed) == 1
    assert not npy.exists() and not manifest.exists() and tmp_files(tmp_path) == []
    np.testing.assert_array_equal(cache.load("enc", "task", "train", {"p": 1}), kept)
    disk.restore()
    assert cache.load("enc", "task", "test", {"p": 2}) is None  # the lock was released: no wait here
    cache.store("enc", "task", "test", {"p": 2}, new)
    np.testing.assert_array_equal(cache.load("enc", "task", "test", {"p": 2}), new)


def test_a_full_disk_while_spilling_fused_features_names_the_scratch_folder(tmp_path: Path) -> None:
    from evalbench.embed.fit import _Spill

    spill = _Spill(tmp_path / "tmp")
    spill.file = _Limited(spill.file, 64)  # type: ignore[assignment]
    with pytest.raises(DiskFullError) as exc:
        spill.append(torch.ones(4, 8, 16), torch.full((4,), 16))
    assert str(exc.value).startswith(f"cannot write {tmp_path / 'tmp' / 'fused-features-*'}: no space left")
    assert "--cache-dir" in str(exc.value)
    spill.close()
    assert list((tmp_path / "tmp").iterdir()) == []  # the spill file is anonymous: nothing stays behind


# --- through `evalbench run` and `evalbench pretrain` ---------------------------------------------------------


@pytest.mark.parametrize("which", ["npy", "json"])
def test_run_with_a_full_cache_disk_fails_cleanly_and_the_rerun_equals_an_uninterrupted_run(
    env: Env,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uninterrupted: dict[str, float],
    which: str,
) -> None:
    disk = FullDisk(monkeypatch, rf"^\.tmp-test\.[0-9a-f]{{16}}\.{which}-")
    capsys.readouterr()
    assert main(env.cli("run", *RUN)) == 2
    line = error_line(capsys.readouterr().err)
    assert len(disk.failed) == 1
    entry = rf"{re.escape(str(env.cache))}/logmel/synth_pitch/test\.[0-9a-f]{{16}}\.{which}"
    assert re.search(f"cannot write {entry}: ", line), line
    assert "no space left on the device (ENOSPC)" in line and "--cache-dir" in line
    parts = entries(env.cache)
    assert "test" not in parts["npy"] | parts["json"]  # no half entry
    assert parts["npy"] == parts["json"]  # every array has its manifest and vice versa
    assert tmp_files(env.cache, env.results) == [] and not list(env.results.rglob("*.json"))
    disk.restore()
    assert main(env.cli("run", *RUN)) == 0
    assert_same_scores(scores(env.results), uninterrupted)


def test_a_full_disk_at_the_record_keeps_the_earlier_record(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uninterrupted: dict[str, float]
) -> None:
    assert main(env.cli("run", *RUN)) == 0
    record = env.results / "logmel" / "synth_pitch.linear.json"
    before = record.read_bytes()
    disk = FullDisk(monkeypatch, r"^\.tmp-synth_pitch\.linear\.json-")
    capsys.readouterr()
    assert main(env.cli("run", *RUN, "--overwrite")) == 2
    line = error_line(capsys.readouterr().err)
    assert f"cannot write {record}: no space left" in line and "--results-dir" in line and disk.failed
    assert record.read_bytes() == before and tmp_files(env.cache, env.results) == []
    disk.restore()
    assert main(env.cli("run", *RUN, "--overwrite")) == 0
    assert_same_scores(scores(env.results), uninterrupted)


def test_a_full_disk_at_the_leaderboard_keeps_the_earlier_one(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(env.cli("run", *RUN)) == 0
    assert main(["leaderboard", "--results-dir", str(env.results)]) == 0
    board = env.results / "leaderboard.md"
    before = board.read_bytes()
    disk = FullDisk(monkeypatch, r"^\.tmp-leaderboard\.md-")
    (env.results / "logmel" / "synth_pitch.linear.json").touch()  # nothing new, but regenerate anyway
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(env.results)]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"cannot write {board}: no space left" in line and "--results-dir" in line and disk.failed
    assert board.read_bytes() == before and tmp_files(env.results) == []


def test_a_full_disk_at_the_predictions_withdraws_the_record_so_the_rerun_writes_both(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], uninterrupted: dict[str, float]
) -> None:
    disk = FullDisk(monkeypatch, r"^\.tmp-synth_pitch\.linear\.predictions\.npz-")
    assert main(env.cli("run", *RUN)) == 2
    line = error_line(capsys.readouterr().err)
    record = env.results / "logmel" / "synth_pitch.linear.json"
    assert "logmel × synth_pitch: cannot write" in line and "predictions.npz: no space left" in line
    assert f"its record {record} was withdrawn" in line and disk.failed
    assert not list(env.results.rglob("*.json")) and not list(env.results.rglob("*.npz"))
    assert tmp_files(env.cache, env.results) == []
    disk.restore()
    assert main(env.cli("run", *RUN)) == 0
    assert record.is_file() and record.with_name("synth_pitch.linear.predictions.npz").is_file()
    assert_same_scores(scores(env.results), uninterrupted)


@pytest.mark.slow
def test_a_full_disk_at_a_pretrain_checkpoint_keeps_the_last_one_and_the_rerun_resumes_exactly(
    penv: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clips = str(tmp_path / "clips")
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "straight") == 0
    folder = penv.encoders / "checkpoints" / "pretrain" / "cut"
    disk = FullDisk(monkeypatch, r"^\.tmp-state\.pt-", skip=1)  # the step-2 checkpoint fits, step 4's does not
    capsys.readouterr()
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "cut") == 2
    line = error_line(capsys.readouterr().err)
    assert f"cannot write {folder / 'state.pt'}: no space left" in line and "resumes from the last checkpoint" in line
    assert len(disk.failed) == 1 and load_state(folder / "state.pt")["step"] == 2
    assert not (folder / "encoder.pt").exists() and not (penv.encoders / "cut.yaml").exists()  # not registered
    assert tmp_files(penv.encoders) == []
    disk.restore()
    assert pretrain(penv, "--data", clips, "--steps", "4", "--name", "cut") == 0
    assert "resuming" in capsys.readouterr().out
    a = load_checkpoint(penv.encoders / "checkpoints" / "pretrain" / "straight" / "encoder.pt")[0]
    b = load_checkpoint(folder / "encoder.pt")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same computation: bit-identical


def test_a_full_disk_at_the_exported_encoder_registers_nothing(
    penv: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = penv.encoders / "checkpoints" / "pretrain" / "cut"
    disk = FullDisk(monkeypatch, r"^\.tmp-encoder\.pt-")
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "2", "--name", "cut") == 2
    line = error_line(capsys.readouterr().err)
    assert f"cannot write {folder / 'encoder.pt'}: no space left" in line and disk.failed
    assert not (folder / "encoder.pt").exists() and not (penv.encoders / "cut.yaml").exists()
    assert load_state(folder / "state.pt")["step"] == 2 and tmp_files(penv.encoders) == []
    disk.restore()
    assert pretrain(penv, "--data", str(tmp_path / "clips"), "--steps", "2", "--name", "cut") == 0
    assert (penv.encoders / "cut.yaml").is_file()


# --- a real kernel error: a file-size limit in a subprocess ---------------------------------------------------


def run_limited(env: Env, limit: int | None) -> subprocess.CompletedProcess[str]:
    """``python -m evalbench run RUN`` in a subprocess whose files may not grow past ``limit`` bytes."""

    def preexec() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    child = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "evalbench", *env.cli("run", *RUN)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=child,
        preexec_fn=preexec,
        timeout=300,
    )


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_a_file_size_limit_in_a_real_process_fails_cleanly_with_efbig(
    env: Env, uninterrupted: dict[str, float], cache: str
) -> None:
    # At most 4 KiB per file: the float32 embedding arrays (train: 72 clips x 128 dims, 37 KB) and the record
    # (~6 KB of scores and provenance) do not fit; empty lock files do.  Cold, the first array fails; warm (every
    # entry cached by an earlier run whose record was then removed), the record does.
    if cache == "warm":
        assert main(env.cli("run", *RUN)) == 0
        shutil.rmtree(env.results)
    before = {p: p.read_bytes() for p in env.cache.rglob("*") if p.is_file() and p.suffix in (".npy", ".json")}
    done = run_limited(env, 4096)
    assert done.returncode == 2, done.stderr[-3000:]
    line = error_line(done.stderr)
    folder = env.cache / "logmel" / "synth_pitch" if cache == "cold" else env.results / "logmel"
    name = r"train\.[0-9a-f]{16}\.npy" if cache == "cold" else r"synth_pitch\.linear\.json"
    assert re.search(f"cannot write {re.escape(str(folder))}/{name}: the file would exceed", line), line
    assert "(EFBIG)" in line and ("--cache-dir" if cache == "cold" else "--results-dir") in line
    assert tmp_files(env.cache, env.results) == [] and not list(env.results.rglob("*.json"))
    parts = entries(env.cache)
    assert parts["npy"] == parts["json"] == (set() if cache == "cold" else {"train", "valid", "test"})
    assert {p: p.read_bytes() for p in before} == before  # what was cached is untouched
    done = run_limited(env, None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_scores(scores(env.results), uninterrupted)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_full_disk_at_the_decoded_audio_cache_fails_with_one_line_also_from_a_worker(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    # logmel at 22.05 kHz on the 16 kHz synthetic clips: every clip is resampled, and cached under <cache>/audio.
    encoders = tmp_path / "encoders"
    encoders.mkdir()
    text = (env.encoders / "logmel.yaml").read_text().replace("sample_rate: 16000", "sample_rate: 22050")
    (encoders / "logmel22.yaml").write_text(text.replace("name: logmel", "name: logmel22"))
    env = dataclasses.replace(env, encoders=encoders)
    # A forked DataLoader worker inherits the patch: the error then crosses the process boundary.
    disk = FullDisk(monkeypatch, r"^\.tmp-[0-9a-f]{32}\.f32c-", skip=3)
    args = env.cli("run", "--encoder", "logmel22", "--tasks", "synth_pitch", "--seeds", "1", "--workers", workers)
    assert main(args) == 2
    line = error_line(capsys.readouterr().err)
    audio = re.escape(str(env.cache / "audio" / "22050Hz"))
    assert re.search(rf"^evalbench: error: logmel22 × synth_pitch: cannot write {audio}/[0-9a-f]{{2}}/[0-9a-f]{{32}}"
                     r"\.f32c: no space left on the device \(ENOSPC\); ", line), line  # fmt: skip
    assert "--cache-dir" in line and "Caught" not in line and "Original Traceback" not in line
    assert tmp_files(env.cache, env.results) == [] and not list(env.results.rglob("*.json"))
    assert len(list((env.cache / "audio").rglob("*.f32c"))) == 3  # the entries written before the disk filled
    disk.restore()
    assert main(args) == 0


def test_a_full_disk_while_generating_a_synthetic_dataset_names_the_clip_and_the_rerun_completes(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "fresh-data"
    args = ["data", "prepare", "synth_pitch", "--tasks-dir", str(env.tasks), "--data-root", str(data)]
    disk = FullDisk(monkeypatch, r"^\.tmp-pitch_\d+\.wav-", skip=5)  # 5 clips are written, then the disk is full
    assert main(args) == 2
    line = error_line(capsys.readouterr().err)
    audio = re.escape(str(data / "synth_pitch" / "audio"))
    assert re.search(rf"cannot write {audio}/pitch_00005\.wav: no space left on the device \(ENOSPC\)", line), line
    assert "--data-root" in line and tmp_files(data) == []
    assert len(list((data / "synth_pitch" / "audio").glob("*.wav"))) == 5  # whole clips only
    disk.restore()
    assert main(args) == 0
    reference = env.data / "synth_pitch" / "audio"
    made = sorted((data / "synth_pitch" / "audio").glob("*.wav"))
    assert [p.name for p in made] == sorted(p.name for p in reference.glob("*.wav"))
    assert all(p.read_bytes() == (reference / p.name).read_bytes() for p in made)  # the same bytes as a clean prepare
