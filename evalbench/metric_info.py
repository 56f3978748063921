"""What each metric means, without computing any: direction, label types, range, display scale.

Kept apart from :mod:`evalbench.metrics` (which imports SciPy, ~0.9 s) so that
``evalbench tasks validate`` and the run-record schema can check metric names
against label types cheaply.  :mod:`evalbench.metrics` re-exports
:data:`HIGHER_IS_BETTER` and :func:`oriented`.

Every place that picks "the best" of several scores (a probe's validation
selection, a leaderboard column's best cell, the significance test's reference,
plot and table orderings) compares :func:`oriented` values, so a lower-is-better
metric (MAE, RMSE) is never mistaken for its worst.
"""

from __future__ import annotations

import math

HIGHER_IS_BETTER = {
    "accuracy": True,
    "roc_auc": True,
    "map": True,
    "r2": True,
    "spearman": True,
    "mae": False,
    "rmse": False,
}
CLASSIFICATION = frozenset({"single", "binary", "multilabel"})
LABEL_TYPES = {
    "accuracy": frozenset({"single", "binary"}),
    "roc_auc": CLASSIFICATION,
    "map": CLASSIFICATION,
    "r2": frozenset({"regression"}),
    "spearman": frozenset({"regression"}),
    "mae": frozenset({"regression"}),
    "rmse": frozenset({"regression"}),
}
RANGE = {
    "accuracy": (0.0, 1.0),
    "roc_auc": (0.0, 1.0),
    "map": (0.0, 1.0),
    "r2": (-math.inf, 1.0),
    "spearman": (-1.0, 1.0),
    "mae": (0.0, math.inf),
    "rmse": (0.0, math.inf),
}
TARGET_UNITS = frozenset({"mae", "rmse"})  # in the target's units (semitones...): shown as is, never ×100


def oriented(name: str, value: float) -> float:
    """``value`` of metric ``name`` as a higher-is-better number (negated for MAE and RMSE).

    Its own inverse: ``oriented(name, oriented(name, v)) == v``.

    Raises:
        KeyError: ``name`` is not a known metric.
    """
    return value if HIGHER_IS_BETTER[name] else -value


def arrow(name: str) -> str:
    """The suffix ``" ↓"`` for a lower-is-better metric (appended to column headers), else ``""``."""
    return "" if HIGHER_IS_BETTER.get(name, True) else " ↓"


__all__ = ["HIGHER_IS_BETTER", "LABEL_TYPES", "RANGE", "TARGET_UNITS", "arrow", "oriented"]
