"""Linear layers ``Y[M,N] = X[M,K] W[N,K]^T`` with fused epilogues, as SPMD tile programs.

How the work is cut and placed is a :class:`LinearMapping` (chosen by
:mod:`prodigy_sim.lowering._mapper`):

- The output is cut into **blocks** of ``BM x BN = (mt am) x (nt an)``: ``am x an`` accumulator
  tiles of ``(mt, nt)``. A core computes a block at a time, the whole of K, in its accumulators
  (output stationary).
- The cores form a ``gm x gn`` **grid**: core ``c = i gn + j`` (``c < gm gn``; the others idle)
  owns the row blocks ``i, i + gm, ...`` and the column blocks ``j, j + gn, ...``. It walks its
  blocks in one flat loop, column blocks fastest (``order="mn"``: a row of X stays in use while
  W streams) or row blocks fastest (``"nm"``).
- Per block the reduction axis is streamed in K tiles of ``kt`` elements (a multiple of the MMA
  chunk, 128, so no accumulation chunk straddles two tiles; only the last may be shorter),
  double buffered: buffer ``i % 2`` is filled while the matrix unit multiplies the other (the
  tile scoreboard orders a load after the last reader of its buffer).
- **Sharing** (``multicast=True``): the cores of a grid row need the same X tiles and the cores
  of a grid column the same W tiles; they load them with ``DMA.LDM`` - X to the row group
  (``gn`` cores, stride 1), W to the column group (``gm`` cores, stride ``gn``) - so DDR (or the
  shared L3) is read once per group. Needs every group member to walk the same blocks: ``gm``
  divides the row blocks and ``gn`` the column blocks. Without it, cores that read the same
  tiles at about the same time share them only through the L3.

Epilogues (``epilogue=``): ``store`` (BF16 out), ``quant`` (FP8 out, for the next MMA),
``residual`` (the accumulators start from the residual tile, ``ACC.LD``; BF16 out), ``bias``
(+ ``(1, nt)`` bias, FP8 out), ``bias_store`` (bias, BF16 out), ``bias_residual`` (bias and
residual, BF16 out), ``gelu`` (bias, GELU, FP8 out) and ``gated`` (two weight matrices,
``silu(X Wg^T) * (X Wu^T)``, FP8 out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel
from prodigy_sim.lowering._params import LinearParams
from prodigy_sim.numerics import Storage

__all__ = ["linear_kernel", "EPILOGUES", "LinearMapping", "linear_tile_bytes"]

EPILOGUES = ("store", "quant", "residual", "bias", "bias_store", "bias_residual", "gelu", "gated")
_QUANT_OUT = ("quant", "bias", "gelu", "gated")
_BIAS = ("bias", "bias_store", "bias_residual", "gelu")
_RESIDUAL = ("residual", "bias_residual")


@dataclass(frozen=True)
class LinearMapping:
    """Where and how a linear layer runs (see the module docstring). Sizes in elements."""

    mt: int
    am: int
    nt: int
    an: int
    kt: int
    gm: int
    gn: int
    order: str = "mn"
    multicast: bool = False

    @property
    def block_m(self) -> int:
        return self.mt * self.am

    @property
    def block_n(self) -> int:
        return self.nt * self.an

    @property
    def cores(self) -> int:
        """Cores that get work (the grid)."""
        return self.gm * self.gn

    @classmethod
    def simple(cls, m: int, n: int, k: int, cores: int, budgets: Budgets | None = None
               ) -> LinearMapping:
        """A valid mapping without a cost model (for functional runs): one accumulator tile per
        block, as tall and wide as the accumulator allows and divides M and N, K in
        :data:`CHUNK` steps, blocks spread over up to ``cores`` cores."""
        bud = budgets or Budgets.of()
        mt = max(d for d in range(1, min(m, bud.acc_max_rows) + 1) if m % d == 0)
        nt = max(d for d in range(1, min(n, bud.acc_max_cols) + 1) if n % d == 0)
        kt = CHUNK if k > CHUNK else k
        gm = min(cores, m // mt)
        gn = max(1, min(cores // gm, n // nt))
        return cls(mt, 1, nt, 1, kt, gm, gn)

    def describe(self) -> str:
        """One line: e.g. ``grid 16x8 (multicast), blocks 128x256 (2x64 by 4x64), kt 1024, mn``."""
        share = " multicast" if self.multicast else ""
        return (f"grid {self.gm}x{self.gn}{share}, blocks {self.block_m}x{self.block_n} "
                f"({self.am}x{self.mt} by {self.an}x{self.nt}), kt {self.kt}, {self.order}")


def linear_tile_bytes(mp: LinearMapping, k: int, weight: Storage, act: Storage,
                      epilogue: str, align: int = 64) -> int:
    """Scratchpad bytes the tiles of a linear kernel take on each core: every tile
    :func:`linear_kernel` declares (double-buffered X and W tiles, for the K tail too, and the
    epilogue's), each placed at an ``align``-byte boundary (``IsaParams.spm_align_bytes``)."""
    nw = 2 if epilogue == "gated" else 1
    kt = min(mp.kt, k)
    tail = k % kt
    out = ACT if epilogue in _QUANT_OUT else BF16
    sizes = []
    for width in (kt, tail) if tail else (kt,):
        sizes += [act.nbytes(mp.mt, width)] * (2 * mp.am)
        sizes += [weight.nbytes(mp.nt, width)] * (2 * nw * mp.an)
    sizes += [F32.nbytes(mp.mt, mp.nt)] * (3 if epilogue == "gated" else 2)
    sizes += [out.nbytes(mp.mt, mp.nt)] * 2
    if epilogue in _BIAS:
        sizes += [F32.nbytes(1, mp.nt)] * mp.an
    if epilogue in _RESIDUAL:
        sizes.append(BF16.nbytes(mp.mt, mp.nt))
    return sum(-(-b // align) * align for b in sizes)


def _check(name: str, m: int, n: int, k: int, mp: LinearMapping, cores: int, bud: Budgets,
           epilogue: str) -> None:
    def need(ok: bool, why: str) -> None:
        if not ok:
            raise ConfigError(f"{name}: mapping {mp.describe()}: {why}")

    need(epilogue in EPILOGUES, f"unknown epilogue {epilogue!r} (known: {', '.join(EPILOGUES)})")
    need(m % mp.block_m == 0 and n % mp.block_n == 0,
         f"M={m} must be a multiple of {mp.block_m} and N={n} of {mp.block_n}")
    need(1 <= mp.mt <= bud.acc_max_rows and 1 <= mp.nt <= bud.acc_max_cols,
         f"accumulator tiles are at most {bud.acc_max_rows}x{bud.acc_max_cols}")
    naccs = mp.am * mp.an * (2 if epilogue == "gated" else 1)
    need(naccs <= bud.n_accumulators,
         f"{naccs} accumulators needed, the core has {bud.n_accumulators}")
    need(1 <= mp.cores <= cores, f"the grid needs {mp.cores} of the {cores} cores")
    need(mp.kt == k or (mp.kt % CHUNK == 0 and 0 < mp.kt < k),
         f"kt must be K or a multiple of {CHUNK} below it")
    need(mp.order in ("mn", "nm"), "order must be 'mn' or 'nm'")
    if mp.multicast:
        need((m // mp.block_m) % mp.gm == 0 and (n // mp.block_n) % mp.gn == 0,
             "multicast needs gm to divide the row blocks and gn the column blocks")



def linear_kernel(name: str, m: int, n: int, k: int, *, weight: Storage, cores: int,
                  mapping: LinearMapping, epilogue: str = "store", act: Storage | None = None,
                  budgets: Budgets | None = None, unit_cap: int | None = None) -> Kernel:
    """The program of one linear layer over ``cores`` logical cores, cut and placed by
    ``mapping``.

    ``m, n, k``: rows (tokens), output features and input features. ``weight``: the weight
    storage (format, block, scale, 8:4 sparsity -> ``MMA.SP``). ``budgets``: the core's limits
    (default: the ISA's default parameters). ``unit_cap``: run at most that many blocks per
    core (steady-state extrapolation). Returns a :class:`Kernel`.
    """
    bud = budgets or Budgets.of()
    mp = mapping
    _check(name, m, n, k, mp, cores, bud, epilogue)
    act = act or (BF16 if weight.fmt.wide else ACT)
    mt, am, nt, an, kt = mp.mt, mp.am, mp.nt, mp.an, mp.kt
    gated = epilogue == "gated"
    nk, tail = divmod(k, kt)
    mblocks, nblocks = m // mp.block_m, n // mp.block_n
    sparse = weight.sparsity is not None
    out_q = epilogue in _QUANT_OUT
    out_st = ACT if out_q else BF16
    has_bias, has_res = epilogue in _BIAS, epilogue in _RESIDUAL

    b = ProgramBuilder()
    x = b.tensor("X", (m, k), act)
    ws = [b.tensor("W", (n, k), weight)]
    if gated:
        ws.append(b.tensor("WU", (n, k), weight))
    y = b.tensor("Y", (m, n), out_st)
    bias = b.tensor("BIAS", (1, n), F32) if has_bias else None
    res = b.tensor("R", (m, n), BF16) if has_res else None

    def tiles(tag: str, width: int) -> tuple[list, list]:
        xs = [[b.tile(f"X{tag}{s}_{i}", (mt, width), act) for i in range(am)] for s in range(2)]
        wt = [[[b.tile(f"W{tag}{s}_{g}_{j}", (nt, width), weight) for j in range(an)]
               for g in range(len(ws))] for s in range(2)]
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

    (r_i, r_j, r_cn, r_t, r_row, r_col, r_k, r_k1, r_a, r_b, r_cnt, r_x, r_y) = (
        Reg(i) for i in range(1, 14))
    # grid position (idle cores get no blocks) and this core's block counts
    b.divi(r_i, CID, mp.gn)
    b.muli(r_j, r_i, mp.gn)
    b.sub(r_j, CID, r_j)
    _block_count(b, r_cnt, r_i, mblocks, mp.gm)       # row blocks of this core
    _block_count(b, r_cn, r_j, nblocks, mp.gn)        # column blocks of this core
    b.li(r_a, mp.cores)
    b.blt(CID, r_a, "work")
    b.li(r_cnt, 0)
    b.label("work")
    b.mul(r_cnt, r_cnt, r_cn)                              # blocks of this core
    if unit_cap is not None:
        b.li(r_a, max(0, unit_cap))
        b.min(r_cnt, r_cnt, r_a)
    inner_m = mp.order == "nm"
    if inner_m:                                            # row blocks fastest
        _block_count(b, r_cn, r_i, mblocks, mp.gm)
    mma = b.mma_sp if sparse else b.mma

    def load(s: int, col, xs_, wt_) -> None:
        if isinstance(col, int):
            b.li(r_k1, col)
            col = r_k1
        for i in range(am):
            row = r_row
            if i:
                b.addi(r_x, r_row, i * mt)
                row = r_x
            if mp.multicast:
                b.dma_ldm(xs_[s][i], x, row, col, mp.gn, 1)
            else:
                b.dma_ld(xs_[s][i], x, row, col)
        for g, w in enumerate(ws):
            for j in range(an):
                cr = r_col
                if j:
                    b.addi(r_y, r_col, j * nt)
                    cr = r_y
                if mp.multicast:
                    b.dma_ldm(wt_[s][g][j], w, cr, col, mp.gm, mp.gn)
                else:
                    b.dma_ld(wt_[s][g][j], w, cr, col)

    def compute(s: int, xs_, wt_) -> None:
        for g in range(len(ws)):
            for i in range(am):
                for j in range(an):
                    mma(accs[g][i][j], xs_[s][i], wt_[s][g][j])

    with b.loop(r_t, r_cnt, 1):
        # block (a, b) of this core: a over its row blocks, b over its column blocks
        b.div(r_a, r_t, r_cn)
        b.mul(r_b, r_a, r_cn)
        b.sub(r_b, r_t, r_b)
        if inner_m:
            r_a, r_b = r_b, r_a
        b.muli(r_row, r_a, mp.gm)
        b.add(r_row, r_row, r_i)
        b.muli(r_row, r_row, mp.block_m)
        b.muli(r_col, r_b, mp.gn)
        b.add(r_col, r_col, r_j)
        b.muli(r_col, r_col, mp.block_n)
        if inner_m:
            r_a, r_b = r_b, r_a
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
                b.addi(r_k1, r_k, kt)
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

    nw = len(ws)
    widths = [kt] * nk + ([tail] if tail else [])
    units = mblocks * nblocks
    per_unit_bytes = sum(am * mt * act.nbytes(1, w) + nw * an * nt * weight.nbytes(1, w)
                         for w in widths)
    per_unit_bytes += am * an * mt * out_st.nbytes(1, nt)
    if has_res:
        per_unit_bytes += nw * am * an * mt * BF16.nbytes(1, nt)
    if has_bias:
        per_unit_bytes += an * F32.nbytes(1, nt)
    compulsory = {"X": act.nbytes(m, k), "W": weight.nbytes(n, k), "Y": out_st.nbytes(m, n)}
    if gated:
        compulsory["WU"] = weight.nbytes(n, k)
    if has_res:
        compulsory["R"] = BF16.nbytes(m, n)
    if has_bias:
        compulsory["BIAS"] = F32.nbytes(1, n)
    per_core = math.ceil(mblocks / mp.gm) * math.ceil(nblocks / mp.gn)
    return Kernel(name=name, kind="linear", program=program, cores=cores, units=units,
                  mma_flops=2 * m * n * k * nw, dma_bytes=units * per_unit_bytes,
                  compulsory=tuple(compulsory.items()), weight_format=weight.fmt, sparse=sparse,
                  per_core=per_core, busy_cores=min(units, mp.cores),
                  params=LinearParams(m=m, n=n, k=k, weight=weight, act=act, out=out_st,
                                      epilogue=epilogue, mt=mt, am=am, nt=nt, an=an, kt=kt,
                                      unit_cap=unit_cap),
                  mapping=mp.describe())


def _block_count(b: ProgramBuilder, dst: Reg, pos: Reg, blocks: int, stride: int) -> None:
    """``dst = ceil((blocks - pos) / stride)``: the blocks ``pos, pos + stride, ...`` below
    ``blocks`` (``0 <= pos < stride``)."""
    b.li(dst, blocks + stride - 1)
    b.sub(dst, dst, pos)
    b.divi(dst, dst, stride)
