"""Scaled MMA operands: exact float64 values ``value(code) * scale`` plus per-chunk statistics.

An operand of shape (R, K) (rows = M of activations or N of weights, K = the reduction axis) is
held chunk-major, ``values[c, r, j]`` = element ``c * chunk + j`` of row ``r`` (the last chunk is
zero-padded), so one chunk of every row is one contiguous float64 matrix for BLAS. Every value
is exact: element values have at most 8 significant bits and scales at most 24 (FP32), so their
product has at most 32 bits and its exponent stays within 2^+-300.

Per (chunk, row) statistics decide whether a float64 GEMM of the chunk is exact
(:func:`prodigy_sim.functional._mma.chunk_is_exact`), counting finite values only:

- ``low``: the smallest power of two dividing every nonzero value (+inf if none): every value is
  an integer multiple of it, so every product is a multiple of ``low_a * low_w``;
- ``vmax`` / ``vsum``: largest |value| and the float64 sum of |values|;
- ``special``: the chunk of the row holds a NaN or an infinity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import QuantizedTensor

__all__ = ["Operand", "operand_from_quantized", "operand_from_values", "lowbit"]


@dataclass(frozen=True, eq=False)
class Operand:
    """Chunk-major exact values ``(n_chunks, R, chunk)`` and their per-(chunk, row) stats."""

    values: np.ndarray
    low: np.ndarray
    vmax: np.ndarray
    vsum: np.ndarray
    special: np.ndarray
    K: int

    @property
    def rows(self) -> int:
        return self.values.shape[1]

    @property
    def chunk(self) -> int:
        return self.values.shape[2]

    def dense(self) -> np.ndarray:
        """The values as a float64 (R, K) array."""
        nc, r, c = self.values.shape
        return self.values.transpose(1, 0, 2).reshape(r, nc * c)[:, : self.K]


@numba.njit(cache=True)
def lowbit(x):
    """Largest power of two dividing the finite nonzero float64 ``x`` (+inf for 0 / non-finite).

    ``x = m * 2^e`` with an integer significand ``m``; the answer is ``(m & -m) * 2^e``."""
    if x == 0.0 or not np.isfinite(x):
        return np.inf
    arr = np.empty(1, dtype=np.float64)
    arr[0] = x
    b = arr.view(np.int64)[0]
    ex = (b >> 52) & 0x7FF
    m = b & 0xFFFFFFFFFFFFF
    if ex == 0:
        e = -1074
    else:
        m |= 0x10000000000000
        e = ex - 1075
    return np.float64(m & -m) * 2.0 ** e


@numba.njit(cache=True)
def _lowbits(x, out):
    for i in range(x.size):
        out[i] = lowbit(x[i])


@numba.njit(cache=True, parallel=True)
def _prepare(packed, bits, table, lowtab, scales, slow, kept_block, mask, K, chunk,
             out, low, vmax, vsum, special):
    """Decode packed codes of every row, scale them, scatter kept values to dense positions."""
    rows = packed.shape[0]
    nbytes = packed.shape[1]
    nc = out.shape[0]
    cmask = (1 << bits) - 1
    sparse = mask.shape[0] > 0
    for r in numba.prange(rows):
        i = 0  # kept index
        b = 0  # its scale block
        left = kept_block  # kept codes left in block b
        for c in range(nc):
            lo = np.inf
            mx = 0.0
            sm = 0.0
            sp = False
            for jj in range(chunk):
                j = c * chunk + jj
                if j >= K or (sparse and not mask[r, j]):
                    out[c, r, jj] = 0.0
                    continue
                off = i * bits
                byte = off >> 3
                word = np.int64(packed[r, byte])
                if bits + (off & 7) > 8 and byte + 1 < nbytes:
                    word |= np.int64(packed[r, byte + 1]) << 8
                code = (word >> (off & 7)) & cmask
                v = table[code] * scales[r, b]
                out[c, r, jj] = v
                if np.isfinite(v):
                    if v != 0.0:
                        q = lowtab[code] * slow[r, b]
                        lo = min(lo, q)
                        a = abs(v)
                        sm += a
                        mx = max(mx, a)
                else:
                    sp = True
                i += 1
                left -= 1
                if left == 0:
                    b += 1
                    left = kept_block
            low[c, r] = lo
            vmax[c, r] = mx
            vsum[c, r] = sm
            special[c, r] = sp


@numba.njit(cache=True, parallel=True)
def _from_values(x, chunk, out, low, vmax, vsum, special):
    rows, k = x.shape
    for r in numba.prange(rows):
        for j in range(out.shape[0] * chunk):
            c = j // chunk
            jj = j - c * chunk
            v = np.float64(x[r, j]) if j < k else 0.0
            out[c, r, jj] = v
            if np.isfinite(v):
                if v != 0.0:
                    q = lowbit(v)
                    if q < low[c, r]:
                        low[c, r] = q
                    a = abs(v)
                    vsum[c, r] += a
                    if a > vmax[c, r]:
                        vmax[c, r] = a
            else:
                special[c, r] = True


def _empty(rows: int, K: int, chunk: int):  # noqa: N803
    nc = -(-K // chunk)
    return (np.empty((nc, rows, chunk)), np.full((nc, rows), np.inf), np.zeros((nc, rows)),
            np.zeros((nc, rows)), np.zeros((nc, rows), dtype=np.bool_))


def operand_from_values(x: np.ndarray, chunk: int = 128) -> Operand:
    """Operand of real values given directly (float32 / bfloat16 tiles: no scale), (R, K)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError(f"an MMA operand must be 2-D (R, K) (got shape {x.shape})")
    out, low, vmax, vsum, special = _empty(x.shape[0], x.shape[1], chunk)
    _from_values(np.ascontiguousarray(x), chunk, out, low, vmax, vsum, special)
    return Operand(out, low, vmax, vsum, special, x.shape[1])


def operand_from_parts(packed: np.ndarray, fmt, scales: np.ndarray, kept_block: int,
                       mask: np.ndarray | None, K: int, chunk: int = 128) -> Operand:  # noqa: N803
    """Operand from storage: packed codes (R, row bytes) of ``fmt``, float scale values
    (R, n_blocks) applying to ``kept_block`` consecutive kept codes each, an optional bool keep
    mask (R, K)."""
    rows = packed.shape[0]
    table = np.asarray(fmt.values, dtype=np.float64)
    lowtab = np.empty(table.size)
    _lowbits(table, lowtab)
    sc = np.ascontiguousarray(scales, dtype=np.float64).reshape(rows, -1)
    slow = np.empty(sc.size)
    _lowbits(sc.ravel(), slow)
    out, low, vmax, vsum, special = _empty(rows, K, chunk)
    m = (np.zeros((0, 0), dtype=np.bool_) if mask is None
         else np.ascontiguousarray(mask, dtype=np.bool_))
    _prepare(np.ascontiguousarray(packed, dtype=np.uint8), fmt.bits, table, lowtab, sc,
             slow.reshape(sc.shape), max(int(kept_block), 1), m, K, chunk, out, low, vmax, vsum,
             special)
    return Operand(out, low, vmax, vsum, special, K)


def operand_from_quantized(q: QuantizedTensor, chunk: int = 128, what: str = "operand"
                           ) -> Operand:
    """Operand of a 2-D :class:`QuantizedTensor` quantized along its last axis (R, K)."""
    if len(q.shape) != 2 or q.axis != 1:
        raise ConfigError(f"{what} must be a 2-D tensor quantized along its last axis (K); got "
                          f"shape {q.shape} quantized along axis {q.axis}")
    rows, K = q.shape  # noqa: N806
    if q.scale == "none":
        scales = np.ones((rows, 1))
        kept_block = max(q.kept_per_row, 1)
    else:
        scales = q.scale_values().astype(np.float64)
        kept_block = q.kept_block
    return operand_from_parts(q.codes.reshape(rows, -1), q.fmt, scales, kept_block, q.mask(),
                              K, chunk)
