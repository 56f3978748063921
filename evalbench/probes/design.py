"""The converged linear probe's features: whole in RAM when they fit, else read block by block from disk.

Why: the path solvers (:mod:`evalbench.probes.lbfgs`, :mod:`evalbench.probes.newton`,
:mod:`evalbench.probes.ridge`) work in float64 on the standardised training
and validation rows.  Held whole, that is the float32 rows plus float64 copies,
about four times the float32 bytes: measured on 2,400 + 400 rows of 16,384
dimensions (175 MiB as float32), the probe failed with 600 MiB of private
memory allowed and ran with 800 (tests/reliability/test_memory_limits.py), so a
task whose embeddings had been extracted and cached through memory-mapped files
still could not be scored.  Here the rows stay where the caller put them (a
memory-mapped scratch file for a large rotation, :meth:`Standardizer.transform
<evalbench.embed.standardize.Standardizer.transform>`) and the solvers see the
same mathematics, computed a block of float64 at a time
(:data:`~evalbench.utils.memory.BLOCK_BYTES`):

- **Fewer clips than dimensions** (the row-space reduction of
  :mod:`evalbench.probes.lbfgs`): the Gram matrix ``X Xᵀ`` is summed over
  column blocks ``X_c``; its eigendecomposition ``U S² Uᵀ`` gives the basis
  ``V = Xᵀ U S⁻¹`` one block ``V_c = X_cᵀ U S⁻¹`` at a time, so the ``D × r``
  basis is never formed whole: the reduced features ``Σ_c X_c V_c`` (train and
  validation) are ``n × r`` and the solution is lifted back as ``[V_c W]_c``.
  Private memory is a few ``n × n`` float64 matrices, not ``n × D``; when even
  those do not fit (:func:`fits_row_space`), the problem is solved unreduced on
  row blocks, as below: the same optimum (the reduction is exact), more slowly.
- **At least as many clips as dimensions**: :class:`RowBlocks` stands for the
  float64 ``X`` and computes ``X W`` and ``Xᵀ R`` (all the solvers ask of it:
  logits, gradients, Hessian-vector products) as sums over row blocks.

Whole or blocked: whole when float64 copies of the training and validation rows,
:data:`WHOLE_FACTOR` times over, fit in :func:`~evalbench.utils.memory.private_headroom`
(the tightest of ``RLIMIT_DATA``, ``RLIMIT_AS``, the cgroup's limit and physical
memory).  Whole is one block: the very computation of the matrix at once.  Blocked
changes only the order of float64 sums (tests/unit/test_probe_design.py: the same
predictions, coefficients within rtol 1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from evalbench.utils.memory import BLOCK_BYTES, private_headroom, row_blocks

WHOLE_FACTOR = 3
"""Private memory of the whole-matrix path, in float64 copies of the training and validation rows: the float64
rows and the basis or the float64 features, with a margin.  Measured: 2,800 × 16,384 rows (350 MiB as float64)
ran with 800 MiB allowed and failed with 600, about 2.3 copies (tests/reliability/test_memory_limits.py)."""


ROW_SPACE_FACTOR = 6
"""Private memory of the row-space reduction, in ``n × n`` float64 matrices: the Gram matrix, its eigenvectors,
the eigensolver's workspace (LAPACK ``syevd``: about two more), the training features and the solvers' copies."""


def _fits(nbytes: int) -> bool:
    headroom = private_headroom()
    return headroom is None or nbytes <= headroom


def fits_whole(rows: int, dim: int) -> bool:
    """Whether ``rows × dim`` float64, :data:`WHOLE_FACTOR` times over, fit in the private memory left."""
    return _fits(WHOLE_FACTOR * 8 * rows * dim)


def fits_row_space(n: int) -> bool:
    """Whether the row-space reduction of ``n`` training clips (:data:`ROW_SPACE_FACTOR` ``n × n`` float64) fits."""
    return _fits(ROW_SPACE_FACTOR * 8 * n * n)


def _float64(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, np.float64), device=device)


class RowBlocks:
    """The float64 matrix of a float32 (memory-mapped) ``x`` ``(n, k)``, read a row block at a time.

    Stands in for the features tensor of the path solvers: ``X @ W`` (``(n, C)``, rows stacked in order) and
    ``X.T @ R`` (``(k, C)``, summed over blocks); ``shape``, ``dtype`` and ``device`` as a tensor's.
    """

    def __init__(self, x: np.ndarray, device: torch.device, block_bytes: int = BLOCK_BYTES) -> None:
        self.x, self.device, self.block_bytes = x, device, block_bytes
        self.shape = tuple(x.shape)
        self.dtype = torch.float64

    def blocks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """``(rows, X[rows] as float64)`` for consecutive blocks of at most ``block_bytes``."""
        for rows in row_blocks(self.shape[0], self.shape[1], self.block_bytes):
            yield rows, _float64(self.x[rows], self.device)

    def __matmul__(self, w: torch.Tensor) -> torch.Tensor:
        return torch.cat([block @ w for _, block in self.blocks()])

    @property
    def T(self) -> _Transposed:
        """``Xᵀ``, for products ``Xᵀ R`` (a tensor's name)."""
        return _Transposed(self)


class _Transposed:
    """``Xᵀ`` of a :class:`RowBlocks`: ``Xᵀ R = Σ_b X_bᵀ R_b``."""

    def __init__(self, rows: RowBlocks) -> None:
        self.rows = rows

    def __matmul__(self, r: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for rows, block in self.rows.blocks():
            part = block.T @ r[rows]
            total = part if total is None else total + part
        assert total is not None  # at least one row
        return total


Matrix = torch.Tensor | RowBlocks


@dataclass
class Features:
    """What the path solvers fit on, and how their solution returns to the embedding's coordinates."""

    train: Matrix  # (n, k) float64: k = D, or the rank r of the training rows
    valid: Matrix  # (n_valid, k) in the same coordinates
    rank: int  # k
    lift: Callable[[torch.Tensor], torch.Tensor]  # (k, C) solution -> (D, C) weights


def probe_features(x: np.ndarray, x_valid: np.ndarray, device: torch.device, whole: bool | None = None) -> Features:
    """The solvers' features of standardised rows ``x`` and ``x_valid`` (module docstring).

    Args:
        x: ``(n, D)`` standardised training rows (in RAM or memory-mapped).
        x_valid: ``(n_valid, D)`` standardised validation rows.
        device: Torch device of the features.
        whole: Force the whole-matrix (True) or block (False) computation; None decides by :func:`fits_whole`.
    """
    n, d = x.shape
    if whole is None:
        whole = fits_whole(n + len(x_valid), d)
    if n < d and (whole or fits_row_space(n)):
        return _row_space(x, x_valid, device, [slice(0, d)] if whole else list(row_blocks(d, n, BLOCK_BYTES)))
    if whole:
        return Features(_float64(x, device), _float64(x_valid, device), d, lambda w: w)
    return Features(RowBlocks(x, device, BLOCK_BYTES), RowBlocks(x_valid, device, BLOCK_BYTES), d, lambda w: w)


def gram_basis(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(U, S)`` of the Gram matrix ``X Xᵀ = U S² Uᵀ``, keeping eigenvalues above 1e-12 of the largest.

    The row space of ``X`` is spanned by ``V = Xᵀ U S⁻¹`` (orthonormal columns); directions with singular
    value under 1e-6 of the largest carry no training variance to speak of and are dropped.  None when ``X``
    is zero (or has no rows).
    """
    eig, u = np.linalg.eigh(gram)
    if not eig.size or eig[-1] <= 0:
        return None
    keep = eig > eig[-1] * 1e-12
    return u[:, keep], np.sqrt(eig[keep])


def row_space(x: np.ndarray) -> np.ndarray | None:
    """``V`` (``D × r``, orthonormal columns) spanning the rows of ``x``, or None when ``n ≥ D``.

    From the eigendecomposition of the ``n × n`` Gram matrix ``X Xᵀ = U S² Uᵀ`` (``V = Xᵀ U S⁻¹``,
    :func:`gram_basis`), which costs a third of an SVD of ``X`` at 448 × 3,072; a matrix of zeros keeps one
    direction, the first axis.
    """
    n, d = x.shape
    if n >= d:
        return None
    a = np.asarray(x, np.float64)
    spectrum = gram_basis(a @ a.T)
    if spectrum is None:
        return np.eye(d, 1)
    u, s = spectrum
    return (a.T @ u) / s


def _row_space(x: np.ndarray, x_valid: np.ndarray, device: torch.device, cols: list[slice]) -> Features:
    """Features ``X V`` in the training row space: whole (one block), or ``V`` one column block at a time.

    Whole is :func:`row_space` and ``X V``; blocked sums the Gram matrix over column blocks and forms each
    ``V_c = X_cᵀ U S⁻¹`` when needed (module docstring), with the same basis.
    """
    if len(cols) == 1:
        v = torch.as_tensor(row_space(x), dtype=torch.float64, device=device)
        return Features(_float64(x, device) @ v, _float64(x_valid, device) @ v, v.shape[1], lambda w: v @ w)
    d = x.shape[1]

    def columns(c: slice) -> np.ndarray:
        return np.asarray(x[:, c], np.float64)

    gram: np.ndarray | None = None
    for c in cols:
        a = columns(c)
        gram = a @ a.T if gram is None else gram + a @ a.T
    spectrum = gram_basis(gram)
    first = np.eye(d, 1)

    def basis(c: slice, a: np.ndarray) -> torch.Tensor:
        if spectrum is None:
            return torch.as_tensor(first[c], device=device)
        return torch.as_tensor((a.T @ spectrum[0]) / spectrum[1], device=device)  # V_c = X_cᵀ U S⁻¹

    train: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    for c in cols:
        a = columns(c)
        v = basis(c, a)
        t_part = _float64(a, device) @ v
        v_part = _float64(x_valid[:, c], device) @ v
        train = t_part if train is None else train + t_part
        valid = v_part if valid is None else valid + v_part
    assert train is not None and valid is not None

    def lift(w: torch.Tensor) -> torch.Tensor:
        return torch.cat([basis(c, columns(c)) @ w for c in cols])

    return Features(train, valid, train.shape[1], lift)


__all__ = [
    "ROW_SPACE_FACTOR",
    "WHOLE_FACTOR",
    "Features",
    "Matrix",
    "RowBlocks",
    "fits_row_space",
    "fits_whole",
    "gram_basis",
    "probe_features",
    "row_space",
]
