"""Atomic writes: whole files only, and the mode the user's umask asks for (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from evalbench.utils.io import atomic_save_npy, atomic_write_json, atomic_write_text


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_of_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
        atomic_save_npy(tmp_path / "c.npy", np.arange(3, dtype=np.float32))
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json", "c.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.npy"]  # no temporary file left
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), [0, 1, 2])


def test_a_rewrite_replaces_the_whole_file(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "a much longer first version")
    atomic_write_text(tmp_path / "a.txt", "short")
    assert (tmp_path / "a.txt").read_text() == "short"
