"""The float32 path of the MMA: chunk sums from float32 GEMMs, where a bound proves them exact.

Notation for one chunk (positions ``k``, ``kc`` of them) and one output pair (row ``m`` of A,
row ``n`` of W): products ``p_k = a'[m,k] w'[n,k]`` of the scaled operands; ``qa[m]`` /
``qw[n]`` the largest powers of two dividing every nonzero ``a'[m,k]`` / ``w'[n,k]`` (the
*quanta*); ``vmax``, ``vsum``, ``ssq`` the largest |value|, the sum of |values| and the sum of
squares of the row's chunk.

**Why one float32 GEMM can be exact.** Every product is an integer multiple of ``qa[m] qw[n]``,
so every partial sum that any summation order forms (BLAS may block, reorder, vectorize and fuse
multiply-adds as it likes; it only ever adds products of the pair and sums of them) is a
multiple of it too, and is at most ``sum_k |p_k|`` in magnitude. That sum is bounded three ways:
``vmax_a vsum_w``, ``vsum_a vmax_w`` and, by Cauchy-Schwarz, ``sqrt(ssq_a ssq_w)``. With the
W-row ratios ``Sw[n] = vsum_w / qw``, ``Rw[n] = vmax_w / qw``, ``Lw[n] = ssq_w / qw^2`` and their
maxima ``Sw*``, ``Rw*``, ``Lw*`` over the W rows that meet the A row::

    sum_k |p_k| <= qw[n] B[m],    B[m] = min(vmax_a Sw*, vsum_a Rw*, sqrt(ssq_a Lw*))

An integer multiple of ``q`` below ``2^24 q`` in magnitude is a float32 number (24 significant
bits; neither subnormal nor overflowing when ``2^-126 <= q`` and ``2^24 q < 2^128``), so if
``B[m] < 2^24 qa[m]`` no operation of the GEMM rounds, for any W row, and the float32 result is
the exact chunk sum ``X``. The ratios make the test independent of each row's scale.
``RNE_fp32(acc + X)`` is then one IEEE float32 addition (``X + 0`` first, so that an exact zero
is +0 as the specification says, whatever sign BLAS gives it).

**The split.** A row that fails the test is cut *by elements* into ``a = a_hi + a_lo``: with
``Q`` the smallest power of two such that ``B[m] < 2^24 Q``, ``a_hi`` keeps the elements whose
quantum is >= Q and ``a_lo`` the others (typically the few smallest values of the row, which set
its quantum). ``a_hi`` passes the test with quantum ``Q`` (its ``B`` is no larger), so the GEMM
of ``a_hi`` gives its exact partial sum ``X_hi``; the few ``a_lo`` products are added to it in
float64 (a product of two float32 numbers is exact in float64). Every partial sum of that
float64 sum is again a sum of some of the pair's products, a multiple of ``qa[m] qw[n]`` at most
``qw[n] B[m]``, so it is exact when ``B[m] < 2^52 qa[m]``; then ``RNE_fp32(acc + X)`` is the
round-to-odd addition of ``_exact.add_rne32``. One GEMM serves both kinds of rows.

**Eligibility** (everything else takes the float64 / exact path of ``_mma``): every nonzero value
is a float32 number (``float32(v) == v``) with ``|v| <= 2^50`` and quantum >= 2^-60, and
``vsum_a <= 2^60``, so every product and partial sum lies in [2^-120, 2^110], far from float32
subnormals and overflow (a flush-to-zero mode could not change anything either); no value is NaN
or infinite. ``B`` is computed in float64 and enlarged by ``1 + 2^-40``, which covers the
rounding of the float64 sums (relative error below ``kc 2^-53``), products and square root.

Row classes (``cls``): 0 = one GEMM is exact; 1 = split (``a_lo`` added in float64); 2 = not
eligible (that row's chunk takes the float64 / exact path, with its whole tile).

Layouts: W is decoded into float32 *k-major* tiles ``(n_tiles, n_chunks, chunk, tn)`` (one GEMM
operand per (tile, chunk), and contiguous rows for the ``a_lo`` updates); A into chunk-major
``a_hi`` ``(n_chunks, R, chunk)`` with ``a_lo`` as a list per (chunk, row).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from prodigy_sim.functional._exact import add_rne32, bits_f64, f64_bits

__all__ = ["CLEAN", "SPLIT", "SLOW", "WTiles", "ASplit", "ADecoded", "w_tiles", "a_decode",
           "a_classify", "a_split", "accumulate32", "accumulate32_batch"]

CLEAN, SPLIT, SLOW = 0, 1, 2
_NAN32 = np.float32(np.nan)
_VMAX = 2.0 ** 50
_QMIN = 2.0 ** -60
_SUM_MAX = 2.0 ** 60
_MARGIN = 1.0 + 2.0 ** -40
_F32_BOUND = 2.0 ** 24
_F64_BOUND = 2.0 ** 52
_RB = 16  # W rows decoded together before their transposed store


@numba.njit(cache=True, inline="always")
def _lowbit(x):
    """Largest power of two dividing the finite nonzero float64 ``x``: ``x = m 2^e`` with an
    integer significand m, the answer is ``(m & -m) 2^e`` (a product of two float64 powers of
    two, exact)."""
    b = f64_bits(x) & 0x7FFFFFFFFFFFFFFF
    ex = b >> 52
    m = b & 0xFFFFFFFFFFFFF
    if ex == 0:
        e = np.int64(-1074)
    else:
        m = m | 0x10000000000000
        e = ex - 1075
    p2 = bits_f64((e + 1023) << 52) if e >= -1022 else bits_f64(np.int64(1) << (e + 1074))
    return np.float64(m & -m) * p2


@numba.njit(cache=True)
def _unpack(pr, bits, start, count, cbuf):
    """Codes ``start .. start + count - 1`` of a packed little-endian bit-stream row into
    ``cbuf`` (a plain function, so that the hot loops of its callers index arrays only:
    passing arrays to inlined helpers there costs reference counting per element)."""
    if bits == 8:
        for i in range(count):
            cbuf[i] = pr[start + i]
    elif bits == 4:
        for i in range(count):
            j = start + i
            cbuf[i] = (pr[j >> 1] >> ((j & 1) * 4)) & 15
    else:
        nbytes = pr.size
        mask = (1 << bits) - 1
        for i in range(count):
            off = (start + i) * bits
            byte = off >> 3
            word = np.int64(pr[byte])
            if bits + (off & 7) > 8 and byte + 1 < nbytes:
                word |= np.int64(pr[byte + 1]) << 8
            cbuf[i] = (word >> (off & 7)) & mask


@numba.njit(cache=True, inline="always")
def _values_chunk(x, n, k0, kc, K, vbuf, qbuf):  # noqa: N803
    """Chunk ``[k0, k0 + kc)`` of row ``n`` of real values into ``vbuf`` (float64) and ``qbuf``
    (their quanta; +inf for zeros, 0 for NaN / Inf)."""
    for j in range(kc):
        k = k0 + j
        v = np.float64(x[n, k]) if k < K else 0.0
        vbuf[j] = v
        if v == 0.0:
            qbuf[j] = np.inf
        elif np.isfinite(v):
            qbuf[j] = _lowbit(v)
        else:
            qbuf[j] = 0.0


@numba.njit(cache=True, inline="always")
def _stats(vbuf, qbuf, kc):
    """(eligible, quantum, vmax, vsum, ssq) of a chunk held in the buffers."""
    good = True
    q = np.inf
    mx = 0.0
    sm = 0.0
    sq = 0.0
    for j in range(kc):
        v = vbuf[j]
        if v != 0.0:
            a = abs(v)
            qq = qbuf[j]
            if not (np.float64(np.float32(v)) == v and a <= _VMAX and qq >= _QMIN):
                good = False
            q = min(q, qq)
            mx = max(mx, a)
            sm += a
            sq += v * v
    return good, q, mx, sm, sq


_tables: dict[int, tuple] = {}


def kernel_tables(values: np.ndarray, lowtab: np.ndarray) -> tuple:
    """(:func:`code_table`, :func:`byte_tables`) of a format's code values and low bits, kept
    per ``values`` array (``_operand.code_tables`` keeps one per format)."""
    hit = _tables.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1], hit[2]
    ctab = code_table(values, lowtab)
    btab = byte_tables(ctab)
    if len(_tables) > 64:
        _tables.clear()
    _tables[id(values)] = (values, ctab, btab)
    return ctab, btab


def code_table(values: np.ndarray, lowtab: np.ndarray) -> np.ndarray:
    """Per-code table (5, n_codes + 1) float64 for the packed kernels: value, |value| (0 if not
    finite), quantum (+inf for zero / not finite), value^2 (0 if not finite), not-finite flag;
    the extra last column is an exact zero, the code of pruned positions."""
    fin = np.isfinite(values)
    t = np.stack([values, np.where(fin, np.abs(values), 0.0), lowtab,
                  np.where(fin, values * values, 0.0), (~fin).astype(np.float64)])
    return np.concatenate([t, np.array([[0.0], [0.0], [np.inf], [0.0], [0.0]])], axis=1)


def byte_tables(ctab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For 4-bit codes, per byte (two codes): the codes' float32 values (2, 256), sums of
    |value| and of value^2 (2, 256) float64, and the bit set of the two codes (256,) int64;
    empty for other widths."""
    if ctab.shape[1] != 17:
        return (np.zeros((2, 0), np.float32), np.zeros((2, 0)), np.zeros(0, np.int64))
    b = np.arange(256)
    lo, hi = b & 15, b >> 4
    ctab = ctab[:, :16]
    vals = np.stack([ctab[0][lo], ctab[0][hi]]).astype(np.float32)
    sums = np.stack([ctab[1][lo] + ctab[1][hi], ctab[3][lo] + ctab[3][hi]])
    return vals, sums, (np.int64(1) << lo) | (np.int64(1) << hi)


@numba.njit(cache=True)
def _decode_row(pr, bits, ctab, btab, sc_row, sl_row, dblock, mrow, sparse, K, chunk, cbuf,  # noqa: N803
                out, qout, st):
    """Decode one stored row into ``out`` (float32, n_chunks * chunk, zeros past K and at
    pruned positions) and its per-chunk statistics into ``st`` (n_chunks, 5): eligible (1/0),
    quantum, vmax, vsum, ssq.

    Statistics are taken on the codes of each (scale block, chunk) segment (``ctab``:
    :func:`code_table`; ``btab``: :func:`byte_tables`) and scaled once (the quantum of
    ``t * s`` is the product of the quanta). 4-bit dense rows with power-of-two scales go two
    codes per byte through the byte tables. ``dblock``: dense positions per scale block;
    ``mrow``: the row's keep mask when ``sparse``; ``cbuf``: int64 scratch of >= K entries;
    ``qout``: if not empty, receives every element's quantum (+inf for zeros). Everything is in
    this one function on purpose: the hot loops index arrays only (arrays passed to helpers
    inside them cost reference counting per call)."""
    vals = ctab[0]
    absv = ctab[1]
    lowt = ctab[2]
    sqv = ctab[3]
    nonf = ctab[4]
    pruned = ctab.shape[1] - 1
    bvals, bsums, bmask = btab
    v0 = bvals[0]
    v1 = bvals[1]
    bs = bsums[0]
    bq = bsums[1]
    nc = st.shape[0]
    wantq = qout.size > 0
    for c in range(nc):
        st[c, 0] = 1.0
        st[c, 1] = np.inf
        st[c, 2] = 0.0
        st[c, 3] = 0.0
        st[c, 4] = 0.0
    nib = (bits == 4 and not sparse and bmask.size > 0 and not wantq and dblock % 2 == 0
           and chunk % 2 == 0 and K % 2 == 0)
    if not nib:
        cnt = K
        if sparse:
            cnt = 0
            for k in range(K):
                cnt += mrow[k]
        _unpack(pr, bits, 0, cnt, cbuf)
        if sparse:  # spread the codes to dense positions; pruned: the zero code ``pruned``
            i = cnt - 1
            for k in range(K - 1, -1, -1):
                if mrow[k]:
                    cbuf[k] = cbuf[i]
                    i -= 1
                else:
                    cbuf[k] = pruned
    k = 0
    blk = 0
    c = 0
    bend = dblock
    cend = chunk
    while k < K:
        e = min(bend, cend, K)
        s = sc_row[blk]
        sl = sl_row[blk]
        pow2 = sl == abs(s)
        cq = np.inf
        cmx = 0.0
        csm = 0.0
        csq = 0.0
        bad = 0.0
        if nib and pow2:
            s32 = np.float32(s)
            pres = np.int64(0)
            for i in range(k >> 1, e >> 1):
                byte = pr[i]
                out[2 * i] = v0[byte] * s32
                out[2 * i + 1] = v1[byte] * s32
                csm += bs[byte]
                csq += bq[byte]
                pres |= bmask[byte]
            for cc in range(16):
                if (pres >> cc) & 1:
                    cq = min(cq, lowt[cc])
                    cmx = max(cmx, absv[cc])
                    bad += nonf[cc]
        else:
            if nib:
                _unpack(pr, bits, k, e - k, cbuf[k:])
            for j in range(k, e):
                out[j] = np.float32(vals[cbuf[j]] * s)
            # two accumulators each: independent dependency chains (the bound tolerates any
            # summation order)
            cq2 = np.inf
            cmx2 = 0.0
            csm2 = 0.0
            csq2 = 0.0
            half = k + (e - k) // 2
            for j in range(k, half):
                c1 = cbuf[j]
                c2 = cbuf[j + half - k]
                cq = min(cq, lowt[c1])
                cq2 = min(cq2, lowt[c2])
                cmx = max(cmx, absv[c1])
                cmx2 = max(cmx2, absv[c2])
                csm += absv[c1]
                csm2 += absv[c2]
                csq += sqv[c1]
                csq2 += sqv[c2]
                bad += nonf[c1] + nonf[c2]
            if (e - k) % 2:
                c1 = cbuf[e - 1]
                cq = min(cq, lowt[c1])
                cmx = max(cmx, absv[c1])
                csm += absv[c1]
                csq += sqv[c1]
                bad += nonf[c1]
            cq = min(cq, cq2)
            cmx = max(cmx, cmx2)
            csm += csm2
            csq += csq2
            if wantq:
                for j in range(k, e):
                    qout[j] = lowt[cbuf[j]] * sl
            if not pow2 and np.isfinite(s) and s != 0.0:
                # a scale that is not a power of two: is every value a float32 number?
                for j in range(k, e):
                    v = vals[cbuf[j]] * s
                    if not np.float64(np.float32(v)) == v:
                        bad += 1.0
        if bad > 0.0 or not np.isfinite(s):
            st[c, 0] = 0.0
        elif s != 0.0 and cmx > 0.0:
            a = abs(s)
            st[c, 1] = min(st[c, 1], cq * sl)
            st[c, 2] = max(st[c, 2], cmx * a)
            st[c, 3] += csm * a
            st[c, 4] += csq * (a * a)
        k = e
        if e == bend:
            blk += 1
            bend += dblock
        if e == cend:
            c += 1
            cend += chunk
    for j in range(K, nc * chunk):
        out[j] = 0.0
        if wantq:
            qout[j] = np.inf
    for c in range(nc):
        if not (st[c, 2] <= _VMAX and st[c, 1] >= _QMIN):
            st[c, 0] = 0.0


# ------------------------------------------------------------------ W

class WTiles:
    """W (R, K) as float32 k-major tiles and per-(chunk, row) statistics.

    ``tiles``: (n_tiles, n_chunks, chunk, tn); ``rs``, ``rr``, ``r2``: float64 (n_chunks, R)
    the ratios ``vsum / q``, ``vmax / q``, ``ssq / q^2`` (0 for an all-zero chunk); ``ok``:
    bool (n_chunks, R) every value of the row's chunk eligible."""

    def __init__(self, rows: int, K: int, chunk: int, tn: int):  # noqa: N803
        nc = -(-K // chunk)
        nt = -(-rows // tn)
        self.rows, self.K, self.chunk, self.tn = rows, K, chunk, tn
        self.tiles = np.empty((nt, nc, chunk, tn), dtype=np.float32)
        self.rs = np.empty((nc, rows))
        self.rr = np.empty((nc, rows))
        self.r2 = np.empty((nc, rows))
        self.ok = np.empty((nc, rows), dtype=np.bool_)

    def ratios(self, groups: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sw*, Rw*, Lw* (n_chunks, groups): maxima over each of ``groups`` equal row groups."""
        nc = self.rs.shape[0]
        if self.rows == 0:
            z = np.zeros((nc, groups))
            return z, z, z
        return tuple(x.reshape(nc, groups, -1).max(axis=2) for x in (self.rs, self.rr, self.r2))

    def tile_ok(self) -> np.ndarray:
        """bool (n_tiles, n_chunks): every value of the tile's chunk eligible."""
        nt, nc, _, tn = self.tiles.shape
        pad = np.ones((nc, nt * tn), dtype=np.bool_)
        pad[:, : self.rows] = self.ok
        return pad.reshape(nc, nt, tn).all(axis=2).T


@numba.njit(cache=True, inline="always")
def _put_stats(good, q, mx, sm, sq, c, n, rs, rr, r2, ok):
    ok[c, n] = good
    if good and q < np.inf:
        rs[c, n] = sm / q
        rr[c, n] = mx / q
        r2[c, n] = sq / q / q
    else:
        rs[c, n] = 0.0
        rr[c, n] = 0.0
        r2[c, n] = 0.0


@numba.njit(cache=True, nogil=True)
def _w_packed(packed, bits, ctab, btab, scales, slow, dblock, mask, K, chunk,  # noqa: N803
              out, rs, rr, r2, ok, t0, t1):
    """Tiles ``t0 .. t1 - 1`` of W from storage. packed (R, row bytes); ctab:
    :func:`code_table`; btab: :func:`byte_tables`; scales / slow: float64 scale values and
    quanta (R, n_blocks); dblock: dense positions per scale block; mask (R, K) or (0, 0) when
    dense. Outputs as :class:`WTiles`."""
    rows = packed.shape[0]
    _, nc, _, tn = out.shape
    sparse = mask.shape[0] > 0
    for t in range(t0, t1):
        rowbuf = np.zeros((nc * chunk, _RB), dtype=np.float32)  # k-major, like the tiles
        cbuf = np.empty(max(K, 1), dtype=np.int64)
        st = np.empty((nc, 5))
        noq = np.empty(0)
        for i0 in range(0, tn, _RB):
            nb = min(_RB, tn - i0)
            for ii in range(nb):
                n = t * tn + i0 + ii
                if n >= rows:
                    rowbuf[:, ii] = 0.0
                    continue
                mrow = mask[n] if sparse else mask[0:0, 0]
                _decode_row(packed[n], bits, ctab, btab, scales[n], slow[n], dblock, mrow, sparse,
                            K, chunk, cbuf, rowbuf[:, ii], noq, st)
                for c in range(nc):
                    _put_stats(st[c, 0] > 0.0, st[c, 1], st[c, 2], st[c, 3], st[c, 4], c, n, rs,
                               rr, r2, ok)
            for c in range(nc):
                for j in range(chunk):
                    k = c * chunk + j
                    for ii in range(nb):
                        out[t, c, j, i0 + ii] = rowbuf[k, ii]


@numba.njit(cache=True, nogil=True)
def _w_values(x, chunk, out, rs, rr, r2, ok, t0, t1):
    """As :func:`_w_packed` for real values x (R, K) given directly."""
    rows, K = x.shape  # noqa: N806
    _, nc, _, tn = out.shape
    for t in range(t0, t1):
        vbuf = np.empty(chunk)
        qbuf = np.empty(chunk)
        for c in range(nc):
            for i in range(tn):
                n = t * tn + i
                if n >= rows:
                    for j in range(chunk):
                        out[t, c, j, i] = 0.0
                    continue
                _values_chunk(x, n, c * chunk, chunk, K, vbuf, qbuf)
                for j in range(chunk):
                    out[t, c, j, i] = np.float32(vbuf[j])
                good, q, mx, sm, sq = _stats(vbuf, qbuf, chunk)
                _put_stats(good, q, mx, sm, sq, c, n, rs, rr, r2, ok)


def w_tiles(op, chunk: int, tn: int, run=None) -> WTiles:
    """:class:`WTiles` of W (R, K): a :class:`~prodigy_sim.functional._operand.Stored` or real
    values (an array). ``run(fn, n)``: how to call ``fn(lo, hi)`` over ``range(n)`` (default:
    one call; the caller may spread the pieces over threads)."""
    if isinstance(op, np.ndarray):
        return w_tiles_values(op, chunk, tn, run)
    w = WTiles(op.rows, op.K, chunk, tn)
    ctab, btab = kernel_tables(op.values, op.lowtab)

    def piece(t0: int, t1: int) -> None:
        _w_packed(op.packed, op.bits, ctab, btab, op.scales, op.slow, max(op.dblock, 1),
                  op.mask, op.K, chunk, w.tiles, w.rs, w.rr, w.r2, w.ok, t0, t1)
    (run or _run_once)(piece, w.tiles.shape[0])
    return w


def w_tiles_values(x: np.ndarray, chunk: int, tn: int, run=None) -> WTiles:
    """:class:`WTiles` of real values x (R, K)."""
    w = WTiles(x.shape[0], x.shape[1], chunk, tn)
    x = np.ascontiguousarray(x)

    def piece(t0: int, t1: int) -> None:
        _w_values(x, chunk, w.tiles, w.rs, w.rr, w.r2, w.ok, t0, t1)
    (run or _run_once)(piece, w.tiles.shape[0])
    return w


def _run_once(fn, n: int) -> None:
    fn(0, n)


# ------------------------------------------------------------------ A

class ASplit:
    """A (R, K) classified and split per (chunk, row) for W ratios: ``hi`` float32 (n_chunks, R,
    chunk) = ``a_hi`` (zeros for class 2); ``cls`` int8 (n_chunks, R); ``nlo`` int32
    (n_chunks, R), ``lok`` int16 and ``lov`` float32 (n_chunks, R, chunk): positions and values
    of ``a_lo`` (the first ``nlo`` entries)."""

    def __init__(self, rows: int, K: int, chunk: int):  # noqa: N803
        nc = -(-K // chunk)
        self.hi = np.empty((nc, rows, chunk), dtype=np.float32)
        self.cls = np.empty((nc, rows), dtype=np.int8)
        self.nlo = np.empty((nc, rows), dtype=np.int32)
        self.lok = np.empty((nc, rows, chunk), dtype=np.int16)
        self.lov = np.empty((nc, rows, chunk), dtype=np.float32)


@numba.njit(cache=True)
def _classify_row(v32, qbuf, st, chunk, sw, rw, lw, g, r, hi, cls, nlo, lok, lov):
    """Class of every chunk of row ``r`` from its values ``v32``, quanta ``qbuf`` and chunk
    statistics ``st`` (see :func:`_decode_row`), against the W ratios of row group ``g``:
    writes ``a_hi`` into ``hi[:, r]``, ``a_lo`` into ``lok`` / ``lov`` / ``nlo`` and the
    class into ``cls``."""
    nc = st.shape[0]
    for c in range(nc):
        k0 = c * chunk
        good = st[c, 0] > 0.0
        qa = st[c, 1]
        sm = st[c, 3]
        cl = SLOW
        n_lo = 0
        if good and sm <= _SUM_MAX:
            b = min(min(st[c, 2] * sw[c, g], sm * rw[c, g]), math.sqrt(st[c, 4] * lw[c, g]))
            b *= _MARGIN
            if b < _F32_BOUND * qa:
                cl = CLEAN
                for j in range(chunk):
                    hi[c, r, j] = v32[k0 + j]
            elif b < _F64_BOUND * qa:
                cl = SPLIT
                # Q = 2^(floor(log2 b) - 23), the smallest power of two with b < 2^24 Q
                q = math.ldexp(1.0, math.frexp(b)[1] - 24)
                for j in range(chunk):
                    v = v32[k0 + j]
                    if qbuf[k0 + j] < q:
                        hi[c, r, j] = 0.0
                        lok[c, r, n_lo] = j
                        lov[c, r, n_lo] = v
                        n_lo += 1
                    else:
                        hi[c, r, j] = v
        if cl == SLOW:
            for j in range(chunk):
                hi[c, r, j] = 0.0
        cls[c, r] = cl
        nlo[c, r] = n_lo


class ADecoded:
    """A (R, K) decoded, before classification (it does not depend on W, so one decoding can
    serve several MMAs): ``v32`` float32 (R, n_chunks * chunk) values, ``q`` float64 their
    quanta (+inf for zeros), ``st`` (R, n_chunks, 5) the chunk statistics of
    :func:`_decode_row`."""

    def __init__(self, rows: int, K: int, chunk: int):  # noqa: N803
        nc = -(-K // chunk)
        self.K, self.chunk = K, chunk
        self.v32 = np.empty((rows, nc * chunk), dtype=np.float32)
        self.q = np.empty((rows, nc * chunk))
        self.st = np.empty((rows, nc, 5))

    @property
    def rows(self) -> int:
        return self.v32.shape[0]


@numba.njit(cache=True, nogil=True)
def _a_packed(packed, bits, ctab, btab, scales, slow, dblock, K, chunk, v32, q, st, r0, r1):  # noqa: N803
    """Decode rows ``r0 .. r1 - 1`` of a dense stored A (arguments as :func:`_w_packed`)."""
    nomask = np.zeros(0, dtype=np.bool_)
    cbuf = np.empty(max(K, 1), dtype=np.int64)
    for r in range(r0, r1):
        _decode_row(packed[r], bits, ctab, btab, scales[r], slow[r], dblock, nomask, False, K,
                    chunk, cbuf, v32[r], q[r], st[r])


@numba.njit(cache=True, nogil=True)
def _a_values(x, chunk, v32, q, st, r0, r1):
    """As :func:`_a_packed` for real values x (R, K) given directly."""
    K = x.shape[1]  # noqa: N806
    nc = st.shape[1]
    vbuf = np.empty(chunk)
    qbuf = np.empty(chunk)
    for r in range(r0, r1):
        for c in range(nc):
            _values_chunk(x, r, c * chunk, chunk, K, vbuf, qbuf)
            for j in range(chunk):
                v32[r, c * chunk + j] = np.float32(vbuf[j])
                q[r, c * chunk + j] = qbuf[j]
            good, qq, mx, sm, sq = _stats(vbuf, qbuf, chunk)
            st[r, c, 0] = 1.0 if good else 0.0
            st[r, c, 1] = qq
            st[r, c, 2] = mx
            st[r, c, 3] = sm
            st[r, c, 4] = sq


@numba.njit(cache=True, nogil=True)
def _a_classify(v32, q, st, chunk, group_rows, sw, rw, lw, hi, cls, nlo, lok, lov, r0, r1):
    """Classify and split every chunk of rows ``r0 .. r1 - 1``; row r uses the W ratios
    ``sw[c, r // group_rows]`` (and rw, lw)."""
    for r in range(r0, r1):
        _classify_row(v32[r], q[r], st[r], chunk, sw, rw, lw, r // group_rows, r, hi, cls, nlo,
                      lok, lov)


def a_decode(op, chunk: int, run=None) -> ADecoded:
    """:class:`ADecoded` of A (R, K): a dense :class:`~prodigy_sim.functional._operand.Stored`
    or real values (an array); ``run`` as for :func:`w_tiles`."""
    if isinstance(op, np.ndarray):
        x = np.ascontiguousarray(op)
        d = ADecoded(x.shape[0], x.shape[1], chunk)

        def piece(r0: int, r1: int) -> None:
            _a_values(x, chunk, d.v32, d.q, d.st, r0, r1)
    else:
        d = ADecoded(op.rows, op.K, chunk)
        ctab, btab = kernel_tables(op.values, op.lowtab)

        def piece(r0: int, r1: int) -> None:
            _a_packed(op.packed, op.bits, ctab, btab, op.scales, op.slow, max(op.dblock, 1),
                      op.K, chunk, d.v32, d.q, d.st, r0, r1)
    (run or _run_once)(piece, d.rows)
    return d


def a_classify(d: ADecoded, ratios, group_rows: int, run=None) -> ASplit:
    """:class:`ASplit` of decoded A for the W ratios (Sw*, Rw*, Lw*), each (n_chunks,
    groups), rows grouped ``group_rows`` at a time."""
    a = ASplit(d.rows, d.K, d.chunk)
    gr = max(int(group_rows), 1)

    def piece(r0: int, r1: int) -> None:
        # mypy cannot match *args followed by positional arguments to a numba dispatcher
        _a_classify(d.v32, d.q, d.st, d.chunk, gr, *ratios,  # type: ignore[call-arg]
                    a.hi, a.cls, a.nlo, a.lok, a.lov, r0, r1)
    (run or _run_once)(piece, d.rows)
    return a


def a_split(op, chunk: int, ratios, group_rows: int, run=None) -> ASplit:
    """:class:`ASplit` of A (R, K) (see :func:`a_decode` and :func:`a_classify`)."""
    return a_classify(a_decode(op, chunk, run), ratios, group_rows, run)


# ------------------------------------------------------------------ accumulation

@numba.njit(cache=True, nogil=True)
def accumulate32(acc, x, cls, nlo, lok, lov, wt):
    """Chunks g = 0, 1, ... in order: ``acc <- RNE_fp32(acc + X_g)``.

    acc: float32 (M, tn), C-contiguous; x: float32 (G, M, tn) the GEMM of ``a_hi`` per chunk;
    cls, nlo: (G, M) with classes 0 / 1 only; lok, lov: (G, M, chunk) ``a_lo``; wt: float32
    (G, chunk, tn) the W tile, k-major."""
    m, tn = acc.shape
    t = np.empty(tn)
    for g in range(x.shape[0]):
        xg = x[g]
        wg = wt[g]
        for r in range(m):
            ar = acc[r]
            xr = xg[r]
            if cls[g, r] == CLEAN:
                for j in range(tn):
                    s = ar[j] + (xr[j] + np.float32(0.0))
                    ar[j] = s if s == s else _NAN32
                continue
            for j in range(tn):
                t[j] = np.float64(xr[j])
            for i in range(nlo[g, r]):
                v = np.float64(lov[g, r, i])
                wr = wg[lok[g, r, i]]
                for j in range(tn):
                    t[j] += v * np.float64(wr[j])
            for j in range(tn):
                s = add_rne32(ar[j], t[j] + 0.0)
                ar[j] = s if s == s else _NAN32


@numba.njit(cache=True, nogil=True)
def accumulate32_batch(acc, x, sel, cls, nlo, lok, lov, tiles):
    """:func:`accumulate32` for B stacked MMAs: acc (S, M, N) C-contiguous, x (S, n_chunks, M,
    N) of the MMAs ``sel`` (S,); cls, nlo (n_chunks, B*M), lok, lov (n_chunks, B*M, chunk) of
    the stacked A rows; tiles (B, n_chunks, chunk, N) of the stacked W."""
    m = acc.shape[1]
    for i in range(sel.size):
        b = sel[i]
        r0 = b * m
        accumulate32(acc[i], x[i], cls[:, r0:r0 + m], nlo[:, r0:r0 + m], lok[:, r0:r0 + m],
                     lov[:, r0:r0 + m], tiles[b])
