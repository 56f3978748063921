"""`torchrun --nproc_per_node=2 -m evalbench run` on CPU (Gloo): sharded extraction equals one process.

A dead rank's shard is redone on rerun, while the shards written before it died are reused.

Tolerance: every merged cache entry equals the single-process entry of the same key to rtol 1e-5, atol 1e-6 (a clip's
embedding does not depend on its batch-mates, but batch shapes differ between the two runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, Env

TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = ("run", "--encoder", "logmel,byola-random", "--tasks", "synth_pitch,synth_timbre", "--seeds", "1")


def _launch(env: Env, cache: Path, results: Path, entry: list[str]) -> subprocess.CompletedProcess:
    dirs = env.cli(*ARGS)[len(ARGS) :]
    dirs[dirs.index("--cache-dir") + 1], dirs[dirs.index("--results-dir") + 1] = str(cache), str(results)
    return subprocess.run(
        [*entry, *ARGS, *dirs], capture_output=True, text=True, timeout=900, cwd=REPO, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _entries(cache: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(cache)): np.load(p) for p in cache.glob("*/*/*.npy")}


def _single(env: Env, tmp_path: Path) -> dict[str, np.ndarray]:
    one = _launch(env, tmp_path / "c1", tmp_path / "r1", [sys.executable, "-m", "evalbench"])
    assert one.returncode == 0, one.stderr[-2000:]
    return _entries(tmp_path / "c1")


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b) and len(a) == 2 * (3 + 5)  # 2 encoders x (3 splits + 5 folds); no shard left over
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_ranks_embed_what_one_process_embeds_and_rank_0_alone_writes(env: Env, tmp_path: Path) -> None:
    launcher = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "evalbench"]
    two = _launch(env, tmp_path / "c2", tmp_path / "r2", launcher)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("4 record(s) written, 0 up to date") == 1  # rank 0 alone reports
    _assert_same(_entries(tmp_path / "c2"), _single(env, tmp_path))
    record = json.loads((tmp_path / "r2" / "byola-random" / "synth_timbre.linear.json").read_text())
    assert record["compute"]["processes"] == 2 and record["timings"]["parts_computed"] == 5


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_a_dead_rank_leaves_its_shard_unmerged_and_the_rerun_completes_the_cache(env: Env, tmp_path: Path) -> None:
    cache, results = tmp_path / "c2", tmp_path / "r2"
    launcher = [str(TORCHRUN), "--standalone", "--nproc_per_node=2"]
    dead = _launch(env, cache, results, [*launcher, str(REPO / "tests" / "integration" / "dying_rank.py")])
    assert dead.returncode != 0 and not list(results.rglob("*.json"))  # nothing recorded
    shards = sorted(p.name for p in cache.rglob("*.shard*of2.*.npy"))
    assert any(".shard0of2." in s for s in shards) and not any(".shard1of2." in s for s in shards)  # rank 0's kept
    again = _launch(env, cache, results, [*launcher, "-m", "evalbench"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("4 record(s) written") == 1
    _assert_same(_entries(cache), _single(env, tmp_path))
