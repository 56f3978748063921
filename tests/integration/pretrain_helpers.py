"""Shared pieces of the `evalbench pretrain` integration tests: tiny recipe overrides, a private encoders folder."""

from __future__ import annotations

from evalbench.cli import main
from tests.conftest import Env

TINY = [
    "--preset", "smoke", "--workers", "0", "--batch-size", "4",
    "--set", "options.hidden=32", "--set", "options.projection=16", "--set", "options.norm_clips=8",
    "--set", "options.mixup_bank=16", "--set", "train.checkpoint_every=2",
]  # fmt: skip


def pretrain(env: Env, *args: str) -> int:
    return main(
        ["pretrain", "byola", *TINY, *args, "--encoders-dir", str(env.encoders), "--data-root", str(env.data),
         "--cache-dir", str(env.cache), "--tasks-dir", str(env.tasks)]
    )  # fmt: skip
