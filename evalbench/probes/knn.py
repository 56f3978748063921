"""The k-nearest-neighbour probe: cosine similarity, brute force, k chosen on validation.

Nothing is trained: a query's scores are read off the training rows most
similar to it (Cover & Hart, "Nearest neighbor pattern classification", IEEE
Trans. Inf. Theory 1967).  Because it fits no parameters it is the cheap floor
beside the linear probe and the probe of self-supervised pretraining monitors
(Wu et al., CVPR 2018; Caron et al., DINO, ICCV 2021), where its score moves
only when the embedding geometry does.  (:mod:`evalbench.pretrain.monitor`
keeps its own float64 search and vote rule, whose recorded curves this module
would move in the last digits and, where clips repeat, in the neighbours.)

Search.  Rows (already z-scored on the training rows by the protocol) are
scaled to unit L2 norm; the cosine similarity of every query to every training
row is one float32 matrix product, computed in blocks of query rows so the
block stays under ``CHUNK_BYTES`` (a 50,000 × 50,000 problem never holds the
full matrix).  The k most similar training rows are kept, most similar first;
equal similarities go to the lower training row index, so the result does not
depend on the block size or on ``torch.topk``'s internal order.  Identical
training rows (repeated or silent clips) share one column of the product: a
BLAS matrix product may round the same dot product differently at different
column positions (numpy's OpenBLAS float64 product did so for 0.6 % of
query × repeated-row pairs in our measurement; torch's MKL product for none),
which would break their tie by rounding rather than by row index.

Scores, from the k neighbours with weights ``w`` (``weights="uniform"``: 1;
``"distance"``: the inverse cosine distance ``1 / (1 − cos)``, scikit-learn's
``KNeighborsClassifier(weights="distance")`` rule, where a neighbour at distance
0 takes all the weight; NOTE: from float32 similarities, whose absolute error
of ~1e-7 matters only for neighbours at cos → 1, so these scores agree with
scikit-learn's float64 ones to ~1e-6, not to the last digit):

- single-label and binary: the weighted fraction of the neighbours in each
  class, ``(n, C)`` summing to 1 (argmax ties go to the lower class index);
- multi-label: the weighted mean of the neighbours' multi-hot rows, ``(n, C)``;
- regression: the weighted mean of the neighbours' targets, ``(n,)``, returned
  by :meth:`KNNProbe.predict`.

Selection.  ``k`` is chosen from ``ks`` (default 1 … 50, which spans the 1-NN
rule, small-k voting and DINO's 20-NN; values above the number of training rows
are clipped to it) by the task's primary metric on the validation rows, in the
direction :data:`evalbench.metrics.HIGHER_IS_BETTER` gives; ties go to the
lower validation loss (:func:`evalbench.probes.linear.mean_loss`: cross-entropy
on probabilities clipped away from 0 and 1, BCE for multi-label, mean squared
error for regression), then to the smaller k.  One search at the largest k serves every k of the grid,
since the first k of the sorted max-k neighbours are the k nearest.  The probe
never sees test labels and does not depend on ``random_state``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from evalbench import metrics as M
from evalbench.errors import MetricUndefinedError
from evalbench.probes.linear import mean_loss

DEFAULT_KS = (1, 3, 5, 10, 20, 50)
CHUNK_BYTES = 1 << 28  # 256 MB of similarities per block of query rows
LABEL_TYPES = ("single", "binary", "multilabel", "regression")
WEIGHTS = ("uniform", "distance")


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in their own float dtype (an all-zero row stays zero)."""
    x = np.asarray(x)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _top_k(sim: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest entries of each row, largest first, equal values by lower column (exact).

    ``torch.topk`` returns the k largest values, but which of several equal entries
    it picks is unspecified.  Where the k-th and (k+1)-th largest values are equal
    (a tie straddles the cut), the row keeps every entry above that value and the
    lowest columns among those equal to it; then all rows are ordered by value,
    equal values by column.
    """
    n = sim.shape[1]
    values, index = torch.topk(sim, min(k + 1, n), dim=1)
    tied = torch.nonzero(values[:, k - 1] == values[:, k]).flatten() if k < n else []
    values, index = values[:, :k].contiguous(), index[:, :k].contiguous()
    if len(tied):
        rows, bound = sim[tied], values[tied, k - 1 :]
        above, at = rows > bound, rows == bound
        keep = above | (at & (at.cumsum(dim=1) <= k - above.sum(dim=1, keepdim=True)))
        index[tied] = torch.nonzero(keep)[:, 1].view(-1, k)  # exactly k per row, in column order
        values[tied] = rows.gather(1, index[tied])
    order = index.argsort(dim=1)
    values, index = values.gather(1, order), index.gather(1, order)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices  # equal values keep column order
    return values.gather(1, order), index.gather(1, order)


def nearest_neighbours(
    train: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    chunk_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` training rows most cosine-similar to each query (module docstring).

    Args:
        train: ``(n_train, D)`` training (memory) rows.
        queries: ``(n, D)`` query rows.
        k: Neighbours per query (clipped to ``n_train``).
        dtype: Dtype of the similarity product (rows are normalised in their own dtype first).
        device: Torch device string.
        chunk_rows: Query rows per block; default: as many as fit ``CHUNK_BYTES`` of similarities.

    Returns:
        ``(similarity, index)``, both ``(n, min(k, n_train))``: cosine similarities as numpy
        arrays of ``dtype`` and int64 training row indices, most similar first, ties to the lower index.
    """
    unit = unit_rows(train)
    if len(unit) == 0 or k < 1:
        raise ValueError(f"nearest_neighbours: need training rows and k >= 1, got {len(unit)} rows and k = {k}")
    k = min(k, len(unit))
    # Identical rows get one column of the product, so they tie exactly (module docstring).
    keys = np.ascontiguousarray(unit).view(np.dtype((np.void, unit.dtype.itemsize * unit.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)  # rows compared as bytes
    expand = torch.as_tensor(inverse.reshape(-1), device=device) if len(first) < len(unit) else None
    t = torch.as_tensor(unit if expand is None else unit[first]).to(device=device, dtype=dtype)
    q = torch.as_tensor(unit_rows(queries)).to(device=device, dtype=dtype)
    rows = chunk_rows or max(1, CHUNK_BYTES // (len(unit) * t.element_size()))
    parts = []
    for i in range(0, len(q), rows):
        sim = q[i : i + rows] @ t.T
        parts.append(_top_k(sim if expand is None else sim[:, expand], k))
    if not parts:
        return torch.empty((0, k), dtype=dtype).numpy(), np.empty((0, k), np.int64)
    return torch.cat([p[0] for p in parts]).cpu().numpy(), torch.cat([p[1] for p in parts]).cpu().numpy()


def neighbour_weights(similarity: np.ndarray, weights: str) -> np.ndarray:
    """Vote weights ``(n, k)`` float64: ones, or ``1 / (1 − cos)`` with all weight on neighbours at distance 0.

    The distance rule is per query row and does not depend on k: a neighbour at
    distance 0 is at least as similar as any other, so it is always first.
    """
    if weights == "uniform":
        return np.ones(similarity.shape)
    distance = np.maximum(1.0 - similarity.astype(np.float64), 0.0)
    exact = distance == 0.0
    with np.errstate(divide="ignore"):
        w = 1.0 / distance
    hit = exact.any(axis=1)
    w[hit] = exact[hit]
    return w


def neighbour_scores(
    y_train: np.ndarray, index: np.ndarray, w: np.ndarray, ks: list[int], label_type: str, n_classes: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, scores)`` for each k of ``ks`` (ascending, each ≤ ``index.shape[1]``), accumulated neighbour by neighbour.

    Scores are ``(n, C)`` weighted class fractions (single, binary), weighted mean
    multi-hot rows (multilabel) or ``(n,)`` weighted mean targets (regression).
    One running sum over the sorted neighbours gives every k; nothing larger
    than ``(n, C)`` is held.
    """
    n = len(index)
    rows = np.arange(n)
    vote = label_type in ("single", "binary")
    targets = np.asarray(y_train, np.float64 if not vote else np.int64)
    if label_type == "regression":
        targets = targets[:, None]
    total = np.zeros((n, n_classes if vote else targets.shape[1]))
    mass = np.zeros(n)
    wanted = set(ks)
    for j in range(max(ks)):
        if vote:
            total[rows, targets[index[:, j]]] += w[:, j]  # one entry per row: no repeated (row, class) pair
        else:
            total += w[:, j, None] * targets[index[:, j]]
        mass += w[:, j]
        if j + 1 in wanted:
            scores = total / mass[:, None]
            yield j + 1, scores[:, 0] if label_type == "regression" else scores


class KNNProbe(BaseEstimator):
    """Cosine k-nearest-neighbour probe with k chosen on validation (module docstring).

    Args:
        n_classes: Number of classes C (ignored for regression).
        label_type: ``single``, ``binary``, ``multilabel`` or ``regression``.
        metric: Validation metric for choosing k.
        ks: Grid of neighbour counts (clipped to the number of training rows).
        weights: ``uniform`` (each neighbour one vote) or ``distance`` (inverse cosine distance).
        random_state: Unused (the probe is deterministic); accepted for the protocol's uniform call.
        device: Torch device string for the neighbour search.
    """

    def __init__(
        self,
        n_classes: int,
        label_type: str = "single",
        metric: str = "accuracy",
        ks: tuple[int, ...] = DEFAULT_KS,
        weights: str = "uniform",
        random_state: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_classes = n_classes
        self.label_type = label_type
        self.metric = metric
        self.ks = ks
        self.weights = weights
        self.random_state = random_state
        self.device = device

    @classmethod
    def label_types(cls, config: dict[str, object]) -> tuple[str, ...]:
        """Label types the probe fits with ``config`` (checked by ``evalbench run`` before any work)."""
        return LABEL_TYPES

    @property
    def deterministic(self) -> bool:
        """Always True: there is nothing to train, so ``random_state`` changes nothing."""
        return True

    def _scores(self, x: np.ndarray, ks: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        similarity, index = nearest_neighbours(self.x_train_, x, max(ks), device=self.device)
        w = neighbour_weights(similarity, self.weights)
        return neighbour_scores(self.y_train_, index, w, ks, self.label_type, self.n_classes)

    def fit(self, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray) -> KNNProbe:
        """Keep the training rows and choose k on the validation rows.

        Args:
            x: ``(n, D)`` standardised training embeddings.
            y: Training labels: ``(n,)`` int (single, binary), ``(n, C)`` multi-hot, or ``(n,)`` float targets.
            x_valid: Validation embeddings.
            y_valid: Validation labels.

        Returns:
            self, with ``k_``, ``valid_score_``, ``grid_`` (each k's validation score and loss) and ``chosen_``.

        Raises:
            ValueError: An unknown label type or weighting, an empty grid, or no training rows.
            MetricUndefinedError: The metric is undefined on the validation labels.
        """
        if self.label_type not in LABEL_TYPES:
            raise ValueError(f"knn probe: label_type '{self.label_type}' is not one of {', '.join(LABEL_TYPES)}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"knn probe: weights '{self.weights}' is not one of {', '.join(WEIGHTS)}")
        if not len(self.ks) or min(self.ks) < 1:
            raise ValueError(f"knn probe: ks must be positive neighbour counts, got {self.ks}")
        if len(x) == 0:
            raise ValueError("knn probe: no training rows")
        self.x_train_ = np.asarray(x, np.float32)
        self.y_train_ = np.asarray(y)
        higher = M.HIGHER_IS_BETTER[self.metric]
        grid = []
        for k, scores in self._scores(x_valid, sorted({min(int(size), len(x)) for size in self.ks})):
            try:
                value = M.compute([self.metric], y_valid, scores, self.label_type)[self.metric]
            except MetricUndefinedError as exc:
                raise MetricUndefinedError(f"validation split: {exc}") from None
            grid.append({"k": k, "valid": float(value), "valid_loss": mean_loss(y_valid, scores, self.label_type)})
        pick = min(grid, key=lambda g: (-g["valid"] if higher else g["valid"], g["valid_loss"], g["k"]))
        self.k_, self.valid_score_, self.grid_ = pick["k"], pick["valid"], grid
        self.chosen_: dict[str, Any] = {"k": self.k_, "weights": self.weights, "grid": grid}
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, C)`` at the chosen k: class vote fractions, or mean multi-hot rows (multilabel).

        Raises:
            ValueError: For regression (use :meth:`predict`).
        """
        if self.label_type == "regression":
            raise ValueError("knn probe: a regression probe has no class scores; use predict")
        return next(self._scores(x, [self.k_]))[1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices ``(n,)``, a 0/1 matrix ``(n, C)`` at 0.5 (multilabel), or ``(n,)`` targets (regression)."""
        if self.label_type == "regression":
            return next(self._scores(x, [self.k_]))[1]
        scores = self.predict_proba(x)
        return (scores >= 0.5).astype(np.int64) if self.label_type == "multilabel" else scores.argmax(1)
