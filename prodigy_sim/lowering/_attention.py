"""Attention ``softmax(Q K^T / sqrt(d) + mask) V`` as a fused (flash-attention) tile program.

Caches (FP8, MX blocks of 32 along ``d``, one row per (sequence, KV head, key)): keys ``KC`` and
values ``VC``, both ``(B * kv_heads * C, d)``. A decode step writes one row of each (no block is
requantized). ``C`` is the context rounded up to the key chunk. The ``P V`` MMA needs the values
with the keys as its reduction axis: decode transposes each V chunk on the vector unit
(``VDEQUANT`` to BF16, ``VTRANS``) and runs ``P V`` in BF16 (``P`` converted with ``VCVT``);
prefill reads ``VT`` (FP8, blocks along the keys), a transposed copy of the prompt's values that
``rope_kv`` writes beside the cache, chunk-major (``_common.vt_shape``: each key chunk's
``(d, ck)`` block one contiguous run), and runs ``P V`` in FP8. ``Q`` is head-major - row
``b heads + h`` (decode), ``(b heads + h) C + position`` (prefill) - so a query block is one
contiguous run too; ``O`` is ``(B C, heads d)`` as the output projection reads it.

A unit is one block of query rows against a range of keys: decode - the ``g = heads / kv_heads``
query heads of one KV head of one sequence (GQA shares the K/V chunk loads) against one of
``splits`` slices of the context (flash decoding); prefill - 64 queries of one head against
their keys. Keys are processed in chunks of ``ck`` (64) with an online softmax (running row max
``M``, sum ``L`` and an FP32 output ``OA`` rescaled per chunk), software pipelined over the
chunks: K/V chunks in a ring of ``_RING`` (4) buffers, each loaded ``_RING - 1`` chunks ahead of
its softmax (decode streams the cache from DDR: several chunks in flight per core), and two score
accumulators ``S0``/``S1``, so that the next chunk's ``Q K^T`` is issued before the current
chunk's softmax and the matrix unit computes it meanwhile (in-order issue would otherwise
serialize the two units); a chunk's ``P V`` is added to ``OA`` at the start of the next chunk's
step. One loop serves every chunk count, known when lowered or only at run time: a step past
the block's last chunk skips to the end of the loop body, a load past it is skipped, and the
last chunk's mask is added behind a branch. Every value goes through the same operations in the
same order as chunk after chunk, so the bits do not depend on the pipeline. The last chunk of a
block adds a mask tile: the causal diagonal (prefill of a decoder) or the padding beyond the
context (decode: only the last slice; ``MASK`` rows ``[0, qr)`` are zeros, rows ``[qr, 2 qr)``
the padding). Causal prefill pairs query block ``p`` with ``nb - 1 - p`` in one unit so that
every unit has the same work. Units are dealt to the cores round robin.

Flash decoding (``splits > 1``): a slice stores its unnormalized ``OA`` (FP32) and its ``M``,
``L`` to DDR scratch tensors ``OP (B kv S qr, d)``, ``MP``, ``LP (B kv S qr, 1)``; after a
``BARRIER`` a combine loop (one unit per query row and 32-column block of ``d``, ``B heads d / 32``
units, so every core has work) merges the ``S`` slices with the
log-sum-exp rescaling ``m = max(m, M_s)``, ``l = l e^(m_old - m) + L_s e^(M_s - m)``,
``o = o e^(m_old - m) + OA_s e^(M_s - m)``, then writes ``o / l`` (FP8) - the same algebra as the
per-chunk online softmax, so the result equals an unsplit pass up to FP32 rounding.
"""

from __future__ import annotations

import math

from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import (
    ACT,
    BF16,
    F32,
    Kernel,
    key_chunk,
    padded_context,
    q_shape,
    unit_loop_count,
    vt_shape,
)
from prodigy_sim.lowering._params import AttentionParams
from prodigy_sim.numerics import Storage

__all__ = ["attention_kernel", "decode_splits"]

_RING = 4
"""K/V chunk buffers: the chunks are loaded ``_RING - 1`` chunks ahead of their softmax (decode
streams its KV cache from DDR, and each core keeps that many chunks in flight)."""


def decode_splits(batch: int, kv_heads: int, context: int, cores: int) -> int:
    """Context slices per (sequence, KV head) for decode: enough units for every core
    (``ceil(cores / (batch kv_heads))``), at most one per key chunk, so that the slices of
    ``ceil(chunks / S)`` chunks are all non-empty."""
    ck = key_chunk(context)
    n = math.ceil(context / ck)
    s = max(1, min(n, math.ceil(cores / (batch * kv_heads))))
    return math.ceil(n / math.ceil(n / s))


def attention_kernel(name: str, *, batch: int, heads: int, kv_heads: int, head_dim: int,
                     queries: int, context: int, causal: bool, cores: int,
                     kv: Storage = ACT, unit_cap: int | None = None,
                     splits: int | None = None) -> Kernel:
    """Attention of ``queries`` new tokens per sequence over ``context`` keys.

    Decode: ``queries == 1``; prefill: ``queries == context`` (padded to the chunk).
    ``splits``: decode context slices (flash decoding; default :func:`decode_splits`, 1 = one
    unit per (sequence, KV head)); prefill ignores it. Returns a :class:`Kernel` whose
    ``mma_flops`` count the executed QK^T and PV MMAs (with the causal upper triangle skipped
    block-wise).
    """
    d, g = head_dim, heads // kv_heads
    if heads % kv_heads or d % 32 or d > 256:
        raise ConfigError(f"{name}: head_dim {d} must be a multiple of 32 (<= 256) and "
                          f"kv_heads {kv_heads} must divide heads {heads}")
    decode = queries == 1
    ck, cp = key_chunk(context), padded_context(context)
    nchunks = cp // ck
    if decode:
        qr, nb = g, 1
        ns = decode_splits(batch, kv_heads, context, cores) if splits is None else splits
        if not 1 <= ns <= nchunks:
            raise ConfigError(f"{name}: splits must be in 1..{nchunks} (got {ns})")
        cps = math.ceil(nchunks / ns)
        ns = math.ceil(nchunks / cps)
    else:
        if queries != context:
            raise ConfigError(f"{name}: prefill attends to its own {queries} tokens")
        qr, nb, ns, cps = ck, cp // ck, 1, nchunks
    split = ns > 1
    nd = math.ceil(d / 64)
    dh = d // nd
    act = ACT
    if kv.fmt.name not in ("float8_e4m3fn", "float8_e5m2"):
        raise ConfigError(f"{name}: the KV cache must be an FP8 format for the matrix unit "
                          f"(got {kv.fmt.name!r})")
    pairs = causal and not decode
    if decode:
        units = batch * kv_heads * ns
    elif pairs:
        units = batch * heads * math.ceil(nb / 2)
    else:
        units = batch * heads * nb

    b = ProgramBuilder()
    rows_q = batch * heads if decode else batch * cp
    cols_q = d if decode else heads * d
    q_rows_cols = q_shape(batch, heads, d, cp, decode)
    q = b.tensor("Q", q_rows_cols, act)                 # O: as the output projection reads it
    kc = b.tensor("KC", (batch * kv_heads * cp, d), kv)
    if decode:
        vcache = b.tensor("VC", (batch * kv_heads * cp, d), kv)
    else:
        vt = b.tensor("VT", vt_shape(batch, kv_heads, d, cp, ck), kv)
    o = b.tensor("O", (rows_q, cols_q), act)
    mk = b.tensor("MASK", (2 * qr if split else qr, ck), F32)
    if split:
        opart = b.tensor("OP", (units * qr, d), F32)
        mpart = b.tensor("MP", (units * qr, 1), F32)
        lpart = b.tensor("LP", (units * qr, 1), F32)
    qt = b.tile("QT", (qr, d), act)
    kt = [b.tile(f"KT{s}", (ck, d), kv) for s in range(_RING)]
    if decode:
        vcs = [[b.tile(f"VC{s}_{i}", (ck, dh), kv) for i in range(nd)]
               for s in range(_RING)]
        vb = [b.tile(f"VB{i}", (ck, dh), BF16) for i in range(nd)]
        vts = [[b.tile(f"VT{s}_{i}", (dh, ck), BF16) for i in range(nd)]
               for s in range(_RING)]
    else:
        vts = [[b.tile(f"VT{s}_{i}", (dh, ck), kv) for i in range(nd)]
               for s in range(_RING)]
    mkt = b.tile("MK", (qr, ck), F32)
    st = b.tile("ST", (qr, ck), F32)
    pq = b.tile("PQ", (qr, ck), BF16) if decode else b.tile("PQ", (qr, ck), act)
    m_, mc, mn, cr, ls, l_ = (b.tile(n, (qr, 1), F32) for n in ("M", "MC", "MN", "CR", "LS",
                                                                "L"))
    oa = [b.tile(f"OA{i}", (qr, dh), F32) for i in range(nd)]
    ot = b.tile("OT", (qr, dh), F32)
    oq = b.tile("OQ", (qr, dh), act)
    saccs = [b.acc(f"S{s}", (qr, ck)) for s in range(2)]
    oacc = [b.acc(f"O{i}", (qr, dh)) for i in range(nd)]
    scale = 1.0 / math.sqrt(d)

    r_zero = Reg(0)
    r_i, r_c, r_cnt, r_u, r_qrow, r_qcol, r_krow, r_vrow, r_n1, r_np, r_t, r_k, r_p, r_q2 = (
        Reg(i) for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14))
    r_qq = r_qrow if decode else Reg(15)            # the query block's first row of Q
    labels = iter(range(1000))

    def load_k(s: int, kcol_reg, off: int) -> None:
        """K chunk whose first key is ``kcol_reg + off`` into buffer ``s``."""
        b.add(r_k, r_krow, kcol_reg)
        b.dma_ld(kt[s], kc, r_k + off if off else r_k, 0)

    def load_v(s: int, kcol_reg, off: int) -> None:
        """V chunk whose first key is ``kcol_reg + off`` into buffer ``s``."""
        if decode:
            b.add(r_k, r_krow, kcol_reg)
            for i in range(nd):
                b.dma_ld(vcs[s][i], vcache, r_k + off if off else r_k, i * dh)
            return
        b.divi(r_k, kcol_reg, ck)                   # VT row of the chunk (vt_shape): r_vrow
        b.muli(r_k, r_k, d)                         # + (first key / ck) d
        b.add(r_k, r_k, r_vrow)
        for i in range(nd):
            row = off // ck * d + i * dh
            b.dma_ld(vts[s][i], vt, r_k + row if row else r_k, 0)

    def scores(s: int, a: int) -> None:
        """``Q K^T`` of the chunk in K buffer ``s`` into score accumulator ``a``."""
        b.acc_zero(saccs[a])
        b.mma(saccs[a], qt, kt[s])

    def softmax_pv(s: int) -> None:
        """The online softmax of the chunk in buffer ``s`` whose scores :func:`step` took out
        of their accumulator into ``ST``, and its ``P V`` MMAs; :func:`update` adds them to
        ``OA``. The mask tile is added when the chunk's first key (``r_t``) is the
        block's last chunk's (``r_n1``) - a branch, as the chunk count may be known only at
        run time."""
        if decode:                                  # V chunk (ck, dh) -> V^T (dh, ck), BF16
            for i in range(nd):
                b.vdequant(vb[i], vcs[s][i])
                b.vtrans(vts[s][i], vb[i])
        b.vmuli(st, st, scale)
        unmasked = f"unmasked{next(labels)}"
        b.bne(r_t, r_n1, unmasked)
        b.vadd(st, st, mkt)
        b.label(unmasked)
        b.vrmax(mc, st)
        b.vmax(mn, m_, mc)
        b.vsub(cr, m_, mn)
        b.vexp(cr, cr)
        b.vsub(st, st, mn)
        b.vexp(st, st)
        b.vrsum(ls, st)
        b.vfma(l_, l_, cr, ls)
        b.vaddi(m_, mn, 0.0)
        if decode:
            b.vcvt(pq, st)
        else:
            b.vquant(pq, st)
        for i in range(nd):
            b.acc_zero(oacc[i])
            b.mma(oacc[i], pq, vts[s][i])

    def update() -> None:
        """``OA = OA * CR + P V`` of the chunk last through :func:`softmax_pv`."""
        for i in range(nd):
            b.acc_st(ot, oacc[i])
            b.vfma(oa[i], oa[i], cr, ot)

    def load_kv(s: int, kcol_reg, off: int) -> None:
        """K and V chunk whose first key is ``kcol_reg + off`` into buffer ``s``."""
        load_k(s, kcol_reg, off)
        load_v(s, kcol_reg, off)

    def unless_beyond(first_key: int, emit, *args) -> None:
        """``emit(*args)`` only if the chunk whose first key is ``r_c + first_key`` exists
        (its key at most ``r_n1``, the last chunk's)."""
        skip = f"beyond{next(labels)}"
        b.addi(r_q2, r_c, first_key)
        b.blt(r_n1, r_q2, skip)
        emit(*args)
        b.label(skip)

    def step(u: int, end: str) -> None:
        """Chunk ``j = (r_c + u ck) / ck`` of the block (buffer ``u mod _RING``, score
        accumulator ``u mod 2``), or past the block's last chunk a jump to ``end`` (the end of
        the loop body): add chunk ``j - 1``'s ``P V`` to ``OA`` (not for the first chunk),
        load chunk ``j + _RING - 1`` if it exists (into the buffers chunk ``j - 1``'s MMAs
        read: done once its ``P V`` is), take chunk ``j``'s scores out of their accumulator
        (``ACC.ST``, a matrix-unit instruction, before the next MMA occupies the unit), issue
        the scores of chunk ``j + 1`` (loaded chunks ago) for the matrix unit to compute
        during chunk ``j``'s softmax, then that softmax and its ``P V``."""
        s, a = u % _RING, u % 2
        b.addi(r_t, r_c, u * ck)                    # first key of chunk j
        b.blt(r_n1, r_t, end)
        add, added = f"add{next(labels)}", f"added{next(labels)}"
        b.bne(r_t, r_zero, add)                     # chunk 0: no P V to add yet
        b.jmp(added)
        b.label(add)
        update()
        b.label(added)
        ahead = u + _RING - 1
        unless_beyond(ahead * ck, load_kv, ahead % _RING, r_c, ahead * ck)
        b.acc_st(st, saccs[a])
        unless_beyond((u + 1) * ck, scores, (u + 1) % _RING, 1 - a)
        softmax_pv(s)

    def init_state() -> None:
        b.vmuli(m_, m_, 0.0)
        b.vaddi(m_, m_, -1.0e30)
        b.vmuli(l_, l_, 0.0)
        for i in range(nd):
            b.vmuli(oa[i], oa[i], 0.0)

    def finish() -> None:
        """``O = OA / L`` to FP8 at rows ``r_qrow``, columns ``r_qcol``."""
        b.vrcp(ls, l_)                              # 1/L into scratch: L stays finite for
        for i in range(nd):                         # the next block's reset (L * 0)
            b.vmul(ot, oa[i], ls)
            b.vquant(oq, ot)
            b.dma_st(o, r_qrow, r_qcol + i * dh if i else r_qcol, oq)

    def store_partial() -> None:
        """Unnormalized ``OA`` and ``M``, ``L`` of slice unit ``r_u`` (rows ``r_u * qr``)."""
        b.muli(r_t, r_u, qr)
        for i in range(nd):
            b.dma_st(opart, r_t, i * dh, oa[i])
        b.dma_st(mpart, r_t, 0, m_)
        b.dma_st(lpart, r_t, 0, l_)

    def block(n_const: int | None, epilogue) -> None:
        """One query block at ``r_qrow, r_qcol`` against keys from ``r_krow`` / ``r_vrow``; the
        chunk count ``n`` is ``n_const`` or ``r_n1 + 1`` (set by the caller).

        Software pipeline over the chunks (:func:`step`): the first ``_RING - 1`` chunks
        loaded and chunk 0's scores issued before the loop; a loop of ``ceil(n / _RING)``
        iterations of ``_RING`` steps (static buffers), a step past the last chunk skipping
        to the end of the (last) iteration; then the last chunk's ``P V`` added to ``OA``.
        ``r_n1`` becomes the last chunk's first key."""
        b.dma_ld(qt, q, r_qq, 0)
        init_state()
        if n_const is not None:
            b.li(r_n1, n_const - 1)
        b.muli(r_n1, r_n1, ck)                      # first key of the last chunk
        b.li(r_c, 0)
        for u in range(_RING - 1):
            unless_beyond(u * ck, load_kv, u, r_c, u * ck)
        scores(0, 0)
        end = f"chunks{next(labels)}"
        b.divi(r_np, r_n1, _RING * ck)              # iterations: floor((n - 1) / R) + 1
        b.addi(r_np, r_np, 1)
        with b.loop(r_c, r_np, _RING * ck):
            for u in range(_RING):
                step(u, end)
            b.label(end)                            # (a branch may not leave a loop body)
        update()
        epilogue()

    if not split:
        b.dma_ld(mkt, mk, 0, 0)
    b.li(r_zero, 0)
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)
        if decode and split:                        # u = (b * kv_heads + h) * S + s
            b.divi(r_p, r_u, ns)                    # b * kv_heads + h
            b.muli(r_t, r_p, ns)
            b.sub(r_t, r_u, r_t)                    # slice s
            b.muli(r_qrow, r_p, g)                  # row b*heads + h*g of Q (B*heads, d)
            b.li(r_qcol, 0)
            b.muli(r_krow, r_p, cp)
            b.muli(r_k, r_t, cps * ck)
            b.add(r_krow, r_krow, r_k)              # first key of the slice
            b.li(r_n1, nchunks)                     # chunks: min(cps, n - s cps)
            b.muli(r_k, r_t, cps)
            b.sub(r_n1, r_n1, r_k)
            b.li(r_k, cps)
            b.min(r_n1, r_n1, r_k)
            b.addi(r_n1, r_n1, -1)
            b.divi(r_t, r_t, ns - 1)                # 1 for the last slice: padding mask
            b.muli(r_t, r_t, qr)
            b.dma_ld(mkt, mk, r_t, 0)
            block(None, store_partial)
        elif decode:                                # u = b * kv_heads + h
            b.muli(r_qrow, r_u, g)                  # row b*heads + h*g of Q (B*heads, d)
            b.li(r_qcol, 0)
            b.muli(r_krow, r_u, cp)
            block(nchunks, finish)
        else:
            per_seq = heads * (math.ceil(nb / 2) if pairs else nb)
            per_head = per_seq // heads
            b.divi(r_t, r_u, per_seq)               # sequence
            b.muli(r_qrow, r_t, cp)                 # first token row of the sequence
            b.muli(r_qq, r_t, heads)
            b.muli(r_krow, r_t, kv_heads)
            b.muli(r_k, r_t, per_seq)
            b.sub(r_k, r_u, r_k)                    # head * per_head + block
            b.divi(r_t, r_k, per_head)              # head
            b.muli(r_qcol, r_t, d)
            b.add(r_qq, r_qq, r_t)
            b.muli(r_qq, r_qq, cp)                  # first row of the head's Q
            b.muli(r_p, r_t, per_head)
            b.sub(r_p, r_k, r_p)                    # block (or pair) index
            b.divi(r_t, r_t, g)                     # kv head
            b.add(r_krow, r_krow, r_t)              # b * kv_heads + kv head
            b.muli(r_vrow, r_krow, nchunks * d)      # its first VT row (vt_shape)
            b.muli(r_krow, r_krow, cp)
            b.muli(r_q2, r_p, ck)
            b.add(r_qrow, r_qrow, r_q2)             # rows of this query block
            b.add(r_qq, r_qq, r_q2)
            if not causal:
                block(nb, finish)
            else:
                b.addi(r_n1, r_p, 0)                # chunks before the diagonal: p
                block(None, finish)
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
                b.sub(r_qq, r_qq, r_t)
                b.add(r_qq, r_qq, r_q2)
                block(None, finish)
                b.label(skip)
                b.nop()
    b.barrier()
    if split:
        _combine(b, ns, qr, d, g, batch * heads * (d // 32), cores, unit_cap,
                 (opart, mpart, lpart, o))
        b.barrier()
    program = b.build()

    # analytic counts
    if decode:
        chunks, blocks = batch * kv_heads * nchunks, batch * kv_heads
    elif causal:
        chunks, blocks = batch * heads * nb * (nb + 1) // 2, batch * heads * nb
    else:
        chunks, blocks = batch * heads * nb * nb, batch * heads * nb
    per_chunk = ck * kv.nbytes(1, d) + nd * (ck * kv.nbytes(1, dh) if decode
                                               else dh * kv.nbytes(1, ck))
    q_bytes = qr * act.nbytes(1, d)
    o_bytes = nd * qr * act.nbytes(1, dh)
    if split:
        part = qr * (4 * d + 8)                     # OA, M, L of one slice
        combine = batch * heads * (d // 32)
        nbytes = (chunks * per_chunk + units * (q_bytes + qr * ck * 4 + part)
                  + combine * (ns * (8 + 32 * 4) + act.nbytes(1, 32)))
    else:
        nbytes = chunks * per_chunk + blocks * (q_bytes + o_bytes) + cores * qr * ck * 4
    flops = chunks * 4 * qr * ck * d
    kv_bytes = kv.nbytes(batch * kv_heads * min(context, cp), d)
    compulsory = (("Q", act.nbytes(*q_rows_cols)), ("O", act.nbytes(rows_q, cols_q)),
                  ("KC", kv_bytes), ("VC" if decode else "VT", kv_bytes))
    return Kernel(name=name, kind="attention", program=program, cores=cores, units=units,
                  compulsory=compulsory,
                  mma_flops=flops, dma_bytes=nbytes, weight_format=kv.fmt,
                  uniform_units=not split,
                  private_rows=() if split else ("Q",),   # split units share their Q rows
                  params=AttentionParams(batch=batch, heads=heads, kv_heads=kv_heads,
                                         head_dim=d, queries=queries, context=context,
                                         causal=causal, kv=kv, q=act, decode=decode, ck=ck,
                                         cp=cp, splits=ns, chunks_per_split=cps, nd=nd, dh=dh,
                                         scale=float(scale), unit_cap=unit_cap))


def _combine(b: ProgramBuilder, ns: int, qr: int, d: int, g: int, units: int, cores: int,
             unit_cap: int | None, tensors) -> None:
    """Merge the ``ns`` slices (log-sum-exp rescaling), two buffers deep, and write ``O``.

    A unit is one query row of one (sequence, KV head) and one 32-column block of ``d``
    (``units = B * heads * d / 32``), so that the combine spreads over the cores too.
    """
    opart, mpart, lpart, o = tensors
    act = ACT
    w = 32
    nj = d // w
    mps = [b.tile(f"CM{s}", (1, 1), F32) for s in range(2)]
    lps = [b.tile(f"CL{s}", (1, 1), F32) for s in range(2)]
    ops_ = [b.tile(f"CO{s}", (1, w), F32) for s in range(2)]
    m_, l_, mn, cr, cs = (b.tile(n, (1, 1), F32) for n in ("CMR", "CLR", "CMN", "CCR", "CCS"))
    oa, ot = b.tile("COA", (1, w), F32), b.tile("COT", (1, w), F32)
    oq = b.tile("COQ", (1, w), act)
    r_i, r_cnt, r_u, r_c, r_a, r_r, r_j, r_t, r_base = (Reg(i) for i in (1, 3, 4, 2, 5, 6, 7,
                                                                         11, 8))

    def load(s: int, off: int) -> None:
        row = r_t + off if off else r_t
        b.dma_ld(mps[s], mpart, row, 0)
        b.dma_ld(lps[s], lpart, row, 0)
        b.dma_ld(ops_[s], opart, row, r_j)

    def merge(s: int) -> None:
        b.vmax(mn, m_, mps[s])
        b.vsub(cr, m_, mn)
        b.vexp(cr, cr)                              # e^(m_old - m)
        b.vsub(cs, mps[s], mn)
        b.vexp(cs, cs)                              # e^(M_s - m)
        b.vmul(l_, l_, cr)
        b.vfma(l_, lps[s], cs, l_)
        b.vmul(oa, oa, cr)
        b.vfma(oa, ops_[s], cs, oa)
        b.vaddi(m_, mn, 0.0)

    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_u, r_i, CID)                        # ((b * kv + h) * qr + r) * nj + j
        b.divi(r_a, r_u, nj)                        # (b * kv + h) * qr + r
        b.muli(r_j, r_a, nj)
        b.sub(r_j, r_u, r_j)
        b.muli(r_j, r_j, w)                         # first column
        b.divi(r_t, r_a, qr)                        # b * kv + h
        b.muli(r_r, r_t, qr)
        b.sub(r_r, r_a, r_r)                        # row r of the GQA group
        b.muli(r_base, r_t, ns * qr)
        b.add(r_base, r_base, r_r)                  # row of slice 0
        b.muli(r_a, r_t, g)
        b.add(r_a, r_a, r_r)                        # row of O (B*heads, d)
        b.vmuli(m_, m_, 0.0)
        b.vaddi(m_, m_, -1.0e30)
        b.vmuli(l_, l_, 0.0)
        b.vmuli(oa, oa, 0.0)
        b.addi(r_t, r_base, 0)
        load(0, 0)
        npairs = (ns - 1) // 2
        if npairs:
            with b.loop(r_c, npairs, 2 * qr):
                b.add(r_t, r_base, r_c)
                load(1, qr)
                merge(0)
                load(0, 2 * qr)
                merge(1)
        if ns - 2 * npairs == 2:
            b.addi(r_t, r_base, (ns - 1) * qr)
            load(1, 0)
            merge(0)
            merge(1)
        else:
            merge(0)
        b.vrcp(cs, l_)                              # scratch: l_ stays finite for the reset
        b.vmul(ot, oa, cs)
        b.vquant(oq, ot)
        b.dma_st(o, r_a, r_j, oq)
