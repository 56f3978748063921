"""Fixtures of the reliability tests."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from tests.conftest import ENCODERS, Env
from tests.data.helpers import write_audio


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for a whole module (hypothesis runs many examples per test function)."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture
def penv(env: Env, tmp_path: Path) -> Env:
    """``env`` with a private encoders folder (pretrain registers YAMLs there) and 8 clips to pretrain on."""
    encoders = tmp_path / "encoders"
    shutil.copytree(ENCODERS / "recipes", encoders / "recipes")
    for i in range(8):
        write_audio(tmp_path / "clips" / f"c{i}.wav", 1.2, 16000, freq=150.0 * (i + 1), seed=i)
    return dataclasses.replace(env, encoders=encoders)
