"""Bytes <-> values of tensors and tiles in the ISA's byte layout (``isa/README.md``).

A (R, C) storage at byte ``base``: packed codes of all rows, then all rows' scales, then all
rows' sparsity masks; a per-tensor scale (``block=0``) follows the masks
(:meth:`prodigy_sim.numerics.Storage.row_bytes`). Wide-format storages (float32, bfloat16,
float16) are plain little-endian row-major arrays. A tensor stored in tiles (``tile=HxW``) is
read and written through that row-major order, permuted by
:meth:`prodigy_sim.isa.Placement.tiled_order`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional._vector import from_bf16, to_bf16
from prodigy_sim.isa import Placement
from prodigy_sim.numerics import QuantizedTensor, ScaleKind, decode, encode, pack, quantize, unpack

__all__ = ["read_float", "write_float", "read_quantized", "write_quantized", "quantize_decl"]


def _scale_dtype(kind: ScaleKind) -> np.dtype:
    """dtype of one stored scale: its code (uint8) or float32."""
    return np.dtype(np.uint8 if kind.code_format is not None else np.float32)


def _rowmajor(buf: np.ndarray, p: Placement) -> tuple[np.ndarray, Placement]:
    """``(bytes, placement)`` reading the storage at ``p`` in row-major order: ``buf`` and ``p``
    themselves, or for a tiled tensor its bytes un-permuted into a new array (at 0)."""
    if p.tile is None:
        return buf, p
    flat = np.empty(p.nbytes, dtype=np.uint8)
    flat[p.tiled_order()] = buf[p.base:p.base + p.nbytes]
    return flat, dataclasses.replace(p, base=0, tile=None)


def _store_tiled(buf: np.ndarray, p: Placement, flat: np.ndarray) -> None:
    """Write row-major bytes ``flat`` (from :func:`_rowmajor`) back to a tiled storage."""
    if p.tile is not None:
        buf[p.base:p.base + p.nbytes] = flat[p.tiled_order()]


def read_float(buf: np.ndarray, p: Placement, decl) -> np.ndarray:
    """float32 (R, C) values of a wide-format storage."""
    buf, p = _rowmajor(buf, p)
    r, c = decl.shape
    fmt = decl.fmt
    raw = buf[p.base:p.base + fmt.bits // 8 * r * c]
    if fmt.name == "float32":
        return raw.view(np.float32).reshape(r, c).copy()
    if fmt.name == "bfloat16":
        return from_bf16(raw.view(np.uint16).reshape(r, c))
    return decode(raw.view(np.uint16 if fmt.bits == 16 else np.uint32).reshape(r, c), fmt)


def write_float(buf: np.ndarray, p: Placement, decl, x: np.ndarray) -> None:
    """Store float32 values (rounded to nearest even in a narrower wide format)."""
    r, c = decl.shape
    x = np.asarray(x, dtype=np.float32)
    if x.shape != (r, c):
        raise ConfigError(f"{decl.name} is ({r},{c}); got values of shape {x.shape}")
    fmt = decl.fmt
    if fmt.name == "float32":
        raw = x
    elif fmt.name == "bfloat16":
        raw = to_bf16(x)
    else:
        raw = encode(x, fmt, "nonsaturating")
    flat, q = _rowmajor(buf, p)
    flat[q.base:q.base + raw.nbytes] = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
    _store_tiled(buf, p, flat)


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
    codes, scales, meta, tail = _parts(*_rowmajor(buf, p), r)
    if decl.scale == ScaleKind.NONE:
        sc = np.zeros((r, 0), dtype=np.uint8)
    elif decl.block == 0:
        one = tail.view(_scale_dtype(decl.scale))
        sc = np.repeat(one.reshape(1, 1), r, axis=0)
    else:
        sc = scales.copy().view(_scale_dtype(decl.scale)).reshape(r, -1)
    block = c if decl.block == 0 else decl.block
    return QuantizedTensor(codes=codes.copy(), scales=sc, fmt=decl.fmt, shape=(r, c), axis=1,
                           block=block, scale=decl.scale, sparsity=decl.sparsity,
                           mask_bits=meta.copy() if decl.sparsity is not None else None)


def quantize_decl(x: np.ndarray, decl) -> QuantizedTensor:
    """Quantize float values (R, C) with a declaration's storage, exactly as
    :func:`prodigy_sim.numerics.quantize` does (``block=0``: one scale for the whole array,
    i.e. ``quantize(x.reshape(1, -1), block=None)``, re-packed row by row)."""
    r, c = decl.shape
    x = np.asarray(x)
    if x.shape != (r, c):
        raise ConfigError(f"{decl.name} is ({r},{c}); got values of shape {x.shape}")
    if decl.block != 0 or decl.scale == ScaleKind.NONE:
        return quantize(x, decl.storage)
    if decl.sparsity is not None:
        raise ConfigError(f"{decl.name}: a per-tensor scale with sparsity is not supported")
    whole = quantize(x.reshape(1, -1), decl.fmt, block=None, scale=decl.scale)
    spec = decl.fmt
    codes = pack(unpack(whole.codes, spec.bits, r * c).reshape(r, c), spec.bits)
    return QuantizedTensor(codes=codes, scales=np.repeat(whole.scales, r, axis=0), fmt=spec,
                           shape=(r, c), axis=1, block=c, scale=decl.scale)


def write_quantized(buf: np.ndarray, p: Placement, decl, q: QuantizedTensor) -> None:
    """Store a :class:`QuantizedTensor` matching the declaration (storage, shape, axis 1) in the
    byte layout."""
    r, c = decl.shape
    block = c if decl.block == 0 else decl.block
    want = (tuple(decl.shape), decl.fmt, block, decl.scale, decl.sparsity, 1)
    got = (tuple(q.shape), q.fmt, q.block, q.scale, q.sparsity, q.axis)
    if want != got:
        def show(t):
            return (t[0], t[1].ref, t[2], str(t[3]), str(t[4] or "dense"), t[5])
        raise ConfigError(f"{decl.name}: the quantized tensor (shape, fmt, block, scale, "
                          f"sparsity, axis) = {show(got)} does not match the declaration "
                          f"{show(want)}")
    flat, rowmajor = _rowmajor(buf, p)
    codes, scales, meta, tail = _parts(flat, rowmajor, r)
    codes[...] = q.codes.reshape(r, -1)
    if decl.scale != ScaleKind.NONE:
        raw = np.ascontiguousarray(q.scales.astype(_scale_dtype(decl.scale))).view(np.uint8)
        if decl.block == 0:
            rows = raw.reshape(r, -1)
            if np.any(rows != rows[0]):         # compare stored bytes: a NaN scale equals itself
                raise ConfigError(f"{decl.name} has one scale for the whole tensor; the rows of "
                                  "the quantized tensor carry different scales")
            tail[...] = rows[0]
        else:
            scales[...] = raw.reshape(r, -1)
    if q.mask_bits is not None:
        meta[...] = q.mask_bits.reshape(r, -1)
    _store_tiled(buf, p, flat)
