"""``evalbench bench``: speed figures measured side by side in one process, as ratios.

The project's rule: a speed target is never a timed unit test (a loaded CI
machine makes those flaky and an idle one makes them meaningless); it is a
figure printed by this command, where the thing measured and its baseline run
in the same process, one after the other, on the same machine state, and only
their ratio is compared with the target.

A *part* is one group of figures: a function ``measure(ctx) -> list[Figure]``
registered in :data:`PARTS` as ``"module:function"`` and imported only when
asked for, so that building the command line never imports torch.  Parts:

- ``pretrain`` (:mod:`evalbench.bench.pretrain`): training steps/s through the
  real data path ÷ steps/s over the same batches pre-loaded in memory.
- ``probe`` (:mod:`evalbench.bench.probe`): the ``evalbench`` linear protocol
  against a converged scikit-learn logistic regression (score, time), and its
  whole cost against BYOL-A extraction on an ESC-10-shaped task.
- ``extract`` (:mod:`evalbench.bench.extract`): clips/s of the whole cold
  extraction pipeline (decode, resample, fit, encode, pool, cache) ÷ clips/s of
  the bare encoder forward on the same pre-loaded batches, per encoder.
- ``scaling`` (:mod:`evalbench.bench.scaling`): wall time and peak RSS of
  extraction at 1× and 10× the clips, each size in a fresh process.
- ``long`` (:mod:`evalbench.bench.long`): 30 s clips through the windowing
  adapters (``msn``, ``clmr``), batched as ``run`` does ÷ one clip per call.
- ``rerun`` (:mod:`evalbench.bench.rerun`): a cold ``evalbench run`` ÷ the same
  command with every record up to date, each a fresh process.
- ``workers`` (:mod:`evalbench.bench.workers`): the cold pipeline's clips/s
  per ``--workers`` count, and the count ``auto`` picks against the fastest.
- ``load`` (:mod:`evalbench.bench.load`): a 100,000-clip task of tiny clips
  through prepare, verify, ``logmel`` extraction and the linear probe: time and
  peak RSS per stage (``--clips N`` to change the size).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalbench.errors import UnknownNameError

PARTS: dict[str, str] = {
    "pretrain": "evalbench.bench.pretrain:measure",
    "probe": "evalbench.bench.probe:measure",
    "extract": "evalbench.bench.extract:measure",
    "scaling": "evalbench.bench.scaling:measure",
    "long": "evalbench.bench.long:measure",
    "load": "evalbench.bench.load:measure",
    "rerun": "evalbench.bench.rerun:measure",
    "workers": "evalbench.bench.workers:measure",
}


@dataclass(frozen=True)
class Figure:
    """One measured figure.

    Attributes:
        name: What was measured, e.g. ``pretrain byola: steps/s, real data path``.
        value: The measurement, in ``unit``.
        unit: ``steps/s``, ``s``, ...
        baseline: The side-by-side baseline in the same unit (the ratio's denominator), or None.
        target: The target in words, e.g. ``ratio ≥ 0.9`` (empty: informational figure).
        met: Whether the target is met (None: no target).
        note: How it was measured and what is excluded.
    """

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``value / baseline``, or None without a (positive) baseline."""
        if self.baseline is None or not self.baseline > 0:
            return None
        return self.value / self.baseline

    def as_dict(self) -> dict[str, Any]:
        """The figure as a JSON-able row (with its ratio)."""
        return {
            "figure": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


def ratio_at_least(name: str, value: float, baseline: float, unit: str, minimum: float, note: str = "") -> Figure:
    """A figure whose target is ``value / baseline >= minimum``."""
    figure = Figure(name, value, unit, baseline, f"ratio ≥ {minimum:g}", None, note)
    ratio = figure.ratio
    return Figure(name, value, unit, baseline, figure.target, ratio is not None and ratio >= minimum, note)


@dataclass
class BenchContext:
    """What every part gets.

    Attributes:
        quick: Smaller sizes, for a smoke check (figures are then only indicative).
        data_root: Datasets (a temporary folder unless given).
        cache_dir: Caches (a temporary folder unless given).
        device: ``auto``, ``cpu``, ``cuda``...
        options: Part-specific options, e.g. ``{"methods": ["byola"]}`` for ``pretrain``.
        log: Progress lines.
    """

    quick: bool
    data_root: Path
    cache_dir: Path
    device: str = "auto"
    options: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print


def resolve_parts(names: list[str] | None) -> list[str]:
    """The parts to run: ``names`` in the given order without repeats, or every part when empty.

    Raises:
        UnknownNameError: A name that is not a registered part (naming the known parts).
    """
    if not names:
        return list(PARTS)
    for name in names:
        if name not in PARTS:
            raise UnknownNameError(f"unknown bench part '{name}'; known parts: {', '.join(sorted(PARTS))}")
    return list(dict.fromkeys(names))


def part_function(name: str) -> Callable[[BenchContext], list[Figure]]:
    """The ``measure`` function of part ``name`` (imported on demand)."""
    module, attr = PARTS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def run_parts(names: list[str], ctx: BenchContext) -> list[Figure]:
    """Run the parts ``names`` (already resolved) in order; their figures, concatenated."""
    figures: list[Figure] = []
    for name in names:
        figures += part_function(name)(ctx)
    return figures


@contextlib.contextmanager
def scratch_dirs(
    data_root: str | os.PathLike | None, cache_dir: str | os.PathLike | None
) -> Iterator[tuple[Path, Path]]:
    """``(data_root, cache_dir)``: the given folders, or subfolders of one temporary folder removed afterwards.

    The user's ``$EVALBENCH_DATA``/``$EVALBENCH_CACHE`` are deliberately not used:
    a benchmark must neither depend on nor add to what is already cached there.
    """
    with tempfile.TemporaryDirectory(prefix="evalbench-bench-") as tmp:
        data = Path(data_root).expanduser() if data_root else Path(tmp) / "data"
        cache = Path(cache_dir).expanduser() if cache_dir else Path(tmp) / "cache"
        yield data, cache


def machine_facts(device: str) -> dict[str, Any]:
    """Facts that a reader of the figures needs: versions, threads, cores, device, load."""
    import torch

    from evalbench.utils.device import resolve_device

    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "device": str(resolve_device(device)),
    }
    if hasattr(os, "sched_getaffinity"):
        facts["usable_cpus"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        facts["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if facts["device"].startswith("cuda"):
        facts["gpu"] = torch.cuda.get_device_name(torch.device(facts["device"]))
    return facts


__all__ = [
    "PARTS",
    "BenchContext",
    "Figure",
    "machine_facts",
    "part_function",
    "ratio_at_least",
    "resolve_parts",
    "run_parts",
    "scratch_dirs",
]
