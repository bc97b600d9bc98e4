"""Matrix products with one fixed summation order (Numba, no fast-math).

``out[b, i, j] = sum_k a[b, i, k] * b[b, k, j]`` accumulated in float64 from 0.0, ``k = 0, 1, ..,
K-1`` in that order, every product and sum an IEEE double operation (Numba emits plain ``fmul`` /
``fadd`` without fast-math flags, so LLVM neither reassociates nor fuses them into FMAs). Each
output is computed by one thread, so the thread count does not change it; no BLAS is called, so
the BLAS build and CPU kernel do not either. For float32 inputs every product is exact in float64
(24 + 24 significant bits), so the only roundings are the float64 sums in that fixed order (and
the final rounding to float32 in :func:`matmul_f32`).

The loops vectorize over ``j`` (independent outputs), which keeps the order per output. Small
products run serially (a thread team costs more than the work), large ones in parallel over the
output rows (:func:`prodigy_sim._jit.parallel_if_large`); both compute the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import ConfigError

__all__ = ["matmul", "matmul_f32", "bmm_f32", "gram"]


@parallel_if_large
def _bmm(a, b, out):
    nb, m, k = a.shape
    n = b.shape[2]
    for r in numba.prange(nb * m):
        bi = r // m
        i = r % m
        acc = np.zeros(n)
        for kk in range(k):
            av = np.float64(a[bi, i, kk])
            for j in range(n):
                acc[j] += av * np.float64(b[bi, kk, j])
        for j in range(n):
            out[bi, i, j] = acc[j]


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[-1] != b.shape[-2]:
        raise ConfigError(f"matmul: inner dimensions differ ({a.shape} @ {b.shape})")


def _prepare(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 ``a @ b`` for ``a (M, K)``, ``b (K, N)`` (float32 or float64), fixed order."""
    a, b = _prepare(a), _prepare(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ConfigError(f"matmul takes 2-D arrays (got {a.shape} @ {b.shape})")
    _check(a, b)
    out = np.empty((1, a.shape[0], b.shape[1]))
    if out.size and a.shape[1]:
        _bmm(a[None], b[None], out)
    else:
        out[:] = 0.0
    return out[0]


def bmm_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 ``a @ b`` for stacks ``a (..., M, K)``, ``b (..., K, N)`` with the same leading
    shape: the fixed-order float64 sum of exact products, rounded once to float32."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    _check(a, b)
    lead = a.shape[:-2]
    if b.shape[:-2] != lead:
        raise ConfigError(f"bmm: leading shapes differ ({a.shape} @ {b.shape})")
    a3 = a.reshape(-1, *a.shape[-2:])
    b3 = b.reshape(-1, *b.shape[-2:])
    out = np.zeros((a3.shape[0], a3.shape[1], b3.shape[2]))
    if out.size and a3.shape[2]:
        _bmm(a3, b3, out)
    return out.astype(np.float32).reshape(*lead, a.shape[-2], b.shape[-1])


def matmul_f32(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """float32 ``x @ w.T`` for ``x (..., K)`` and a weight ``w (N, K)``: the fixed-order float64
    sum of exact products, rounded once to float32."""
    x = np.asarray(x, dtype=np.float32)
    lead = x.shape[:-1]
    y = bmm_f32(x.reshape(1, -1, x.shape[-1]), np.asarray(w, dtype=np.float32).T[None])
    return y.reshape(*lead, y.shape[-1])


def gram(x: np.ndarray) -> np.ndarray:
    """float64 ``x^T x`` (K, K) of ``x (T, K)``, summed over ``t`` in order (exactly symmetric:
    entries ``(i, j)`` and ``(j, i)`` add the same products in the same order)."""
    x = _prepare(x)
    return matmul(np.ascontiguousarray(x.T), x)
