"""Program generators for timing studies: multi-core GEMM and GEMV split by ``cid``.

Each builds a :class:`~prodigy_sim.isa.Program` with :class:`~prodigy_sim.isa.ProgramBuilder`;
rows of the output are split evenly over the ``ncores`` cores that run it (the program reads
``cid`` and ``ncores``; ``ncores`` also fixes the per-core tile shapes, so run it on that many
cores).
"""

from __future__ import annotations

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa import CID, NCORES, Program, ProgramBuilder, Reg

__all__ = ["resident_gemm_program", "gemv_program", "kloop_gemm_program"]


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ProgramError(msg)


def resident_gemm_program(m: int, n: int, k: int, ncores: int, *,
                          act_fmt: str = "float8_e4m3fn", w_fmt: str = "float8_e4m3fn"
                          ) -> Program:
    """``Y[m,n] (bf16) = X[m,k] W[n,k]^T`` with the weights resident on chip.

    Every core loads all of ``W`` once (``n/64`` tiles of ``(64, k)``) and streams its
    ``m / ncores`` rows of ``X`` in double-buffered ``(64, k)`` tiles; each X tile meets every
    W tile (``n/64 <= 4`` accumulators per X buffer), and the outputs leave as ``(64, 64)``
    tiles. ``m / ncores`` must be a multiple of 128 and ``n`` of 64 (``n <= 256``).
    """
    _need(n % 64 == 0 and n <= 256, f"n must be a multiple of 64 and <= 256 (got {n})")
    _need(m % (128 * ncores) == 0, f"m / ncores must be a multiple of 128 (got {m}, {ncores})")
    b = ProgramBuilder()
    x = b.tensor("X", (m, k), act_fmt)
    w = b.tensor("W", (n, k), w_fmt)
    y = b.tensor("Y", (m, n), "bfloat16")
    nw = n // 64
    wt = [b.tile(f"W{j}", (64, k), w_fmt) for j in range(nw)]
    xa = [b.tile(f"XA{i}", (64, k), act_fmt) for i in range(2)]
    yt = [b.tile(f"YT{i}", (64, 64), "bfloat16") for i in range(2)]
    acc = [[b.acc(f"C{i}_{j}", (64, 64)) for j in range(nw)] for i in range(2)]
    r_rows, r_first, r_pairs, r_i, r_row0, r_row1, r_next = (Reg(i) for i in (5, 6, 7, 1, 2, 3,
                                                                              4))

    def compute(i: int, row: Reg) -> None:
        for j in range(nw):
            b.acc_zero(acc[i][j])
            b.mma(acc[i][j], xa[i], wt[j])
        for j in range(nw):
            b.acc_st(yt[j % 2], acc[i][j])
            b.dma_st(y, row, 64 * j, yt[j % 2])

    b.li(r_rows, m)
    b.div(r_rows, r_rows, NCORES)
    b.mul(r_first, CID, r_rows)
    b.divi(r_pairs, r_rows, 128)
    b.addi(r_pairs, r_pairs, -1)
    for j in range(nw):
        b.dma_ld(wt[j], w, 64 * j, 0)
    # software pipeline: the load of the next tile of a buffer follows the compute that frees it
    b.dma_ld(xa[0], x, r_first, 0)
    with b.loop(r_i, r_pairs, 128):
        b.add(r_row0, r_first, r_i)
        b.addi(r_row1, r_row0, 64)
        b.addi(r_next, r_row0, 128)
        b.dma_ld(xa[1], x, r_row1, 0)
        compute(0, r_row0)
        b.dma_ld(xa[0], x, r_next, 0)
        compute(1, r_row1)
    b.li(r_i, m)
    b.div(r_i, r_i, NCORES)
    b.add(r_row0, r_first, r_i)
    b.addi(r_row0, r_row0, -128)
    b.addi(r_row1, r_row0, 64)
    b.dma_ld(xa[1], x, r_row1, 0)
    compute(0, r_row0)
    compute(1, r_row1)
    return b.build()


def gemv_program(n: int, k: int, ncores: int, *, w_fmt: str = "tai4",
                 act_fmt: str = "float8_e4m3fn", k_chunk: int | None = None) -> Program:
    """``y[1,n] (bf16) = x[1,k] W[n,k]^T``: each core reads its ``n / ncores`` rows of ``W``.

    The rows are loaded as ``k / k_chunk`` tiles of ``(n/ncores, k_chunk)`` (default one tile:
    the core's rows are one contiguous DDR range), all in flight at once, each met by one MMA
    with M = 1. ``n / ncores`` must be <= 64.
    """
    k_chunk = k if k_chunk is None else k_chunk
    rows = n // ncores
    _need(rows * ncores == n and 1 <= rows <= 64, f"n / ncores must be an integer <= 64 "
          f"(got {n} / {ncores})")
    _need(k % k_chunk == 0, f"k must be a multiple of k_chunk (got {k}, {k_chunk})")
    b = ProgramBuilder()
    x = b.tensor("X", (1, k), act_fmt)
    w = b.tensor("W", (n, k), w_fmt)
    y = b.tensor("Y", (1, n), "bfloat16")
    nch = k // k_chunk
    xt = [b.tile(f"X{c}", (1, k_chunk), act_fmt) for c in range(nch)]
    wt = [b.tile(f"W{c}", (rows, k_chunk), w_fmt) for c in range(nch)]
    yt = b.tile("YT", (1, rows), "bfloat16")
    acc = b.acc("C", (1, rows))
    r_first = Reg(6)
    b.li(r_first, rows)
    b.mul(r_first, CID, r_first)
    for c in range(nch):
        b.dma_ld(xt[c], x, 0, c * k_chunk)
        b.dma_ld(wt[c], w, r_first, c * k_chunk)
    b.acc_zero(acc)
    for c in range(nch):
        b.mma(acc, xt[c], wt[c])
    b.acc_st(yt, acc)
    b.dma_st(y, 0, r_first, yt)
    return b.build()


def kloop_gemm_program(m: int, n: int, k: int, ncores: int, *, k_chunk: int = 64,
                       double_buffer: bool = True, act_fmt: str = "float8_e4m3fn",
                       w_fmt: str = "float8_e4m3fn") -> Program:
    """``Y[m,n] = X[m,k] W[n,k]^T`` with both operands streamed over K (small shapes).

    Core ``cid`` computes rows ``[cid*m/ncores, (cid+1)*m/ncores)`` (one accumulator, so
    ``m / ncores <= 64`` and ``n <= 64``), loading ``(rows, k_chunk)`` and ``(n, k_chunk)``
    tiles per K step; ``double_buffer`` alternates two tile pairs (``k / k_chunk`` even).
    """
    rows = m // ncores
    _need(rows * ncores == m and 1 <= rows <= 64 and 1 <= n <= 64,
          f"m / ncores and n must be <= 64 (got {m} / {ncores}, {n})")
    steps = k // k_chunk
    _need(steps * k_chunk == k and (not double_buffer or steps % 2 == 0),
          f"k must be a multiple of k_chunk (x2 with double buffering) (got {k}, {k_chunk})")
    b = ProgramBuilder()
    x = b.tensor("X", (m, k), act_fmt)
    w = b.tensor("W", (n, k), w_fmt)
    y = b.tensor("Y", (m, n), "bfloat16")
    nbuf = 2 if double_buffer else 1
    at = [b.tile(f"A{i}", (rows, k_chunk), act_fmt) for i in range(nbuf)]
    wt = [b.tile(f"WT{i}", (n, k_chunk), w_fmt) for i in range(nbuf)]
    yt = b.tile("YT", (rows, n), "bfloat16")
    acc = b.acc("C", (rows, n))
    r_first, r_k, r_k1 = Reg(6), Reg(1), Reg(2)
    b.li(r_first, rows)
    b.mul(r_first, CID, r_first)
    b.acc_zero(acc)
    with b.loop(r_k, steps // nbuf, nbuf * k_chunk):
        for i in range(nbuf):
            col = r_k if i == 0 else r_k1
            if i:
                b.addi(r_k1, r_k, k_chunk)
            b.dma_ld(at[i], x, r_first, col)
            b.dma_ld(wt[i], w, 0, col)
        for i in range(nbuf):
            b.mma(acc, at[i], wt[i])
    b.acc_st(yt, acc)
    b.dma_st(y, r_first, 0, yt)
    return b.build()
