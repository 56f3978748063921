"""`torchrun --nproc_per_node=2 -m evalbench pretrain` on CPU (Gloo): same result as one process, loads into run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from tests.conftest import ENCODERS, Env

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _run(args: list[str], env: Env, distributed: bool) -> subprocess.CompletedProcess:
    dirs = ["--encoders-dir", str(env.encoders), "--data-root", str(env.data), "--cache-dir", str(env.cache),
            "--tasks-dir", str(env.tasks)]  # fmt: skip
    launcher = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m"] if distributed else [sys.executable, "-m"]
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launcher, "evalbench", *args, *dirs], capture_output=True, text=True, timeout=600, env=environ, check=False
    )


@pytest.fixture
def denv(env: Env, tmp_path: Path) -> Env:
    encoders = tmp_path / "encoders"
    shutil.copytree(ENCODERS / "recipes", encoders / "recipes")
    env.encoders = encoders
    return env


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_process_gloo_run_equals_one_process_with_the_same_global_batch(denv: Env) -> None:
    # An LSTM baseline without augmentation has no BatchNorm and no per-rank randomness, so averaging the two ranks'
    # gradients must give the single-process step on the same global batch, up to float summation order.
    args = ["pretrain", "supervised", "--arch", "lstm", "--task", "synth_detect", "--preset", "smoke", "--steps", "3",
            "--batch-size", "8", "--workers", "0", "--set", "options.augment=false", "--set",
            "options.unit_seconds=1.0"]  # fmt: skip
    two = _run([*args, "--name", "two"], denv, distributed=True)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("score it:") == 1 and "2 processes × 4" in two.stdout  # rank 0 alone logs
    one = _run([*args, "--name", "one"], denv, distributed=False)
    assert one.returncode == 0, one.stderr[-2000:]
    folder = denv.encoders / "checkpoints" / "pretrain"
    a, b = load_checkpoint(folder / "two" / "encoder.pt")[0], load_checkpoint(folder / "one" / "encoder.pt")[0]
    for key in a:  # 3 Adam steps at lr 3e-4: measured differences are ~3e-8
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    sa = torch.load(folder / "two" / "state.pt", weights_only=True)
    assert sa["world_size"] == 2 and len(sa["rng"]) == 2  # every rank's RNG state is kept for resume


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_process_byola_run_completes_and_loads_into_run(denv: Env, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    from tests.data.helpers import write_audio

    for i in range(8):
        write_audio(clips / f"c{i}.wav", 1.0, 16000, freq=150.0 * (i + 1), seed=i)
    args = ["pretrain", "byola", "--data", str(clips), "--preset", "smoke", "--steps", "2", "--batch-size", "4",
            "--workers", "0", "--set", "options.hidden=32", "--set", "options.projection=16", "--set",
            "options.norm_clips=8", "--set", "options.mixup_bank=16", "--name", "ddp-byola"]  # fmt: skip
    done = _run(args, denv, distributed=True)
    assert done.returncode == 0, done.stderr[-2000:]
    spec = yaml.safe_load((denv.encoders / "ddp-byola.yaml").read_text())
    assert spec["pretrain"]["steps"] == 2
    assert main(denv.cli("run", "--encoder", "ddp-byola", "--tasks", "synth_detect", "--seeds", "1")) == 0


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_process_clmr_run_with_global_negatives_loads_into_run(denv: Env, tmp_path: Path) -> None:
    from tests.data.helpers import write_audio

    clips = tmp_path / "clips"
    for i in range(8):
        write_audio(clips / f"c{i}.wav", 3.0, 22050, freq=150.0 * (i + 1), seed=i)
    shutil.copy(ENCODERS / "clmr.yaml", denv.encoders / "clmr.yaml")
    args = ["pretrain", "clmr", "--data", str(clips), "--preset", "smoke", "--steps", "2", "--batch-size", "4",
            "--workers", "0", "--name", "ddp-clmr"]  # fmt: skip
    done = _run(args, denv, distributed=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 processes × 2" in done.stdout
    spec = yaml.safe_load((denv.encoders / "ddp-clmr.yaml").read_text())
    assert spec["pretrain"]["steps"] == 2 and spec["adapter"] == "clmr"
    assert main(denv.cli("run", "--encoder", "ddp-clmr", "--tasks", "synth_detect", "--seeds", "1")) == 0
    assert (denv.results / "ddp-clmr" / "synth_detect.linear.json").is_file()
