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

Execution: the output is cut into (``_TILE_M`` x ``_TILE_N``) tiles, each carried through all
chunks in K order by one worker (chunk GEMM into a per-thread buffer that stays in cache, then
the fused round-to-odd accumulate on a contiguous copy of the accumulator tile). Workers - one
per core, BLAS held at one thread with threadpoolctl when it is installed - take tiles from a
shared list, so a core slowed by other load never holds the rest back. W may be a lazy source
decoding packed codes per (tile, chunk group) instead of a float64 copy of the whole weight.
Which path a (tile, chunk) takes never changes a bit of the result: every path is exact.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim._jit import blas_single_thread
from prodigy_sim.functional._exact import add_rne32, superacc_dot_rne32
from prodigy_sim.functional._operand import Operand, OperandSource

__all__ = ["MmaStats", "mma_operands", "mma_source", "chunk_is_exact"]

_NAN32 = np.float32(np.nan)
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


@numba.njit(cache=True, nogil=True)
def _accumulate_fast(acc, x):
    """acc[i, j] <- RNE_fp32(acc[i, j] + x[i, j]) for C-contiguous tiles (no specials)."""
    m, n = x.shape
    for i in range(m):
        ar = acc[i]
        xr = x[i]
        for j in range(n):
            r = add_rne32(ar[j], xr[j])
            ar[j] = _NAN32 if r != r else r


@numba.njit(cache=True, nogil=True)
def _accumulate_group(acc, x):
    """acc <- RNE_fp32(acc + x[g]) for g = 0, 1, ... in order (C-contiguous, no specials)."""
    for g in range(x.shape[0]):
        _accumulate_fast(acc, x[g])


@numba.njit(cache=True, nogil=True)
def _accumulate(acc, x, av, wv, aspec, wspec):
    """acc[i, j] <- RNE_fp32(acc[i, j] + x[i, j]) (specials recomputed where flagged)."""
    m, n = x.shape
    for i in range(m):
        for j in range(n):
            xs = x[i, j]
            if aspec[i] or wspec[j]:
                xs = _special_sum(av[i], wv[j])
            r = add_rne32(acc[i, j], xs)
            if r != r:
                r = _NAN32
            acc[i, j] = r


@numba.njit(cache=True, nogil=True)
def _fallback(acc, av, wv, aspec, wspec):
    """acc[i, j] <- RNE_fp32(acc[i, j] + exact chunk sum), without any float64 GEMM."""
    m, n = acc.shape
    k = av.shape[1]
    for i in range(m):
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


def _is_exact(a_low, a_vmax, a_vsum, w_low, w_vmax, w_vsum) -> bool:
    """The exactness test of the module doc on tile aggregates (min low, max vmax, max vsum)."""
    q = a_low * w_low
    if not np.isfinite(q):
        return True  # one side has no finite nonzero value: every product is 0 (or special)
    return bool(min(a_vmax * w_vsum, a_vsum * w_vmax) < 2.0 ** 52 * q)


def chunk_is_exact(a: Operand, w: Operand, c: int, rows: slice, cols: slice) -> bool:
    """True if a float64 GEMM of chunk ``c`` for A rows ``rows`` x W rows ``cols`` is exact."""
    return _is_exact(a.low[c, rows].min(), a.vmax[c, rows].max(), a.vsum[c, rows].max(),
                     w.low[c, cols].min(), w.vmax[c, cols].max(), w.vsum[c, cols].max())


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, 0.0)


# ------------------------------------------------------------------ tiling and threads

#: Output tile (rows of A x rows of W) one worker carries through all chunks: its float64 chunk
#: product and float32 accumulator stay in the core's cache between the GEMM and the rounding.
_TILE_M, _TILE_N = 512, 128
#: Chunks per decode / stacked GEMM / accumulate call in a tile.
_GROUP = 4
#: Below this many multiply-adds everything runs in the calling thread (BLAS at one thread).
_THREAD_MIN_MACS = 1 << 27

def _n_workers() -> int:
    threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at run time
    return max(1, min(threads, os.cpu_count() or 1))


class _Plan:
    """One MMA: the A operand (prebuilt), a W source, and per-(chunk, A-tile) aggregates."""

    def __init__(self, a: Operand, w: OperandSource, tm: int):
        self.a, self.w = a, w
        nc, m, _ = a.values.shape
        self.m_tiles = [(i0, min(m, i0 + tm)) for i0 in range(0, m, tm)]
        aspec_any = np.any(a.special, axis=1)
        self.a_gemm = [_finite(a.values[c]) if aspec_any[c] else a.values[c] for c in range(nc)]
        self.a_agg = {}
        for i0, i1 in self.m_tiles:
            sl = slice(i0, i1)
            self.a_agg[i0] = (a.low[:, sl].min(axis=1), a.vmax[:, sl].max(axis=1),
                              a.vsum[:, sl].max(axis=1), np.any(a.special[:, sl], axis=1))

    def tile(self, i0: int, i1: int, n0: int, n1: int, acc: np.ndarray, buf: dict) -> MmaStats:
        """acc[i0:i1, n0:n1] += chunk by chunk; a contiguous copy of the tile is worked on.

        Chunks go in groups of ``_GROUP``: one decode, one stacked GEMM and one accumulate
        call per group when every chunk of the group passes the exactness test and holds no
        special value (few Python steps, so the worker threads rarely wait for each other on
        the GIL); otherwise the group's chunks are done one by one, in order."""
        a = self.a
        nc = a.values.shape[0]
        tm, tn = i1 - i0, n1 - n0
        stats = MmaStats()
        acc_t = np.ascontiguousarray(acc[i0:i1, n0:n1])
        xkey = ("x", tm, tn)
        if xkey not in buf:
            buf[xkey] = np.empty((_GROUP, tm, tn))
        xbuf = buf[xkey]
        alow, avmax, avsum, aspany = self.a_agg[i0]
        for c0 in range(0, nc, _GROUP):
            c1 = min(nc, c0 + _GROUP)
            wv, wlow, wvmax, wvsum, wspec, agg = self.w.chunk_group(c0, c1, n0, n1, buf)
            fast = not aspany[c0:c1].any() and not agg[:, 3].any() and all(
                _is_exact(alow[c], avmax[c], avsum[c], *agg[c - c0, :3])
                for c in range(c0, c1))
            if fast:
                x = xbuf[: c1 - c0]
                np.matmul(a.values[c0:c1, i0:i1], wv.transpose(0, 2, 1), out=x)
                _accumulate_group(acc_t, x)
                stats.blas_tiles += c1 - c0
                continue
            for c in range(c0, c1):
                g = c - c0
                self._chunk_slow(c, i0, i1, acc_t, xbuf[0], wv[g], wlow[g], wvmax[g], wvsum[g],
                                 wspec[g], agg[g], stats)
        acc[i0:i1, n0:n1] = acc_t
        return stats

    def _chunk_slow(self, c, i0, i1, acc_t, x, wv, wlow, wvmax, wvsum, wspec, agg, stats):
        """One chunk of a tile that holds special values or fails the tile exactness test."""
        a = self.a
        alow, avmax, avsum, aspany = self.a_agg[i0]
        gl, gm, gs, wsp = agg
        av = a.values[c, i0:i1]
        aspec = a.special[c, i0:i1]
        a_g = self.a_gemm[c][i0:i1]
        w_g = _finite(wv) if wsp else wv
        if _is_exact(alow[c], avmax[c], avsum[c], gl, gm, gs):
            np.matmul(a_g, w_g.T, out=x)
            if aspany[c] or wsp:
                _accumulate(acc_t, x, av, wv, aspec, wspec)
            else:
                _accumulate_fast(acc_t, x)
            stats.blas_tiles += 1
            return
        for s0 in range(0, i1 - i0, _SUB_M):
            s1 = min(i1 - i0, s0 + _SUB_M)
            ra = slice(i0 + s0, i0 + s1)
            for j0 in range(0, wv.shape[0], _SUB_N):
                j1 = min(wv.shape[0], j0 + _SUB_N)
                sub = acc_t[s0:s1, j0:j1]
                if _is_exact(a.low[c, ra].min(), a.vmax[c, ra].max(), a.vsum[c, ra].max(),
                             wlow[j0:j1].min(), wvmax[j0:j1].max(), wvsum[j0:j1].max()):
                    xs = a_g[s0:s1] @ w_g[j0:j1].T
                    _accumulate(sub, xs, av[s0:s1], wv[j0:j1], aspec[s0:s1], wspec[j0:j1])
                    stats.blas_tiles += 1
                else:
                    _fallback(sub, av[s0:s1], wv[j0:j1], aspec[s0:s1], wspec[j0:j1])
                    stats.fallback_tiles += 1
                    stats.fallback_elements += (s1 - s0) * (j1 - j0)


def mma_source(a: Operand, w: OperandSource, acc: np.ndarray) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T by the chunked spec; returns stats.

    ``w`` gives the chunks of W's rows on demand (a prebuilt operand or packed codes decoded
    per tile). Output tiles of (``_TILE_M`` x ``_TILE_N``) are carried through all chunks by
    worker threads (one per core, BLAS held at one thread each) taking tiles from a shared list;
    small MMAs run in the calling thread. ``a`` and ``w`` must share K and chunk."""
    nc, m, _ = a.values.shape
    n = w.rows
    stats = MmaStats(chunks=nc)
    if m == 0 or n == 0:
        return stats
    plan = _Plan(a, w, _TILE_M)
    tiles = [(i0, i1, n0, min(n, n0 + _TILE_N)) for n0 in range(0, n, _TILE_N)
             for i0, i1 in plan.m_tiles]
    workers = min(_n_workers(), len(tiles))
    ctx = blas_single_thread() if workers > 1 and m * n * a.values.shape[2] * nc >= \
        _THREAD_MIN_MACS else None
    if ctx is None:  # small: this thread, BLAS at one thread too (a small GEMM gains nothing
        buf: dict = {}  # from BLAS threads and loses much when other processes load the cores)
        with blas_single_thread():
            for t in tiles:
                stats.add(plan.tile(*t, acc, buf))
        return stats
    lock = threading.Lock()
    todo = iter(tiles)
    results: list[MmaStats] = []
    errors: list[BaseException] = []

    def work() -> None:
        buf: dict = {}
        mine = MmaStats()
        try:
            while not errors:
                with lock:
                    t = next(todo, None)
                if t is None:
                    break
                mine.add(plan.tile(*t, acc, buf))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)
        results.append(mine)

    with ctx:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
        for th in threads:
            th.start()
        work()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    for r in results:
        stats.add(r)
    return stats


def mma_operands(a: Operand, w: Operand, acc: np.ndarray) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T by the chunked spec; returns stats.

    ``a`` and ``w`` must share K and chunk (the caller checks)."""
    return mma_source(a, OperandSource(w), acc)
