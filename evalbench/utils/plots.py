"""Matplotlib figures written atomically as PNG (headless: the Agg backend)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from evalbench.utils.io import atomic_write_bytes


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``path`` atomically as PNG and close it."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
