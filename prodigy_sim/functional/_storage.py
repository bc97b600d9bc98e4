"""Bytes <-> values of tensors and tiles in the ISA's byte layout (``isa/README.md``).

A (R, C) storage at byte ``base``: packed codes of all rows, then all rows' scales, then all
rows' sparsity masks; a per-tensor scale (``block=0``) follows the masks. float32 / bfloat16
storages are plain little-endian row-major arrays.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional._vector import from_bf16, to_bf16
from prodigy_sim.isa import Placement
from prodigy_sim.numerics import QuantizedTensor, get_format, pack, quantize, unpack

__all__ = ["read_float", "write_float", "read_quantized", "write_quantized", "quantize_decl"]

_SCALE_DTYPE = {"e8m0": np.uint8, "e4m3": np.uint8, "fp32": np.float32, "absmean": np.float32}


def _nm(decl) -> tuple[int, int] | None:
    """ISA sparsity (group, kept) -> numerics (n kept, m group)."""
    return None if decl.sparsity is None else (decl.sparsity[1], decl.sparsity[0])


def read_float(buf: np.ndarray, p: Placement, decl) -> np.ndarray:
    """float32 (R, C) values of a float32 / bfloat16 storage."""
    r, c = decl.shape
    if decl.fmt == "float32":
        return buf[p.base:p.base + 4 * r * c].view(np.float32).reshape(r, c).copy()
    return from_bf16(buf[p.base:p.base + 2 * r * c].view(np.uint16).reshape(r, c))


def write_float(buf: np.ndarray, p: Placement, decl, x: np.ndarray) -> None:
    """Store float32 values (rounded to nearest even for bfloat16)."""
    r, c = decl.shape
    x = np.asarray(x, dtype=np.float32)
    if x.shape != (r, c):
        raise ConfigError(f"{decl.name} is ({r},{c}); got values of shape {x.shape}")
    raw = x if decl.fmt == "float32" else to_bf16(x)
    buf[p.base:p.base + raw.nbytes] = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)


def _parts(buf: np.ndarray, p: Placement, rows: int):
    rb = p.row
    codes = buf[p.code_base():p.code_base() + rows * rb.code].reshape(rows, rb.code)
    scales = buf[p.scale_base():p.scale_base() + rows * rb.scale].reshape(rows, rb.scale)
    meta = buf[p.meta_base():p.meta_base() + rows * rb.meta].reshape(rows, rb.meta)
    tail = p.meta_base() + rows * rb.meta
    return codes, scales, meta, buf[tail:tail + rb.per_tensor]


def read_quantized(buf: np.ndarray, p: Placement, decl) -> QuantizedTensor:
    """The :class:`QuantizedTensor` (R, C) held by a quantized storage. A per-tensor scale
    (``block=0``) is returned as one block of C per row, every row carrying the same scale."""
    r, c = decl.shape
    codes, scales, meta, tail = _parts(buf, p, r)
    if decl.scale == "none":
        sc = np.zeros((r, 0), dtype=np.uint8)
    elif decl.block == 0:
        one = tail.view(_SCALE_DTYPE[decl.scale])
        sc = np.repeat(one.reshape(1, 1), r, axis=0)
    else:
        sc = scales.copy().view(_SCALE_DTYPE[decl.scale]).reshape(r, -1)
    nm = _nm(decl)
    block = c if decl.block == 0 else decl.block
    return QuantizedTensor(codes=codes.copy(), scales=sc, fmt=get_format(decl.fmt), shape=(r, c),
                           axis=1, block=block, scale=decl.scale, sparsity=nm,
                           mask_bits=meta.copy() if nm is not None else None)


def quantize_decl(x: np.ndarray, decl) -> QuantizedTensor:
    """Quantize float values (R, C) with a declaration's fmt, block, scale and sparsity, exactly
    as :func:`prodigy_sim.numerics.quantize` does (``block=0``: one scale for the whole array,
    i.e. ``quantize(x.reshape(1, -1), block=None)``, re-packed row by row)."""
    r, c = decl.shape
    x = np.asarray(x)
    if x.shape != (r, c):
        raise ConfigError(f"{decl.name} is ({r},{c}); got values of shape {x.shape}")
    nm = _nm(decl)
    sp = None if nm is None else f"{nm[1]}:{nm[0]}"
    if decl.block != 0 or decl.scale == "none":
        return quantize(x, decl.fmt, block=decl.block if decl.block else None, scale=decl.scale,
                        sparsity=sp)
    if nm is not None:
        raise ConfigError(f"{decl.name}: a per-tensor scale with sparsity is not supported")
    whole = quantize(x.reshape(1, -1), decl.fmt, block=None, scale=decl.scale)
    spec = get_format(decl.fmt)
    codes = pack(unpack(whole.codes, spec.bits, r * c).reshape(r, c), spec.bits)
    return QuantizedTensor(codes=codes, scales=np.repeat(whole.scales, r, axis=0), fmt=spec,
                           shape=(r, c), axis=1, block=c, scale=decl.scale)


def write_quantized(buf: np.ndarray, p: Placement, decl, q: QuantizedTensor) -> None:
    """Store a :class:`QuantizedTensor` matching the declaration (fmt, block, scale,
    sparsity, shape) in the byte layout."""
    r, c = decl.shape
    block = c if decl.block == 0 else decl.block
    want = (tuple(decl.shape), decl.fmt, block, decl.scale, _nm(decl), 1)
    got = (tuple(q.shape), q.fmt.name, q.block, q.scale, q.sparsity, q.axis)
    if want != got:
        raise ConfigError(f"{decl.name}: the quantized tensor (shape, fmt, block, scale, "
                          f"sparsity, axis) = {got} does not match the declaration {want}")
    codes, scales, meta, tail = _parts(buf, p, r)
    codes[...] = q.codes.reshape(r, -1)
    if decl.scale != "none":
        raw = np.ascontiguousarray(q.scales.astype(_SCALE_DTYPE[decl.scale])).view(np.uint8)
        if decl.block == 0:
            rows = raw.reshape(r, -1)  # compared as bytes: a NaN scale equals itself
            if np.any(rows != rows[0]):
                raise ConfigError(f"{decl.name} has one scale for the whole tensor; the rows of "
                                  "the quantized tensor carry different scales")
            tail[...] = raw.reshape(r, -1)[0]
        else:
            scales[...] = raw.reshape(r, -1)
    if q.mask_bits is not None:
        meta[...] = q.mask_bits.reshape(r, -1)
