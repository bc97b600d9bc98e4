"""Bit-exact MMA: ``acc[M,N] += A[M,K] . W[N,K]^T`` with per-chunk FP32 accumulation.

The specification (``isa/README.md``, *Numeric specification*): K is cut into chunks of
``chunk`` (default 128) consecutive elements from the start of the instruction's K; each chunk's
exact sum ``X_c = sum_k a'[m,k] w'[n,k]`` of the scaled operands is added to the FP32
accumulator with one IEEE round-to-nearest-even, ``acc <- RNE_fp32(acc + X_c)``, in K order.

Fast, exact emulation, per chunk and per output tile:

1. ``X_c = A'_c @ W'_c^T`` by one float64 BLAS GEMM. It is *exact* whenever every product is an
   integer multiple of a common quantum ``q`` and every partial sum - in whatever order and
   association BLAS uses, FMA or not - stays below ``2^53 q`` in magnitude: then every
   intermediate is an integer multiple of ``q`` below ``2^53 q``, hence a float64 number, and no
   operation rounds. With ``q = min low_a * min low_w`` over the tile's rows (see ``_operand``),
   every partial sum of pair (m, n) is bounded by ``S = sum_k |a'[m,k]| |w'[n,k]|`` <=
   ``min(max_m vmax_a * max_n vsum_w, max_m vsum_a * max_n vmax_w)``; the tile is accepted when
   that bound is below ``2^52 q`` (a factor 2 covers the rounding of the float64 ``vsum``).
2. Where the check fails, the tile is split into (64 x 256) sub-tiles that are checked again;
   a sub-tile that still fails is computed by the exact superaccumulator kernel of ``_exact``.
3. ``acc <- RNE_fp32(acc + X_c)`` by TwoSum and round-to-odd (``_exact.add_rne32``).

Chunks holding NaN or Inf values are multiplied with those values replaced by zero, and every
(m, n) pair whose row of A or row of W holds one gets its special chunk sum from
:func:`_special_sum` instead (NaN; or +-Inf), then IEEE addition. Every NaN written to an
accumulator is the canonical quiet NaN 0x7FC00000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim.functional._exact import add_rne32, superacc_dot_rne32
from prodigy_sim.functional._operand import Operand

__all__ = ["MmaStats", "mma_operands", "chunk_is_exact"]

_NAN32 = np.float32(np.nan)
_TILE_ELEMS = 1 << 22  # largest X tile (float64 elements) per BLAS call
_SUB_M, _SUB_N = 64, 256


@dataclass
class MmaStats:
    """What one or more MMAs did: chunks, and (tile, chunk) pieces that took each path."""

    chunks: int = 0
    blas_tiles: int = 0
    fallback_tiles: int = 0
    fallback_elements: int = 0

    def add(self, other: MmaStats) -> None:
        self.chunks += other.chunks
        self.blas_tiles += other.blas_tiles
        self.fallback_tiles += other.fallback_tiles
        self.fallback_elements += other.fallback_elements


@numba.njit(cache=True, inline="always")
def _special_sum(a, w):
    """The chunk sum of a row pair holding a NaN or Inf (spec rule 3)."""
    nan = False
    pinf = False
    ninf = False
    for k in range(a.size):
        x = a[k]
        y = w[k]
        if x != x or y != y:
            nan = True
        elif np.isinf(x) or np.isinf(y):
            if x == 0.0 or y == 0.0:
                nan = True
            elif (x > 0.0) == (y > 0.0):
                pinf = True
            else:
                ninf = True
    if nan or (pinf and ninf):
        return np.nan
    if pinf:
        return np.inf
    if ninf:
        return -np.inf
    return 0.0


@numba.njit(cache=True, parallel=True)
def _accumulate(acc, x, av, wv, aspec, wspec, any_special):
    """acc[i, j] <- RNE_fp32(acc[i, j] + x[i, j]) (specials recomputed where flagged)."""
    m, n = x.shape
    for i in numba.prange(m):
        for j in range(n):
            xs = x[i, j]
            if any_special and (aspec[i] or wspec[j]):
                xs = _special_sum(av[i], wv[j])
            r = add_rne32(acc[i, j], xs)
            if r != r:
                r = _NAN32
            acc[i, j] = r


@numba.njit(cache=True, parallel=True)
def _fallback(acc, av, wv, aspec, wspec):
    """acc[i, j] <- RNE_fp32(acc[i, j] + exact chunk sum), without any float64 GEMM."""
    m, n = acc.shape
    k = av.shape[1]
    for i in numba.prange(m):
        for j in range(n):
            a = acc[i, j]
            if aspec[i] or wspec[j]:
                r = np.float32(np.float64(a) + _special_sum(av[i], wv[j]))
            elif not np.isfinite(a):
                r = a
            else:
                r = superacc_dot_rne32(a, av[i], wv[j], 0, k)
            if r != r:
                r = _NAN32
            acc[i, j] = r


def chunk_is_exact(a: Operand, w: Operand, c: int, rows: slice, cols: slice) -> bool:
    """True if a float64 GEMM of chunk ``c`` for A rows ``rows`` x W rows ``cols`` is exact."""
    q = a.low[c, rows].min() * w.low[c, cols].min()
    if not np.isfinite(q):
        return True  # one side has no finite nonzero value: every product is 0 (or special)
    bound = min(a.vmax[c, rows].max() * w.vsum[c, cols].max(),
                a.vsum[c, rows].max() * w.vmax[c, cols].max())
    return bool(bound < 2.0 ** 52 * q)


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, 0.0)


def mma_operands(a: Operand, w: Operand, acc: np.ndarray) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T by the chunked spec; returns stats.

    ``a`` and ``w`` must share K and chunk (the caller checks)."""
    nc, m, chunk = a.values.shape
    n = w.values.shape[1]
    stats = MmaStats(chunks=nc)
    if m == 0 or n == 0:
        return stats
    nt = n if m * n <= _TILE_ELEMS else max(_SUB_N, (_TILE_ELEMS // m) // _SUB_N * _SUB_N)
    xbuf = np.empty((m, min(nt, n)))
    rows_all = slice(0, m)
    for c in range(nc):
        a_c = a.values[c]
        aspec = a.special[c]
        a_special = bool(aspec.any())
        a_gemm = _finite(a_c) if a_special else a_c
        for n0 in range(0, n, nt):
            n1 = min(n, n0 + nt)
            cols = slice(n0, n1)
            w_c = w.values[c, n0:n1]
            wspec = w.special[c, n0:n1]
            any_special = a_special or bool(wspec.any())
            w_gemm = _finite(w_c) if wspec.any() else w_c
            acc_t = acc[:, n0:n1]
            if chunk_is_exact(a, w, c, rows_all, cols):
                x = xbuf[:, : n1 - n0]
                np.matmul(a_gemm, w_gemm.T, out=x)
                _accumulate(acc_t, x, a_c, w_c, aspec, wspec, any_special)
                stats.blas_tiles += 1
                continue
            for i0 in range(0, m, _SUB_M):
                i1 = min(m, i0 + _SUB_M)
                for j0 in range(n0, n1, _SUB_N):
                    j1 = min(n1, j0 + _SUB_N)
                    sub = acc[i0:i1, j0:j1]
                    if chunk_is_exact(a, w, c, slice(i0, i1), slice(j0, j1)):
                        x = a_gemm[i0:i1] @ w_gemm[j0 - n0:j1 - n0].T
                        _accumulate(sub, x, a_c[i0:i1], w.values[c, j0:j1], aspec[i0:i1],
                                    w.special[c, j0:j1], any_special)
                        stats.blas_tiles += 1
                    else:
                        _fallback(sub, a_c[i0:i1], w.values[c, j0:j1], aspec[i0:i1],
                                  w.special[c, j0:j1])
                        stats.fallback_tiles += 1
                        stats.fallback_elements += (i1 - i0) * (j1 - j0)
    return stats
