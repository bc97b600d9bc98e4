"""SpQR's outlier product as a kernel that computes it: ``spqr_<op>`` runs before its linear.

SpQR stores a linear weight ``W (N, K)`` as a dense part (the linear's weight tensor; the dense
value at an outlier's position is 0) plus sparse outliers in CSR order (``prodigy_sim.ptq``'s
``Outliers``: output row ``n``, input column ``k``, value ``v``), so ``X W^T = X W_dense^T +
X O^T``. This kernel computes the second term into a float32 tensor that the linear's
accumulators start from (``linear_kernel(..., init=True)``)::

    C[t, n] = R[t, n] + sum over the outliers (n, k, v) of row n, in CSR order, of
              fl32(x[t, k] * v)                  (x = the FP8 input X dequantized, float32)

with one float32 addition per term (``R``: the residual of ``residual`` / ``bias_residual``
linears, so that the residual is added once; else +0). A gated linear has two weights (gate,
up), each with its outliers: ``C`` and ``CU``.

The DDR inputs per weight (:func:`spqr_inputs`): the values ``OV (1, P)`` (float16, bfloat16 or
float32, as SpQR stores them), the input columns ``OK (1, P)`` and the output rows ``ON (1, P)``
as exact integers in float16 (dimension <= 2048) or float32 tiles (the ISA has no integer
vector storage; :data:`INDEX_LIMITS`). CSR's row pointers become one row index per outlier (COO),
since the scatter needs a destination per term. ``P`` >= the outlier count: the list is padded
with entries ``(n, k, v) = (0, 0, 0)``, which add ``fl32(x * 0) = +-0`` to column 0 (exactly
nothing, but for the sign of a zero sum; a NaN or infinite ``x[t, 0]`` would make it NaN).

**Work.** A unit is a block of ``rt`` token rows and one of ``G`` *groups* of the outlier list
(``G`` consecutive ranges of ``gc`` chunks of ``c`` outliers); ``units = (M / rt) G``, core
``cid`` runs units ``cid, cid + P, ...`` (row block ``u // G``, group ``u % G``). Per unit:
``DMA.LD`` and ``VDEQUANT`` of the rows of X (``(rt, K)``), the start ``(rt, N)`` (``VCVT`` of
the residual rows when ``G = 1``, else +0), then per chunk of its group (software-pipelined over
two buffers: the next chunk's ``DMA.LD`` of values, columns and rows is issued before this
chunk's vector operations) ``VGATHER`` of the ``c`` input columns, ``VMUL`` by the values and
``VSCATADD`` into the output columns; then ``DMA.ST`` of the ``(rt, N)`` sum - to ``C`` when
``G = 1``, else to the partial sums ``CP (G M, N)`` at rows ``g M + row``. With ``G > 1`` a
second phase (after a ``BARRIER``) sums them: units are (row block, slice of ``ws`` columns),
``C = ((R + CP_0) + CP_1) + ...`` by ``VADD`` in group order.

``G > 1`` only when there are fewer row blocks than cores (decode, short prompts): the groups
put idle cores on the outliers, at the price of the partial sums' bytes and a second phase;
``G = floor(sqrt(4 r / B))`` for ``B`` row blocks and ``r`` = (outlier bytes) / (bytes of one
group's partial sums of a row block, written and read), at most ``cores / B`` - the rule that
came closest to the best ``G`` of simulated sweeps on the SmolLM2 / MiniLM shapes (decode:
``G`` 6-10, within 3 % of the best; 32-token prompts: ``G = 1``, where 2 was up to 2x slower;
docs/lowering.md). Vector elements:
``M P`` each for VGATHER, VMUL, VSCATADD (every token row meets every outlier), ``G M K`` for
VDEQUANT, ``G M N`` per weight for the phase-2 VADDs (:func:`spqr_vector_ops`).

:func:`emulate_spqr` recomputes the outputs in plain numpy with the reference's indexed moves
(``functional.reference.vscatadd``: per destination in the order of the terms), bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import reference as sp
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel, unit_loop_count
from prodigy_sim.lowering._params import SpqrParams
from prodigy_sim.numerics import QuantizedTensor, Storage
from prodigy_sim.ptq import Outliers

__all__ = ["spqr_kernel", "spqr_vector_ops", "spqr_inputs", "emulate_spqr", "INDEX_LIMITS",
           "index_storage", "SPQR_OUTPUTS"]

F16 = Storage.of("float16")
INDEX_LIMITS = ((2048, F16), (1 << 24, F32))
"""Index storages by the largest dimension whose every index they hold exactly: float16 up to
2048 (every integer 0..2048 is a float16), float32 up to 2^24."""
SPQR_OUTPUTS = (("C", "OV", "OK", "ON", "CP"), ("CU", "OVU", "OKU", "ONU", "CPU"))
"""Tensor names per weight: output, values, input columns, output rows, partial sums."""
_MAX_CHUNK = 8192
"""Largest chunk of outliers (elements per gather / multiply / scatter)."""


def index_storage(size: int) -> Storage:
    """The storage of indices into a dimension of ``size`` (:data:`INDEX_LIMITS`)."""
    for limit, st in INDEX_LIMITS:
        if size <= limit:
            return st
    raise ConfigError(f"a dimension of {size} exceeds the {INDEX_LIMITS[-1][0]} that float32 "
                      "index tiles hold exactly")


def _rows(m: int, per_row: int, budget: int, cores: int) -> int:
    """Rows per block: the largest divisor of ``m`` whose rows fit half of ``budget``, fewer
    while there are fewer blocks than cores."""
    rt = max(1, min(m, 64, budget // 2 // max(per_row, 1)))
    while m % rt:
        rt -= 1
    while rt > 1 and m // rt < cores:
        rt -= 1
        while m % rt:
            rt -= 1
    return rt


def _layout(m: int, n: int, k: int, counts: tuple[int, ...], values: Storage, residual: bool,
            act: Storage, cores: int, bud: Budgets, groups: int | None
            ) -> tuple[int, int, tuple, tuple, int]:
    """``(rt, G, chunks per group, chunk widths, ws)`` (see the module docstring; ``groups``:
    ``G`` if given)."""
    nw = len(counts)
    ik, inn = index_storage(k), index_storage(n)
    entry = values.nbytes(1, 1) + ik.nbytes(1, 1) + inn.nbytes(1, 1)
    per_row = act.nbytes(1, k) + F32.nbytes(1, k) + nw * F32.nbytes(1, n) \
        + (BF16.nbytes(1, n) if residual else 0)
    budget = bud.norm_rows_bytes
    rt = _rows(m, per_row, budget, cores)
    blocks = m // rt
    total = sum(counts)
    if groups is None:
        groups = 1
        if blocks < cores and total:
            ratio = total * entry / (nw * F32.nbytes(rt, n) * 2)
            groups = max(1, min(cores // blocks, math.isqrt(int(4 * ratio / blocks))))
    left = budget - rt * per_row
    cap = left // (2 * nw * (entry + F32.nbytes(rt, 1)))
    cap = max(32, min(_MAX_CHUNK, cap // 32 * 32))
    chunks, widths = [], []
    for cnt in counts:
        gc = math.ceil(cnt / (groups * cap)) if cnt else 0
        chunks.append(gc)
        widths.append(32 * math.ceil(cnt / (groups * gc) / 32) if cnt else 0)
    ws = n
    if groups > 1:                  # phase 2: slices of >= 16 columns for the idle cores
        want = max(1, math.ceil(cores / blocks))
        ws = min((n // s for s in range(1, n + 1) if n % s == 0 and s <= want
                  and n // s >= 16), default=n)
    return rt, groups, tuple(chunks), tuple(widths), ws


def spqr_vector_ops(p: SpqrParams) -> dict[str, int]:
    """Vector elements per instruction of :func:`spqr_kernel` over every unit (module
    docstring; ``P`` the padded outliers, ``G`` the groups): ``VGATHER``, ``VMUL``,
    ``VSCATADD`` ``M P`` each; ``VDEQUANT`` ``G M K``; the starts ``VCVT`` (residual) /
    ``VADDI`` (+0) ``M N`` per sum started; ``VADD`` ``G M N`` per weight (phase 2)."""
    nw, m, n, g = len(p.counts), p.m, p.n, p.groups
    pad = sum(p.padded)
    starts = (g * nw if g > 1 else 0) + (0 if p.residual else nw)   # sums started from +0
    return {"VGATHER": m * pad, "VMUL": m * pad, "VSCATADD": m * pad, "VDEQUANT": g * m * p.k,
            "VCVT": m * n if p.residual else 0, "VADDI": starts * m * n,
            "VADD": g * nw * m * n if g > 1 else 0}


def spqr_kernel(name: str, m: int, n: int, k: int, counts: Sequence[int], *, cores: int,
                values: Storage = F16, residual: bool = False, act: Storage = ACT,
                budgets: Budgets | None = None, unit_cap: int | None = None,
                groups: int | None = None) -> Kernel:
    """The outlier product of ``len(counts)`` weights (1, or 2 for a gated linear: gate, up)
    with ``counts`` outliers each over ``X (m, k)`` into ``C`` (``CU``) ``(m, n)`` float32
    (module docstring); ``values``: how the outlier values are stored; ``residual``: ``C``
    starts from the residual ``R (m, n)`` (bfloat16; one weight only); ``groups``: the number of
    outlier groups ``G`` (default: the module docstring's rule)."""
    counts = tuple(int(c) for c in counts)
    nw = len(counts)
    if nw not in (1, 2) or min(counts) < 0 or m < 1 or n < 1 or k < 1:
        raise ConfigError(f"{name}: one or two weights with >= 0 outliers each over m, n, k >= 1 "
                          f"(got counts {counts}, m={m}, n={n}, k={k})")
    if residual and nw != 1:
        raise ConfigError(f"{name}: a residual goes with one weight (got {nw})")
    if groups is not None and groups < 1:
        raise ConfigError(f"{name}: 'groups' must be >= 1 (got {groups})")
    if not values.fmt.wide:
        raise ConfigError(f"{name}: outlier values are float16, bfloat16 or float32 "
                          f"(got {values.fmt.name})")
    bud = budgets or Budgets.of()
    rt, groups, chunks, widths, ws = _layout(m, n, k, counts, values, residual, act, cores, bud,
                                             groups)
    ik, inn = index_storage(k), index_storage(n)
    prm = SpqrParams(m=m, n=n, k=k, counts=counts, values=values, index_k=ik, index_n=inn,
                     residual=residual, rt=rt, groups=groups, chunks=chunks, widths=widths,
                     ws=ws, act=act, unit_cap=unit_cap)
    blocks = m // rt
    b = ProgramBuilder()
    x = b.tensor("X", (m, k), act)
    res = b.tensor("R", (m, n), BF16) if residual else None
    names = SPQR_OUTPUTS[:nw]
    outs = [b.tensor(nm[0], (m, n), F32) for nm in names]
    ins: list = []
    for w, nm in enumerate(names):
        pw = prm.padded[w]
        ins.append((b.tensor(nm[1], (1, pw), values), b.tensor(nm[2], (1, pw), ik),
                    b.tensor(nm[3], (1, pw), inn)) if pw else None)
    parts = [b.tensor(nm[4], (groups * m, n), F32) for nm in names] if groups > 1 else []
    xq = b.tile("XQ", (rt, k), act)
    xf = b.tile("XF", (rt, k), F32)
    ct = [b.tile(f"CT{w}", (rt, n), F32) for w in range(nw)]
    rtile = b.tile("RT", (rt, n), BF16) if residual and groups == 1 else None
    zacc = b.acc("Z", (1, 1))
    zt = b.tile("ZT", (1, 1), F32)
    bufs = [[(b.tile(f"OV{w}_{s}", (1, c), values), b.tile(f"OK{w}_{s}", (1, c), ik),
              b.tile(f"ON{w}_{s}", (1, c), inn), b.tile(f"XG{w}_{s}", (rt, c), F32))
             for s in range(2)] if c else [] for w, c in enumerate(widths)]
    r_i, r_cnt, r_u, r_b, r_j, r_row = (Reg(i) for i in range(1, 7))
    r_col, r_p = Reg(7), Reg(8)
    r_base = [Reg(9), Reg(10)]
    b.acc_zero(zacc)                                  # ZT = +0: the start of every sum
    b.acc_st(zt, zacc)
    seq = [(w, q) for w in range(nw) for q in range(chunks[w])]

    def loads(s: int) -> None:
        w, q = seq[s]
        ov, ok, on, _ = bufs[w][s % 2]
        b.addi(r_col, r_base[w], q * widths[w])
        for tile, tensor in zip((ov, ok, on), ins[w], strict=True):
            b.dma_ld(tile, tensor, 0, r_col + 0)

    def compute(s: int) -> None:
        w, _ = seq[s]
        ov, ok, on, xg = bufs[w][s % 2]
        b.vgather(xg, xf, ok)
        b.vmul(xg, xg, ov)
        b.vscatadd(ct[w], xg, on)

    unit_loop_count(b, r_cnt, blocks * groups, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        b.divi(r_b, r_u, groups)
        b.muli(r_j, r_b, groups)
        b.sub(r_j, r_u, r_j)                          # group j = u mod G
        b.muli(r_row, r_b, rt)
        b.dma_ld(xq, x, r_row, 0)
        if rtile is not None and res is not None:
            b.dma_ld(rtile, res, r_row, 0)
        for w in range(nw):
            if chunks[w]:
                b.muli(r_base[w], r_j, chunks[w] * widths[w])
        if seq:
            loads(0)
        b.vdequant(xf, xq)
        for w in range(nw):
            if rtile is not None:
                b.vcvt(ct[w], rtile)
            else:
                b.vaddi(ct[w], zt, 0.0)
        for s in range(len(seq)):
            if s + 1 < len(seq):
                loads(s + 1)
            compute(s)
        if groups == 1:
            for w in range(nw):
                b.dma_st(outs[w], r_row, 0, ct[w])
        else:
            b.muli(r_p, r_j, m)
            b.add(r_p, r_p, r_row)
            for w in range(nw):
                b.dma_st(parts[w], r_p, 0, ct[w])
    units2 = 0
    if groups > 1:
        units2 = _sum_partials(b, prm, res, outs, parts, zt, cores, unit_cap)
    b.barrier()
    per1 = act.nbytes(rt, k) + nw * F32.nbytes(rt, n) + (BF16.nbytes(rt, n) if rtile else 0) \
        + sum(chunks[w] * (values.nbytes(1, widths[w]) + ik.nbytes(1, widths[w])
                           + inn.nbytes(1, widths[w])) for w in range(nw))
    per2 = nw * ((groups + 1) * F32.nbytes(rt, ws) + (BF16.nbytes(rt, ws) if residual else 0))
    units1 = blocks * groups
    compulsory = {"X": act.nbytes(m, k), **({"R": BF16.nbytes(m, n)} if residual else {})}
    for w, nm in enumerate(names):
        compulsory[nm[0]] = F32.nbytes(m, n)
        if prm.padded[w]:
            compulsory.update({nm[1]: values.nbytes(1, prm.padded[w]),
                               nm[2]: ik.nbytes(1, prm.padded[w]),
                               nm[3]: inn.nbytes(1, prm.padded[w])})
        if groups > 1:
            compulsory[nm[4]] = F32.nbytes(groups * m, n)
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores,
                  units=units1 + units2, mma_flops=0, dma_bytes=units1 * per1 + units2 * per2,
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  uniform_units=False,
                  per_core=math.ceil(units1 / cores) + math.ceil(units2 / cores),
                  busy_cores=min(cores, max(units1, units2)), params=prm,
                  mapping=f"{blocks} blocks of {rt} rows x {groups} outlier groups"
                          + (f", partial sums in slices of {ws} columns" if groups > 1 else ""))


def _sum_partials(b: ProgramBuilder, p: SpqrParams, res, outs: list, parts: list, zt,
                  cores: int, unit_cap: int | None) -> int:
    """Phase 2 (``G > 1``): ``C = ((R or +0) + CP_0) + CP_1 + ...`` per (row block, column
    slice); returns its unit count."""
    m, n, rt, g, ws = p.m, p.n, p.rt, p.groups, p.ws
    nw = len(p.counts)
    slices = n // ws
    acc = [b.tile(f"S{w}", (rt, ws), F32) for w in range(nw)]
    pt = [b.tile(f"P{j}", (rt, ws), F32) for j in range(g)]
    rs = b.tile("RS", (rt, ws), BF16) if res is not None else None
    r_i, r_cnt, r_u, r_b, r_s, r_row, r_col, r_p = (Reg(i) for i in range(1, 9))
    b.barrier()
    units = (m // rt) * slices
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        b.divi(r_b, r_u, slices)
        b.muli(r_s, r_b, slices)
        b.sub(r_s, r_u, r_s)
        b.muli(r_row, r_b, rt)
        b.muli(r_col, r_s, ws)
        for w in range(nw):
            if rs is not None:
                b.dma_ld(rs, res, r_row, r_col)
            for j in range(g):                        # every partial in flight at once
                b.addi(r_p, r_row, j * m)
                b.dma_ld(pt[j], parts[w], r_p, r_col)
            if rs is not None:
                b.vcvt(acc[w], rs)
            else:
                b.vaddi(acc[w], zt, 0.0)
            for j in range(g):
                b.vadd(acc[w], acc[w], pt[j])
            b.dma_st(outs[w], r_row, r_col, acc[w])
    return units


def spqr_inputs(kernel: Kernel, outliers: Sequence[Outliers]) -> dict[str, np.ndarray]:
    """The DDR inputs ``OV``, ``OK``, ``ON`` (``OVU``, ``OKU``, ``ONU``) of ``kernel`` from the
    outliers of its weights (in CSR order; padded with ``(0, 0, 0)`` entries to the kernel's
    lengths), as float32 values for :func:`prodigy_sim.functional.run` /
    :func:`emulate_spqr`."""
    p = kernel.params
    if not isinstance(p, SpqrParams):
        raise ConfigError(f"kernel {kernel.name!r} is not an SpQR outlier kernel")
    if len(outliers) != len(p.counts):
        raise ConfigError(f"{kernel.name}: {len(p.counts)} weights' outliers expected (got "
                          f"{len(outliers)})")
    out: dict[str, np.ndarray] = {}
    for w, (o, nm) in enumerate(zip(outliers, SPQR_OUTPUTS, strict=False)):
        if o.shape != (p.n, p.k) or o.count != p.counts[w] or o.dtype != p.values.fmt.name:
            raise ConfigError(f"{kernel.name}: weight {w}: outliers of {o.shape} ({o.count}, "
                              f"{o.dtype}) for a kernel of {(p.n, p.k)} ({p.counts[w]}, "
                              f"{p.values.fmt.name})")
        pw = p.padded[w]
        if not pw:
            continue
        for name, v in ((nm[1], o.float_values()), (nm[2], o.cols), (nm[3], o.rows())):
            row = np.zeros((1, pw), dtype=np.float32)
            row[0, :o.count] = np.asarray(v, dtype=np.float32)
            out[name] = row
    return out


def emulate_spqr(p: SpqrParams, inp) -> dict[str, np.ndarray]:
    """``C`` (``CU``) and, with groups, the partial sums ``CP`` (``CPU``) of an SpQR outlier
    kernel in plain numpy (module docstring); ``inp``: the emulation's DDR inputs
    (``float(name)`` float32 values, ``quant(name)`` a quantized tensor)."""
    m, n, g = p.m, p.n, p.groups
    q = inp.quant("X")
    assert isinstance(q, QuantizedTensor)
    xf = sp.dequant_f32(q)
    res = inp.float("R") if p.residual else np.zeros((m, n), dtype=np.float32)
    zero = np.zeros((m, n), dtype=np.float32)
    out: dict[str, np.ndarray] = {}
    for w, nm in enumerate(SPQR_OUTPUTS[:len(p.counts)]):
        pw, span = p.padded[w], p.chunks[w] * p.widths[w]
        partials = []
        for j in range(g):
            c = res if g == 1 else zero
            if pw:
                cols = slice(j * span, (j + 1) * span)
                xg = sp.vgather(xf, inp.float(nm[2])[0, cols])
                with np.errstate(all="ignore"):
                    prod = sp.canonical(xg * inp.float(nm[1])[0, cols])
                c = sp.vscatadd(c, prod, inp.float(nm[3])[0, cols])
            partials.append(c)
        if g == 1:
            out[nm[0]] = partials[0]
            continue
        out[nm[4]] = np.concatenate(partials)
        c = res
        with np.errstate(all="ignore"):
            for part in partials:
                c = sp.canonical(c + part)
        out[nm[0]] = c
    return out
