"""Attention ``softmax(Q K^T / sqrt(d) + mask) V`` as a fused (flash-attention) tile program.

Caches: keys ``KC`` are ``(B * kv_heads * C, d)`` (one row per key, FP8, MX blocks along d);
values are kept transposed, ``VT`` = ``(B * kv_heads * d, C)`` (FP8, blocks along the keys), so
that ``P V`` is an ``MMA`` with the keys as its reduction axis and needs no ``VTRANS`` at run
time. ``C`` is the context rounded up to the key chunk.

A unit is one block of query rows against its keys: decode - the ``g = heads / kv_heads`` query
heads of one KV head of one sequence (GQA shares the K/V chunk loads); prefill - 64 queries of one
head. Keys are processed in chunks of ``ck`` (64) with an online softmax (running row max ``M``,
sum ``L`` and an FP32 output ``OA`` rescaled per chunk), K/V chunks double buffered (the next
chunk is loaded before the current one is used). The last chunk of a block adds a mask tile:
the causal diagonal (prefill of a decoder) or the padding beyond the context. Causal prefill
pairs query block ``p`` with ``nb - 1 - p`` in one unit so that every unit has the same work.
Units are dealt to the cores round robin; the heads of a sequence spread across cores.
"""

from __future__ import annotations

import math

from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, F32, Kernel, Storage, row_nbytes, unit_loop_count

__all__ = ["attention_kernel"]

_CK = 64


def attention_kernel(name: str, *, batch: int, heads: int, kv_heads: int, head_dim: int,
                     queries: int, context: int, causal: bool, cores: int,
                     kv_format: str = ACT, unit_cap: int | None = None) -> Kernel:
    """Attention of ``queries`` new tokens per sequence over ``context`` keys.

    Decode: ``queries == 1``; prefill: ``queries == context`` (padded to the chunk). Returns a
    :class:`Kernel` whose ``mma_flops`` count the executed QK^T and PV MMAs (with the causal
    upper triangle skipped block-wise).
    """
    d, g = head_dim, heads // kv_heads
    if heads % kv_heads or d % 32 or d > 256:
        raise ConfigError(f"{name}: head_dim {d} must be a multiple of 32 (<= 256) and "
                          f"kv_heads {kv_heads} must divide heads {heads}")
    decode = queries == 1
    ck = _CK if context > 32 else 32
    cp = math.ceil(context / ck) * ck
    if decode:
        qr, nb = g, 1
    else:
        if queries != context:
            raise ConfigError(f"{name}: prefill attends to its own {queries} tokens")
        qr, nb = ck, cp // ck
    nd = math.ceil(d / 64)
    dh = d // nd
    act = Storage.of(ACT)
    kv = Storage.of(kv_format)
    if kv.fmt not in ("float8_e4m3fn", "float8_e5m2"):
        raise ConfigError(f"{name}: the KV cache must be an FP8 format for the matrix unit "
                          f"(got {kv_format!r})")
    pairs = causal and not decode
    if decode:
        units = batch * kv_heads
    elif pairs:
        units = batch * heads * math.ceil(nb / 2)
    else:
        units = batch * heads * nb

    b = ProgramBuilder()
    rows_q = batch * heads if decode else batch * cp
    cols_q = d if decode else heads * d
    q = b.tensor("Q", (rows_q, cols_q), act.fmt, **act.kw())
    kc = b.tensor("KC", (batch * kv_heads * cp, d), kv.fmt, **kv.kw())
    vt = b.tensor("VT", (batch * kv_heads * d, cp), kv.fmt, **kv.kw())
    o = b.tensor("O", (rows_q, cols_q), act.fmt, **act.kw())
    mk = b.tensor("MASK", (qr, ck), F32)
    qt = b.tile("QT", (qr, d), act.fmt, **act.kw())
    kt = [b.tile(f"KT{s}", (ck, d), kv.fmt, **kv.kw()) for s in range(2)]
    vts = [[b.tile(f"VT{s}_{i}", (dh, ck), kv.fmt, **kv.kw()) for i in range(nd)]
           for s in range(2)]
    mkt = b.tile("MK", (qr, ck), F32)
    st = b.tile("ST", (qr, ck), F32)
    pq = b.tile("PQ", (qr, ck), act.fmt, **act.kw())
    m_, mc, mn, cr, ls, l_ = (b.tile(n, (qr, 1), F32) for n in ("M", "MC", "MN", "CR", "LS",
                                                                "L"))
    oa = [b.tile(f"OA{i}", (qr, dh), F32) for i in range(nd)]
    ot = b.tile("OT", (qr, dh), F32)
    oq = b.tile("OQ", (qr, dh), act.fmt, **act.kw())
    sacc = b.acc("S", (qr, ck))
    oacc = [b.acc(f"O{i}", (qr, dh)) for i in range(nd)]
    scale = 1.0 / math.sqrt(d)

    r_i, r_c, r_cnt, r_u, r_qrow, r_qcol, r_krow, r_vrow, r_n1, r_np, r_t, r_k, r_p, r_q2 = (
        Reg(i) for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14))
    labels = iter(range(1000))

    def load(s: int, kcol_reg, off: int) -> None:
        """K/V chunk whose first key is ``kcol_reg + off`` into buffer ``s``."""
        b.add(r_k, r_krow, kcol_reg)
        b.dma_ld(kt[s], kc, r_k + off if off else r_k, 0)
        for i in range(nd):
            b.dma_ld(vts[s][i], vt, r_vrow + i * dh if i else r_vrow,
                     kcol_reg + off if off else kcol_reg)

    def chunk(s: int, masked: bool) -> None:
        b.acc_zero(sacc)
        b.mma(sacc, qt, kt[s])
        b.acc_st(st, sacc)
        b.vmuli(st, st, scale)
        if masked:
            b.vadd(st, st, mkt)
        b.vrmax(mc, st)
        b.vmax(mn, m_, mc)
        b.vsub(cr, m_, mn)
        b.vexp(cr, cr)
        b.vsub(st, st, mn)
        b.vexp(st, st)
        b.vrsum(ls, st)
        b.vfma(l_, l_, cr, ls)
        b.vaddi(m_, mn, 0.0)
        b.vquant(pq, st)
        for i in range(nd):
            b.acc_zero(oacc[i])
            b.mma(oacc[i], pq, vts[s][i])
            b.acc_st(ot, oacc[i])
            b.vfma(oa[i], oa[i], cr, ot)

    def block(n_const: int | None) -> None:
        """One query block at ``r_qrow, r_qcol`` against keys from ``r_krow`` / ``r_vrow``; the
        chunk count is ``n_const`` or ``r_n1 + 1`` (set by the caller)."""
        b.dma_ld(qt, q, r_qrow, r_qcol)
        b.vmuli(m_, m_, 0.0)
        b.vaddi(m_, m_, -1.0e30)
        b.vmuli(l_, l_, 0.0)
        for i in range(nd):
            b.vmuli(oa[i], oa[i], 0.0)
        if n_const is not None:
            b.li(r_n1, n_const - 1)
        b.li(r_t, 0)
        load(0, r_t, 0)
        b.divi(r_np, r_n1, 2)
        with b.loop(r_c, r_np, 2 * ck):
            load(1, r_c, ck)
            chunk(0, False)
            load(0, r_c, 2 * ck)
            chunk(1, False)
        b.muli(r_t, r_n1, ck)                      # first key of the last chunk

        def odd_tail() -> None:
            load(1, r_t, 0)
            chunk(0, False)
            chunk(1, True)

        if n_const is not None:
            if (n_const - 1) % 2:
                odd_tail()
            else:
                chunk(0, True)
        else:
            odd, done = f"odd{next(labels)}", f"done{next(labels)}"
            b.muli(r_q2, r_np, 2)
            b.bne(r_q2, r_n1, odd)
            chunk(0, True)
            b.jmp(done)
            b.label(odd)
            odd_tail()
            b.label(done)
            b.nop()
        b.vrcp(l_, l_)
        for i in range(nd):
            b.vmul(ot, oa[i], l_)
            b.vquant(oq, ot)
            b.dma_st(o, r_qrow, r_qcol + i * dh if i else r_qcol, oq)

    b.dma_ld(mkt, mk, 0, 0)
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        if decode:                                  # u = b * kv_heads + h
            b.muli(r_qrow, r_u, g)                  # row b*heads + h*g of Q (B*heads, d)
            b.li(r_qcol, 0)
            b.muli(r_krow, r_u, cp)
            b.muli(r_vrow, r_u, d)
            block(nb * (cp // ck))
        else:
            per_seq = heads * (math.ceil(nb / 2) if pairs else nb)
            per_head = per_seq // heads
            b.divi(r_t, r_u, per_seq)               # sequence
            b.muli(r_qrow, r_t, cp)                 # first token row of the sequence
            b.muli(r_krow, r_t, kv_heads)
            b.muli(r_k, r_t, per_seq)
            b.sub(r_k, r_u, r_k)                    # head * per_head + block
            b.divi(r_t, r_k, per_head)              # head
            b.muli(r_qcol, r_t, d)
            b.muli(r_p, r_t, per_head)
            b.sub(r_p, r_k, r_p)                    # block (or pair) index
            b.divi(r_t, r_t, g)                     # kv head
            b.add(r_krow, r_krow, r_t)              # b * kv_heads + kv head
            b.muli(r_vrow, r_krow, d)
            b.muli(r_krow, r_krow, cp)
            b.muli(r_q2, r_p, ck)
            b.add(r_qrow, r_qrow, r_q2)             # rows of this query block
            if not causal:
                block(nb)
            else:
                b.addi(r_n1, r_p, 0)                # chunks before the diagonal: p
                block(None)
                # second block of the pair: nb - 1 - p, unless it is the same block
                b.li(r_n1, nb - 1)
                b.sub(r_n1, r_n1, r_p)
                second, skip = f"second{next(labels)}", f"skip{next(labels)}"
                b.bne(r_n1, r_p, second)
                b.jmp(skip)
                b.label(second)
                b.muli(r_q2, r_n1, ck)
                b.muli(r_t, r_p, ck)
                b.sub(r_qrow, r_qrow, r_t)
                b.add(r_qrow, r_qrow, r_q2)
                block(None)
                b.label(skip)
                b.nop()
    b.barrier()
    program = b.build()

    # analytic counts
    if decode:
        chunks, blocks = batch * kv_heads * (cp // ck), batch * kv_heads
    elif causal:
        chunks, blocks = batch * heads * nb * (nb + 1) // 2, batch * heads * nb
    else:
        chunks, blocks = batch * heads * nb * nb, batch * heads * nb
    per_chunk = ck * row_nbytes(kv, d) + nd * dh * row_nbytes(kv, ck)
    per_block = qr * row_nbytes(act, d) + nd * qr * row_nbytes(act, dh)
    nbytes = (chunks * per_chunk + blocks * per_block + cores * qr * ck * 4)
    flops = chunks * 4 * qr * ck * d
    return Kernel(name=name, kind="attention", program=program, cores=cores, units=units,
                  mma_flops=flops, dma_bytes=nbytes, weight_format=kv.fmt)
