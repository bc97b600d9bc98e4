"""Cholesky factor and triangular inverse with a fixed operation order (Numba, float64).

Both are written column by column with the inner loop over rows (independent outputs), so every
entry is the same sequence of IEEE double operations on every host and thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from prodigy_sim.errors import ConfigError

__all__ = ["cholesky", "lower_inverse"]


@numba.njit(cache=True)
def _cholesky(a, lt):
    """``lt`` = L^T (row j of ``lt`` = column j of L) of symmetric positive definite ``a``;
    returns the first failing column or -1."""
    n = a.shape[0]
    c = np.empty(n)
    for j in range(n):
        for i in range(j, n):
            c[i] = a[j, i]
        for k in range(j):
            ljk = lt[k, j]
            for i in range(j, n):
                c[i] -= lt[k, i] * ljk
        d = c[j]
        if not d > 0.0:
            return j
        s = math.sqrt(d)
        lt[j, j] = s
        for i in range(j + 1, n):
            lt[j, i] = c[i] / s
    return -1


@numba.njit(cache=True, parallel=True)
def _lower_inverse(lt, xt):
    """``xt`` = (L^-1)^T for L given as ``lt`` = L^T; column c of L^-1 by forward substitution."""
    n = lt.shape[0]
    for col in numba.prange(n):
        r = np.zeros(n)
        r[col] = 1.0
        for k in range(col, n):
            xk = r[k] / lt[k, k]
            xt[col, k] = xk
            for i in range(k + 1, n):
                r[i] -= lt[k, i] * xk


def cholesky(a: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor ``L`` (``a = L L^T``) of a symmetric positive definite float64
    ``a (n, n)`` (only its upper triangle is read).

    Raises:
        ConfigError: ``a`` is not square, or not positive definite (names the column).
    """
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ConfigError(f"cholesky needs a square matrix (got shape {a.shape})")
    lt = np.zeros_like(a)
    bad = _cholesky(a, lt)
    if bad >= 0:
        raise ConfigError(f"the matrix is not positive definite (pivot {bad} <= 0)")
    return np.ascontiguousarray(lt.T)


def lower_inverse(lo: np.ndarray) -> np.ndarray:
    """``L^-1`` (lower triangular, float64) of a lower-triangular ``lo (n, n)`` with a nonzero
    diagonal."""
    lo = np.asarray(lo, dtype=np.float64)
    if lo.ndim != 2 or lo.shape[0] != lo.shape[1]:
        raise ConfigError(f"lower_inverse needs a square matrix (got shape {lo.shape})")
    lt = np.ascontiguousarray(lo.T)
    xt = np.zeros_like(lt)
    _lower_inverse(lt, xt)
    return np.ascontiguousarray(xt.T)
