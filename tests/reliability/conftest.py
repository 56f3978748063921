"""Fixtures of the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for a whole module (hypothesis runs many examples per test function)."""
    return tmp_path_factory.mktemp("fuzz")
