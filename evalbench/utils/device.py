"""Device selection: ``auto`` picks CUDA when available, else CPU."""

from __future__ import annotations

import torch

from evalbench.errors import EvalbenchError


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable torch device.

    Raises:
        EvalbenchError: CUDA was requested but is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EvalbenchError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise EvalbenchError(f"--device {name}: not a device; use auto, cpu, cuda or cuda:N") from None
