"""Mixture-of-experts layers: the routing plan and the vector kernels around the expert GEMMs.

An MoE MLP over ``T`` tokens (``x`` the normed FP8 activations ``(T, H)``, ``h`` the BF16
residual stream) is lowered to six kernels (:func:`prodigy_sim.lowering.lower_model` builds them):

1. ``router``: the linear ``L[T, Ep] = x Wr^T`` (BF16 logits), ``Ep`` = the experts padded to the
   32-column accumulator tile (the padded columns are computed and ignored).
2. ``route`` (:func:`route_kernel`): per token, top-k of the ``E`` logits and a softmax over the
   k chosen -> the gate weights ``G (T, k)``.
3. ``dispatch`` (:func:`dispatch_kernel`): gathers each (token, choice) row of ``x`` into the
   capacity buffers of its expert ``XD (U C, H)``, one DMA row in and out per routed copy.
4. ``experts_gate_up`` (``experts_up`` for plain MLPs) and 5. ``experts_down``: the linear
   kernels of the ``U`` experts the tokens use, on ``C`` rows each (see :class:`MoEPlan`).
6. ``combine`` (:func:`combine_kernel`): per token, the residual plus the gate-weighted sum of
   its k expert output rows (a weighted scatter-add), BF16 out.

**Expert GEMMs as one kernel.** The ``U`` used experts' GEMMs ``Y_u[C, N] = X_u[C, K] W_u[N,
K]^T`` run as one linear kernel ``Y[C, U N] = X[C, K] W[U N, K]^T`` whose weight is the ``U``
experts' matrices stacked along N (block diagonal: column block u meets only expert u's tokens).
Weight traffic, MMA FLOPs and outputs are those of the ``U`` GEMMs; the kernel reads one ``C x K``
block of activations where the experts read ``U`` different blocks, so activation reads are
undercounted by ``(U - 1) C K`` elements per GEMM (against ``U N K`` weight elements: for decode,
``C = 1`` and the error is below ``1 / N``).

The route kernel times the selection: per choice, one row max (``VRMAX``) and two elementwise
passes over the row (the compare-and-mask of the chosen expert; the ISA has no select, so the
program does the passes, not the index bookkeeping), then the softmax of the ``(rows, k)`` gates.
It is a timing kernel: :func:`prodigy_sim.lowering.emulate_kernel` does not emulate it, nor
dispatch and combine (data movement whose addresses come from the routing model, not the data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel, unit_loop_count
from prodigy_sim.lowering._params import MoEParams
from prodigy_sim.models import Routing

__all__ = ["MoEPlan", "moe_plan", "route_kernel", "dispatch_kernel", "combine_kernel",
           "padded_experts"]


def padded_experts(e: int) -> int:
    """Router output columns: the experts padded to a multiple of 32 (the accumulator tile)."""
    return 32 * math.ceil(e / 32)


@dataclass(frozen=True)
class MoEPlan:
    """What one MoE layer computes for ``tokens`` tokens under a routing model.

    ``experts_hit``: expected distinct experts the tokens use (real); ``experts``: the experts
    lowered, ``U = ceil(experts_hit)`` (1..E); ``capacity``: rows of each expert's buffer ``C``;
    ``routed``: (token, choice) copies ``T k``; ``computed``: the copies that fit the buffers
    (:meth:`~prodigy_sim.models.Routing.kept`, rounded; the rest are dropped, as Switch drops
    tokens beyond capacity).
    """

    tokens: int
    top_k: int
    num_experts: int
    experts_hit: float
    experts: int
    capacity: int
    computed: int
    routing: str

    @property
    def routed(self) -> int:
        return self.tokens * self.top_k

    def describe(self) -> str:
        """One line for reports."""
        return (f"{self.routing}: {self.tokens} tokens x top-{self.top_k} of "
                f"{self.num_experts} experts hit {self.experts_hit:.2f} experts ("
                f"{self.experts} lowered, {self.capacity} rows each; {self.computed} of "
                f"{self.routed} token copies computed)")


def moe_plan(routing: Routing, tokens: int, top_k: int, num_experts: int) -> MoEPlan:
    """The :class:`MoEPlan` of ``tokens`` tokens routed to ``top_k`` of ``num_experts``."""
    hit = routing.experts_hit(tokens, top_k, num_experts)
    used = min(num_experts, max(1, math.ceil(hit - 1e-9)))
    cap = routing.capacity(tokens, top_k, num_experts)
    kept = min(tokens * top_k, used * cap, max(1, round(routing.kept(tokens, top_k, num_experts))))
    return MoEPlan(tokens=tokens, top_k=top_k, num_experts=num_experts, experts_hit=hit,
                   experts=used, capacity=cap, computed=kept, routing=routing.describe())


def _rows_per_unit(m: int, cols: int, cores: int, bud: Budgets) -> int:
    rt = max(1, min(bud.acc_max_rows, m, bud.norm_rows_bytes // max(1, 10 * cols)))
    while rt > 1 and (m % rt or m // rt < cores):
        rt -= 1
    return rt


ROUTER_ROW_BYTES = 10
"""Scratchpad bytes per expert of one row of :func:`route_kernel`: its BF16 logits and two F32
working rows."""


def route_kernel(name: str, *, tokens: int, experts: int, top_k: int, cores: int,
                 budgets: Budgets | None = None, unit_cap: int | None = None) -> Kernel:
    """Top-k of the router logits ``L (tokens, padded_experts(experts))`` (BF16) and the softmax
    of the chosen -> gate weights ``G (tokens, top_k)`` (F32). A unit is a block of rows."""
    ep = padded_experts(experts)
    m, k = tokens, top_k
    rt = _rows_per_unit(m, ep, cores, budgets or Budgets.of())
    units = m // rt
    b = ProgramBuilder()
    lg = b.tensor("L", (m, ep), BF16)
    g = b.tensor("G", (m, k), F32)
    lt = b.tile("LT", (rt, ep), BF16)
    t0 = b.tile("T0", (rt, ep), F32)
    t1 = b.tile("T1", (rt, ep), F32)
    r = b.tile("R", (rt, 1), F32)
    gt = b.tile("GT", (rt, k), F32)
    s = b.tile("S", (rt, 1), F32)
    r_i, r_cnt, r_row = Reg(1), Reg(2), Reg(3)
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_row, r_i, CID)
        b.muli(r_row, r_row, rt)
        b.dma_ld(lt, lg, r_row, 0)
        b.vcvt(t0, lt)
        for _ in range(k):
            b.vrmax(r, t0)                      # the best remaining logit
            b.vsub(t1, t0, r)                   # compare ...
            b.vmini(t1, t1, 0.0)                # ... and mask it out
        b.vrmax(r, gt)                          # softmax over the k chosen
        b.vsub(gt, gt, r)
        b.vexp(gt, gt)
        b.vrsum(s, gt)
        b.vrcp(s, s)
        b.vmul(gt, gt, s)
        b.dma_st(g, r_row, 0, gt)
    b.barrier()
    compulsory = {"L": BF16.nbytes(m, ep), "G": F32.nbytes(m, k)}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores, units=units,
                  mma_flops=0, dma_bytes=sum(compulsory.values()),
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  params=MoEParams(op="route", tokens=m, h=ep, top_k=k, rows=m,
                                   unit_cap=unit_cap))


def dispatch_kernel(name: str, *, tokens: int, h: int, top_k: int, copies: int, rows: int,
                    cores: int, unit_cap: int | None = None) -> Kernel:
    """Gather ``copies`` (token, choice) rows of ``X (tokens, h)`` (FP8, MX blocks) into the
    expert buffers ``XD (rows, h)``: a unit is one row, read at token ``copy // top_k`` and
    written at buffer row ``copy`` (the routing model, not the data, fixes the addresses)."""
    b = ProgramBuilder()
    x = b.tensor("X", (tokens, h), ACT)
    xd = b.tensor("XD", (rows, h), ACT)
    xt = b.tile("XT", (1, h), ACT)
    r_i, r_cnt, r_u, r_src = Reg(1), Reg(2), Reg(3), Reg(4)
    unit_loop_count(b, r_cnt, copies, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        b.divi(r_src, r_u, top_k)
        b.dma_ld(xt, x, r_src, 0)
        b.dma_st(xd, r_u, 0, xt)
    b.barrier()
    row = ACT.nbytes(1, h)
    compulsory = {"X": ACT.nbytes(tokens, h), "XD": ACT.nbytes(copies, h)}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores, units=copies,
                  mma_flops=0, dma_bytes=2 * copies * row,
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  params=MoEParams(op="dispatch", tokens=tokens, h=h, top_k=top_k, rows=rows,
                                   unit_cap=unit_cap))


def combine_kernel(name: str, *, tokens: int, h: int, top_k: int, capacity: int, experts: int,
                   cores: int, unit_cap: int | None = None) -> Kernel:
    """``Y[t] = R[t] + sum_j G[t, j] YE[slot(t, j)]``: per token (a unit), the BF16 residual row,
    its ``top_k`` gate weights and expert output rows (from ``YE (capacity, experts h)``, the
    expert down-projection's output, expert u's rows at columns ``u h``), BF16 out."""
    b = ProgramBuilder()
    res = b.tensor("R", (tokens, h), BF16)
    g = b.tensor("G", (tokens, top_k), F32)
    ye = b.tensor("YE", (capacity, experts * h), BF16)
    y = b.tensor("Y", (tokens, h), BF16)
    rt_ = b.tile("RT", (1, h), BF16)
    yt = b.tile("YT", (1, h), BF16)
    acc = b.tile("A", (1, h), F32)
    t = b.tile("T", (1, h), F32)
    gt = b.tile("GT", (1, 1), F32)
    ot = b.tile("OT", (1, h), BF16)
    r_i, r_cnt, r_u, r_s, r_row, r_col = (Reg(i) for i in (1, 2, 3, 4, 5, 6))
    unit_loop_count(b, r_cnt, tokens, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        b.dma_ld(rt_, res, r_u, 0)
        b.vcvt(acc, rt_)
        for j in range(top_k):
            b.muli(r_s, r_u, top_k)             # slot s = t k + j: buffer row s % C of
            b.addi(r_s, r_s, j)                 # expert (s // C) % U
            b.divi(r_col, r_s, capacity)
            b.muli(r_row, r_col, capacity)
            b.sub(r_row, r_s, r_row)
            b.divi(r_s, r_col, experts)
            b.muli(r_s, r_s, experts)
            b.sub(r_col, r_col, r_s)
            b.muli(r_col, r_col, h)
            b.dma_ld(yt, ye, r_row, r_col)
            b.li(r_s, j)
            b.dma_ld(gt, g, r_u, r_s)
            b.vcvt(t, yt)
            b.vfma(acc, t, gt, acc)
        b.vcvt(ot, acc)
        b.dma_st(y, r_u, 0, ot)
    b.barrier()
    row = BF16.nbytes(1, h)
    nbytes = tokens * (2 * row + top_k * (row + F32.nbytes(1, 1)))
    compulsory = {"R": BF16.nbytes(tokens, h), "G": F32.nbytes(tokens, top_k),
                  "YE": BF16.nbytes(min(tokens * top_k, capacity * experts), h),
                  "Y": BF16.nbytes(tokens, h)}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores, units=tokens,
                  mma_flops=0, dma_bytes=nbytes, compulsory=tuple(compulsory.items()),
                  weight_format=F32.fmt,
                  params=MoEParams(op="combine", tokens=tokens, h=h, top_k=top_k,
                                   rows=capacity * experts, unit_cap=unit_cap))
