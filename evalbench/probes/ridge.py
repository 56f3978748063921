"""The linear probe of regression tasks: ridge regression on standardised targets, strength chosen on validation.

A regression task's linear head is ridge regression (Hoerl & Kennard,
"Ridge regression: biased estimation for nonorthogonal problems",
Technometrics 12(1), 1970): on standardised training embeddings ``X`` and
targets ``t``, minimise ``1/(2n) ‖t − Xw − b‖² + l2/2 ‖w‖²`` (the intercept
``b`` is not penalised).  That is the logistic probe's objective
(:mod:`evalbench.probes.lbfgs`: mean loss + ``l2/2 ‖W‖²``) with half the mean
squared error as the loss, i.e. scikit-learn's ``Ridge(alpha = n · l2)``, so the
same strength grid means the same amount of shrinkage per clip.

- **Standardised targets fitted on train only.**  The probe fits ``t = (y − μ) / σ``
  with ``μ``, ``σ`` the mean and (population) standard deviation of the
  *training* targets, and maps predictions back, ``ŷ = μ + σ (Xw + b)``: the
  strength grid then does not depend on the targets' units (semitones or Hz),
  and validation and test targets never enter the fit.
- **Closed form, exact.**  Each strength solves ``(XcᵀXc + n·l2·I) w = Xcᵀ tc``
  on the centred data (``b = t̄ − x̄ᵀw``) by a Cholesky factorisation in float64:
  no iterations, no tolerance (the record says ``iterations: 0``,
  ``converged: true``).
- **Row space.**  With fewer training clips than dimensions the solution lies in
  the row space of the centred ``X`` (inside that of ``X``), so the probe solves
  on ``X V`` (:func:`evalbench.probes.lbfgs.row_space`), as the classifier does.
- **The path and the selection** are the classifier's
  (:func:`evalbench.probes.lbfgs.fit_path`): strengths strong → weak, stop
  ``patience`` points past the best, extend an edge; the task's primary metric on
  validation picks the strength (oriented: a lower MAE is better), ties go to the
  lower validation mean squared error.
"""

from __future__ import annotations

import numpy as np
import torch

from evalbench.probes.design import Matrix
from evalbench.probes.lbfgs import Solver


def target_scaling(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the training targets (a constant target gets scale 1).

    Raises:
        ValueError: The targets are not a finite ``(n,)`` vector with n ≥ 1.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) == 0 or not np.isfinite(y).all():
        raise ValueError(f"regression probe: targets must be finite floats of shape (n,), got shape {y.shape}")
    scale = float(y.std())
    return float(y.mean()), scale if scale > 0 else 1.0


def _centred_moments(x: Matrix, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x̄, t̄, XcᵀXc, Xcᵀ(t − t̄))`` of features and targets, the matrix read whole or block by block."""
    n, t_mean = x.shape[0], t.mean(0)
    if isinstance(x, torch.Tensor):
        x_mean = x.mean(0)
        xc = x - x_mean
        return x_mean, t_mean, xc.T @ xc, xc.T @ (t - t_mean)
    x_mean = sum(block.sum(0) for _, block in x.blocks()) / n  # RowBlocks: two passes, the centred sums
    gram = rhs = None
    for rows, block in x.blocks():
        xc = block - x_mean
        gram = xc.T @ xc if gram is None else gram + xc.T @ xc
        rhs = xc.T @ (t[rows] - t_mean) if rhs is None else rhs + xc.T @ (t[rows] - t_mean)
    assert gram is not None and rhs is not None
    return x_mean, t_mean, gram, rhs


def ridge_solver(x: Matrix, t: torch.Tensor) -> Solver:
    """Closed-form ridge solves at any strength on features ``x`` ``(n, k)`` and targets ``t`` ``(n, 1)``.

    The returned :data:`~evalbench.probes.lbfgs.Solver` ignores its features, targets, warm start, iteration
    budget and tolerance (the solve is exact, on the ``x`` and ``t`` given here) and returns
    ``(weight (k, 1), bias (1,), 0, True)``, the minimiser of ``1/(2n) ‖t − xw − b‖² + l2/2 ‖w‖²``.  ``x`` may be
    a :class:`~evalbench.probes.design.RowBlocks` (features too large for RAM).
    """
    n = x.shape[0]
    x_mean, t_mean, gram, rhs = _centred_moments(x, t)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)

    def solve_at(
        _x: torch.Tensor, _y: torch.Tensor, l2: float, _w: torch.Tensor, _b: torch.Tensor, *_: object
    ) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        system = gram + n * l2 * eye
        factor, info = torch.linalg.cholesky_ex(system)
        w = torch.cholesky_solve(rhs, factor) if int(info) == 0 else torch.linalg.lstsq(system, rhs).solution
        return w, t_mean - x_mean @ w, 0, True

    return solve_at


__all__ = ["ridge_solver", "target_scaling"]
