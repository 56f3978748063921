"""Run records as Python objects and pandas DataFrames (the Python API's results).

A :class:`TaskResult` is one run record (one encoder × task × protocol), typed
(:class:`~evalbench.results.record.RunRecord`) and with shortcuts to what a
notebook wants first: the primary test score, its spread over seeds and its
95 % bootstrap interval.  Three tidy frames unfold it:

- :meth:`TaskResult.to_frame`: one row per split × metric (mean, std over
  seeds, interval, std over folds);
- :meth:`TaskResult.runs_frame`: one row per (seed, fold) run, with every
  metric on test and validation and the row counts;
- :meth:`TaskResult.folds_frame`: per fold of a k-fold task, each test metric's
  mean and std over seeds (empty for fixed-split tasks).

:class:`Results` is a list of them with the same three frames, concatenated.
:func:`leaderboard_frame` is the leaderboard in long form, the rows of
``results/leaderboard.csv`` (:func:`evalbench.results.tables.write_leaderboard`)
without the published numbers.

pandas is imported by the frame methods only, so ``import evalbench`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalbench.results.record import RunRecord, parse_record
from evalbench.results.schema import load_record

if TYPE_CHECKING:
    import pandas as pd

    from evalbench.specs.task import SuiteSpec

SPLITS = ("test", "valid")


@dataclass(frozen=True)
class TaskResult:
    """One run record seen from Python.

    Attributes:
        record: The record, typed (``record.scores.test["accuracy"].ci95.low``...).
        raw: The record as JSON data (upgraded to the current schema version).
        path: The record's file.
        status: ``written`` (computed by this call), ``up to date`` (an existing record that was current) or
            ``loaded`` (read from disk).
    """

    record: RunRecord
    raw: dict[str, Any]
    path: Path
    status: str = "loaded"

    @classmethod
    def load(cls, path: str | Path, status: str = "loaded") -> TaskResult:
        """Read, upgrade, validate and type the record at ``path``.

        Raises:
            ResultsError: The file is not a readable record of a schema version this evalbench knows.
        """
        raw = load_record(Path(path))
        return cls(parse_record(raw, str(path)), raw, Path(path), status)

    @property
    def encoder(self) -> str:
        """Encoder name."""
        return self.record.encoder.name

    @property
    def task(self) -> str:
        """Task name."""
        return self.record.task.name

    @property
    def protocol(self) -> str:
        """Protocol id (the leaderboard section), e.g. ``evalbench-linear-v3``."""
        return self.record.probe.protocol

    @property
    def metric(self) -> str:
        """The task's primary metric."""
        return self.record.task.primary_metric

    @property
    def score(self) -> float | None:
        """Mean test score of the primary metric over every (seed, fold) run (None if undefined)."""
        return self.record.scores.test[self.metric].mean

    @property
    def std(self) -> float | None:
        """Standard deviation over seeds of the primary test score (0 with one seed)."""
        return self.record.scores.test[self.metric].std

    @property
    def ci95(self) -> tuple[float, float] | None:
        """95 % bootstrap interval ``(low, high)`` of the primary test score over test clips, if recorded."""
        interval = self.record.scores.test[self.metric].ci95
        return None if interval is None else (interval.low, interval.high)

    def __repr__(self) -> str:
        score = "undefined" if self.score is None else f"{self.score:.4f}"
        if self.score is not None and len(self.record.seeds) > 1:
            score += f" ± {self.std:.4f}"
        if self.ci95 is not None:
            score += f" [{self.ci95[0]:.4f}, {self.ci95[1]:.4f}]"
        seeds = len(self.record.seeds)
        return (
            f"TaskResult({self.encoder} × {self.task} v{self.record.task.version}, {self.protocol}: "
            f"{self.metric} {score}, {seeds} seed{'' if seeds == 1 else 's'}, {self.status})"
        )

    def _keys(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "task": self.task, "task_version": self.record.task.version,
                "protocol": self.protocol}  # fmt: skip

    def to_frame(self) -> pd.DataFrame:
        """One row per split × metric: mean, std over seeds, 95 % interval (primary test only), std over folds."""
        import pandas as pd

        rows = []
        for split in SPLITS:
            for metric, s in getattr(self.record.scores, split).items():
                rows.append(
                    {
                        **self._keys(),
                        "split": split,
                        "metric": metric,
                        "primary": metric == self.metric,
                        "mean": s.mean,
                        "std": s.std,
                        "ci95_low": None if s.ci95 is None else s.ci95.low,
                        "ci95_high": None if s.ci95 is None else s.ci95.high,
                        "fold_std": s.fold_std,
                        "n_seeds": len(self.record.seeds),
                        "n_runs": s.n_runs,
                        "record": str(self.path),
                    }
                )
        return _numeric(pd.DataFrame(rows), ["mean", "std", "ci95_low", "ci95_high", "fold_std"])

    def runs_frame(self) -> pd.DataFrame:
        """One row per (seed, fold) run: row counts and every metric as ``test_<metric>`` and ``valid_<metric>``."""
        import pandas as pd

        rows = [
            {
                **self._keys(),
                "seed": run.seed,
                "fold": run.fold,
                "n_train": run.n.train,
                "n_valid": run.n.valid,
                "n_test": run.n.test,
                **{f"{split}_{m}": v for split in SPLITS for m, v in getattr(run, split).items()},
            }
            for run in self.record.runs
        ]
        frame = pd.DataFrame(rows)
        frame["fold"] = frame["fold"].astype("Int64")
        metrics = [c for c in frame.columns if c.startswith(tuple(f"{s}_" for s in SPLITS))]
        return _numeric(frame, metrics)

    def folds_frame(self) -> pd.DataFrame:
        """Per fold of a k-fold task and test metric: mean and std over seeds, test rows (empty on fixed splits).

        The fold means are the record's ``scores.test.<metric>.fold_means``, recomputed here from the runs.
        """
        import pandas as pd

        columns = [*self._keys(), "fold", "metric", "mean", "std", "n_seeds", "n_test"]
        runs = self.runs_frame()
        runs = runs[runs.fold.notna()]
        if runs.empty:
            return pd.DataFrame(columns=columns)
        long = runs.melt(
            id_vars=[*self._keys(), "fold", "seed", "n_test"],
            value_vars=[f"test_{m}" for m in self.record.task.metrics],
            var_name="metric",
        )
        long["metric"] = long["metric"].str.removeprefix("test_")
        grouped = long.groupby([*self._keys(), "fold", "metric"], sort=False)
        out = grouped.agg(mean=("value", "mean"), std=("value", "std"), n_seeds=("seed", "nunique"),
                          n_test=("n_test", "first")).reset_index()  # fmt: skip
        return out[columns].sort_values(["metric", "fold"], kind="stable").reset_index(drop=True)


class Results(list[TaskResult]):
    """The :class:`TaskResult` of several records (what :func:`evalbench.evaluate` returns), in order."""

    @classmethod
    def load(cls, results_dir: str | Path) -> Results:
        """Every run record under ``results_dir`` (``<encoder>/<task>.<probe>*.json``), sorted by path.

        Raises:
            ResultsError: A malformed record (naming the file).
        """
        from evalbench.results.store import iter_records

        return cls(TaskResult(parse_record(raw, str(p)), raw, p) for p, raw in iter_records(Path(results_dir)))

    def to_frame(self) -> pd.DataFrame:
        """:meth:`TaskResult.to_frame` of every result, concatenated."""
        return _concat([r.to_frame() for r in self])

    def runs_frame(self) -> pd.DataFrame:
        """:meth:`TaskResult.runs_frame` of every result, concatenated (metric columns are the union)."""
        return _concat([r.runs_frame() for r in self])

    def folds_frame(self) -> pd.DataFrame:
        """:meth:`TaskResult.folds_frame` of every result, concatenated."""
        return _concat([r.folds_frame() for r in self if r.record.task.split.type == "folds"])

    def __repr__(self) -> str:
        return "Results([\n" + "".join(f"  {r!r},\n" for r in self) + "])" if self else "Results([])"


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Score columns as float, None (an undefined metric) as NaN."""
    for column in columns:
        frame[column] = frame[column].astype(float)
    return frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def leaderboard_frame(results_dir: Path, suites: Sequence[SuiteSpec]) -> pd.DataFrame:
    """The leaderboard in long form: the rows of ``leaderboard.csv`` (without published numbers), as a DataFrame.

    One row per run record: protocol, encoder, task, task version, primary metric, mean, std, 95 % interval,
    seed, fold and test-row counts, embedding dimension, contamination flag, clips excluded by ``run --skip-bad``,
    record path, and the suites whose tables show the row (comma-separated; a suite's table holds the newest
    version of each of its tasks).  A pair with a full-task record and a ``--skip-bad`` one shows the full one.

    Raises:
        ResultsError: A malformed record (naming the file).
    """
    from evalbench.results.tables import boards, collect

    df = collect(Path(results_dir))
    if df.empty:
        return df
    names: dict[str, list[str]] = {rec: [] for rec in df.record}
    for board in boards(df, suites):
        if board.suite is not None:
            for rec in board.rows.record:
                names[rec].append(board.title)
    df = df.drop(columns="column").assign(suites=[",".join(names[r]) for r in df.record])
    return df.sort_values(["protocol", "task", "encoder"]).reset_index(drop=True)


__all__ = ["Results", "TaskResult", "leaderboard_frame"]
