"""Packing sub-byte codes densely into bytes, and unpacking them.

Codes of ``b`` bits are laid out as one little-endian bit stream per row (last axis): code ``j``
occupies stream bits ``j*b .. j*b+b-1``, and stream bit ``i`` is bit ``i % 8`` (LSB = 0) of byte
``i // 8``. So two 4-bit codes share a byte as ``[code1 | code0]`` (element 0 in the low
nibble), four 2-bit codes as ``[c3 c2 | c1 c0]``, and 6-bit codes pack four to three bytes::

    byte 0: c1[1:0] c0[5:0]   byte 1: c2[3:0] c1[5:2]   byte 2: c3[5:0] c2[5:4]

Each row starts on a byte boundary; its last byte is padded with zero bits.
"""

from __future__ import annotations

import numba
import numpy as np

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import EncodeError

__all__ = ["pack", "unpack", "packed_row_bytes"]


def packed_row_bytes(count: int, bits: int) -> int:
    """Bytes one packed row of ``count`` codes of ``bits`` bits occupies."""
    return (count * bits + 7) // 8


@numba.njit(cache=True)
def pack_row(codes, bits, out):
    """Pack one row of ``codes`` (uint8) into ``out`` (uint8) as the bit stream above (whole
    bytes at a time for 8, 4 and 2 bits; a bit accumulator for the other widths)."""
    n = codes.size
    if bits == 8:
        for j in range(n):
            out[j] = codes[j]
        return
    if bits == 4:
        for i in range(n >> 1):
            out[i] = codes[2 * i] | (codes[2 * i + 1] << 4)
        if n & 1:
            out[n >> 1] = codes[n - 1]
        return
    if bits == 2:
        full = n >> 2
        for i in range(full):
            j = 4 * i
            out[i] = codes[j] | (codes[j + 1] << 2) | (codes[j + 2] << 4) | (codes[j + 3] << 6)
        if n & 3:
            b = 0
            for j in range(4 * full, n):
                b |= codes[j] << (2 * (j - 4 * full))
            out[full] = b
        return
    acc = 0
    nacc = 0
    o = 0
    for j in range(n):
        acc |= np.int64(codes[j]) << nacc
        nacc += bits
        while nacc >= 8:
            out[o] = np.uint8(acc & 0xFF)
            acc >>= 8
            nacc -= 8
            o += 1
    if nacc > 0:
        out[o] = np.uint8(acc & 0xFF)


@parallel_if_large
def _pack_rows(codes, bits, out):
    for r in numba.prange(codes.shape[0]):
        pack_row(codes[r], bits, out[r])


@parallel_if_large
def _unpack_rows(packed, bits, k, out):
    rows = packed.shape[0]
    mask = (1 << bits) - 1
    for r in numba.prange(rows):
        acc = 0
        nacc = 0
        i = 0
        for j in range(k):
            while nacc < bits:
                acc |= np.int64(packed[r, i]) << nacc
                nacc += 8
                i += 1
            out[r, j] = np.uint8(acc & mask)
            acc >>= bits
            nacc -= bits


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``codes`` (uint8, ``(..., K)``, each < 2**bits) to ``(..., ceil(K*bits/8))`` bytes."""
    arr = np.asarray(codes)
    if not 1 <= bits <= 8:
        raise EncodeError(f"'bits' must be 1..8 (got {bits})")
    if arr.ndim == 0:
        raise EncodeError("pack needs at least one axis of codes")
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.size and int(arr.max()) >> bits:
        raise EncodeError(f"codes must be < 2**{bits} = {1 << bits} (max is {int(arr.max())})")
    k = arr.shape[-1]
    rows = arr.reshape(-1, k)
    out = np.zeros((rows.shape[0], packed_row_bytes(k, bits)), dtype=np.uint8)
    _pack_rows(rows, bits, out)
    return out.reshape(arr.shape[:-1] + (out.shape[-1],))


def unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(..., ceil(count*bits/8))`` bytes to ``(..., count)`` codes."""
    arr = np.ascontiguousarray(np.asarray(packed), dtype=np.uint8)
    if not 1 <= bits <= 8:
        raise EncodeError(f"'bits' must be 1..8 (got {bits})")
    need = packed_row_bytes(count, bits)
    if arr.ndim == 0 or arr.shape[-1] != need:
        got = arr.shape[-1] if arr.ndim else 0
        raise EncodeError(f"{count} codes of {bits} bits need {need} bytes per row (got {got})")
    rows = arr.reshape(-1, need)
    out = np.empty((rows.shape[0], count), dtype=np.uint8)
    _unpack_rows(rows, bits, count, out)
    return out.reshape(arr.shape[:-1] + (count,))
