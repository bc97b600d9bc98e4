"""Linear layers ``Y[M,N] = X[M,K] W[N,K]^T`` with fused epilogues, as SPMD tile programs.

Partition: the output is cut into units of ``am x an`` accumulator tiles of ``(mt, nt)``
(``mt <= 64`` rows, ``nt <= 64`` columns); units are numbered column-block fastest and dealt to
the cores round robin (decode: ``M`` = batch is one row block, so the cores split the output
features - a GEMV split by ``cid``; prefill: a 2-D grid of row and column blocks).

Per unit the reduction axis is streamed in K tiles of ``kt`` elements (a multiple of 128, so the
MMA's 128-element accumulation chunks never straddle two tiles; only the last tile may be
shorter), double buffered: buffer ``i % 2`` is filled by DMA while the matrix unit multiplies the
other one (the tile scoreboard orders a load after the last reader of its buffer).

Epilogues (``epilogue=``): ``store`` (BF16 out), ``quant`` (FP8 out, for the next MMA),
``residual`` (the accumulators start from the residual tile, ``ACC.LD``; BF16 out), ``bias``
(+ ``(1, nt)`` bias, FP8 out), ``bias_store`` (bias, BF16 out),
``bias_residual`` (bias and residual, BF16 out), ``gelu``
(bias, GELU, FP8 out) and ``gated`` (two weight matrices, ``silu(X Wg^T) * (X Wu^T)``, FP8 out).
"""

from __future__ import annotations

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel, unit_loop_count
from prodigy_sim.lowering._params import LinearParams
from prodigy_sim.numerics import Storage

__all__ = ["linear_kernel", "EPILOGUES", "choose_kt"]

EPILOGUES = ("store", "quant", "residual", "bias", "bias_store", "bias_residual", "gelu", "gated")


def choose_kt(k: int, nt: int, an: int, w: Storage, budget_bytes: int, x_rows: int = 0,
              act: Storage | None = None) -> int:
    """Largest K tile (a multiple of the MMA chunk, or all of K) whose weight tiles (``an`` of
    ``(nt, kt)``) and activation tile (``(x_rows, kt)``) fit ``budget_bytes`` (one buffer)."""
    if k <= CHUNK:
        return k
    per_chunk = an * nt * w.nbytes(1, CHUNK)
    if x_rows and act is not None:
        per_chunk += x_rows * act.nbytes(1, CHUNK)
    kt = max(1, budget_bytes // per_chunk) * CHUNK
    return min(kt, k if k % CHUNK == 0 else (k // CHUNK) * CHUNK) or k


def linear_kernel(name: str, m: int, n: int, k: int, *, weight: Storage, cores: int,
                  epilogue: str = "store", mt: int | None = None, am: int = 1, nt: int = 64,
                  an: int = 1, kt: int | None = None, act: Storage | None = None,
                  budgets: Budgets | None = None, unit_cap: int | None = None) -> Kernel:
    """The program of one linear layer over ``cores`` logical cores.

    ``m, n, k``: rows (tokens), output features and input features. ``weight``: the weight
    storage (format, block, scale, 8:4 sparsity -> ``MMA.SP``). ``budgets``: the core's limits
    (default: the ISA's default parameters). Returns a :class:`Kernel`.
    """
    if epilogue not in EPILOGUES:
        raise ConfigError(f"unknown epilogue {epilogue!r} (known: {', '.join(EPILOGUES)})")
    bud = budgets or Budgets.of()
    act = act or (BF16 if weight.fmt.wide else ACT)
    mt = min(m, bud.acc_max_rows) if mt is None else mt
    if m % (mt * am) or n % (nt * an):
        raise ConfigError(f"{name}: M={m} must be a multiple of {mt * am} and N={n} of "
                          f"{nt * an}")
    gated = epilogue == "gated"
    naccs = am * an * (2 if gated else 1)
    if naccs > bud.n_accumulators:
        raise ConfigError(f"{name}: {naccs} accumulators needed, the core has "
                          f"{bud.n_accumulators}")
    kt = kt or choose_kt(k, nt, an * (2 if gated else 1), weight, bud.weight_buffer_bytes,
                         x_rows=am * mt, act=act)
    nk, tail = divmod(k, kt)
    mblocks, nblocks = m // (mt * am), n // (nt * an)
    units = mblocks * nblocks
    sparse = weight.sparsity is not None

    b = ProgramBuilder()
    x = b.tensor("X", (m, k), act)
    ws = [b.tensor("W", (n, k), weight)]
    if gated:
        ws.append(b.tensor("WU", (n, k), weight))
    out_q = epilogue in ("quant", "bias", "gelu", "gated")
    out_st = ACT if out_q else BF16
    y = b.tensor("Y", (m, n), out_st)
    has_bias = epilogue in ("bias", "bias_store", "bias_residual", "gelu")
    has_res = epilogue in ("residual", "bias_residual")
    bias = b.tensor("BIAS", (1, n), F32) if has_bias else None
    res = b.tensor("R", (m, n), BF16) if has_res else None

    def tiles(tag: str, width: int) -> tuple[list, list]:
        xs = [[b.tile(f"X{tag}{s}_{i}", (mt, width), act) for i in range(am)]
              for s in range(2)]
        wt = [[[b.tile(f"W{tag}{s}_{g}_{j}", (nt, width), weight)
                for j in range(an)] for g in range(len(ws))] for s in range(2)]
        return xs, wt

    xs, wt = tiles("", kt)
    xt_tail, wt_tail = tiles("T", tail) if tail else (None, None)
    accs = [[[b.acc(f"C{g}_{i}_{j}", (mt, nt)) for j in range(an)] for i in range(am)]
            for g in range(len(ws))]
    f32 = [b.tile(f"F{s}", (mt, nt), F32) for s in range(2)]
    u32 = b.tile("U", (mt, nt), F32) if gated else None
    yt = [b.tile(f"Y{s}", (mt, nt), out_st) for s in range(2)]
    bt = [b.tile(f"B{j}", (1, nt), F32) for j in range(an)] if has_bias else None
    rt = b.tile("RT", (mt, nt), BF16) if has_res else None

    r_i, r_k, r_cnt, r_u, r_row, r_col, r_t, r_k1 = (Reg(i) for i in (1, 2, 3, 4, 5, 6, 7, 8))
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    mma = b.mma_sp if sparse else b.mma

    def load(s: int, col, xs_, wt_) -> None:
        if isinstance(col, int):
            b.li(r_k1, col)
            col = r_k1
        for i in range(am):
            b.dma_ld(xs_[s][i], x, r_row + i * mt if i else r_row, col)
        for g, w in enumerate(ws):
            for j in range(an):
                b.dma_ld(wt_[s][g][j], w, r_col + j * nt if j else r_col, col)

    def compute(s: int, xs_, wt_) -> None:
        for g in range(len(ws)):
            for i in range(am):
                for j in range(an):
                    mma(accs[g][i][j], xs_[s][i], wt_[s][g][j])

    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        b.divi(r_t, r_u, nblocks)                 # row block
        b.muli(r_row, r_t, mt * am)
        b.muli(r_t, r_t, nblocks)
        b.sub(r_t, r_u, r_t)                      # column block
        b.muli(r_col, r_t, nt * an)
        for g in range(len(ws)):
            for i in range(am):
                for j in range(an):
                    if rt is not None and res is not None:  # has_res
                        b.dma_ld(rt, res, r_row + i * mt if i else r_row,
                                 r_col + j * nt if j else r_col)
                        b.acc_ld(accs[g][i][j], rt)
                    else:
                        b.acc_zero(accs[g][i][j])
        if nk >= 2:
            with b.loop(r_k, nk // 2, 2 * kt):
                b.addi(r_k1, r_k, kt)
                load(0, r_k, xs, wt)
                load(1, r_k1, xs, wt)
                compute(0, xs, wt)
                compute(1, xs, wt)
        if nk % 2:
            load(0, (nk - 1) * kt, xs, wt)
            compute(0, xs, wt)
        if tail:
            load(0, nk * kt, xt_tail, wt_tail)
            compute(0, xt_tail, wt_tail)
        if bt is not None and bias is not None:  # has_bias
            for j in range(an):
                b.dma_ld(bt[j], bias, 0, r_col + j * nt if j else r_col)
        s = 0
        for i in range(am):
            for j in range(an):
                f = f32[s]
                row = r_row + i * mt if i else r_row
                col = r_col + j * nt if j else r_col
                if epilogue in ("store", "residual"):
                    b.acc_st(yt[s], accs[0][i][j])
                else:
                    b.acc_st(f, accs[0][i][j])
                    if bt is not None:  # has_bias
                        b.vadd(f, f, bt[j])
                    if epilogue == "gelu":
                        b.vgelu(f, f)
                    if u32 is not None:  # gated
                        b.acc_st(u32, accs[1][i][j])
                        b.vsilu(f, f)
                        b.vmul(f, f, u32)
                    if out_q:
                        b.vquant(yt[s], f)
                    else:
                        b.vcvt(yt[s], f)
                b.dma_st(y, row, col, yt[s])
                s ^= 1
    b.barrier()
    program = b.build()

    # analytic counts over all units
    nw = len(ws)
    widths = [kt] * nk + ([tail] if tail else [])
    per_unit_bytes = sum(am * mt * act.nbytes(1, w) + nw * an * nt * weight.nbytes(1, w)
                         for w in widths)
    per_unit_bytes += am * an * mt * out_st.nbytes(1, nt)
    if has_res:
        per_unit_bytes += nw * am * an * mt * BF16.nbytes(1, nt)
    if has_bias:
        per_unit_bytes += an * F32.nbytes(1, nt)
    return Kernel(name=name, kind="linear", program=program, cores=cores, units=units,
                  mma_flops=2 * m * n * k * nw, dma_bytes=units * per_unit_bytes,
                  weight_format=weight.fmt, sparse=sparse,
                  params=LinearParams(m=m, n=n, k=k, weight=weight, act=act, out=out_st,
                                      epilogue=epilogue, mt=mt, am=am, nt=nt, an=an, kt=kt,
                                      unit_cap=unit_cap))
