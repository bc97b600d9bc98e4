"""The column-by-column optimal-brain-surgeon sweep shared by GPTQ, SparseGPT and SpQR.

Columns of ``W`` (N, K) are processed in a fixed order. Column ``j`` is replaced by ``q_j`` (its
quantized, pruned or outlier-kept value, decided by a callback) and the error is spread over
the columns not yet processed with the inverse-Hessian factor ``U`` (:mod:`._hessian`)::

    e = (w_j - q_j) / U[j, j]          (one value per row)
    W[:, j+1:] -= e  U[j, j+1:]        (outer product)

Lazy updates (Frantar et al., GPTQ section 3): the outer products are applied at once inside a
sub-block of ``S`` columns, the sub-block's errors are then applied to the rest of its outer block
of ``B`` columns with one matrix product, and an outer block's errors to all later columns with one
more (:func:`prodigy_sim.detmath.matmul`: a fixed summation order, no BLAS). The result is the same
as the plain sweep up to float64 rounding (tested).

Hooks run when the sweep reaches a column ``j`` that is a multiple of their period ``p``, before
``q_j`` is decided, and see the *current* weights of columns ``j .. j+p-1`` (every error from
earlier columns applied). The sizes are chosen so that this holds: ``S`` divides 16 and every
period, and ``B`` is a multiple of every period.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from prodigy_sim.detmath import matmul
from prodigy_sim.errors import ConfigError

__all__ = ["Hook", "sweep", "block_sizes"]

Hook = Callable[[int, np.ndarray], None]
Column = Callable[[int, np.ndarray, float], np.ndarray]

_SUB = 16  # columns updated by outer products before one matrix product (at most)


@dataclass(frozen=True)
class SweepOutput:
    """``q``: float64 (N, K) replaced values in processing order; ``loss``: float64 (N,)
    ``sum_j (w_j - q_j)^2 / (2 U[j, j]^2)``, the OBS estimate of each row's error increase."""

    q: np.ndarray
    loss: np.ndarray


def block_sizes(blocksize: int, periods: list[int]) -> tuple[int, int]:
    """``(S, B)``: sub-block and outer-block sizes for hooks with these ``periods``."""
    if blocksize < 1:
        raise ConfigError(f"'blocksize' must be >= 1 (got {blocksize})")
    sub = math.gcd(_SUB, *periods) if periods else _SUB
    lcm = math.lcm(sub, *periods) if periods else sub
    outer = lcm * max(1, -(-blocksize // lcm))
    return sub, outer


def sweep(w: np.ndarray, u: np.ndarray, column: Column, *, blocksize: int = 128,
          hooks: list[tuple[int, Hook]] | None = None) -> SweepOutput:
    """Run the sweep over ``w`` (float64 (N, K), columns already in processing order).

    Args:
        w: the weights; not modified.
        u: float64 (K, K) upper factor with ``U^T U = H^-1`` in processing order.
        column: ``column(j, w_j, U[j, j]) -> q_j``: the value (float64 (N,)) column ``j`` is
            replaced by, given its current weights ``w_j`` (N,).
        blocksize: outer lazy block ``B`` (rounded up to a multiple of every hook period).
        hooks: ``(period, fn)``: ``fn(j, current)`` with ``current`` = float64 (N, <= period),
            the current weights of columns ``j .. j+period-1``, run in list order.
    """
    hooks = hooks or []
    n, k = w.shape
    sub, outer = block_sizes(blocksize, [p for p, _ in hooks])
    wt = np.array(w.T, dtype=np.float64, order="C")  # row j = column j: contiguous
    qt = np.zeros_like(wt)
    loss = np.zeros(n)
    for i1 in range(0, k, outer):
        i2 = min(i1 + outer, k)
        et = np.empty((i2 - i1, n))
        for s1 in range(i1, i2, sub):
            s2 = min(s1 + sub, i2)
            for j in range(s1, s2):
                for period, fn in hooks:
                    if j % period == 0:
                        fn(j, wt[j:min(j + period, k)].T)
                wj = wt[j]
                d = u[j, j]
                q = column(j, wj, d)
                diff = wj - q
                e = diff / d
                loss += diff * diff / (2.0 * d * d)
                if j + 1 < s2:
                    wt[j + 1:s2] -= np.outer(u[j, j + 1:s2], e)
                et[j - i1] = e
                qt[j] = q
            if s2 < i2:
                wt[s2:i2] -= matmul(u[s1:s2, s2:i2].T, et[s1 - i1:s2 - i1])
        if i2 < k:
            wt[i2:] -= matmul(u[i1:i2, i2:].T, et)
    return SweepOutput(q=qt.T.copy(), loss=loss)
