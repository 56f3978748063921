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

import numpy as np


class Standardizer:
    """Z-score each column with statistics of the data passed to :meth:`fit`.

    Args:
        eps: Standard deviations at or below this are replaced by 1.
        enabled: False: the identity (mean 0, scale 1), for protocols without standardisation.
    """

    def __init__(self, eps: float = 1e-8, enabled: bool = True) -> None:
        self.eps = eps
        self.enabled = enabled

    def fit(self, x: np.ndarray) -> Standardizer:
        """Learn ``mean_`` and ``scale_`` from ``x`` of shape ``(n, D)``; returns self."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"expected a non-empty (n, D) array, got shape {x.shape}")
        if not self.enabled:
            self.mean_, self.scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
            self.n_features_in_ = x.shape[1]
            return self
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale_ = np.where(std > self.eps, std, 1.0)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise ``x`` with the fitted statistics, as float32."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} features, got {x.shape[1]}")
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        """Fit on ``x`` and return it standardised."""
        return self.fit(x).transform(x)
