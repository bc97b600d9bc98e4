"""Vector-unit kernels: RMSNorm / LayerNorm, and RoPE + KV-cache writes.

Norms: a unit is a block of ``rt`` token rows (at most 64, fewer if that gives every core a block)
of the BF16 residual stream ``X (M, H)``; the row
statistics are ``(rt, 1)`` tiles and the gain / bias ``(1, H)`` tiles loaded once per core. The
output ``Y`` is FP8 (MX blocks of 32) for the next MMA; LayerNorm (BERT, post-norm) also writes
the normalized BF16 stream ``YS`` that the next residual adds to.

``rope_kv``: from the BF16 output of the QKV projection, ``QKV (M, (heads + 2 kv) d)``, per head
and block of tokens: RoPE (``x cos + rotate_half(x) sin``, tables indexed by position) on Q and K,
quantize Q to FP8 for the attention (head-major, one row per (sequence, head, token), so that a
block of queries is one contiguous run of DDR), K and V into rows of the K and V caches (``KC``,
``VC``: one FP8 row per (sequence, KV head, token), MX blocks of 32 along the head dimension,
so a decode step writes one row of each and never requantizes a block). Prefill also writes
``VT``, the prompt's values transposed (``VTRANS``, FP8 blocks along the keys), chunk-major
(:func:`~prodigy_sim.lowering._common.vt_shape`), for its own attention's ``P V`` MMA; it is
scratch of the layer, not part of the cache.
"""

from __future__ import annotations

from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import (
    ACT,
    BF16,
    F32,
    Budgets,
    Kernel,
    key_chunk,
    padded_context,
    q_shape,
    unit_loop_count,
    vt_shape,
)
from prodigy_sim.lowering._params import NormParams, RopeKVParams
from prodigy_sim.numerics import Storage

__all__ = ["norm_kernel", "rope_kv_kernel"]


def _rows(m: int, bytes_per_row: int, bud: Budgets) -> int:
    rt = max(1, min(bud.acc_max_rows, m, bud.norm_rows_bytes // bytes_per_row))
    while m % rt:
        rt -= 1
    return rt


def norm_kernel(name: str, m: int, h: int, *, kind: str, eps: float, cores: int,
                budgets: Budgets | None = None, unit_cap: int | None = None) -> Kernel:
    """``kind`` ``rmsnorm`` or ``layernorm`` over ``m`` rows of ``h`` features."""
    if kind not in ("rmsnorm", "layernorm"):
        raise ConfigError(f"{name}: unknown norm {kind!r}")
    ln = kind == "layernorm"
    rt = _rows(m, h * (2 + 4 + 4 + 1 + (2 if ln else 0)), budgets or Budgets.of())
    while rt > 1 and m // rt < cores:              # a block of rows for every core
        rt -= 1
        while m % rt:
            rt -= 1
    units = m // rt
    act = ACT
    b = ProgramBuilder()
    x = b.tensor("X", (m, h), BF16)
    gw = b.tensor("G", (1, h), F32)
    y = b.tensor("Y", (m, h), act)
    xt = b.tile("XT", (rt, h), BF16)
    t0 = b.tile("T0", (rt, h), F32)
    t1 = b.tile("T1", (rt, h), F32)
    r = b.tile("R", (rt, 1), F32)
    gt = b.tile("GT", (1, h), F32)
    yq = b.tile("YQ", (rt, h), act)
    if ln:
        bw = b.tensor("B", (1, h), F32)
        ys = b.tensor("YS", (m, h), BF16)
        bt = b.tile("BT", (1, h), F32)
        yb = b.tile("YB", (rt, h), BF16)
    r_i, r_cnt, r_row, r_one = Reg(1), Reg(2), Reg(3), Reg(4)
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    b.li(r_one, 1)
    b.blt(r_cnt, r_one, "idle")                       # cores without rows load nothing
    b.dma_ld(gt, gw, 0, 0)
    if ln:
        b.dma_ld(bt, bw, 0, 0)
    with b.loop(r_i, r_cnt, cores):
        b.add(r_row, r_i, CID)
        b.muli(r_row, r_row, rt)
        b.dma_ld(xt, x, r_row, 0)
        src = xt
        if ln:
            b.vrsum(r, xt)
            b.vmuli(r, r, 1.0 / h)
            b.vsub(t1, xt, r)
            src = t1
        b.vmul(t0, src, src)
        b.vrsum(r, t0)
        b.vmuli(r, r, 1.0 / h)
        b.vaddi(r, r, eps)
        b.vrsqrt(r, r)
        b.vmul(t0, src, r)
        b.vmul(t0, t0, gt)
        if ln:
            b.vadd(t0, t0, bt)
            b.vcvt(yb, t0)
            b.dma_st(ys, r_row, 0, yb)
        b.vquant(yq, t0)
        b.dma_st(y, r_row, 0, yq)
    b.label("idle")
    b.barrier()
    gains = F32.nbytes(1, h) * (2 if ln else 1)
    rows = m * (BF16.nbytes(1, h) * (2 if ln else 1) + act.nbytes(1, h))
    compulsory = {"X": BF16.nbytes(m, h), "G": F32.nbytes(1, h), "Y": act.nbytes(m, h)}
    if ln:
        compulsory |= {"B": F32.nbytes(1, h), "YS": BF16.nbytes(m, h)}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores, units=units,
                  mma_flops=0, dma_bytes=min(cores, units) * gains + rows,
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  private_rows=("X",),
                  params=NormParams(m=m, h=h, norm=kind, eps=eps, rt=rt, out=act,
                                    unit_cap=unit_cap))


def rope_kv_kernel(name: str, *, batch: int, tokens: int, heads: int, kv_heads: int,
                   head_dim: int, position: int, context: int, rope: bool, cores: int,
                   kv: Storage = ACT, unit_cap: int | None = None) -> Kernel:
    """Q to FP8 (with RoPE), K (with RoPE) and V into rows of the K and V caches.

    ``tokens``: new tokens per sequence (1 = decode, at ``position``; else a prompt from 0, a
    multiple of 32 when above 64); ``context``: the cache length (as
    :func:`~prodigy_sim.lowering._attention.attention_kernel` pads it).
    """
    d = head_dim
    decode = tokens == 1
    ck, cp = key_chunk(context), padded_context(context)
    rt = 1 if decode else min(tokens, 64)
    if not decode and tokens % rt:
        raise ConfigError(f"{name}: {tokens} prompt tokens are not a multiple of {rt}")
    tb = tokens // rt
    if not decode and tb > 1 and rt != ck:      # a token block is one key chunk of VT
        raise ConfigError(f"{name}: {tokens} prompt tokens in a cache of {context} keys")
    m = batch * tokens
    act = ACT
    b = ProgramBuilder()
    qkv = b.tensor("QKV", (m, (heads + 2 * kv_heads) * d), BF16)
    q = b.tensor("Q", q_shape(batch, heads, d, cp, decode), act)
    kc = b.tensor("KC", (batch * kv_heads * cp, d), kv)
    xt = b.tile("XT", (rt, d), BF16)
    a = b.tile("A", (rt, d), F32)
    bb = b.tile("BB", (rt, d), F32)
    oq = b.tile("OQ", (rt, d), act)
    ok = b.tile("OK", (rt, d), kv)
    if rope:
        cos = b.tensor("COS", (max(context, tokens), d), BF16)
        sin = b.tensor("SIN", (max(context, tokens), d), BF16)
        ct = b.tile("CT", (rt, d), BF16)
        stt = b.tile("STT", (rt, d), BF16)
    vc = b.tensor("VC", (batch * kv_heads * cp, d), kv)
    if not decode:
        vt = b.tensor("VT", vt_shape(batch, kv_heads, d, cp, ck), kv)
        vtt = b.tile("VTT", (d, rt), F32)
        vq = b.tile("VQ", (d, rt), kv)
    r_i, r_cnt, r_u, r_h, r_t, r_row, r_pos, r_k = (Reg(i) for i in (1, 2, 3, 4, 5, 6, 7, 8))

    def section(nh: int, col0: int, body) -> None:
        """Units (b, token block, head) over ``nh`` heads starting at column ``col0`` of QKV."""
        unit_loop_count(b, r_cnt, batch * tb * nh, cores, unit_cap)
        with b.loop(r_i, r_cnt, cores):
            b.add(r_u, r_i, CID)
            b.divi(r_t, r_u, nh)
            b.muli(r_h, r_t, nh)
            b.sub(r_h, r_u, r_h)                   # head
            b.muli(r_row, r_t, rt)                 # token row (b * tokens + block * rt)
            b.divi(r_k, r_t, tb)                   # sequence
            b.muli(r_pos, r_k, tb)
            b.sub(r_pos, r_t, r_pos)
            b.muli(r_pos, r_pos, rt)               # position of the block in the sequence
            if decode:
                b.li(r_pos, position)
            b.muli(r_t, r_h, d)
            if col0:
                b.addi(r_t, r_t, col0)
            b.dma_ld(xt, qkv, r_row, r_t)
            body()

    def apply_rope() -> None:
        if rope:
            b.dma_ld(ct, cos, r_pos, 0)
            b.dma_ld(stt, sin, r_pos, 0)
            b.vmul(a, xt, ct)
            b.vroth(bb, xt)
            b.vmul(bb, bb, stt)
            b.vadd(a, a, bb)
        else:
            b.vcvt(a, xt)

    def q_body() -> None:
        apply_rope()
        b.vquant(oq, a)
        b.muli(r_t, r_k, heads)                     # Q row b heads + h (decode),
        b.add(r_t, r_t, r_h)                        # (b heads + h) cp + position (prefill)
        if not decode:
            b.muli(r_t, r_t, cp)
            b.add(r_t, r_t, r_pos)
        b.dma_st(q, r_t, 0, oq)

    def kv_base() -> None:                          # r_k = b * kv_heads + h
        b.muli(r_k, r_k, kv_heads)
        b.add(r_k, r_k, r_h)

    def k_body() -> None:
        apply_rope()
        b.vquant(ok, a)
        kv_base()
        b.muli(r_t, r_k, cp)
        b.add(r_t, r_t, r_pos)
        b.dma_st(kc, r_t, 0, ok)

    def v_body() -> None:
        b.vquant(ok, xt)
        kv_base()
        b.muli(r_t, r_k, cp)
        b.add(r_t, r_t, r_pos)
        b.dma_st(vc, r_t, 0, ok)
        if not decode:                              # VT row ((b kv + h) cp/ck + pos/ck) d
            b.muli(r_t, r_k, cp // ck)
            b.divi(r_k, r_pos, ck)
            b.add(r_t, r_t, r_k)
            b.muli(r_t, r_t, d)
            b.vtrans(vtt, xt)
            b.vquant(vq, vtt)
            b.dma_st(vt, r_t, 0, vq)

    section(heads, 0, q_body)
    section(kv_heads, heads * d, k_body)
    section(kv_heads, (heads + kv_heads) * d, v_body)
    b.barrier()

    nunits = batch * tb
    nbytes = nunits * (heads + 2 * kv_heads) * rt * BF16.nbytes(1, d)          # QKV in
    if rope:
        nbytes += nunits * (heads + kv_heads) * 2 * rt * BF16.nbytes(1, d)     # tables
    nbytes += nunits * heads * rt * act.nbytes(1, d)                            # Q out
    nbytes += 2 * nunits * kv_heads * rt * kv.nbytes(1, d)                      # K, V out
    if not decode:
        nbytes += nunits * kv_heads * d * kv.nbytes(1, rt)                      # V^T scratch
    m_in = batch * tokens
    compulsory = {"QKV": BF16.nbytes(m_in, (heads + 2 * kv_heads) * d),
                  "Q": act.nbytes(m_in, heads * d), "KC": kv.nbytes(m_in * kv_heads, d),
                  "VC": kv.nbytes(m_in * kv_heads, d)}
    if rope:
        compulsory |= {"COS": BF16.nbytes(tokens, d), "SIN": BF16.nbytes(tokens, d)}
    if not decode:
        compulsory["VT"] = kv.nbytes(batch * kv_heads * d, tokens)
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores,
                  units=nunits * (heads + 2 * kv_heads), mma_flops=0, dma_bytes=nbytes,
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  uniform_units=False, private_rows=("QKV",),
                  params=RopeKVParams(batch=batch, tokens=tokens, heads=heads,
                                      kv_heads=kv_heads, head_dim=d, position=position,
                                      context=context, rope=rope, kv=kv, q=act, decode=decode,
                                      ck=ck, cp=cp, rt=rt, unit_cap=unit_cap))
