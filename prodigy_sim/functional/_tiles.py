"""Tiles of several cores at once: the byte layout of ``_storage`` on a (cores, bytes) array.

The executor keeps every core's scratchpad as one row of a 2-D uint8 array, so the same tile
of ``g`` cores is ``spm[cores, base:base + nbytes]`` and one numpy operation reads, computes
or writes it for all of them. Core selectors are a slice (all cores, in order: views, no copy)
or an int64 array of core ids. Layout (``isa/README.md``): packed codes of all rows, then all
rows' scales, then all rows' sparsity masks, then a per-tensor scale; wide-format storage
(float32, bfloat16, float16) is a plain row-major array.
"""

from __future__ import annotations

import numba
import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional._storage import _scale_dtype
from prodigy_sim.functional._vector import from_bf16, to_bf16
from prodigy_sim.isa import Placement
from prodigy_sim.numerics import QuantizedTensor, ScaleKind, decode, encode

__all__ = ["read_floats", "write_floats", "read_rows", "write_rows", "dma_copy"]


def _bytes(spm: np.ndarray, cs, start: int, n: int) -> np.ndarray:
    return spm[cs, start:start + n]


def read_floats(spm: np.ndarray, cs, p: Placement, decl) -> np.ndarray:
    """float32 (g, R, C) values of a wide-format tile on the selected cores (a copy)."""
    r, c = decl.shape
    fmt = decl.fmt
    if fmt.name == "float32":
        raw = _bytes(spm, cs, p.base, 4 * r * c)
        return np.array(raw.view(np.float32).reshape(-1, r, c))
    raw = np.ascontiguousarray(_bytes(spm, cs, p.base, fmt.bits // 8 * r * c))
    if fmt.name == "bfloat16":
        return from_bf16(raw.view(np.uint16).reshape(-1, r, c))
    codes = raw.view(np.uint16 if fmt.bits == 16 else np.uint32).reshape(-1, c)
    return decode(codes, fmt).reshape(-1, r, c)


def write_floats(spm: np.ndarray, cs, p: Placement, decl, x: np.ndarray) -> None:
    """Store float32 values (g, R, C) (rounded to nearest even in a narrower wide format, as
    ``_storage.write_float``)."""
    r, c = decl.shape
    x = np.asarray(x, dtype=np.float32)
    fmt = decl.fmt
    if fmt.name == "float32":
        raw = np.ascontiguousarray(x)
    elif fmt.name == "bfloat16":
        raw = np.ascontiguousarray(to_bf16(x))
    else:
        raw = np.ascontiguousarray(encode(x.reshape(-1, c), fmt, "nonsaturating"))
    n = raw.itemsize * r * c
    spm[cs, p.base:p.base + n] = raw.view(np.uint8).reshape(-1, n)


def read_rows(spm: np.ndarray, cs, p: Placement, decl, g: int) -> QuantizedTensor:
    """The quantized tiles of ``g`` selected cores stacked along rows: a
    :class:`QuantizedTensor` (g * R, C), as ``_storage.read_quantized`` reads one (a per-tensor
    scale becomes one block of C per row)."""
    r, c = decl.shape
    rb = p.row
    codes = _bytes(spm, cs, p.code_base(), r * rb.code).reshape(g * r, rb.code)
    if decl.scale == ScaleKind.NONE:
        sc = np.zeros((g * r, 0), dtype=np.uint8)
    elif decl.block == 0:
        tail = np.ascontiguousarray(_bytes(spm, cs, p.meta_base() + r * rb.meta, rb.per_tensor))
        sc = np.repeat(tail.view(_scale_dtype(decl.scale)).reshape(g, 1), r, axis=0)
    else:
        raw = np.ascontiguousarray(_bytes(spm, cs, p.scale_base(), r * rb.scale))
        sc = raw.view(_scale_dtype(decl.scale)).reshape(g * r, -1)
    meta = (_bytes(spm, cs, p.meta_base(), r * rb.meta).reshape(g * r, rb.meta)
            if decl.sparsity is not None else None)
    return QuantizedTensor(codes=np.ascontiguousarray(codes), scales=sc, fmt=decl.fmt,
                           shape=(g * r, c), axis=1,
                           block=c if decl.block == 0 else decl.block, scale=decl.scale,
                           sparsity=decl.sparsity, mask_bits=None if meta is None else meta.copy())


def write_rows(spm: np.ndarray, cs, p: Placement, decl, g: int, q: QuantizedTensor) -> None:
    """Store ``g`` cores' tiles from a :class:`QuantizedTensor` (g * R, C) quantized by the
    declaration (block > 0; see ``_storage.write_quantized``)."""
    r, c = decl.shape
    rb = p.row
    want = ((g * r, c), decl.fmt, decl.block or c, decl.scale, decl.sparsity)
    got = (tuple(q.shape), q.fmt, q.block, q.scale, q.sparsity)
    if want != got or (decl.block == 0 and decl.scale != ScaleKind.NONE):
        raise ConfigError(f"{decl.name}: quantized rows {got} do not match the declaration "
                          f"{want}")
    spm[cs, p.code_base():p.code_base() + r * rb.code] = q.codes.reshape(g, -1)
    if decl.scale != ScaleKind.NONE:
        raw = np.ascontiguousarray(q.scales.astype(_scale_dtype(decl.scale))).view(np.uint8)
        spm[cs, p.scale_base():p.scale_base() + r * rb.scale] = raw.reshape(g, -1)
    if q.mask_bits is not None:
        spm[cs, p.meta_base():p.meta_base() + r * rb.meta] = q.mask_bits.reshape(g, -1)


@numba.njit(cache=True)
def dma_copy(ddr, spm, cores, segs, base, load):
    """One DMA instruction on several cores: for core ``cores[i]`` and segment ``s``,
    ``segs[i, s]`` = (DDR address, run length, stride, runs). The runs of all segments, in
    order, are the tile's bytes back to back from scratchpad offset ``base`` (codes, scales,
    metadata, per-tensor bytes: a row-major window's parts or a tiled tensor's one tile, then
    the per-tensor bytes). ``load``: DDR -> scratchpad."""
    for i in range(cores.size):
        c = cores[i]
        o = base
        for s in range(segs.shape[1]):
            addr = segs[i, s, 0]
            length = segs[i, s, 1]
            stride = segs[i, s, 2]
            for run in range(segs[i, s, 3]):
                a = addr + run * stride
                if load:
                    spm[c, o:o + length] = ddr[a:a + length]
                else:
                    ddr[a:a + length] = spm[c, o:o + length]
                o += length
