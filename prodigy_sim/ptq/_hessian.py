"""The layer Hessian of the squared output error, and the factor GPTQ-style methods use.

For a linear layer ``y = x W^T`` and calibration inputs ``x (T, K)``, the error
``||x W^T - x W_q^T||_F^2`` is, row by row, the quadratic form of ``H = 2 x^T x`` (here divided
by ``T``, as the reference implementations do; the scale cancels in every method). GPTQ,
SparseGPT and SpQR need the upper Cholesky factor ``U`` of ``(H + damp I)^-1``
(``H^-1 = U^T U``): row ``q`` of ``U``, divided by ``U[q, q]``, is row ``q`` of the inverse
Hessian after columns ``0..q-1`` were fixed (the optimal-brain-surgeon downdate), so one
factorization serves the whole column-by-column sweep.

Everything is float64, computed by :mod:`prodigy_sim.detmath` (products summed in one fixed
order, a fixed-order Cholesky factor and triangular inverse; no BLAS or LAPACK), so every bit is
the same on every host, thread count and BLAS build (docs/ptq.md, Determinism).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.detmath import cholesky, gram, lower_inverse
from prodigy_sim.errors import ConfigError

__all__ = ["hessian", "HessianAccumulator", "InverseFactor", "inverse_factor"]


def _check_inputs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2:
        raise ConfigError(f"calibration inputs must be (T, K) or (..., K) (got shape {x.shape})")
    x2 = x.reshape(-1, x.shape[-1])
    if x2.dtype != np.float32:  # float32 stays float32: detmath.gram's exact split
        x2 = x2.astype(np.float64)
    if not np.isfinite(x2).all():
        raise ConfigError("calibration inputs must be finite (they hold NaN or Inf)")
    return x2


@one_blas_thread
def hessian(x: np.ndarray) -> np.ndarray:
    """``H = (2 / T) x^T x``, float64 ``(K, K)``, from inputs ``x`` of shape ``(..., K)``
    (``T`` = the number of rows after flattening the leading axes)."""
    acc = HessianAccumulator(np.asarray(x).shape[-1])
    acc.add(x)
    return acc.result()


@dataclass(eq=False)
class HessianAccumulator:
    """Sums ``x^T x`` over batches of inputs (e.g. one calibration sentence at a time).

    ``add(x)`` takes ``(..., K)``; ``result()`` is ``(2 / T) sum x^T x`` over all ``T`` rows.
    """

    k: int
    _sum: np.ndarray | None = None
    tokens: int = 0

    @one_blas_thread
    def add(self, x: np.ndarray) -> None:
        x2 = _check_inputs(x)
        if x2.shape[1] != self.k:
            raise ConfigError(f"inputs have {x2.shape[1]} features, the layer has K = {self.k}")
        g = gram(x2)
        self._sum = g if self._sum is None else self._sum + g
        self.tokens += x2.shape[0]

    def result(self) -> np.ndarray:
        if self._sum is None or self.tokens == 0:
            raise ConfigError("no calibration inputs were added")
        return self._sum * (2.0 / self.tokens)


@dataclass(frozen=True, eq=False)
class InverseFactor:
    """The factor a GPTQ-style sweep uses, for columns processed in order ``perm``.

    Attributes:
        u: float64 ``(K, K)`` upper triangular, ``U^T U = (H_p + damp I)^-1`` where ``H_p`` is
            ``H`` with dead columns fixed and rows/columns permuted by ``perm``.
        perm: int64 ``(K,)``, processing position -> original column (identity, or act-order:
            descending ``diag(H)``, ties by lower index; with ``act_block > 1``, whole blocks of
            ``act_block`` consecutive columns by descending sum of their ``diag(H)``).
        dead: bool ``(K,)`` (original order), columns whose ``H[j, j] == 0`` (the input feature
            was always 0): their weights are set to 0 before the sweep.
        damp: the value added to the diagonal (``percdamp * mean(diag H)``).
        act_order: whether ``perm`` is the act-order permutation.
        act_block: columns that act-order moves together (1: every column on its own).
    """

    u: np.ndarray
    perm: np.ndarray
    dead: np.ndarray
    damp: float
    act_order: bool = False
    act_block: int = 1

    @property
    def k(self) -> int:
        return int(self.u.shape[0])


@one_blas_thread
def inverse_factor(h: np.ndarray, *, percdamp: float = 0.01, act_order: bool = False,
                   act_block: int = 1) -> InverseFactor:
    """Prepare ``H`` (K, K) for a sweep, as the GPTQ reference does: dead columns get
    ``H[j, j] = 1``; with ``act_order`` the columns are ordered by descending ``diag(H)``;
    ``percdamp * mean(diag H)`` is added to the diagonal; ``U`` = the upper Cholesky factor of
    the inverse.

    ``act_block`` > 1 (*block act-order*, with ``act_order``): blocks of ``act_block``
    consecutive columns are ordered by descending sum of their ``diag(H)`` (ties by lower
    index) and keep their columns in order, so that N:M groups and scale blocks that divide
    ``act_block`` stay contiguous in the sweep: SparseGPT can choose its masks, and the sweep its
    block scales, in that order (:func:`~prodigy_sim.ptq.sparsegpt`).

    Raises:
        ConfigError: ``h`` not square and symmetric-shaped, not finite, ``percdamp < 0``,
            ``act_block`` not dividing K, or not positive definite after damping (raise
            ``percdamp``).
    """
    h = np.array(h, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1]:
        raise ConfigError(f"the Hessian must be square (K, K) (got shape {h.shape})")
    if not np.isfinite(h).all():
        raise ConfigError("the Hessian must be finite (it holds NaN or Inf)")
    if not percdamp >= 0:
        raise ConfigError(f"'percdamp' must be >= 0 (got {percdamp})")
    k = h.shape[0]
    diag = np.diagonal(h).copy()
    dead = diag == 0
    idx = np.flatnonzero(dead)
    h[idx, idx] = 1.0
    if act_block < 1 or k % act_block:
        raise ConfigError(f"'act_block' = {act_block} must divide K = {k}")
    if not act_order:
        perm = np.arange(k, dtype=np.int64)
    else:                                 # act_block 1: every column by its own diag(H)
        sums = np.diagonal(h).reshape(-1, act_block).sum(axis=1)
        first = np.argsort(-sums, kind="stable").astype(np.int64) * act_block
        perm = (first[:, None] + np.arange(act_block, dtype=np.int64)).ravel()
    h = h[np.ix_(perm, perm)]
    damp = float(percdamp * np.mean(np.diagonal(h)))
    h[np.arange(k), np.arange(k)] += damp
    try:
        # With J the reversal, J H J = L L^T gives H^-1 = (J L^-1 J)^T (J L^-1 J): U = J L^-1 J
        # is upper triangular with a positive diagonal, i.e. the Cholesky factor of H^-1.
        lo = cholesky(h[::-1, ::-1])
        u = lower_inverse(lo)[::-1, ::-1]
    except ConfigError:
        raise ConfigError(f"the damped Hessian (K = {k}, damp = {damp:.3g}) is not positive "
                          "definite; raise 'percdamp' or add calibration inputs") from None
    return InverseFactor(u=np.ascontiguousarray(u), perm=perm, dead=dead, damp=damp,
                         act_order=bool(act_order), act_block=act_block if act_order else 1)
