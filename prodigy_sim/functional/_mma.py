"""Bit-exact MMA: ``acc[M,N] += A[M,K] . W[N,K]^T`` with per-chunk FP32 accumulation.

The specification (``isa/README.md``, *Numeric specification*): K is cut into chunks of
``chunk`` (default 128) consecutive elements from the start of the instruction's K; each chunk's
exact sum ``X_c = sum_k a'[m,k] w'[n,k]`` of the scaled operands is added to the FP32
accumulator with one IEEE round-to-nearest-even, ``acc <- RNE_fp32(acc + X_c)``, in K order.

Fast, exact emulation: every (output tile, chunk) piece takes the cheapest of these paths
that a cheap bound proves exact (which path ran never changes a bit; :class:`MmaStats` counts
them):

0. *Float32* (``_f32``, the first choice): one float32 GEMM of the chunk, exact when a
   per-row bound on every partial sum fits 24 bits of the product quantum; rows that need more
   are split by elements - their few finest elements are added to the GEMM's exact result in
   float64 - so one GEMM serves the tile (see ``_f32`` for the proof and the eligibility
   rules: no NaN / Inf, every value a float32 number inside [2^-60, 2^50]).

Otherwise the float64 / exact path:

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

Execution of one large MMA (:func:`mma_quantized`): W is decoded once into float32 k-major
tiles and A classified against W's row ratios (both in worker threads); the output is cut into
(``_TILE_M`` x ``_TN32``) tiles, each carried through all chunks in K order by one worker
(stacked chunk GEMMs into a per-thread buffer that stays in cache, then the accumulate on a
contiguous copy of the accumulator tile). Workers - one per core, BLAS held at one thread with
threadpoolctl when it is installed - take tiles from a shared list, so a core slowed by other
load never holds the rest back. Many small MMAs of one shape (one instruction on many cores,
:func:`mma_batch`) go as one stacked GEMM and one accumulate call.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim._jit import blas_single_thread
from prodigy_sim.functional._exact import add_rne32, superacc_dot_rne32
from prodigy_sim.functional._f32 import (
    SLOW,
    SPLIT,
    ADecoded,
    ASplit,
    WTiles,
    a_classify,
    a_decode,
    a_split,
    accumulate32,
    accumulate32_batch,
    w_tiles,
)
from prodigy_sim.functional._operand import Operand, OperandSource

__all__ = ["MmaStats", "mma_operands", "mma_source", "mma_quantized", "mma_batch",
           "chunk_is_exact"]

_NAN32 = np.float32(np.nan)
_SUB_M, _SUB_N = 64, 256


@dataclass
class MmaStats:
    """What one or more MMAs did: chunks, and (tile, chunk) pieces that took each path.

    ``f32_tiles``: pieces whose chunk sums came from one float32 GEMM (``_f32``), of which
    ``split_rows`` (row, piece) pairs were split and corrected in float64; ``blas_tiles``:
    pieces (or sub-tiles) by one float64 GEMM; ``fallback_tiles`` / ``fallback_elements``:
    sub-tiles and output elements by the exact superaccumulator."""

    chunks: int = 0
    blas_tiles: int = 0
    fallback_tiles: int = 0
    fallback_elements: int = 0
    f32_tiles: int = 0
    split_rows: int = 0

    def add(self, other: MmaStats) -> None:
        self.chunks += other.chunks
        self.blas_tiles += other.blas_tiles
        self.fallback_tiles += other.fallback_tiles
        self.fallback_elements += other.fallback_elements
        self.f32_tiles += other.f32_tiles
        self.split_rows += other.split_rows


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


def _in_threads(items: list, work_one, threaded: bool) -> list:
    """``[work_one(item, buf) for item in items]``, in worker threads taking items from a
    shared list (one per core, BLAS held at one thread each) when ``threaded``, else in the
    calling thread with BLAS at one thread (a small GEMM gains nothing from BLAS threads and
    loses much when other processes load the cores). ``buf`` is a per-thread scratch dict.
    Results come back in no particular order."""
    workers = min(_n_workers(), len(items)) if threaded else 1
    if workers <= 1:
        buf: dict = {}
        with blas_single_thread():
            return [work_one(t, buf) for t in items]
    lock = threading.Lock()
    todo = iter(items)
    results: list = []
    errors: list[BaseException] = []

    def work() -> None:
        buf: dict = {}
        try:
            while not errors:
                with lock:
                    t = next(todo, None)
                if t is None:
                    break
                results.append(work_one(t, buf))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    with blas_single_thread():
        threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
        for th in threads:
            th.start()
        work()
        for th in threads:
            th.join()
    if errors:
        raise errors[0]
    return results


def _run_tiles(tiles: list, work_one, threaded: bool) -> MmaStats:
    """Sum of the :class:`MmaStats` of ``work_one(tile, buf)`` over ``tiles`` (see
    :func:`_in_threads`)."""
    stats = MmaStats()
    for r in _in_threads(tiles, work_one, threaded):
        stats.add(r)
    return stats


def _spread(fn, n: int) -> None:
    """``fn(lo, hi)`` over pieces of ``range(n)`` in worker threads (numba ``nogil`` kernels;
    own threads rather than a Numba parallel region, whose thread team stalls when other
    processes load the cores)."""
    size = max(1, -(-n // (4 * _n_workers())))
    _in_threads([(i, min(n, i + size)) for i in range(0, n, size)],
                lambda piece, _buf: fn(*piece), True)


def mma_source(a: Operand, w: OperandSource, acc: np.ndarray) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T by the chunked spec; returns stats.

    ``w`` gives the chunks of W's rows on demand (a prebuilt operand or packed codes decoded
    per tile). Output tiles of (``_TILE_M`` x ``_TILE_N``) are carried through all chunks by
    worker threads (one per core, BLAS held at one thread each) taking tiles from a shared list;
    small MMAs run in the calling thread. ``a`` and ``w`` must share K and chunk."""
    nc, m, _ = a.values.shape
    n = w.rows
    if m == 0 or n == 0:
        return MmaStats(chunks=nc)
    plan = _Plan(a, w, _TILE_M)
    tiles = [(i0, i1, n0, min(n, n0 + _TILE_N)) for n0 in range(0, n, _TILE_N)
             for i0, i1 in plan.m_tiles]
    threaded = m * n * a.values.shape[2] * nc >= _THREAD_MIN_MACS
    stats = _run_tiles(tiles, lambda t, buf: plan.tile(t[0], t[1], t[2], t[3], acc, buf),
                       threaded)
    stats.chunks = nc
    return stats


# ------------------------------------------------------------------ the float32 path

#: W rows per tile of the float32 path (the output tile is (_TILE_M x tn)): ``_TN32``, or
#: ``_TN32_WIDE`` when W has at least ``_WIDE_ROWS`` rows (a 512 x 512 x 128 float32 GEMM runs
#: about 1.3x faster than four 512 x 128 x 128 ones; the tiling does not change any bit).
_TN32, _TN32_WIDE, _WIDE_ROWS = 128, 512, 2048


def _tn32(n: int) -> int:
    return _TN32_WIDE if n >= _WIDE_ROWS else _TN32


class _Plan32:
    """One MMA: the float32 path (``_f32``) per (tile, chunk) where eligible, the float64 /
    exact path of :class:`_Plan` for the other pieces (built on first use).

    a: A classified and split; w: W as float32 tiles; slow_operands: a function giving the
    float64 path's (A :class:`Operand`, W :class:`OperandSource`)."""

    def __init__(self, a: ASplit, w: WTiles, slow_operands, tm: int):
        self.a, self.w, self.n = a, w, w.rows
        self.w_ok = w.tile_ok()
        m = a.hi.shape[1]
        self.m_tiles = [(i0, min(m, i0 + tm)) for i0 in range(0, m, tm)]
        self.a_ok = {i0: (a.cls[:, i0:i1] != SLOW).all(axis=1) for i0, i1 in self.m_tiles}
        self.tm = tm
        self._slow_operands = slow_operands
        self._slow: _Plan | None = None
        self._lock = threading.Lock()

    def _slow_plan(self) -> _Plan:
        with self._lock:
            if self._slow is None:
                a_op, w_op = self._slow_operands()
                self._slow = _Plan(a_op, w_op, self.tm)
            return self._slow

    def tile(self, i0: int, i1: int, t: int, acc: np.ndarray, buf: dict) -> MmaStats:
        """acc[i0:i1, tile t] += chunk by chunk, chunk groups of ``_GROUP`` in one stacked
        float32 GEMM and one accumulate call when every chunk of the group is eligible."""
        w, a = self.w, self.a
        tn = w.tn
        n0, n1 = t * tn, min(self.n, (t + 1) * tn)
        nc = w.tiles.shape[1]
        tm = i1 - i0
        stats = MmaStats()
        acc_t = np.zeros((tm, tn), dtype=np.float32)
        acc_t[:, : n1 - n0] = acc[i0:i1, n0:n1]
        xkey = ("x32", tm, tn)
        if xkey not in buf:
            buf[xkey] = np.empty((_GROUP, tm, tn), dtype=np.float32)
        xbuf = buf[xkey]
        ok = self.w_ok[t] & self.a_ok[i0]
        rows = slice(i0, i1)
        hi, cls, nlo, lok, lov = (a.hi[:, rows], a.cls[:, rows], a.nlo[:, rows], a.lok[:, rows],
                                  a.lov[:, rows])
        wt = w.tiles[t]
        c0 = 0
        while c0 < nc:
            c1 = min(nc, c0 + _GROUP)
            if not ok[c0:c1].all():
                c1 = c0 + 1
            if ok[c0]:
                x = xbuf[: c1 - c0]
                np.matmul(hi[c0:c1], wt[c0:c1], out=x)
                accumulate32(acc_t, x, cls[c0:c1], nlo[c0:c1], lok[c0:c1], lov[c0:c1],
                             wt[c0:c1])
                stats.f32_tiles += c1 - c0
                stats.split_rows += int(np.count_nonzero(cls[c0:c1] == SPLIT))
            else:
                part = np.ascontiguousarray(acc_t[:, : n1 - n0])
                self._slow_chunk(c0, i0, i1, n0, n1, part, buf, stats)
                acc_t[:, : n1 - n0] = part
            c0 = c1
        acc[i0:i1, n0:n1] = acc_t[:, : n1 - n0]
        return stats

    def _slow_chunk(self, c, i0, i1, n0, n1, acc_t, buf, stats) -> None:
        plan = self._slow_plan()
        wv, wlow, wvmax, wvsum, wspec, agg = plan.w.chunk_group(c, c + 1, n0, n1, buf)
        x = np.empty((i1 - i0, n1 - n0))
        plan._chunk_slow(c, i0, i1, acc_t, x, wv[0], wlow[0], wvmax[0], wvsum[0], wspec[0],
                         agg[0], stats)


def mma_quantized(a, w, acc: np.ndarray, chunk: int) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T for 2-D QuantizedTensors a (M, K)
    (dense) and w (N, K) quantized along K: the float32 path where eligible, else the float64 /
    exact path, per (tile, chunk); output tiles (``_TILE_M`` x :func:`_tn32`) in worker threads
    when large."""
    from prodigy_sim.functional._operand import Stored, operand_from_quantized, operand_source

    m, K = a.shape  # noqa: N806
    n = w.shape[0]
    nc = -(-K // chunk)
    if m == 0 or n == 0:
        return MmaStats(chunks=nc)
    big = m * n * K >= _THREAD_MIN_MACS
    run = _spread if big else None
    wt = w_tiles(Stored.of(w), chunk, _tn32(n), run)
    asplit = a_split(Stored.of(a), chunk, wt.ratios(), m, run)
    plan = _Plan32(asplit, wt, lambda: (operand_from_quantized(a, chunk, "a"),
                                        operand_source(w, chunk, "w")), _TILE_M)
    tiles = [(i0, i1, t) for t in range(wt.tiles.shape[0]) for i0, i1 in plan.m_tiles]
    stats = _run_tiles(tiles, lambda t, buf: plan.tile(t[0], t[1], t[2], acc, buf), big)
    stats.chunks = nc
    return stats


#: Largest float32 GEMM output (elements) of one batched call; larger batches go in pieces.
_BATCH_X = 1 << 22


def mma_batch(a, w, acc: np.ndarray, chunk: int, a_decoded: ADecoded | None = None
              ) -> MmaStats:
    """``acc[b] += a_b . w_b^T`` for B independent MMAs of one shape (the same instruction on
    B cores): ``a`` (B*M, K) and ``w`` (B*N, K) stacked along rows, each a
    :class:`~prodigy_sim.functional._operand.Stored` or real values (an array); acc: float32
    (B, M, N), updated in place (may be a strided view). One stacked float32 GEMM and one
    accumulate call serve every MMA that is eligible in all its chunks; the others take the
    float64 / exact path, each whole. ``a_decoded``: :func:`~._f32.a_decode` of ``a`` if the
    caller has it (a tile used by several MMAs is decoded once); then ``a`` may be a function
    returning the operand, called only if the float64 path needs it. Small GEMMs: the caller
    should hold BLAS at one thread (``_jit.blas_single_thread``)."""
    b_count = acc.shape[0]
    m, n = acc.shape[1], acc.shape[2]
    dec = a_decoded if a_decoded is not None else a_decode(a, chunk)
    nc = -(-dec.K // chunk)
    stats = MmaStats(chunks=nc * b_count)
    if m == 0 or n == 0 or b_count == 0:
        return stats
    wt = w_tiles(w, chunk, n)
    asp = a_classify(dec, wt.ratios(b_count), m)
    ok = wt.tile_ok().all(axis=1) & (asp.cls.reshape(nc, b_count, m) != SLOW).all(axis=(0, 2))
    good = np.flatnonzero(ok)
    if good.size:
        hi = asp.hi.reshape(nc, b_count, m, chunk).transpose(1, 0, 2, 3)
        step = max(1, _BATCH_X // (nc * m * n))
        for g0 in range(0, good.size, step):
            sel = good[g0:g0 + step]
            x = np.matmul(hi[sel], wt.tiles[sel])
            accs = np.ascontiguousarray(acc[sel])
            accumulate32_batch(accs, x, sel, asp.cls, asp.nlo, asp.lok, asp.lov, wt.tiles)
            acc[sel] = accs
        stats.f32_tiles += good.size * nc
        split = asp.cls == SPLIT
        if good.size < b_count:
            split = split.reshape(nc, b_count, m)[:, good]
        stats.split_rows += int(np.count_nonzero(split))
    if good.size < b_count:
        op = a() if callable(a) else a
        for b in np.flatnonzero(~ok):
            part = np.ascontiguousarray(acc[b])
            stats.add(mma_operands(_slow_operand(op, b * m, (b + 1) * m, chunk),
                                   _slow_operand(w, b * n, (b + 1) * n, chunk), part))
            acc[b] = part
    return stats


def _slow_operand(op, r0: int, r1: int, chunk: int) -> Operand:
    from prodigy_sim.functional._operand import operand_from_values

    if isinstance(op, np.ndarray):
        return operand_from_values(op[r0:r1], chunk)
    return op.rows_slice(r0, r1).operand(chunk)


def mma_operands(a: Operand, w: Operand, acc: np.ndarray) -> MmaStats:
    """``acc`` (float32 (M, N), updated in place) += a . w^T by the chunked spec; returns stats.

    ``a`` and ``w`` must share K and chunk (the caller checks)."""
    return mma_source(a, OperandSource(w), acc)
