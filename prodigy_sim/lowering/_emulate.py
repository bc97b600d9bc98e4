"""Plain numpy emulation of the lowered kernels: the same quantized arithmetic as their programs on
:func:`prodigy_sim.functional.run`, to the bit, without interpreting the programs.

:func:`emulate_kernel` reads a :class:`~prodigy_sim.lowering.Kernel`'s construction parameters
(:attr:`Kernel.params`) and mirrors the *algorithm* its program executes, vectorized over every
unit at once (units, cores and DMA only move data; what decides the bits is which values meet in
which operation, in which order). The numeric operations are
:mod:`prodigy_sim.functional.reference` - the numeric specification of ``isa/README.md``
written again in numpy - and :func:`prodigy_sim.numerics.quantize` for VQUANT. Per kernel:

``linear``
    ``acc`` = ``C`` / ``CU`` (``init``), else ``R`` (residual epilogues, ACC.LD) or +0; the
    MMA over K with a new instruction at every K tile of ``kt`` (chunks of 128 counted from each
    tile); ``store`` / ``residual``:
    ACC.ST to bfloat16; otherwise float32 ``f = acc`` (+ ``BIAS``; GELU; gated:
    ``silu(f) * acc_up``), then VQUANT to FP8 (``quant``, ``bias``, ``gelu``, ``gated``) or VCVT
    to bfloat16 (``bias_store``, ``bias_residual``). Dense and 8:4 sparse weights, FP8 or BF16
    activations.
``norm`` (``rmsnorm`` / ``layernorm``)
    per row, in the program's operation order: (LayerNorm: ``mu = VRSUM(x) * fl32(1/h)``,
    ``x - mu``) ``VRSUM(x^2) * fl32(1/h) + eps``, ``fl32(1/fl32(sqrt))``, ``x * r * G`` (+ ``B``
    and the bfloat16 ``YS``), VQUANT.
``rope_kv``
    RoPE ``x cos + rotate_half(x) sin`` (or the plain bfloat16 values when ``rope=False``), Q to
    FP8 (rows ``b heads + h``, prefill ``(b heads + h) C + position``), K and V into their
    cache rows (``(b kv + h) C + position``), prefill also ``VT`` (the values transposed,
    quantized per token block of ``rt`` along the keys, chunk-major: ``vt_shape``).
``attention``
    ``S = Q K^T`` (MMA, float32), then per query block the key chunks of ``ck`` in order:
    ``S * scale`` (+ ``MASK`` on the block's last chunk), ``mc = VRMAX``, ``mn = max(M, mc)``,
    ``cr = exp(M - mn)``, ``P = exp(S - mn)``, ``L = fma(L, cr, VRSUM(P))``, ``M = mn + 0``,
    ``P`` to FP8 (prefill, VQUANT) or bfloat16 (decode, VCVT), ``OT = P V`` (MMA; decode's V is
    ``bf16(VDEQUANT(VC))``), ``OA = fma(OA, cr, OT)``; finish ``O = VQUANT(OA * (1 / L))``.
    Flash decoding stores each slice's ``OA``, ``M``, ``L`` (``OP``, ``MP``, ``LP``) and merges
    the slices in order (``l = fma(L_s, e^(M_s - m), l e^(m_old - m))``, likewise ``o``).

``spqr`` (:mod:`._spqr`)
    ``x = VDEQUANT(X)``; per weight and outlier group, from the residual (one group) or +0:
    ``VGATHER`` of the group's input columns, ``VMUL`` by the values and ``VSCATADD`` into the
    output columns (``functional.reference.vscatadd``: each destination's terms in order);
    with groups, ``C = ((R or +0) + CP_0) + CP_1 + ...``.

Scope: kernels built without ``unit_cap`` (a capped program skips units on purpose). The
program reinitializes a query block's state from the previous block's on the same core
(``M * 0 - 1e30``, ``L * 0``, ``OA * 0``, and ``finish`` leaves ``1 / L`` in ``L``); the emulation
starts every block from ``(-1e30, +0, +0)``. That is the same whenever the previous state was
finite - always for finite inputs, unless a query row had every key masked with ``-inf`` (its
``L = 0``, ``O`` NaN in both; the program then carries ``1 / 0 * 0 = NaN`` into that row of the
core's next block, the emulation does not) - and could differ only in the sign of a zero ``OA``
element meeting a ``-0`` ``P V`` sum (an underflow below 2^-149).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import reference as sp
from prodigy_sim.lowering._common import BF16, F32, Kernel, key_chunk, q_shape, vt_shape
from prodigy_sim.lowering._params import (
    AttentionParams,
    HadamardParams,
    LinearParams,
    NormParams,
    RopeKVParams,
    SpqrParams,
)
from prodigy_sim.lowering._ptq_ops import emulate_hadamard
from prodigy_sim.lowering._spqr import SPQR_OUTPUTS, emulate_spqr
from prodigy_sim.numerics import QuantizedTensor, ScaleKind, Storage, pack, quantize

__all__ = ["emulate_kernel", "KERNEL_OUTPUTS"]

KERNEL_OUTPUTS = {
    "linear": ("Y",),
    "norm": ("Y", "YS"),
    "rope_kv": ("Q", "KC", "VC", "VT"),
    "attention": ("O", "OP", "MP", "LP"),
    "hadamard": ("Y",),
    "spqr": ("C", "CU", "CP", "CPU"),
}
"""DDR tensors a kernel may write (``YS`` only for LayerNorm, ``VT`` only for prefill, ``OP``,
``MP``, ``LP`` only for flash decoding with more than one split; SpQR's ``CU`` only for two
weights, its partial sums ``CP`` / ``CPU`` only with outlier groups)."""

_f32 = np.float32
_NEG_INIT = _f32(-1.0e30)


# ---- DDR tensors in and out -----------------------------------------------------------------

def _block(st: Storage, what: str) -> int:
    """The scale block (elements >= 1) of a block-scaled storage."""
    if not st.block:
        raise ConfigError(f"{what} are stored with block scales (got {st})")
    return st.block


def _quant(x: np.ndarray, st: Storage) -> QuantizedTensor:
    """VQUANT / quantize of float32 values ``(R, C)`` with a storage's block, scale, sparsity."""
    return quantize(np.asarray(x, dtype=np.float32), st)


class _Inputs:
    """The caller's DDR tensors, converted as :func:`prodigy_sim.functional.ddr_image` stores
    them (float32 as is, bfloat16 rounded to nearest even, float arrays for quantized tensors
    quantized with the declaration); absent tensors are zero bytes."""

    def __init__(self, ddr: dict[str, object], known: dict[str, tuple[tuple[int, int], Storage]],
                 operands: dict | None = None) -> None:
        unknown = sorted(set(ddr) - set(known))
        if unknown:
            raise ConfigError(f"no tensor named {', '.join(map(repr, unknown))} in the kernel "
                              f"(tensors: {', '.join(known)})")
        self.ddr, self.known = ddr, known
        self.cache: dict = {}
        self.operands = operands

    def float(self, name: str) -> np.ndarray:
        shape, st = self.known[name]
        x = self.ddr.get(name)
        if x is None:
            return np.zeros(shape, dtype=np.float32)
        if isinstance(x, QuantizedTensor):
            raise ConfigError(f"tensor {name} is {st.fmt.name}; give float values")
        x = np.asarray(x, dtype=np.float32)
        if x.shape != shape:
            raise ConfigError(f"{name} is {shape}; got values of shape {x.shape}")
        if st.fmt.name == "float16":               # stored rounded to float16
            with np.errstate(over="ignore"):
                return x.astype(np.float16).astype(np.float32)
        return sp.bf16(x) if st == BF16 else x.copy()

    def quant(self, name: str) -> QuantizedTensor:
        shape, st = self.known[name]
        x = self.ddr.get(name)
        if x is None:
            return _QOut(shape, st).tensor()
        if not isinstance(x, QuantizedTensor):
            x = np.asarray(x)
            if x.shape != shape:
                raise ConfigError(f"{name} is {shape}; got values of shape {x.shape}")
            return _quant(x, st)
        want = (shape, st, 1)
        got = (tuple(x.shape), x.storage, x.axis)
        if want != got:
            raise ConfigError(f"{name}: the quantized tensor (shape, fmt, block, scale, sparsity, "
                              f"axis) = {got} does not match the kernel's {want}")
        return x

    def operand(self, name: str, rows: slice) -> tuple[np.ndarray, np.ndarray | None]:
        """``(values, lsb_exp(values))`` of rows of a quantized input (``lsb`` None if not
        cached): kept in the caller's ``operands`` dict when one was given, keyed by the
        QuantizedTensor object (held there, so its id stays unique) and the rows."""
        x = self.ddr.get(name)
        if self.operands is None or not isinstance(x, QuantizedTensor):
            return self.values(name, rows), None
        key = (id(x), rows.start, rows.stop)
        hit = self.operands.get(key)
        if hit is None:
            vals = self.values(name, rows)
            hit = self.operands[key] = (x, vals, sp.lsb_exp(vals))
        return hit[1], hit[2]

    def values(self, name: str, rows: slice = slice(None)) -> np.ndarray:
        """MMA operand values (float64, exact) of rows of a quantized or float tensor."""
        st = self.known[name][1]
        if st.fmt.wide:
            return self.float(name)[rows].astype(np.float64)
        key = ("q", name)
        if key not in self.cache:
            self.cache[key] = self.quant(name)
        return sp.scaled_f64(self.cache[key], rows)


class _QOut:
    """A quantized DDR tensor (dense, element codes unpacked) that tiles are stored into."""

    def __init__(self, shape: tuple[int, int], st: Storage,
                 init: QuantizedTensor | None = None) -> None:
        if st.sparsity is not None:
            raise ConfigError("emulated outputs are dense with block scales")
        self.st, self.shape, self.block = st, shape, _block(st, "emulated outputs")
        self.spec = st.fmt
        nblocks = -(-shape[1] // self.block)
        sdt = np.uint8 if st.scale.code_format is not None else np.float32
        if init is None:
            self.codes = np.zeros(shape, dtype=np.uint8)
            self.scales = np.zeros((shape[0], nblocks if st.scale != ScaleKind.NONE else 0),
                                   dtype=sdt)
        else:
            self.codes = init.element_codes().copy()
            self.scales = init.scales.copy()

    def store(self, rows, col: int, x: np.ndarray) -> None:
        """VQUANT of float32 ``x (r, w)`` (blocks from its first column) into rows ``rows``,
        columns ``[col, col + w)`` (``col`` a multiple of the block)."""
        if col % self.block:
            raise ConfigError(f"a quantized store at column {col} is not block aligned")
        q = _quant(x, self.st)
        w = x.shape[1]
        self.codes[rows, col:col + w] = q.element_codes()
        b0 = col // self.block
        self.scales[rows, b0:b0 + q.scales.shape[1]] = q.scales

    def tensor(self) -> QuantizedTensor:
        return QuantizedTensor(codes=pack(self.codes, self.spec.bits), scales=self.scales.copy(),
                               fmt=self.spec, shape=self.shape, axis=1, block=self.block,
                               scale=self.st.scale)


def _qout(inp: _Inputs, name: str) -> _QOut:
    shape, st = inp.known[name]
    return _QOut(shape, st, inp.quant(name) if name in inp.ddr else None)


def _v(x: np.ndarray) -> np.ndarray:
    """A vector operation's result: float32 with the canonical NaN."""
    return sp.canonical(x)


def _hadamard(kernel: Kernel, inp_ddr: dict) -> dict:
    p = kernel.params
    assert isinstance(p, HadamardParams)
    n = p.n
    inp = _Inputs(inp_ddr, {"X": ((p.m, n), p.act), "S": ((1, n), F32), "Y": ((p.m, n), p.act)})
    return {"Y": emulate_hadamard(kernel, inp.quant("X"), inp.float("S"))}


def _spqr(p: SpqrParams, inp_ddr: dict) -> dict:
    m, n = p.m, p.n
    known: dict[str, tuple[tuple[int, int], Storage]] = {"X": ((m, p.k), p.act)}
    if p.residual:
        known["R"] = ((m, n), BF16)
    for w, nm in enumerate(SPQR_OUTPUTS[:len(p.counts)]):
        known[nm[0]] = ((m, n), F32)
        if p.padded[w]:
            known.update({nm[1]: ((1, p.padded[w]), p.values),
                          nm[2]: ((1, p.padded[w]), p.index_k),
                          nm[3]: ((1, p.padded[w]), p.index_n)})
        if p.groups > 1:
            known[nm[4]] = ((p.groups * m, n), F32)
    return emulate_spqr(p, _Inputs(inp_ddr, known))


# ---- kernels --------------------------------------------------------------------------------

def _linear(p: LinearParams, inp_ddr: dict, operands: dict | None = None) -> dict:
    m, n, k, epi = p.m, p.n, p.k, p.epilogue
    w_st, act = p.weight, p.act
    gated = epi == "gated"
    has_bias = epi in ("bias", "bias_store", "bias_residual", "gelu")
    has_res = epi in ("residual", "bias_residual") and not p.init
    out_q = epi in ("quant", "bias", "gelu", "gated")
    out_st = p.out
    known = {"X": ((m, k), act), "W": ((n, k), w_st), "Y": ((m, n), out_st)}
    if gated:
        known["WU"] = ((n, k), w_st)
    if has_bias:
        known["BIAS"] = ((1, n), F32)
    if has_res:
        known["R"] = ((m, n), BF16)
    inits = ("C", "CU")[:2 if gated else 1] if p.init else ()
    known.update({name: ((m, n), F32) for name in inits})
    inp = _Inputs(inp_ddr, known, operands)
    a = inp.values("X")
    bounds = tuple(range(0, k, p.kt))
    acc0 = (inp.float("C") if p.init else inp.float("R") if has_res
            else np.zeros((m, n), dtype=np.float32))
    acc_u = inp.float("CU") if p.init and gated else np.zeros((m, n), dtype=np.float32)
    bias = inp.float("BIAS") if has_bias else None
    wnames = ["W", "WU"] if gated else ["W"]
    y = np.empty((m, n), dtype=np.float32)
    yq = _qout(inp, "Y") if out_q else None
    step = max(p.nt * p.an, (1 << 22) // max(k, 1) // p.nt * p.nt)
    for c0 in range(0, n, step):                  # bounded float64 copies of the weights
        c1 = min(n, c0 + step)
        wv, wl = inp.operand("W", slice(c0, c1))
        acc = sp.mma(acc0[:, c0:c1], a, wv, bounds=bounds, lsb_w=wl)
        if epi in ("store", "residual"):
            y[:, c0:c1] = sp.bf16(acc)
            continue
        with np.errstate(all="ignore"):
            f = acc
            if bias is not None:
                f = _v(f + bias[:, c0:c1])
            if epi == "gelu":
                f = sp.gelu32(f)
            if gated:
                uv, ul = inp.operand(wnames[1], slice(c0, c1))
                u = sp.mma(acc_u[:, c0:c1], a, uv, bounds=bounds, lsb_w=ul)
                f = _v(sp.silu32(f) * u)
        if yq is not None:
            yq.store(slice(None), c0, f)
        else:
            y[:, c0:c1] = sp.bf16(f)
    return {"Y": yq.tensor() if yq is not None else y}


def _norm(p: NormParams, inp_ddr: dict) -> dict:
    m, h, ln = p.m, p.h, p.norm == "layernorm"
    act = p.out
    known = {"X": ((m, h), BF16), "G": ((1, h), F32), "Y": ((m, h), act)}
    if ln:
        known.update(B=((1, h), F32), YS=((m, h), BF16))
    inp = _Inputs(inp_ddr, known)
    x, g = inp.float("X"), inp.float("G")
    inv_h, eps = _f32(1.0 / h), _f32(p.eps)
    out: dict[str, np.ndarray | QuantizedTensor] = {}
    with np.errstate(all="ignore"):
        src = x
        if ln:
            mu = _v(sp.vrsum(x) * inv_h)
            src = _v(x - mu)
        r = sp.vrsum(_v(src * src))
        r = _v(r * inv_h)
        r = _v(r + eps)
        r = sp.vrsqrt(r)
        t = _v(_v(src * r) * g)
        if ln:
            t = _v(t + inp.float("B"))
            out["YS"] = sp.bf16(t)
    y = _qout(inp, "Y")
    y.store(slice(None), 0, t)
    out["Y"] = y.tensor()
    return out


def _rope_kv(p: RopeKVParams, inp_ddr: dict) -> dict:
    bsz, tok, nh, nkv, d = p.batch, p.tokens, p.heads, p.kv_heads, p.head_dim
    decode, cp, rt, rope = p.decode, p.cp, p.rt, p.rope
    act, kv = p.q, p.kv
    if d % _block(act, "the Q tiles") or d % _block(kv, "the KV cache"):
        raise ConfigError(f"head_dim {d} is not a multiple of the MX block")
    m = bsz * tok
    known = {"QKV": ((m, (nh + 2 * nkv) * d), BF16),
             "Q": (q_shape(bsz, nh, d, cp, decode), act),
             "KC": ((bsz * nkv * cp, d), kv), "VC": ((bsz * nkv * cp, d), kv)}
    if rope:
        tab = (max(p.context, tok), d)
        known.update(COS=(tab, BF16), SIN=(tab, BF16))
    if not decode:
        known["VT"] = (vt_shape(bsz, nkv, d, cp, key_chunk(p.context)), kv)
    inp = _Inputs(inp_ddr, known)
    x = inp.float("QKV").reshape(bsz, tok, nh + 2 * nkv, d)
    pos = np.array([p.position]) if decode else np.arange(tok)
    half = d // 2

    def apply_rope(xs: np.ndarray) -> np.ndarray:
        if not rope:
            return xs                                 # VCVT bfloat16 -> float32: exact
        cos = inp.float("COS")[pos][None, :, None, :]
        sin = inp.float("SIN")[pos][None, :, None, :]
        with np.errstate(all="ignore"):
            a = _v(xs * cos)
            bb = np.concatenate([-xs[..., half:], xs[..., :half]], axis=-1)  # VROTH: sign flip
            return _v(a + _v(bb * sin))

    out = {}
    q = _qout(inp, "Q")
    seq_head = np.arange(bsz)[:, None, None] * nh + np.arange(nh)[None, :, None]     # (B, H, 1)
    q_rows = (seq_head if decode else seq_head * cp + pos).reshape(-1)   # head-major (q_shape)
    q.store(q_rows, 0, apply_rope(x[:, :, :nh]).transpose(0, 2, 1, 3).reshape(-1, d))
    out["Q"] = q.tensor()
    seq_kv = (np.arange(bsz)[:, None] * nkv + np.arange(nkv)[None, :])      # (B, kv)
    rows = (seq_kv[:, None, :] * cp + pos[None, :, None]).reshape(-1)        # (B, tok, kv)
    kc, vc = _qout(inp, "KC"), _qout(inp, "VC")
    kc.store(rows, 0, apply_rope(x[:, :, nh:nh + nkv]).reshape(-1, d))
    xv = x[:, :, nh + nkv:]
    vc.store(rows, 0, xv.reshape(-1, d))
    out["KC"], out["VC"] = kc.tensor(), vc.tensor()
    if not decode:
        vt = _qout(inp, "VT")
        ck = key_chunk(p.context)
        xt = xv.transpose(0, 2, 3, 1).reshape(bsz * nkv * d, tok)           # (b kv + h) d, tok
        first = (seq_kv.reshape(-1, 1) * (cp // ck) * d + np.arange(d)).reshape(-1)
        for t0 in range(0, tok, rt):                  # chunk-major rows (vt_shape)
            vt.store(first + t0 // ck * d, t0 % ck, xt[:, t0:t0 + rt])
        out["VT"] = vt.tensor()
    return out


class _Softmax:
    """Online-softmax state of query rows (``lead`` axes): M, L ``(..., 1)`` and OA ``(..., d)``,
    float32, fresh (-1e30, +0, +0)."""

    def __init__(self, lead: tuple[int, ...], d: int) -> None:
        self.m = np.full(lead + (1,), _NEG_INIT, dtype=np.float32)
        self.l = np.zeros(lead + (1,), dtype=np.float32)
        self.oa = np.zeros(lead + (d,), dtype=np.float32)

    def chunk(self, sel, s: np.ndarray, scale: np.float32, mask: np.ndarray | None,
              masked: np.ndarray | None, to_p, pv) -> None:
        """One key chunk for the rows ``sel`` of the state: ``s`` the float32 ``S`` chunk
        ``(..., rows, ck)``; ``mask`` added where ``masked`` (broadcast over the rows);
        ``to_p``: P's storage conversion (values, float64); ``pv(P) -> OT`` the P V MMA."""
        with np.errstate(all="ignore"):
            st = _v(s * scale)
            if masked is not None and masked.any():
                st = np.where(masked, _v(st + mask), st)
            m0 = self.m[sel]
            mn = sp.vmax(m0, sp.vrmax(st))
            cr = sp.exp32(_v(m0 - mn))
            st = sp.exp32(_v(st - mn))
            self.l[sel] = sp.vfma(self.l[sel], cr, sp.vrsum(st))
            self.m[sel] = _v(mn + _f32(0.0))
            ot = pv(to_p(st))
            self.oa[sel] = sp.vfma(self.oa[sel], cr, ot)

    def finish(self) -> np.ndarray:
        """``OA * (1 / L)``, float32."""
        with np.errstate(all="ignore"):
            return _v(self.oa * sp.vrcp(self.l))


def _p_fp8(st: Storage):
    def to_p(x: np.ndarray) -> np.ndarray:
        ck = x.shape[-1]
        return sp.scaled_f64(_quant(x.reshape(-1, ck), st)).reshape(x.shape)
    return to_p


def _p_bf16(x: np.ndarray) -> np.ndarray:
    return sp.bf16(x).astype(np.float64)


def _attention(p: AttentionParams, inp_ddr: dict) -> dict:
    bsz, nh, nkv, d = p.batch, p.heads, p.kv_heads, p.head_dim
    decode, ck, cp, ns, cps = p.decode, p.ck, p.cp, p.splits, p.chunks_per_split
    act, kv = p.q, p.kv
    if p.dh % _block(act, "the Q tiles"):
        raise ConfigError(f"head_dim {d}: output tiles of {p.dh} columns are not whole MX "
                          "blocks")
    scale = _f32(p.scale)
    g = nh // nkv
    split = ns > 1
    qr = g if decode else ck
    nchunks = cp // ck
    rows_q = bsz * nh if decode else bsz * cp
    cols_q = d if decode else nh * d
    known = {"Q": (q_shape(bsz, nh, d, cp, decode), act), "KC": ((bsz * nkv * cp, d), kv),
             "O": ((rows_q, cols_q), act),
             "MASK": ((2 * qr if split else qr, ck), F32)}
    known.update({"VC": ((bsz * nkv * cp, d), kv)} if decode
                 else {"VT": (vt_shape(bsz, nkv, d, cp, ck), kv)})
    if split:
        units = bsz * nkv * ns
        known.update(OP=((units * qr, d), F32), MP=((units * qr, 1), F32),
                     LP=((units * qr, 1), F32))
    inp = _Inputs(inp_ddr, known)
    mask = inp.float("MASK")
    k = inp.values("KC").reshape(bsz, nkv, cp, d)
    o = _qout(inp, "O")
    out: dict = {}
    if not decode:
        nb = nchunks
        kvh = np.arange(nh) // g
        q = inp.values("Q").reshape(bsz, nh, cp, d)                             # (B, H, cp, d)
        vt = (inp.values("VT").reshape(bsz, nkv, nchunks, d, ck).transpose(0, 1, 3, 2, 4)
              .reshape(bsz, nkv, d, cp)[:, kvh])                                # (B, H, d, cp)
        s = sp.mma(np.zeros((1, 1), np.float32), q, k[:, kvh]).reshape(bsz, nh, nb, ck, cp)
        state = _Softmax((bsz, nh, nb, ck), d)
        to_p = _p_fp8(act)
        for c in range(nb):
            blocks = np.arange(c, nb) if p.causal else np.arange(nb)
            last = blocks == c if p.causal else np.full(nb, c == nb - 1)
            sel = (slice(None), slice(None), blocks)
            vc = vt[:, :, None, :, c * ck:(c + 1) * ck]                          # (B,H,1,d,ck)
            state.chunk(sel, s[:, :, blocks, :, c * ck:(c + 1) * ck], scale, mask,
                        last[:, None, None], to_p,
                        lambda pp, vc=vc: sp.mma(np.zeros((1, 1), np.float32), pp, vc))
        ot = state.finish().transpose(0, 2, 3, 1, 4).reshape(rows_q, cols_q)  # (B, nb, ck, H, d)
        o.store(slice(None), 0, ot)
        out["O"] = o.tensor()
        return out

    q = inp.values("Q").reshape(bsz, nkv, g, d)
    vb = sp.bf16(sp.dequant_f32(inp.quant("VC")))                # VDEQUANT, then a BF16 tile
    vt = vb.astype(np.float64).reshape(bsz, nkv, cp, d).swapaxes(-1, -2)       # (B, kv, d, cp)
    s = sp.mma(np.zeros((1, 1), np.float32), q[:, :, None], k[:, :, None])     # (B,kv,1,g,cp)
    s = np.broadcast_to(s, (bsz, nkv, ns, g, cp))
    n_s = [min(cps, nchunks - i * cps) for i in range(ns)]
    mrow = np.zeros((ns, 1, 1), dtype=np.int64)
    if split:
        mrow[-1] = 1
    slice_mask = mask.reshape(-1, qr, ck)[mrow[:, 0, 0]]                      # (ns, qr, ck)
    state = _Softmax((bsz, nkv, ns, g), d)
    for j in range(cps):
        live = np.array([j < n for n in n_s])
        idx = np.nonzero(live)[0]
        cidx = idx * cps + j                                                    # chunk per slice
        cols = (cidx[:, None] * ck + np.arange(ck)[None, :])                    # (nsA, ck)
        sc = np.take_along_axis(s[:, :, idx], cols[None, None, :, None, :], axis=-1)
        vc = np.stack([vt[..., c0:c0 + ck] for c0 in cidx * ck], axis=2)     # (B,kv,nsA,d,ck)
        masked = np.array([j == n_s[i] - 1 for i in idx])[:, None, None]
        state.chunk((slice(None), slice(None), idx), sc, scale, slice_mask[idx], masked,
                    _p_bf16, lambda pp, vc=vc: sp.mma(np.zeros((1, 1), np.float32), pp, vc))
    if not split:
        o.store(slice(None), 0, state.finish().reshape(rows_q, d))
        out["O"] = o.tensor()
        return out
    out["OP"] = state.oa.reshape(-1, d).copy()
    out["MP"] = state.m.reshape(-1, 1).copy()
    out["LP"] = state.l.reshape(-1, 1).copy()
    m_ = np.full((bsz, nkv, g, 1), _NEG_INIT, dtype=np.float32)
    l_ = np.zeros_like(m_)
    oa = np.zeros((bsz, nkv, g, d), dtype=np.float32)
    with np.errstate(all="ignore"):
        for i in range(ns):
            ms, ls, os_ = state.m[:, :, i], state.l[:, :, i], state.oa[:, :, i]
            mn = sp.vmax(m_, ms)
            cr = sp.exp32(_v(m_ - mn))
            cs = sp.exp32(_v(ms - mn))
            l_ = sp.vfma(ls, cs, _v(l_ * cr))
            oa = sp.vfma(os_, cs, _v(oa * cr))
            m_ = _v(mn + _f32(0.0))
        ot = _v(oa * sp.vrcp(l_))
    o.store(slice(None), 0, ot.reshape(rows_q, d))
    out["O"] = o.tensor()
    return out


def emulate_kernel(kernel: Kernel, ddr: dict[str, np.ndarray | QuantizedTensor], *,
                   operands: dict | None = None) -> dict[str, np.ndarray | QuantizedTensor]:
    """Every DDR tensor ``kernel``'s program writes, computed in plain numpy from the DDR
    tensors ``ddr`` (name -> float array or :class:`~prodigy_sim.numerics.QuantizedTensor`, as
    :func:`prodigy_sim.functional.run` takes them; absent inputs are zero bytes).

    Returns name -> float32 ``np.ndarray`` (float32 and bfloat16 tensors, bfloat16 as its
    float32 values) or :class:`~prodigy_sim.numerics.QuantizedTensor` (codes and scales), the
    same shapes, types and bits as ``functional.run(kernel.program, ddr=ddr,
    cores=kernel.cores).tensor(name)``. Names (:data:`KERNEL_OUTPUTS`): linear ``Y``; norm ``Y``
    (+ ``YS`` for LayerNorm); online Hadamard ``Y``; rope_kv ``Q``, ``KC``, ``VC`` (+ ``VT`` for
    prefill); attention ``O`` (+ ``OP``, ``MP``, ``LP`` with flash-decoding splits); SpQR
    outliers ``C`` (+ ``CU`` for two weights, ``CP`` / ``CPU`` with outlier groups). Output
    tensors given in ``ddr`` (e.g. a KV cache filled by earlier steps) keep the parts the
    program does not write. Raises ConfigError for kernels without recorded parameters or built
    with a ``unit_cap``. ``operands``: a dict the caller keeps between calls to reuse the
    decoded float64 values of quantized inputs given as the same QuantizedTensor objects
    (weights); it holds them, so it grows with the weights (about 16 bytes per weight).
    """
    p = kernel.params
    if p.unit_cap is not None:
        raise ConfigError(f"kernel {kernel.name!r} was built with unit_cap={p.unit_cap}: its "
                          "program runs a subset of the units; emulation needs the full kernel")
    if isinstance(p, LinearParams):
        return _linear(p, ddr, operands)
    if isinstance(p, NormParams):
        return _norm(p, ddr)
    if isinstance(p, RopeKVParams):
        return _rope_kv(p, ddr)
    if isinstance(p, AttentionParams):
        return _attention(p, ddr)
    if isinstance(p, HadamardParams):
        return _hadamard(kernel, ddr)
    if isinstance(p, SpqrParams):
        return _spqr(p, ddr)
    raise ConfigError(f"kernel {kernel.name!r} ({p.op}) is a timing kernel of a mixture-of-experts "
                      "layer and is not emulated")

