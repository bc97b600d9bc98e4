"""Kernels of post-training-quantization schemes that add work to a layer: online Hadamard
transforms (QuaRot) and SpQR's outlier products (:mod:`._spqr`), and where the lowering inserts
them (:func:`insert_ptq_ops`).

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

**SpQR** (:func:`~prodigy_sim.lowering.spqr_kernel`, before the linear whose weights have
outliers): ``C = (R +) X O^T`` into float32 tensors the linear's accumulators start from
(``linear_kernel(..., init=True)``).
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
from prodigy_sim.lowering._common import ACT, F32, Budgets, Kernel, unit_loop_count
from prodigy_sim.lowering._params import HadamardParams, LinearParams
from prodigy_sim.lowering._spqr import SPQR_OUTPUTS, index_storage, spqr_kernel
from prodigy_sim.numerics import QuantizedTensor, Storage, quantize
from prodigy_sim.ptq import hadamard_matrix

__all__ = ["HadamardParams", "OnlineSite", "OutlierSite", "PtqWork", "hadamard_kernel",
           "emulate_hadamard", "hadamard_vector_ops", "insert_ptq_ops"]


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
    """SpQR outliers of the weights lowered op ``op`` runs (e.g. ``qkv_proj``; ``gate_up``: the
    gate, then the up weight) in ``layers`` (empty: every layer): ``counts`` outliers per
    weight, their values stored as ``values`` (``float16``, ``bfloat16`` or ``float32``)."""

    op: str
    counts: tuple[int, ...]
    values: str = "float16"
    layers: tuple[int, ...] = ()

    def applies(self, layer: int) -> bool:
        """Whether the site is in ``layer``."""
        return not self.layers or layer in self.layers


@dataclass(frozen=True)
class PtqWork:
    """What a PTQ scheme adds to the layers of a model's lowering (hashable): online
    transforms in every layer, outlier products where their sites say."""

    online: tuple[OnlineSite, ...] = ()
    outliers: tuple[OutlierSite, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.online and not self.outliers

    def layer_key(self, layer: int) -> tuple[OutlierSite, ...]:
        """The outlier sites of ``layer`` (layers with the same key lower alike)."""
        return tuple(s for s in self.outliers if s.applies(layer))


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


def insert_ptq_ops(ops: list, work: PtqWork | None, make_op: Callable[..., Any], *,
                   cores: int, budgets: Budgets, real_tokens: int, layer: int = 0) -> list:
    """``ops`` (layer ``layer``'s :class:`~prodigy_sim.lowering.LoweredOp` list) with ``work``'s
    kernels: a ``hadamard_<op>`` before each online site's op (reading that op's input, which
    then reads the rotated activation ``<input>_rot``), and for each outlier site of the layer
    a ``spqr_<op>`` before its linear (reading the linear's input and residual), whose
    accumulators then start from the outlier products (``C``, ``CU``: ``<op>_c``, ``<op>_cu``;
    the linear rebuilt with ``init=True``). ``make_op(name, factory, flops, weight_bytes,
    vflops, reads=, writes=)`` builds a lowered op; ``real_tokens``: the tokens the standard
    vector FLOPs count. Sites whose op the layer does not have raise :class:`ConfigError`."""
    if work is None or work.empty:
        return ops
    sites = work.layer_key(layer)
    names = {op.name for op in ops}
    missing = sorted({s.before for s in work.online} - names | {s.op for s in sites} - names)
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
        for osite in (s for s in sites if s.op == op.name):
            out.append(_outlier_op(op, osite, reads, make_op, cores, budgets, real_tokens))
            op = _linear_from_outliers(op, osite, reads, make_op)
        out.append(op)
    return out


def _outlier_op(op, site: OutlierSite, reads: dict, make_op: Callable[..., Any], cores: int,
                budgets: Budgets, real_tokens: int):
    """The ``spqr_<op>`` lowered op of ``site`` before the linear ``op``."""
    p = op.kernel.params
    gated = p.epilogue == "gated"
    if len(site.counts) != (2 if gated else 1):
        raise ConfigError(f"outliers of {op.name}: {2 if gated else 1} weight(s), got counts "
                          f"{site.counts}")
    residual = p.epilogue in ("residual", "bias_residual")
    values = Storage.of(site.values)
    fac = functools.partial(spqr_kernel, f"spqr_{op.name}", p.m, p.n, p.k, site.counts,
                            cores=cores, values=values, residual=residual, act=p.act,
                            budgets=budgets)
    entry = (values.nbytes(1, 1) + index_storage(p.k).nbytes(1, 1)
             + index_storage(p.n).nbytes(1, 1))
    sources = {"X": reads.get("X", "")}
    if residual:
        sources["R"] = reads.get("R", "")
    outs = {nm[0]: f"{op.name}_{nm[0].lower()}" for nm in SPQR_OUTPUTS[:len(site.counts)]}
    return make_op(f"spqr_{op.name}", lambda c, f=fac: f(unit_cap=c), 0,
                   entry * sum(site.counts), 2 * sum(site.counts) * real_tokens,
                   reads=sources, writes=outs)


def _linear_from_outliers(op, site: OutlierSite, reads: dict, make_op: Callable[..., Any]):
    """The linear ``op`` rebuilt with its accumulators starting from the outlier products."""
    if not isinstance(op.kernel.params, LinearParams):
        raise ConfigError(f"{op.name} is not a linear layer: it has no outliers to start from")
    lin_reads = {t: v for t, v in reads.items() if t != "R"}
    lin_reads.update({nm[0]: f"{op.name}_{nm[0].lower()}"
                      for nm in SPQR_OUTPUTS[:len(site.counts)]})
    return make_op(op.name, functools.partial(op.rebuild, init=True), op.flops,
                   op.weight_bytes, op.vector_flops, reads=lin_reads,
                   writes=dict(op.flow.writes) if op.flow is not None else {},
                   scratch=op.flow.scratch if op.flow is not None else ())
