"""A cache entry damaged on disk after the fact (issue 14, interrupted work).

One clean ``logmel`` run on the tiny ``synth_pitch`` task fills a cache and a
results folder.  Each case copies both, damages the *test* part's entry in one
way (array bytes flipped at the same size, array truncated, array deleted or
replaced by another part's valid array of the same shape; manifest deleted,
not JSON, JSON but not an object, naming another key, declaring a wrong
shape), and runs again with ``--overwrite`` (a damaged cache does not make a
record stale, so without it the run would rightly answer "up to date" without
reading the cache).  What must hold:

- detected and said: a warning naming the entry's array file and the reason;
- recomputed: the rerun's record counts exactly one part computed (the test
  part's 24 clips) and two read from the cache, and the rewritten entry
  verifies against its manifest's SHA-256 again;
- no wrong number: the recomputed embeddings equal the originals (``EMB_RTOL``:
  the same float32 code path on the same clips; in practice bit-identical) and
  the record's scores equal the original record's within ``SCORE_TOL`` (the same
  probe on the same embeddings in the same order; any larger difference means a
  wrong number).

Before this matrix, a manifest overwritten by valid JSON that is not an object
(``[]``) ended the run with an ``AttributeError`` traceback, and an array left
without its manifest (a process killed between the cache's two writes, or a
deleted manifest) was recomputed silently; both are fixed in
:meth:`evalbench.embed.cache.EmbeddingCache._read`.  An array without its
manifest is only damage when no other process is storing that entry (the
store writes the array first): the last test holds the entry's lock from
another process mid-store and checks that the reader waits and reads the
finished entry without a warning.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from evalbench.cli import main
from evalbench.embed.cache import EmbeddingCache
from evalbench.utils.hashing import sha256_file
from evalbench.utils.io import atomic_save_npy
from tests.conftest import ENCODERS, REPO, Env
from tests.reliability.helpers import assert_same_numbers

SCORE_TOL = 1e-9
EMB_RTOL = 1e-6
TASK = "synth_pitch"
TEST_CLIPS = 24  # the tiny synth_pitch: 10 clips in each of 12 classes, 60/20/20 per cent


@dataclass
class Original:
    """The clean run every case starts from."""

    env: Env
    record: dict
    arrays: dict[str, np.ndarray]  # part -> embeddings


def entry(cache: Path, part: str) -> tuple[Path, Path]:
    """The (array, manifest) of ``part``'s single entry under ``cache``."""
    (npy,) = (cache / "logmel" / TASK).glob(f"{part}.*.npy")
    return npy, npy.with_suffix(".json")


def run(env: Env, *args: str) -> int:
    return main(env.cli("run", "--encoder", "logmel", "--tasks", TASK, "--seeds", "1", "--workers", "0", *args))


def record_of(env: Env) -> dict:
    return json.loads((env.results / "logmel" / f"{TASK}.linear.json").read_text())


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, tiny_tasks: Path, tiny_data: Path) -> Original:
    root = tmp_path_factory.mktemp("clean")
    env = Env(tiny_tasks, ENCODERS, tiny_data, root / "cache", root / "results")
    assert run(env) == 0
    rec = record_of(env)
    assert rec["timings"]["parts_computed"] == 3
    arrays = {p: np.load(entry(env.cache, p)[0]) for p in ("train", "valid", "test")}
    assert arrays["test"].shape[0] == TEST_CLIPS and arrays["valid"].shape == arrays["test"].shape
    return Original(env, rec, arrays)


def _flip(npy: Path, manifest: Path, other: Path) -> None:
    raw = bytearray(npy.read_bytes())
    raw[-64:] = bytes(b ^ 0xFF for b in raw[-64:])  # the last 16 float32 values, size unchanged
    npy.write_bytes(bytes(raw))


def _truncate(npy: Path, manifest: Path, other: Path) -> None:
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])


def _replace(npy: Path, manifest: Path, other: Path) -> None:
    npy.write_bytes(other.read_bytes())  # another part's valid array, same shape and dtype


def _edit(change: Callable[[dict], object]) -> Callable[[Path, Path, Path], None]:
    def damage(npy: Path, manifest: Path, other: Path) -> None:
        meta = json.loads(manifest.read_text())
        change(meta)
        manifest.write_text(json.dumps(meta))

    return damage


def _other_key(meta: dict) -> None:
    meta["key"] = "0" * 64


def _wrong_shape(meta: dict) -> None:
    meta["shape"] = [meta["shape"][0] + 1, meta["shape"][1]]


# case -> (damage(array, manifest, the valid part's array), what the warning must say)
CASES: dict[str, tuple[Callable[[Path, Path, Path], None], str]] = {
    "array-bytes-flipped": (_flip, "checksum does not match"),
    "array-truncated": (_truncate, "checksum does not match"),
    "array-deleted": (lambda npy, manifest, other: npy.unlink(), "array file is missing"),
    "array-replaced-by-another-part": (_replace, "checksum does not match"),
    "manifest-deleted": (lambda npy, manifest, other: manifest.unlink(), "has no manifest"),
    "manifest-not-json": (lambda npy, manifest, other: manifest.write_text('{"key": "ab'), "is not valid JSON"),
    "manifest-not-utf8": (lambda npy, manifest, other: manifest.write_bytes(b"\xff\xfe{}"), "is not valid JSON"),
    "manifest-json-not-object": (lambda npy, manifest, other: manifest.write_text("[]"), "is not a JSON object"),
    "manifest-of-another-key": (_edit(_other_key), "belongs to another key"),
    "manifest-shape-wrong": (_edit(_wrong_shape), "shape or dtype differs"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_cache_entry_is_detected_said_and_recomputed(
    original: Original, tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    env = Env(original.env.tasks, ENCODERS, original.env.data, tmp_path / "cache", tmp_path / "results")
    shutil.copytree(original.env.cache, env.cache)
    shutil.copytree(original.env.results, env.results)
    npy, manifest = entry(env.cache, "test")
    damage, reason = CASES[case]
    damage(npy, manifest, entry(env.cache, "valid")[0])

    with caplog.at_level(logging.WARNING, logger="evalbench"):
        assert run(env, "--overwrite") == 0
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(npy) in m and reason in m and "recomputing" in m for m in said), said

    rec = record_of(env)
    assert rec["timings"]["parts_computed"] == 1 and rec["timings"]["parts_cached"] == 2
    assert rec["timings"]["clips_embedded"] == TEST_CLIPS
    assert_same_numbers(rec["scores"], original.record["scores"], SCORE_TOL)
    assert_same_numbers(rec["runs"], original.record["runs"], SCORE_TOL)

    meta = json.loads(manifest.read_text())  # rewritten whole: verifies again
    assert meta["sha256"] == sha256_file(npy) and meta["nbytes"] == npy.stat().st_size
    np.testing.assert_allclose(np.load(npy), original.arrays["test"], rtol=EMB_RTOL, atol=0)
    for part in ("train", "valid"):  # the undamaged entries were read, not rewritten
        np.testing.assert_array_equal(np.load(entry(env.cache, part)[0]), original.arrays[part])


def test_stray_temp_files_of_a_killed_write_are_not_taken_for_entries_or_records(
    original: Original, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a process killed mid-write leaves (``.tmp-<name>-*``, see evalbench.utils.io) is never read."""
    env = Env(original.env.tasks, ENCODERS, original.env.data, tmp_path / "cache", tmp_path / "results")
    shutil.copytree(original.env.cache, env.cache)
    npy, manifest = entry(env.cache, "test")
    (npy.parent / f".tmp-{npy.name}-x1y2z3").write_bytes(npy.read_bytes()[:100])
    (npy.parent / f".tmp-{manifest.name}-x1y2z3").write_text('{"key": ')
    with caplog.at_level(logging.WARNING, logger="evalbench"):
        assert run(env) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    rec = record_of(env)
    assert rec["timings"]["parts_cached"] == 3 and rec["timings"]["clips_embedded"] == 0
    assert_same_numbers(rec["scores"], original.record["scores"], SCORE_TOL)

    # A half-written record and sidecar beside the real ones: the leaderboard lists the record once.
    folder = env.results / "logmel"
    (folder / f".tmp-{TASK}.linear.json-a1b2c3").write_text('{"schema_version": ')
    (folder / f".tmp-{TASK}.linear.predictions.npz-a1b2c3").write_bytes(b"PK\x03\x04")
    assert main(["leaderboard", "--results-dir", str(env.results), "--tasks-dir", str(env.tasks)]) == 0
    rows = list(csv.DictReader((env.results / "leaderboard.csv").open()))
    assert [r["record"] for r in rows] == [f"logmel/{TASK}.linear.json"]
    assert abs(float(rows[0]["mean"]) - original.record["scores"]["test"]["accuracy"]["mean"]) <= SCORE_TOL


HOLD = """
import sys
from evalbench.utils.locks import acquire
acquire(sys.argv[1])
print("held", flush=True)
sys.stdin.readline()
"""


def test_array_without_manifest_while_another_process_stores_it_is_waited_for_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store writes the array, then the manifest: between the two, a reader must wait, not cry damage."""
    cache = EmbeddingCache(tmp_path)
    payload = {"entry": "one"}
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    key = cache.key(payload)
    npy, _ = cache.paths("enc", "task", "train", key)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(cache.lock_path("enc", "task", "train", key))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        atomic_save_npy(npy, array)  # the holder is half-way through its store: array written, no manifest yet
        got: list[np.ndarray | None] = []
        with caplog.at_level(logging.INFO, logger="evalbench"):
            reader = threading.Thread(target=lambda: got.append(cache.load("enc", "task", "train", payload)))
            reader.start()
            deadline = time.monotonic() + 30
            while "waiting for process" not in caplog.text:
                assert time.monotonic() < deadline and reader.is_alive(), caplog.text
                time.sleep(0.01)
            cache._write("enc", "task", "train", key, payload, array, None)  # the holder finishes its store
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0  # and exits, releasing the lock
            reader.join(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert len(got) == 1 and got[0] is not None
    np.testing.assert_array_equal(got[0], array)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
