"""Per-dimension standardisation fitted on the training portion only.

z = (x − mean) / std with mean and std of each embedding dimension computed on
the training rows of the current rotation, then applied unchanged to validation
and test (docs/protocol.md §2.2).  A constant dimension gets std 1 (it becomes 0).
HEAR's MLP protocol feeds embeddings as the encoder returns them
(docs/protocol.md §3): ``enabled=False`` keeps the interface and changes nothing.
Follows the scikit-learn estimator conventions: hyperparameters in
``__init__``, learned state in trailing-underscore attributes set by ``fit``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalbench.utils.memory import row_blocks, scratch_array


def _rows(x: np.ndarray, rows: np.ndarray | None, block: slice) -> np.ndarray:
    """One block of the selected rows of ``x`` (all rows when ``rows`` is None) as float64."""
    return np.asarray(x[block] if rows is None else x[rows[block]], dtype=np.float64)


class Standardizer:
    """Z-score each column with statistics of the data passed to :meth:`fit`.

    Both :meth:`fit` and :meth:`transform` work through the rows block by block
    (:func:`~evalbench.utils.memory.row_blocks`): no float64 copy of the matrix
    is made, and a memory-mapped matrix is read, never copied whole.  ``rows``
    selects the rows of a larger matrix (a rotation's training rows) without
    copying them out first.

    Args:
        eps: Standard deviations at or below this are replaced by 1.
        enabled: False: the identity (mean 0, scale 1), for protocols without standardisation.
    """

    def __init__(self, eps: float = 1e-8, enabled: bool = True) -> None:
        self.eps = eps
        self.enabled = enabled

    def fit(self, x: np.ndarray, rows: np.ndarray | None = None) -> Standardizer:
        """Learn ``mean_`` and ``scale_`` from ``x`` ``(n, D)`` (or its ``rows``); returns self.

        Two passes in float64 (the mean, then the mean squared deviation from it): the same statistics as
        ``x.mean(axis=0)`` and ``x.std(axis=0)`` up to float64 rounding (relative 1e-15 measured).
        """
        x = np.asarray(x)
        n = len(x) if rows is None else len(rows)
        if x.ndim != 2 or n == 0:
            raise ValueError(f"expected a non-empty (n, D) array, got shape {x.shape} with {n} rows selected")
        d = x.shape[1]
        self.n_features_in_ = d
        if not self.enabled:
            self.mean_, self.scale_ = np.zeros(d), np.ones(d)
            return self
        total = np.zeros(d)
        for block in row_blocks(n, d):
            total += _rows(x, rows, block).sum(axis=0)
        self.mean_ = total / n
        squares = np.zeros(d)
        for block in row_blocks(n, d):
            dev = _rows(x, rows, block) - self.mean_
            squares += np.einsum("ij,ij->j", dev, dev)
        std = np.sqrt(squares / n)
        self.scale_ = np.where(std > self.eps, std, 1.0)
        return self

    def transform(self, x: np.ndarray, rows: np.ndarray | None = None, scratch: Path | None = None) -> np.ndarray:
        """Standardise ``x`` (or its ``rows``) with the fitted statistics, as a new float32 array.

        With a ``scratch`` folder, a large result is a memory-mapped file there
        (:func:`~evalbench.utils.memory.scratch_array`), not private memory: a task's training rows need not fit.
        """
        x = np.asarray(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {x.shape[1]}")
        n = len(x) if rows is None else len(rows)
        out = scratch_array((n, x.shape[1]), scratch)
        for block in row_blocks(n, x.shape[1]):
            out[block] = (_rows(x, rows, block) - self.mean_) / self.scale_
        return out

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return it standardised."""
        return self.fit(x).transform(x)
