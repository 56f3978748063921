"""Fixtures of the integration tests."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.conftest import ENCODERS, Env
from tests.data.helpers import write_audio


@pytest.fixture
def penv(env: Env, tmp_path: Path) -> Env:
    """``env`` with a private encoders folder (pretrain registers YAMLs there) and a folder of 8 clips."""
    encoders = tmp_path / "encoders"
    shutil.copytree(ENCODERS / "recipes", encoders / "recipes")
    for name in ("logmel.yaml", "byola-random.yaml"):
        shutil.copy(ENCODERS / name, encoders / name)
    for i in range(8):
        write_audio(tmp_path / "clips" / f"c{i}.wav", 1.2, 16000, freq=150.0 * (i + 1), seed=i)
    return dataclasses.replace(env, encoders=encoders)
