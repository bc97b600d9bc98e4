"""Matrix products whose result does not depend on the summation order.

Two kernels:

- :func:`matmul` (float64 operands): summed in one fixed order (Numba, below);
- :func:`split_matmul` (float32 operands, used by :func:`matmul_f32`, :func:`bmm_f32` and
  :func:`gram`): an *error-free split* (Ozaki et al., "Error-free transformations of matrix
  multiplication", 2012) into integer slices whose BLAS products are exact, so any BLAS, kernel,
  thread count or FMA gives the same bits. Each row of ``a`` (column of ``b``) is scaled by a
  power of two so its largest magnitude is below ``2^beta`` and cut into two integer slices of
  ``beta`` bits, ``a = (a1 + a2 2^-beta) 2^(e - beta)`` (plus the bits below ``2^-2 beta`` of the
  row maximum, dropped); with ``beta = floor((53 - ceil(log2 K)) / 2)`` every partial sum of
  ``a_i @ b_j`` is an integer below ``2^53``, hence exact in float64 in any order. The result
  ``(a1 b1 + (a1 b2 + a2 b1) 2^-beta) 2^(ea + eb - 2 beta)`` is combined elementwise in float64
  (a fixed order). Its error against the exact product is about ``2^-2beta K max|a| max|b|``
  (``2^-32`` relative to that for K = 1536): deterministic, and far more accurate than float32
  BLAS. Small products run BLAS at one thread (:func:`prodigy_sim._jit.one_blas_thread`), faster
  on a shared machine; the result does not depend on it anyway.

The Numba kernel:

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

import math
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim._jit import one_blas_thread, parallel_if_large
from prodigy_sim.errors import ConfigError

__all__ = ["matmul", "split_matmul", "SplitWeight", "split_weight", "matmul_f32", "bmm_f32",
           "gram"]


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


def _slices(x: np.ndarray, axis: int, beta: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x1, x2, e)``: ``x = (x1 + x2 2^-beta) 2^(e - beta)`` up to the bits below
    ``2^(e - 2 beta)``, with integer-valued float64 slices ``|x1|, |x2| <= 2^beta`` and ``e``
    the exponent of the largest magnitude along ``axis`` (``max |x| < 2^e``). Computed in place
    on one float64 copy (the same operations, in the same order, as written out)."""
    xn = x.astype(np.float64)
    e = np.frexp(np.abs(xn).max(axis=axis, keepdims=True))[1]
    xn *= np.ldexp(1.0, beta - e)             # exact: a power-of-two scaling of float32 values
    x1 = np.trunc(xn)
    xn -= x1                                  # exact
    xn *= 2.0**beta                           # exact
    x2 = np.rint(xn, out=xn)                  # the rounding drops the low bits
    return x1, x2, e


def _beta(k: int) -> int:
    return (53 - max(1, math.ceil(math.log2(max(k, 2))))) // 2


@dataclass(frozen=True, eq=False)
class SplitWeight:
    """A float32 weight ``w (N, K)`` cut once into the slices :func:`split_matmul` multiplies
    ``x @ w.T`` by (``b1``, ``b2``: ``(K, N)`` integer-valued float64; ``eb``: ``(1, N)``), to
    reuse across calls (a linear layer's weight)."""

    b1: np.ndarray
    b2: np.ndarray
    eb: np.ndarray
    beta: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.b1.shape[1], self.b1.shape[0])


def split_weight(w: np.ndarray) -> SplitWeight:
    """:class:`SplitWeight` of a finite float32 ``w (N, K)``."""
    w = np.asarray(w, dtype=np.float32)
    if not np.isfinite(w).all():
        raise ConfigError("split_matmul needs finite operands")
    beta = _beta(w.shape[1])
    b1, b2, eb = _slices(np.ascontiguousarray(w.T), -2, beta)
    return SplitWeight(b1, b2, eb, beta)


_MANY_MACS = 1 << 28
"""Slice products larger than this (multiply-adds) use the BLAS threads; smaller ones one
thread (a thread team costs more than small work on a shared machine). The bits are the same."""


def _combine(a: np.ndarray, b1: np.ndarray, b2: np.ndarray, eb: np.ndarray, beta: int,
             out_dtype: type = np.float64) -> np.ndarray:
    return _blas_for(a.size * b1.shape[-1], _combine_now)(a, b1, b2, eb, beta, out_dtype)


def _blas_for(macs: int, fn):
    """``fn`` with BLAS at its threads for products of at least :data:`_MANY_MACS`
    multiply-adds, else held at one thread (the bits are the same either way)."""
    return fn if macs >= _MANY_MACS else one_blas_thread(fn)


def _combine_now(a: np.ndarray, b1: np.ndarray, b2: np.ndarray, eb: np.ndarray, beta: int,
                 out_dtype: type = np.float64) -> np.ndarray:
    """``(a1 b1 + (a1 b2 + a2 b1) 2^-beta) 2^(ea - beta) 2^(eb - beta)`` in float64, each step
    one IEEE operation in that order, cast to ``out_dtype``. A 2-D product with many columns is
    computed by blocks of :data:`_COLUMNS` columns (each output element is the same operations on
    the same values, so the same bits; the temporaries stay small)."""
    if not np.isfinite(a).all():
        raise ConfigError("split_matmul needs finite operands")
    a1, a2, ea = _slices(a, -1, beta)
    sa = np.ldexp(1.0, ea - beta)
    sb = np.ldexp(1.0, eb - beta)
    n = b1.shape[-1]
    if a.ndim != 2 or b1.ndim != 2 or n <= _COLUMNS:
        return _combine_block(a1, a2, sa, b1, b2, sb, beta).astype(out_dtype, copy=False)
    out: np.ndarray = np.empty((a.shape[0], n), dtype=out_dtype)
    for j in range(0, n, _COLUMNS):
        cols = slice(j, min(n, j + _COLUMNS))
        out[:, cols] = _combine_block(a1, a2, sa, b1[:, cols], b2[:, cols], sb[:, cols], beta)
    return out


_COLUMNS = 4096
"""Columns per block of a 2-D :func:`_combine_now` (the LM head has 49,152)."""


def _combine_block(a1: np.ndarray, a2: np.ndarray, sa: np.ndarray, b1: np.ndarray,
                   b2: np.ndarray, sb: np.ndarray, beta: int) -> np.ndarray:
    low = np.matmul(a1, b2)
    low += np.matmul(a2, b1)                  # each product exact, their sum too (< 2^53)
    low *= 2.0**-beta
    out = np.matmul(a1, b1)
    out += low
    # power-of-two scalings (exact unless the result leaves the float64 range)
    out *= sa
    out *= sb
    return out


def split_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 ``a @ b`` of float32 stacks ``a (..., M, K)``, ``b (..., K, N)`` by the error-free
    split (module docstring): the same bits whatever BLAS computes the slice products."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    _check(a, b)
    k = a.shape[-1]
    if k == 0:
        return np.zeros((*a.shape[:-1], b.shape[-1]))
    if not np.isfinite(b).all():
        raise ConfigError("split_matmul needs finite operands")
    beta = _beta(k)
    b1, b2, eb = _slices(b, -2, beta)
    return _combine(a, b1, b2, eb, beta)


def bmm_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 ``a @ b`` for stacks ``a (..., M, K)``, ``b (..., K, N)`` with the same leading
    shape: :func:`split_matmul` rounded once to float32."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if b.shape[:-2] != a.shape[:-2]:
        raise ConfigError(f"bmm: leading shapes differ ({a.shape} @ {b.shape})")
    return split_matmul(a, b).astype(np.float32)


def matmul_f32(x: np.ndarray, w: np.ndarray | SplitWeight) -> np.ndarray:
    """float32 ``x @ w.T`` for ``x (..., K)`` and a weight ``w (N, K)`` (or its
    :class:`SplitWeight`): :func:`split_matmul` rounded once to float32."""
    x = np.asarray(x, dtype=np.float32)
    lead = x.shape[:-1]
    sw = w if isinstance(w, SplitWeight) else split_weight(w)
    if x.shape[-1] != sw.shape[1]:
        raise ConfigError(f"matmul: inner dimensions differ ({x.shape} @ {sw.shape}^T)")
    y = _combine(x.reshape(-1, x.shape[-1]), sw.b1, sw.b2, sw.eb, sw.beta, np.float32)
    return y.reshape(*lead, y.shape[-1])


def gram(x: np.ndarray) -> np.ndarray:
    """float64 ``x^T x`` (K, K) of ``x (T, K)``: :func:`split_matmul` for float32 ``x``, the
    fixed-order :func:`matmul` for float64 ``x``; exactly symmetric either way."""
    x = np.asarray(x)
    if x.dtype == np.float32:
        if x.shape[0] == 0:
            return np.zeros((x.shape[1], x.shape[1]))
        g = _blas_for(x.size * x.shape[1], _gram_split)(x)
        return np.triu(g) + np.triu(g, 1).T
    x = _prepare(x)
    return matmul(np.ascontiguousarray(x.T), x)


def _gram_split(x: np.ndarray) -> np.ndarray:
    """``split_matmul(x.T, x)`` of a float32 ``x (T, K)``, bit for bit, with half the slice
    products: the slices of ``x.T`` by rows are those of ``x`` by columns, transposed, so
    ``a1 b2 + a2 b1 = M + M^T`` with ``M = x1^T x2`` (one product instead of two; every entry an
    exact integer below ``2^53``, as in :func:`_combine_block`), and ``a1 b1 = x1^T x1`` (a
    symmetric product BLAS may compute as one). Then the same operations in the same order."""
    if not np.isfinite(x).all():
        raise ConfigError("split_matmul needs finite operands")
    beta = _beta(x.shape[0])
    x1, x2, e = _slices(x, -2, beta)
    s = np.ldexp(1.0, e - beta)               # (1, K)
    m = np.matmul(x1.T, x2)
    low = m + m.T
    low *= 2.0**-beta
    out = np.matmul(x1.T, x1)
    out += low
    out *= s.T
    out *= s
    return out
