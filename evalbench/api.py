"""The Python API: ``evaluate`` encoders on tasks and read the results, without the command line.

:func:`evaluate` is ``evalbench run`` as a function: it resolves names in the
same spec folders (the overlay of :func:`evalbench.paths.task_dirs` and
:func:`evalbench.paths.encoder_dirs`), builds the same
:class:`~evalbench.runner.RunConfig` and calls the same
:func:`evalbench.runner.run`, so it writes the very records ``run`` writes, to
the same folders by default (:func:`evalbench.paths.data_root`,
:func:`~evalbench.paths.cache_root`, :func:`~evalbench.paths.results_dir`), and
finds up to date the records that ``run`` wrote (and the other way round).  It
returns them as :class:`~evalbench.results.frame.Results`.  It does not read or
write ``run``'s up-to-date memo, the shortcut that lets a rerun skip importing
torch; an up-to-date record is still found by the full check.

:func:`load_results` is the leaderboard as a DataFrame and :func:`load_records`
every record under a results folder as :class:`~evalbench.results.frame.Results`.

Nothing here imports torch, scikit-learn or pandas until a function is called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalbench.errors import EvalbenchError

if TYPE_CHECKING:
    import pandas as pd

    from evalbench.results.frame import Results
    from evalbench.runner import RunConfig
    from evalbench.specs.encoder import EncoderSpec

PathLike = str | os.PathLike
FOLDERS = ("data_root", "cache_dir", "results_dir")  # RunConfig fields that are folders (None: the defaults)


class OptionError(EvalbenchError, TypeError):
    """An unknown option, or an option of the wrong type or value, given to :func:`evaluate`."""


def evaluate(
    encoder: str | Sequence[str],
    tasks: str | Sequence[str],
    probe: str = "linear",
    *,
    checkpoint: PathLike | Mapping[str, PathLike] | None = None,
    tasks_dir: PathLike | None = None,
    encoders_dir: PathLike | None = None,
    log: Callable[[str], None] | None = print,
    **options: Any,
) -> Results:
    """Score encoders on tasks under a probe protocol and write their run records, as ``evalbench run`` does.

    Every (encoder, task) pair whose record is up to date is read, not recomputed
    (``overwrite=True`` recomputes it, from the embedding cache).

    Args:
        encoder: Encoder name(s): a name, a comma-separated string or a list (``hear:<module>`` too).
        tasks: Task and suite name(s): a name, a comma-separated string or a list (``synth`` is a suite).
        probe: Registered probe: ``linear``, ``mlp`` or ``knn``.
        checkpoint: Another weights file for the (one) encoder, as ``--checkpoint``; with several encoders, a
            mapping ``{encoder name: path}``.  Its records go to ``<encoder>@<file stem>-<sha256[:8]>/``.
        tasks_dir: A task spec folder over the default overlay (as ``--tasks-dir``).
        encoders_dir: An encoder spec folder over the default overlay (as ``--encoders-dir``).
        log: Progress lines (the same as ``run`` prints); None for silence.
        **options: :class:`~evalbench.runner.RunConfig` fields, with ``run``'s defaults: ``seeds`` (a count,
            3 → 42, 43, 44, or a list; default: the preset's five), ``protocol`` (``evalbench``, ``evar``,
            ``hear``), ``probe_options`` (e.g. ``{"search": "optuna", "trials": 8}`` for mlp), ``device``,
            ``overwrite``, ``batch_size``, ``workers``, ``precision``, ``tf32``, ``allow_contaminated``,
            ``skip_bad`` (as ``--skip-bad``), ``data_root``, ``cache_dir``, ``results_dir``.

    Returns:
        One :class:`~evalbench.results.frame.TaskResult` per (encoder, task) pair, encoders outer, in the given
        order (under ``torchrun``, only rank 0's list is filled).

    Raises:
        OptionError: An unknown option (naming it and listing the valid ones) or a bad value.
        EvalbenchError: As ``evalbench run``: unknown names, a dataset not prepared, a missing weights file...
    """
    from evalbench import paths
    from evalbench.results.frame import Results, TaskResult
    from evalbench.runner import run
    from evalbench.specs.encoder import resolve_encoders
    from evalbench.specs.task import resolve_tasks

    cfg = run_config(probe, **options)
    cfg.encoder_dirs = paths.encoder_dirs(encoders_dir)
    encoders = resolve_encoders(_selector(encoder, "encoder"), cfg.encoder_dirs)
    if checkpoint is not None:
        encoders = _with_checkpoints(encoders, checkpoint)
    specs = resolve_tasks(_selector(tasks, "tasks"), paths.task_dirs(tasks_dir))
    outcomes = run(encoders, specs, cfg, log=log or _silent)
    return Results(TaskResult.load(o.path, o.status) for o in outcomes if o.status in ("written", "up to date"))


def run_config(probe: str = "linear", **options: Any) -> RunConfig:
    """The :class:`~evalbench.runner.RunConfig` that :func:`evaluate` runs with (``run``'s defaults).

    Raises:
        OptionError: An option that is not a RunConfig field, or a bad ``seeds``, ``batch_size`` or ``workers``.
    """
    import dataclasses
    import difflib

    from evalbench import paths
    from evalbench.runner import RunConfig

    valid = sorted(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("probe", "encoder_dirs"))
    for name in options:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise OptionError(f"evaluate(): unknown option '{name}'{hint}; valid options: {', '.join(valid)}")
    values = dict(options)
    values["data_root"] = paths.data_root(options.get("data_root"))
    values["cache_dir"] = paths.cache_root(options.get("cache_dir"))
    values["results_dir"] = paths.results_dir(options.get("results_dir"))
    values["seeds"] = _seeds(options.get("seeds"))
    values["probe_options"] = dict(options.get("probe_options") or {})
    batch = options.get("batch_size")
    if "batch_size" in options and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise OptionError(f"evaluate(): batch_size={batch!r}: give an integer >= 1")
    workers = options.get("workers")
    if workers == "auto":
        values["workers"] = None
    elif workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise OptionError(f"evaluate(): workers={workers!r}: give a number of worker processes >= 0, or 'auto'")
    for flag in ("overwrite", "allow_contaminated", "tf32", "skip_bad"):
        if not isinstance(options.get(flag, False), bool):
            raise OptionError(f"evaluate(): {flag}={options[flag]!r}: give True or False")
    return RunConfig(probe=probe, **values)


def load_results(results_dir: PathLike | None = None, *, tasks_dir: PathLike | None = None) -> pd.DataFrame:
    """The leaderboard as a DataFrame: one row per run record, the rows of ``leaderboard.csv``.

    Columns: ``protocol``, ``encoder``, ``task``, ``task_version``, ``metric`` (the primary), ``mean``, ``std``,
    ``ci95_low``, ``ci95_high``, ``n_seeds``, ``n_folds``, ``n_test``, ``embedding_dim``, ``contaminated``,
    ``excluded`` (clips ``run --skip-bad`` left out; 0 for the full task), ``record`` (path under
    ``results_dir``) and ``suites`` (the suite tables showing the row).  Filter and pivot it as you like, e.g.
    ``df.pivot(index="encoder", columns="task", values="mean")``.

    Args:
        results_dir: Folder of run records (default: :func:`evalbench.paths.results_dir`).
        tasks_dir: A task spec folder over the default overlay, for its suites (as ``leaderboard --tasks-dir``).

    Raises:
        ResultsError: A malformed record (naming the file).
    """
    from evalbench import paths
    from evalbench.results.frame import leaderboard_frame
    from evalbench.results.tables import load_suites

    return leaderboard_frame(paths.results_dir(results_dir), load_suites(paths.task_dirs(tasks_dir)))


def load_records(results_dir: PathLike | None = None) -> Results:
    """Every run record under ``results_dir`` (default: :func:`evalbench.paths.results_dir`), sorted by path.

    Raises:
        ResultsError: A malformed record (naming the file).
    """
    from evalbench import paths
    from evalbench.results.frame import Results

    return Results.load(paths.results_dir(results_dir))


def _selector(value: str | Sequence[str], name: str) -> str:
    """A name or list of names as ``run``'s comma-separated selector."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise OptionError(f"evaluate(): {name}={value!r}: give a name, a comma-separated string or a list of names")
    return ",".join(value)


def _seeds(value: Any) -> list[int] | None:
    """``seeds``: None (the preset's), a count N (42 ... 41 + N) or a list of distinct integers (``run --seeds``)."""
    from evalbench.cli.run import parse_seeds

    def integer(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    problem = f"evaluate(): seeds={value!r}: give a count (e.g. 3, for 42, 43, 44) or a list of distinct integers"
    if value is None:
        return None
    if integer(value):
        text = str(value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and value and all(map(integer, value)):
        text = ",".join(map(str, value))
    else:
        raise OptionError(problem)
    try:
        return parse_seeds(text)
    except EvalbenchError:
        raise OptionError(problem) from None


def _with_checkpoints(encoders: list[EncoderSpec], checkpoint: PathLike | Mapping[str, PathLike]) -> list[EncoderSpec]:
    """``encoders`` with other weights files swapped in, as ``run --checkpoint`` does."""
    from evalbench.specs.encoder import with_checkpoint

    if not isinstance(checkpoint, Mapping):
        if len(encoders) != 1:
            names = ", ".join(e.name for e in encoders)
            raise OptionError(
                f"evaluate(): checkpoint={str(checkpoint)!r} needs exactly one encoder, got {len(encoders)} ({names}); "
                "give a mapping {encoder name: path}"
            )
        return [with_checkpoint(encoders[0], str(Path(checkpoint)))]
    unknown = [name for name in checkpoint if name not in {e.name for e in encoders}]
    if unknown:
        names = ", ".join(e.name for e in encoders)
        raise OptionError(f"evaluate(): checkpoint: '{unknown[0]}' is not one of the encoders ({names})")
    return [with_checkpoint(e, str(Path(checkpoint[e.name]))) if e.name in checkpoint else e for e in encoders]


def _silent(_: str) -> None:
    """``log=None``."""


__all__ = ["OptionError", "evaluate", "load_records", "load_results", "run_config"]
