"""Kernels of post-training-quantization schemes that add work to a layer: online Hadamard
transforms (QuaRot) and SpQR's outliers and scale decoding.

**Online Hadamard** (:func:`hadamard_kernel`): ``Y = quant(x diag(s) (H_p (x) H_m) c)`` over the
FP8 input ``X (M, n)`` of a linear layer, ``n = p m`` (``m`` a power of two, a multiple of the MX
block 32), ``s`` the rotation's random signs (DDR tensor ``S (1, n)``), ``c = 1 / sqrt(n)``. A
unit is a block of ``rt`` token rows; per unit, with the ``p`` column chunks ``X_i (rt, m)``:

- per chunk ``i``: ``DMA.LD`` (FP8), ``VDEQUANT``, ``VMUL`` by the signs ``S_i`` (loaded once
  per core) -> ``T_i``;
- per output chunk ``a``: ``U = sum_i H_p[i, a] T_i`` in ``i`` order as ``VADD`` / ``VSUB`` (``p
  - 1`` ops; the global sign ``H_p[0, a]`` goes into the scale), then ``log2 m`` ``VHBF`` passes
  (the fast Walsh-Hadamard transform's butterflies at strides ``1, 2, ..., m/2``), ``VMULI`` by
  ``H_p[0, a] c``, ``VQUANT`` to FP8 and ``DMA.ST`` at column ``a m``.

Vector operations per row: ``n`` sign multiplies, ``n (p - 1)`` adds of the ``p x p`` factor,
``n log2 m`` butterfly adds, ``n`` scalings (and ``n`` dequantizations, ``n`` quantizations).
:func:`emulate_hadamard` recomputes the output in plain numpy in the same order.

**SpQR** (:func:`spqr_kernel`): the work SpQR adds to a linear layer beyond its base storage's
GEMM, as a cost program (the ISA has no gather or scatter, so its values are not the outlier
product; its instructions, element counts and bytes are). Units are chunks of ``c`` outliers;
per unit: ``DMA.LD`` of the outliers' float16 values and CSR index bytes and of the ``T x c``
gathered FP8 inputs, ``VDEQUANT`` / ``VCVT`` and one ``VFMA`` over ``(T, c)`` (the outlier
products accumulated into the rows' corrections: 2 FLOPs per outlier and token); then per core
the ``(T, c)`` corrections to DDR (BF16). The scale decode ``lo + step x code`` of the first-level
scale groups is one ``VFMA`` per group, over ``(1, g)`` tiles of the 3-bit codes' bytes
(``DMA.LD`` of the code and second-level bytes beyond the base storage's scales).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.isa import CID, ProgramBuilder, Reg
from prodigy_sim.lowering._common import ACT, BF16, F32, Budgets, Kernel, unit_loop_count
from prodigy_sim.lowering._params import HadamardParams, SpqrParams
from prodigy_sim.numerics import QuantizedTensor, Storage, quantize
from prodigy_sim.ptq import hadamard_matrix

__all__ = ["HadamardParams", "SpqrParams", "OnlineSite", "OutlierSite", "PtqWork",
           "hadamard_kernel", "emulate_hadamard", "spqr_kernel", "hadamard_vector_ops",
           "spqr_vector_ops", "insert_ptq_ops"]

F16 = Storage.of("float16")


@dataclass(frozen=True)
class OnlineSite:
    """An online Hadamard transform of the input of lowered op ``before`` (e.g. ``down_proj``):
    size ``n = p m``."""

    before: str
    n: int
    p: int
    m: int


@dataclass(frozen=True)
class OutlierSite:
    """SpQR work after lowered op ``after`` (e.g. ``qkv_proj``), per layer: ``count`` outliers
    with ``value_bytes`` + ``index_bytes``, ``groups`` first-level scale groups and
    ``scale_bytes`` of scale codes beyond the base storage's scales (0 if none)."""

    after: str
    count: int
    value_bytes: int
    index_bytes: int
    groups: int
    scale_bytes: int = 0

    @property
    def weight_bytes(self) -> int:
        return self.value_bytes + self.index_bytes + self.scale_bytes


@dataclass(frozen=True)
class PtqWork:
    """What a PTQ scheme adds to every layer of a model's lowering (hashable)."""

    online: tuple[OnlineSite, ...] = ()
    outliers: tuple[OutlierSite, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.online and not self.outliers


def _hp(p: int) -> np.ndarray:
    return np.asarray(hadamard_matrix(p), dtype=np.int64)


def _check_sizes(n: int, p: int, mm: int) -> None:
    if p < 1 or mm < 1 or mm & (mm - 1) or p * mm != n:
        raise ConfigError(f"online Hadamard: size {n} is not p x m with m a power of two "
                          f"(got p={p}, m={mm})")
    if mm % 32:
        raise ConfigError(f"online Hadamard: the power-of-two factor m={mm} of size {n} must be "
                          "a multiple of the MX block (32) for the FP8 tiles")


def hadamard_vector_ops(rows: int, n: int, p: int, mm: int) -> dict[str, int]:
    """Elements per vector operation class of :func:`hadamard_kernel` over ``rows`` rows
    (module docstring): ``dequant``, ``sign_mul``, ``pxp_add``, ``butterfly``, ``scale``,
    ``quant``."""
    return {"dequant": rows * n, "sign_mul": rows * n, "pxp_add": rows * n * (p - 1),
            "butterfly": rows * n * (mm.bit_length() - 1), "scale": rows * n,
            "quant": rows * n}


def hadamard_kernel(name: str, m: int, n: int, p: int, mm: int, *, cores: int,
                    budgets: Budgets | None = None, act: Storage = ACT,
                    unit_cap: int | None = None) -> Kernel:
    """The online Hadamard transform of ``X (m, n)`` into ``Y (m, n)`` (module docstring)."""
    _check_sizes(n, p, mm)
    bud = budgets or Budgets.of()
    per_row = 2 * p * mm * 4 + 2 * p * act.nbytes(1, mm)
    rt = max(1, min(bud.acc_max_rows, m, (bud.norm_rows_bytes - p * mm * 4) // per_row))
    while m % rt:
        rt -= 1
    while rt > 1 and m // rt < cores:              # a block of rows for every core
        rt -= 1
        while m % rt:
            rt -= 1
    units = m // rt
    hp = _hp(p)
    b = ProgramBuilder()
    x = b.tensor("X", (m, n), act)
    sw = b.tensor("S", (1, n), F32)
    y = b.tensor("Y", (m, n), act)
    xq = [b.tile(f"XQ{i}", (rt, mm), act) for i in range(p)]
    yq = [b.tile(f"YQ{a}", (rt, mm), act) for a in range(p)]
    us = [b.tile(f"U{a}", (rt, mm), F32) for a in range(p)]
    ts = [b.tile(f"T{i}", (rt, mm), F32) for i in range(p)]
    ss = [b.tile(f"S{i}", (1, mm), F32) for i in range(p)]
    r_i, r_cnt, r_row, r_one = Reg(1), Reg(2), Reg(3), Reg(4)
    unit_loop_count(b, r_cnt, units, cores, unit_cap)
    b.li(r_one, 1)
    b.blt(r_cnt, r_one, "idle")
    for i in range(p):
        b.dma_ld(ss[i], sw, 0, i * mm)
    scale = 1.0 / math.sqrt(n)
    # independent chains (one per output chunk) are interleaved so that their latencies overlap
    with b.loop(r_i, r_cnt, cores):
        b.add(r_row, r_i, CID)
        b.muli(r_row, r_row, rt)
        for i in range(p):
            b.dma_ld(xq[i], x, r_row, i * mm)
        for i in range(p):
            b.vdequant(ts[i], xq[i])
            b.vmul(ts[i], ts[i], ss[i])
        src = ts[:1] * p
        if p > 1:
            for i in range(1, p):
                for a in range(p):
                    add = b.vadd if hp[0, a] * hp[i, a] > 0 else b.vsub
                    add(us[a], ts[0] if i == 1 else us[a], ts[i])
            src = us
        s = 1
        while s < mm:
            for a in range(p):
                b.vhbf(us[a], src[a], s)
            src = us
            s *= 2
        for a in range(p):
            b.vmuli(us[a], src[a], int(hp[0, a]) * scale)
        for a in range(p):
            b.vquant(yq[a], us[a])
            b.dma_st(y, r_row, a * mm, yq[a])
    b.label("idle")
    b.barrier()
    busy = min(cores, units)
    rows = m * 2 * act.nbytes(1, n)
    compulsory = {"X": act.nbytes(m, n), "S": F32.nbytes(1, n), "Y": act.nbytes(m, n)}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores, units=units,
                  mma_flops=0, dma_bytes=busy * F32.nbytes(1, n) + rows,
                  compulsory=tuple(compulsory.items()), weight_format=F32.fmt,
                  params=HadamardParams(m=m, n=n, p=p, mm=mm, rt=rt, act=act,
                                        unit_cap=unit_cap))


def emulate_hadamard(kernel: Kernel, x: QuantizedTensor, signs: np.ndarray) -> QuantizedTensor:
    """``Y`` of :func:`hadamard_kernel` in plain numpy, in the program's order of operations
    (float32 arithmetic; the full unit loop: give a kernel without a unit cap)."""
    prm = kernel.params
    if not isinstance(prm, HadamardParams) or prm.unit_cap is not None:
        raise ConfigError("emulate_hadamard takes a hadamard kernel without a unit cap")
    m, n, p, mm = prm.m, prm.n, prm.p, prm.mm
    if tuple(x.shape) != (m, n):
        raise ConfigError(f"X is {(m, n)}; got {tuple(x.shape)}")
    s = np.asarray(signs, dtype=np.float32).reshape(n)
    xf = np.asarray(x.dequantize(), dtype=np.float32)
    t = [(xf[:, i * mm:(i + 1) * mm] * s[i * mm:(i + 1) * mm]).astype(np.float32)
         for i in range(p)]
    hp = _hp(p)
    scale = np.float32(1.0 / math.sqrt(n))
    out = np.empty((m, n), dtype=np.float32)
    for a in range(p):
        g = int(hp[0, a])
        u = t[0]
        for i in range(1, p):
            u = (u + t[i]) if g * hp[i, a] > 0 else (u - t[i])
        u = u.astype(np.float32)
        h = 1
        while h < mm:
            v = u.reshape(m, -1, 2, h)
            lo, hi = v[:, :, 0, :], v[:, :, 1, :]
            u = np.stack([lo + hi, lo - hi], axis=2).reshape(m, mm).astype(np.float32)
            h *= 2
        out[:, a * mm:(a + 1) * mm] = u * np.float32(g * scale)
    return quantize(out, prm.act)


def spqr_vector_ops(tokens: int, count: int, groups: int) -> dict[str, int]:
    """Elements per vector operation of :func:`spqr_kernel`: ``outlier_fma`` (``tokens x
    count``, 2 FLOPs each), ``scale_fma`` (``groups``), and the conversions ``dequant``
    (``tokens x count``), ``cvt`` (``count`` values)."""
    return {"outlier_fma": tokens * count, "scale_fma": groups, "dequant": tokens * count,
            "cvt": count}


def _chunk(total: int, cores: int, cap: int) -> int:
    """Elements per unit: ``total`` spread over ``cores``, at most ``cap``, a multiple of 32."""
    return max(32, min(cap, 32 * math.ceil(total / cores / 32)))


def spqr_kernel(name: str, tokens: int, count: int, value_bytes: int, index_bytes: int,
                groups: int, scale_bytes: int, *, cores: int,
                unit_cap: int | None = None) -> Kernel:
    """SpQR's outlier products over ``tokens`` input rows and its scale decode, for ``count``
    outliers (module docstring)."""
    if tokens < 1 or count < 0 or groups < 0:
        raise ConfigError(f"{name}: tokens >= 1, outliers and groups >= 0 "
                          f"(got {tokens}, {count}, {groups})")
    t = tokens
    c = _chunk(max(count, 1), cores, max(32, 16384 // t // 32 * 32))
    cu = math.ceil(count / c) if count else 0
    cpad = max(cu, 1) * c
    g = _chunk(max(groups, 1), cores, 4096)
    gu = math.ceil(groups / g) if groups else 0
    ib = index_bytes / max(count, 1)                 # CSR bytes per outlier
    ci = max(1, math.ceil(c * ib / 2))               # index bytes of a chunk, as float16 words
    sb = scale_bytes / max(groups, 1)
    gi = max(1, math.ceil(g * sb / 2))
    vst = F32 if value_bytes > 2 * count else F16   # float16 / bfloat16 or float32 values
    b = ProgramBuilder()
    ov = b.tensor("OV", (1, cpad), vst)
    oi = b.tensor("OI", (1, max(cu, 1) * ci), F16)
    xg = b.tensor("XG", (t, cpad), ACT)
    yo = b.tensor("YO", (cores * t, c), BF16)
    sc = b.tensor("SC", (1, max(gu, 1) * gi), F16)
    ovt = b.tile("OVT", (1, c), vst)
    oit = b.tile("OIT", (1, ci), F16)
    xgt = b.tile("XGT", (t, c), ACT)
    xf = b.tile("XF", (t, c), F32)
    vf = b.tile("VF", (1, c), F32)
    pa = b.tile("PA", (t, c), F32)
    pb = b.tile("PB", (t, c), BF16)
    sct = b.tile("SCT", (1, gi), F16)
    st = b.tile("ST", (1, g), F32)
    cf = b.tile("CF", (1, g), F32)
    r_i, r_cnt, r_u, r_c, r_one = Reg(1), Reg(2), Reg(3), Reg(4), Reg(5)
    b.li(r_one, 1)
    if cu:
        unit_loop_count(b, r_cnt, cu, cores, unit_cap)
        b.blt(r_cnt, r_one, "no_outliers")
        b.vmuli(pa, pa, 0.0)
        with b.loop(r_i, r_cnt, cores):
            b.add(r_u, r_i, CID)
            b.muli(r_c, r_u, c)
            b.dma_ld(ovt, ov, 0, r_c)
            b.dma_ld(xgt, xg, 0, r_c)
            b.muli(r_c, r_u, ci)
            b.dma_ld(oit, oi, 0, r_c)
            b.vcvt(vf, ovt)
            b.vdequant(xf, xgt)
            b.vfma(pa, xf, vf, pa)
        b.vcvt(pb, pa)
        b.muli(r_c, CID, t)
        b.dma_st(yo, r_c, 0, pb)
        b.label("no_outliers")
    if gu:
        unit_loop_count(b, r_cnt, gu, cores, unit_cap)
        with b.loop(r_i, r_cnt, cores):
            b.add(r_u, r_i, CID)
            b.muli(r_c, r_u, gi)
            b.dma_ld(sct, sc, 0, r_c)
            b.vfma(cf, cf, st, st)                  # lo + step x code, per group
    b.barrier()
    busy_c = min(cores, cu)
    nbytes = (cu * (vst.nbytes(1, c) + F16.nbytes(1, ci) + ACT.nbytes(t, c))
              + busy_c * BF16.nbytes(t, c)
              + gu * F16.nbytes(1, gi))
    compulsory = {"OV": vst.nbytes(1, cpad) if cu else 0,
                  "OI": F16.nbytes(1, cu * ci) if cu else 0,
                  "XG": ACT.nbytes(t, cpad) if cu else 0,
                  "YO": busy_c * BF16.nbytes(t, c),
                  "SC": F16.nbytes(1, gu * gi) if gu else 0}
    return Kernel(name=name, kind="vector", program=b.build(), cores=cores,
                  units=max(cu, gu, 1), mma_flops=0, dma_bytes=nbytes,
                  compulsory=tuple((k, v) for k, v in compulsory.items() if v),
                  weight_format=F32.fmt, uniform_units=False,
                  params=SpqrParams(tokens=t, count=count, c=c, groups=groups, g=g,
                                    unit_cap=unit_cap))


def insert_ptq_ops(ops: list, work: PtqWork | None, make_op: Callable[..., Any], *,
                   cores: int, budgets: Budgets, real_tokens: int) -> list:
    """``ops`` (one layer's :class:`~prodigy_sim.lowering.LoweredOp` list) with ``work``'s
    kernels: a ``hadamard_<op>`` before each online site's op (reading that op's input, which
    then reads the rotated activation ``<input>_rot``) and a ``spqr_<op>`` after each outlier
    site's op. ``make_op(name, factory, flops, weight_bytes, vflops, reads=, writes=)`` builds a
    lowered op; ``real_tokens``: the tokens the standard vector FLOPs count. Sites whose op the
    layer does not have raise :class:`ConfigError`."""
    if work is None or work.empty:
        return ops
    names = {op.name for op in ops}
    missing = sorted({s.before for s in work.online} - names
                     | {s.after for s in work.outliers} - names)
    if missing:
        raise ConfigError(f"PTQ work for lowered ops {', '.join(missing)}, which the layer does "
                          f"not have (it has {', '.join(sorted(names))})")
    out = []
    for op in ops:
        reads = dict(op.flow.reads) if op.flow is not None else {}
        for site in (s for s in work.online if s.before == op.name):
            src = reads["X"]
            m = op.kernel.params.m
            fac = functools.partial(hadamard_kernel, f"hadamard_{op.name}", m, site.n, site.p,
                                    site.m, cores=cores, budgets=budgets)
            ops_ = hadamard_vector_ops(real_tokens, site.n, site.p, site.m)
            vfl = ops_["pxp_add"] + ops_["butterfly"] + ops_["scale"]
            out.append(make_op(f"hadamard_{op.name}", lambda c, f=fac: f(unit_cap=c), 0, 0,
                               vfl, reads={"X": src}, writes={"Y": f"{src}_rot"}))
            reads["X"] = f"{src}_rot"
            op = dataclasses.replace(op, flow=dataclasses.replace(
                op.flow, reads=tuple(reads.items())))
        out.append(op)
        for osite in (s for s in work.outliers if s.after == op.name):
            t = op.kernel.params.m
            fac = functools.partial(spqr_kernel, f"spqr_{op.name}", t, osite.count,
                                    osite.value_bytes, osite.index_bytes, osite.groups,
                                    osite.scale_bytes, cores=cores)
            out.append(make_op(f"spqr_{op.name}", lambda c, f=fac: f(unit_cap=c), 0,
                               osite.weight_bytes,
                               2 * osite.count * real_tokens + 2 * osite.groups,
                               reads={"XG": reads.get("X", "")}))
    return out
