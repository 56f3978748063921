"""Provenance recorded in every run record: code version, git state, environment."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path

from evalbench import __version__
from evalbench.paths import PACKAGE_DIR


@lru_cache(maxsize=1)
def git_state() -> dict[str, object]:
    """Commit hash and dirty flag of the evalbench checkout, or nulls outside git."""
    repo = Path(PACKAGE_DIR).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "evalbench"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(status)}


def environment(device: str) -> dict[str, object]:
    """Versions and device that can move a score."""
    import numpy
    import torch

    return {
        "evalbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device,
        "torch_threads": torch.get_num_threads(),
    }
