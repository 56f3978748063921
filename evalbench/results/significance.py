"""Which leaderboard cells are not significantly different from the best of their column.

A leaderboard column is one task version under one protocol.  Its *best* cell is
the record with the best mean primary score: the highest, or the lowest for a
lower-is-better metric such as MAE (:func:`evalbench.metric_info.oriented`); a
tie goes to the first encoder by name.  Every other record is
compared with it by the paired bootstrap over the same test clips
(:func:`evalbench.uncertainty.paired_differences`: 1,000 resamples within each
test fold, seed 0, the 95 % percentile interval of ``best - other``): when that
interval includes 0 the difference is not significant and the cell is marked.

Why paired: two encoders scored on the same clips share the clips' difficulty.
Comparing their separate intervals ignores that and calls many consistent gaps
"overlapping"; resampling the clips once for both removes the shared part.

What is compared, and what is not:

- the predictions come from each record's sidecar (``*.predictions.npz``,
  :func:`evalbench.results.store.load_predictions`); a record without a valid
  one (written before sidecars existed, or rewritten without one) is not tested;
- only records of the best's dataset and spec (equal ``task.dataset_sha256``
  and ``task.spec_sha256``), excluded clips (``--skip-bad``) and labels are
  compared with it, on exactly its test folds; anything else is not tested;
- the best itself is chosen by the records' means, as the table shows them.

Statuses (the CSV's ``vs_best`` column): ``best``, ``not significant``,
``significant``, ``n/a`` (not tested) and ``""`` (a column with fewer than two
defined scores: nothing to compare).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from evalbench.metric_info import oriented
from evalbench.results.schema import load_record
from evalbench.results.store import Predictions, load_predictions
from evalbench.uncertainty import paired_differences

N_BOOT, LEVEL, SEED = 1000, 0.95, 0
BEST, TIED, DIFFERENT, UNTESTED = "best", "not significant", "significant", "n/a"


def _excluded_files(record: dict) -> list[str]:
    """The files ``run --skip-bad`` left out of ``record`` (its row ids count the others only)."""
    return [f["file"] for f in (record.get("excluded") or {}).get("files", [])]


def _compatible(best: tuple[dict, Predictions], other: tuple[dict, Predictions]) -> bool:
    """Same dataset, spec, excluded clips and labels: the two records scored the same clips against the same truth.

    Row ids number the clips a record scored, so a record with clips excluded (``--skip-bad``) shares them
    with no record that excluded other clips, even of the same dataset.
    """
    (rec_a, pred_a), (rec_b, pred_b) = best, other
    same = all(rec_a["task"].get(k) == rec_b["task"].get(k) for k in ("dataset_sha256", "spec_sha256", "label_type"))
    same = same and _excluded_files(rec_a) == _excluded_files(rec_b)
    y = pred_a.labels()
    rows = pred_b.y_rows
    return same and rows[-1] < len(y) and np.array_equal(y[rows], pred_b.y)


def _test_column(loaded: list[tuple[dict, Predictions] | None]) -> list[str]:
    """Statuses of a column's records, the best first; ``loaded`` is None where a record has no sidecar."""
    out = [BEST] + [UNTESTED] * (len(loaded) - 1)
    if loaded[0] is None:
        return out
    record, best = loaded[0]
    task = record["task"]
    tested = [i for i in range(1, len(loaded)) if loaded[i] is not None and _compatible(loaded[0], loaded[i])]
    if not tested:
        return out
    arms = [best.distinct_runs(), *(loaded[i][1].distinct_runs() for i in tested)]
    y, metric, label_type = best.labels(), task["primary_metric"], task["label_type"]
    options = {"n_boot": N_BOOT, "level": LEVEL, "seed": SEED}
    try:
        results = paired_differences(y, arms, metric, label_type, **options)[1:]
    except ValueError:  # some record on other test folds: test the others one by one (the draws are the same)
        results = []
        for arm in arms[1:]:
            try:
                results.append(paired_differences(y, [arms[0], arm], metric, label_type, **options)[1])
            except ValueError:
                results.append(None)
    for i, result in zip(tested, results, strict=True):
        if result is not None:
            out[i] = DIFFERENT if result["significant"] else TIED
    return out


def vs_best(df: pd.DataFrame, results_dir: Path) -> pd.Series:
    """Status of every row of :func:`evalbench.results.tables.collect` against the best of its column.

    Args:
        df: Rows of ``collect(results_dir)`` (``protocol``, ``column``, ``encoder``, ``metric``, ``mean``,
            ``record``).
        results_dir: The folder the records' paths are relative to.

    Returns:
        A string per row of ``df`` (same index): one of the statuses of the module docstring.
    """
    status = pd.Series("", index=df.index, dtype=object)
    for _, group in df.dropna(subset=["mean"]).groupby(["protocol", "column"], sort=False):
        if len(group) < 2:
            continue
        group = group.assign(_best=[oriented(m, v) for m, v in zip(group.metric, group["mean"], strict=True)])
        group = group.sort_values(["_best", "encoder"], ascending=[False, True], kind="stable")
        loaded = []
        for rel in group.record:
            path = Path(results_dir) / rel
            record = load_record(path)
            predictions = load_predictions(path, record)
            loaded.append(None if predictions is None else (record, predictions))
        status[group.index] = _test_column(loaded)
    return status
