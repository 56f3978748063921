"""Shared pieces of the `evalbench pretrain` integration tests: tiny recipe overrides, a private encoders folder."""

from __future__ import annotations

from collections.abc import Callable

import torch

from evalbench.adapters.checkpoints import load_checkpoint
from evalbench.cli import main
from tests.conftest import Env

TINY = [
    "--preset", "smoke", "--workers", "0", "--batch-size", "4",
    "--set", "options.hidden=32", "--set", "options.projection=16", "--set", "options.norm_clips=8",
    "--set", "options.mixup_bank=16", "--set", "train.checkpoint_every=2",
]  # fmt: skip


def pretrain_method(method: str, env: Env, *args: str) -> int:
    """``evalbench pretrain METHOD ARGS`` with ``env``'s private folders."""
    return main(
        ["pretrain", method, *args, "--encoders-dir", str(env.encoders), "--data-root", str(env.data),
         "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks)]
    )  # fmt: skip


def pretrain(env: Env, *args: str) -> int:
    """A tiny BYOL-A run."""
    return pretrain_method("byola", env, *TINY, *args)


def assert_resume_is_exact(run: Callable[..., int], env: Env, clips: str) -> None:
    """2 steps straight equal 1 step, then a resume to 2 (bit-identical on CPU: the same computation)."""
    assert run(env, "--data", clips, "--steps", "2", "--name", "straight") == 0
    assert run(env, "--data", clips, "--steps", "1", "--name", "resumed") == 0
    assert run(env, "--data", clips, "--steps", "2", "--name", "resumed") == 0
    folder = env.encoders / "checkpoints" / "pretrain"
    a, b = load_checkpoint(folder / "straight" / "encoder.pt")[0], load_checkpoint(folder / "resumed" / "encoder.pt")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
