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

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import ConfigError
from prodigy_sim.functional._exact import bits_f64, f64_bits, significand_exponent
from prodigy_sim.functional.spec import CHUNK
from prodigy_sim.numerics import QuantizedTensor, decode

__all__ = ["Operand", "OperandSource", "Stored", "operand_from_quantized", "operand_from_values",
           "operand_source", "lowbit", "scale_parts", "code_tables"]


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
    m, e = significand_exponent(f64_bits(x))
    # 2^e exactly, from its bits (2^-1074 is the smallest subnormal)
    p2 = bits_f64(np.int64(e + 1023) << 52) if e >= -1022 else bits_f64(np.int64(1))
    return np.float64(m & -m) * p2


@numba.njit(cache=True)
def _lowbits(x, out):
    for i in range(x.size):
        out[i] = lowbit(x[i])


@parallel_if_large
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


@parallel_if_large
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


def operand_from_values(x: np.ndarray, chunk: int = CHUNK) -> Operand:
    """Operand of real values given directly (float32 / bfloat16 tiles: no scale), (R, K)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ConfigError(f"an MMA operand must be 2-D (R, K) (got shape {x.shape})")
    out, low, vmax, vsum, special = _empty(x.shape[0], x.shape[1], chunk)
    _from_values(np.ascontiguousarray(x), chunk, out, low, vmax, vsum, special)
    return Operand(out, low, vmax, vsum, special, x.shape[1])


def operand_from_parts(packed: np.ndarray, fmt, scales: np.ndarray, kept_block: int,
                       mask: np.ndarray | None, K: int, chunk: int = CHUNK) -> Operand:  # noqa: N803
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


@numba.njit(cache=True, inline="always")
def _decode_row(packed, bits, table, lowtab, scales, slow, block, K, chunk, r, c, o):  # noqa: N803
    """Chunk ``c`` of dense row ``r`` into ``o`` (float64 (chunk,)); returns its statistics
    (low, vmax, vsum, special) as :func:`_prepare` defines them for a dense row.

    ``table`` is (values, |finite values| else 0, not-finite flags): the statistics of a scale
    block are taken on the codes and scaled once (``max|t| * |s| = max|t * s|`` and the low bits
    multiply; ``vsum`` is the same sum up to float64 rounding, which the exactness bound allows
    for). A non-finite scale makes the whole block special, as every ``t * s`` is then NaN or
    infinite; a zero scale gives zero values, which change no statistic."""
    values = table[0]
    absfin = table[1]
    nonfin = table[2]
    cmask = (1 << bits) - 1
    nbytes = packed.shape[1]
    pr = packed[r]
    j0 = c * chunk
    jend = min(j0 + chunk, K)
    lo = np.inf
    mx = 0.0
    sm = 0.0
    sp = False
    j = j0
    while j < jend:
        bi = j // block
        seg = min((bi + 1) * block, jend)
        sc = scales[r, bi]
        blo = np.inf
        bmx = 0.0
        bsm = 0.0
        bsp = 0.0
        if bits == 4 and (j & 1) == 0 and (seg & 1) == 0:
            for byte in range(j >> 1, seg >> 1):
                w = pr[byte]
                k = 2 * byte - j0
                c0 = w & 15
                c1 = w >> 4
                o[k] = values[c0] * sc
                o[k + 1] = values[c1] * sc
                bmx = max(bmx, max(absfin[c0], absfin[c1]))
                bsm += absfin[c0] + absfin[c1]
                blo = min(blo, min(lowtab[c0], lowtab[c1]))
                bsp += nonfin[c0] + nonfin[c1]
        elif bits == 8:
            for jj in range(j, seg):
                code = pr[jj]
                o[jj - j0] = values[code] * sc
                bmx = max(bmx, absfin[code])
                bsm += absfin[code]
                blo = min(blo, lowtab[code])
                bsp += nonfin[code]
        else:
            for jj in range(j, seg):
                off = jj * bits
                byte = off >> 3
                word = np.int64(pr[byte])
                if bits + (off & 7) > 8 and byte + 1 < nbytes:
                    word |= np.int64(pr[byte + 1]) << 8
                code = (word >> (off & 7)) & cmask
                o[jj - j0] = values[code] * sc
                bmx = max(bmx, absfin[code])
                bsm += absfin[code]
                blo = min(blo, lowtab[code])
                bsp += nonfin[code]
        if np.isfinite(sc):
            asc = abs(sc)
            mx = max(mx, bmx * asc)
            sm += bsm * asc
            lo = min(lo, blo * slow[r, bi])
            sp = sp or bsp > 0.0
        else:
            sp = True
        j = seg
    for jj in range(jend - j0, chunk):
        o[jj] = 0.0
    return lo, mx, sm, sp


@numba.njit(cache=True, nogil=True)
def _decode_chunk(packed, bits, table, lowtab, scales, slow, block, K, chunk, c, r0, r1,  # noqa: N803
                  out, low, vmax, vsum, special):
    """Chunk ``c`` of dense rows ``r0:r1`` straight from packed codes into ``out[:r1-r0]``;
    returns the tile aggregates (min low, max vmax, max vsum, any special)."""
    glo = np.inf
    gmx = 0.0
    gsm = 0.0
    gsp = False
    for r in range(r0, r1):
        lo, mx, sm, sp = _decode_row(packed, bits, table, lowtab, scales, slow, block, K, chunk,
                                     r, c, out[r - r0])
        low[r - r0] = lo
        vmax[r - r0] = mx
        vsum[r - r0] = sm
        special[r - r0] = sp
        glo = min(glo, lo)
        gmx = max(gmx, mx)
        gsm = max(gsm, sm)
        gsp = gsp or sp
    return glo, gmx, gsm, gsp


@parallel_if_large
def _decode_all(packed, bits, table, lowtab, scales, slow, block, K, chunk,  # noqa: N803
                out, low, vmax, vsum, special):
    """Every chunk of every dense row (the whole operand), rows in parallel."""
    nc = out.shape[0]
    for r in numba.prange(packed.shape[0]):
        for c in range(nc):
            lo, mx, sm, sp = _decode_row(packed, bits, table, lowtab, scales, slow, block, K,
                                         chunk, r, c, out[c, r])
            low[c, r] = lo
            vmax[c, r] = mx
            vsum[c, r] = sm
            special[c, r] = sp


@numba.njit(cache=True, nogil=True)
def _decode_group(packed, bits, table, lowtab, scales, slow, block, K, chunk, c0, c1, r0,  # noqa: N803
                  r1, out, low, vmax, vsum, special, agg):
    """Chunks ``c0:c1`` of dense rows ``r0:r1`` into ``out[:c1-c0, :r1-r0]`` and per-chunk
    statistics; ``agg[g]`` = (min low, max vmax, max vsum, any special) of chunk ``c0 + g``."""
    for g in range(c1 - c0):
        lo, mx, sm, sp = _decode_chunk(packed, bits, table, lowtab, scales, slow, block, K,
                                       chunk, c0 + g, r0, r1, out[g], low[g], vmax[g], vsum[g],
                                       special[g])
        agg[g, 0] = lo
        agg[g, 1] = mx
        agg[g, 2] = sm
        agg[g, 3] = 1.0 if sp else 0.0


class OperandSource:
    """Chunks of an operand's rows on demand. ``chunk_group(c0, c1, r0, r1, buf)`` gives chunks
    ``c0:c1`` of rows ``r0:r1``: ``(values (G, n, chunk), low, vmax, vsum, special (G, n),
    agg)`` with ``agg[g]`` = (min low, max vmax, max vsum, any special) of chunk ``c0 + g``.

    The base class slices a prebuilt :class:`Operand`; :func:`operand_source` decodes a dense
    quantized tensor group by group instead, so a large weight is never expanded to float64 as
    a whole. The arrays may be views of ``buf`` (a per-thread scratch dict)."""

    def __init__(self, op: Operand | None, rows: int = 0, K: int = 0, chunk: int = 0):  # noqa: N803
        self.op = op
        if op is not None:
            rows, K, chunk = op.rows, op.K, op.chunk  # noqa: N806
        self.rows, self.K, self.chunk = rows, K, chunk

    @property
    def n_chunks(self) -> int:
        return -(-self.K // self.chunk)

    def chunk_group(self, c0: int, c1: int, r0: int, r1: int, buf: dict):
        op = self.op
        assert op is not None  # only _QuantizedSource, which overrides this, has no Operand
        cs, rs = slice(c0, c1), slice(r0, r1)
        low, vmax, vsum, special = op.low[cs, rs], op.vmax[cs, rs], op.vsum[cs, rs], \
            op.special[cs, rs]
        agg = np.stack([low.min(axis=1), vmax.max(axis=1), vsum.max(axis=1),
                        special.any(axis=1)], axis=1)
        return op.values[cs, rs], low, vmax, vsum, special, agg


class _QuantizedSource(OperandSource):
    def __init__(self, packed, bits, table, lowtab, scales, slow, block, K, chunk):  # noqa: N803
        super().__init__(None, packed.shape[0], K, chunk)
        self.args = (packed, bits, table, lowtab, scales, slow, block, K, chunk)

    def chunk_group(self, c0: int, c1: int, r0: int, r1: int, buf: dict):
        g, n = c1 - c0, r1 - r0
        key = ("src", id(self))
        have = buf.get(key)
        if have is None or have[0].shape[0] < g or have[0].shape[1] < n:
            have = buf[key] = (np.empty((g, n, self.chunk)), np.empty((g, n)), np.empty((g, n)),
                               np.empty((g, n)), np.empty((g, n), dtype=np.bool_),
                               np.empty((g, 4)))
        out, low, vmax, vsum, special = (x[:g, :n] for x in have[:5])
        agg = have[5][:g]
        # mypy cannot match *args followed by positional arguments to a numba dispatcher
        _decode_group(*self.args, c0, c1, r0, r1,  # type: ignore[call-arg]
                      out, low, vmax, vsum, special, agg)
        return out, low, vmax, vsum, special, agg


_SCALE_CODE_FORMATS = {"e8m0": "float8_e8m0fnu", "e4m3": "float8_e4m3fn"}
_scale_luts: dict = {}


def scale_parts(q: QuantizedTensor) -> tuple[np.ndarray, np.ndarray, int]:
    """float64 scale values (R, n_blocks) of a 2-D tensor, their low bits, and the stored codes
    per scale (ones and all codes of a row for ``scale='none'``)."""
    rows = q.shape[0]
    if q.scale == "none":
        sc = np.ones((rows, 1))
        return sc, sc.copy(), max(q.kept_per_row, 1)
    block = max(int(q.kept_block), 1)
    fmt = _SCALE_CODE_FORMATS.get(q.scale)
    if fmt is not None and q.scales.dtype == np.uint8:
        # 8-bit scale codes: look their values (as scale_values() decodes them) and low
        # bits up in 256-entry tables instead of decoding every scale
        if fmt not in _scale_luts:
            vals = decode(np.arange(256, dtype=np.uint8), fmt).astype(np.float64)
            lows = np.empty(256)
            _lowbits(vals, lows)
            _scale_luts[fmt] = (vals, lows)
        vals, lows = _scale_luts[fmt]
        codes = q.scales.reshape(rows, -1)
        return vals[codes], lows[codes], block
    sc = np.ascontiguousarray(q.scale_values(), dtype=np.float64).reshape(rows, -1)
    slow = np.empty(sc.size)
    _lowbits(sc.ravel(), slow)
    return sc, slow.reshape(sc.shape), block


_code_tables: dict[int, tuple] = {}


def code_tables(fmt) -> tuple[np.ndarray, np.ndarray]:
    """float64 value and low bit of every code of ``fmt`` (kept per format object: the
    executor asks for them on every MMA)."""
    hit = _code_tables.get(id(fmt))
    if hit is not None and hit[0] is fmt:
        return hit[1], hit[2]
    values = np.asarray(fmt.values, dtype=np.float64)
    lowtab = np.empty(values.size)
    _lowbits(values, lowtab)
    if len(_code_tables) > 64:
        _code_tables.clear()
    _code_tables[id(fmt)] = (fmt, values, lowtab)
    return values, lowtab


@dataclass(frozen=True, eq=False)
class Stored:
    """Stored rows (R, K) as the kernels read them: packed codes ``packed`` (R, row bytes),
    code width ``bits``, float64 ``values`` and low bits ``lowtab`` of every code, float64
    ``scales`` and their low bits ``slow`` (R, n_blocks), ``dblock`` dense positions and
    ``kept_block`` stored codes per scale, the bool keep ``mask`` (R, K) (an empty (0, 0) one
    when dense). Several operands of one shape may be stacked along R."""

    packed: np.ndarray
    bits: int
    values: np.ndarray
    lowtab: np.ndarray
    scales: np.ndarray
    slow: np.ndarray
    dblock: int
    kept_block: int
    mask: np.ndarray
    K: int

    @property
    def rows(self) -> int:
        return self.packed.shape[0]

    @property
    def sparse(self) -> bool:
        return self.mask.shape[0] > 0

    def rows_slice(self, r0: int, r1: int) -> Stored:
        """Rows ``r0 .. r1 - 1``."""
        rs = slice(r0, r1)
        return Stored(self.packed[rs], self.bits, self.values, self.lowtab, self.scales[rs],
                      self.slow[rs], self.dblock, self.kept_block,
                      self.mask[rs] if self.sparse else self.mask, self.K)

    def operand(self, chunk: int) -> Operand:
        """The float64 :class:`Operand` of these rows (for the float64 / exact path)."""
        out, low, vmax, vsum, special = _empty(self.rows, self.K, chunk)
        _prepare(np.ascontiguousarray(self.packed), self.bits, self.values, self.lowtab,
                 np.ascontiguousarray(self.scales), np.ascontiguousarray(self.slow),
                 max(self.kept_block, 1), np.ascontiguousarray(self.mask), self.K, chunk,
                 out, low, vmax, vsum, special)
        return Operand(out, low, vmax, vsum, special, self.K)

    @classmethod
    def of(cls, q: QuantizedTensor) -> Stored:
        """The storage of a 2-D tensor quantized along its last axis."""
        rows, K = q.shape  # noqa: N806
        values, lowtab = code_tables(q.fmt)
        sc, slow, kept_block = scale_parts(q)
        packed = np.ascontiguousarray(q.codes.reshape(rows, -1), dtype=np.uint8)
        mask = q.mask()
        mask = (np.zeros((0, 0), dtype=np.bool_) if mask is None
                else np.ascontiguousarray(mask, dtype=np.bool_))
        dblock = max(K, 1) if q.scale == "none" else q.block
        return cls(packed, q.fmt.bits, values, lowtab, np.ascontiguousarray(sc),
                   np.ascontiguousarray(slow), dblock, kept_block, mask, K)


def _dense_args(q: QuantizedTensor, chunk: int) -> tuple:
    """Kernel arguments of a dense 2-D tensor: packed codes, code tables (values, |finite
    values|, non-finite flags), low bits of the values, float64 scales and their low bits per
    (row, block), block, K, chunk."""
    rows = q.shape[0]
    values, lowtab = code_tables(q.fmt)
    finite = np.isfinite(values)
    table = np.stack([values, np.where(finite, np.abs(values), 0.0), (~finite).astype(np.float64)])
    sc, slow, block = scale_parts(q)
    packed = np.ascontiguousarray(q.codes.reshape(rows, -1), dtype=np.uint8)
    return (packed, q.fmt.bits, table, lowtab, sc, slow, block, q.shape[1], int(chunk))


def _check_2d(q: QuantizedTensor, what: str) -> None:
    if len(q.shape) != 2 or q.axis != 1:
        raise ConfigError(f"{what} must be a 2-D tensor quantized along its last axis (K); got "
                          f"shape {q.shape} quantized along axis {q.axis}")


def operand_source(q: QuantizedTensor, chunk: int = CHUNK, what: str = "operand"
                   ) -> OperandSource:
    """An :class:`OperandSource` of a 2-D :class:`QuantizedTensor` (R, K): decoded chunk by
    chunk when dense, else a prebuilt :class:`Operand`."""
    _check_2d(q, what)
    if q.sparsity is not None:
        return OperandSource(operand_from_quantized(q, chunk, what))
    return _QuantizedSource(*_dense_args(q, chunk))


def operand_from_quantized(q: QuantizedTensor, chunk: int = CHUNK, what: str = "operand"
                           ) -> Operand:
    """Operand of a 2-D :class:`QuantizedTensor` quantized along its last axis (R, K)."""
    _check_2d(q, what)
    rows, K = q.shape  # noqa: N806
    if q.sparsity is None:
        out, low, vmax, vsum, special = _empty(rows, K, chunk)
        _decode_all(*_dense_args(q, chunk), out, low, vmax, vsum, special)
        return Operand(out, low, vmax, vsum, special, K)
    if q.scale == "none":
        scales = np.ones((rows, 1))
        kept_block = max(q.kept_per_row, 1)
    else:
        scales = q.scale_values().astype(np.float64)
        kept_block = q.kept_block
    return operand_from_parts(q.codes.reshape(rows, -1), q.fmt, scales, kept_block, q.mask(),
                              K, chunk)

