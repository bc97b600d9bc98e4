"""The numeric specification of the ISA (``isa/README.md``, *Numeric specification*) in plain
numpy, vectorized over whole tensors.

An independent implementation: it uses numpy, :func:`prodigy_sim.numerics.quantize` (which the
specification names as VQUANT) and the specification's constants
(:mod:`prodigy_sim.functional.spec`), never the functional core's kernels. One step is a
compiled loop for speed: the accumulate ``RNE_fp32(acc + X_c)`` (:func:`rne32_of_sum`, TwoSum
and round to odd in plain IEEE float64 operations, element by element).

- MMA (:func:`mma`): per accumulation chunk of K, the exact sum of the scaled products, then one
  round-to-nearest-even to float32 of ``acc + X_c``. Fast path: one float64 GEMM per chunk, used
  for every (m, n) whose exactness is proven (:func:`chunk_exact_mask`); the other pairs go
  through an exact integer superaccumulator (:func:`_superacc_rne32`), so no input is refused.
- Vector operations (float32 arrays in, float32 arrays out; every NaN result is the canonical
  quiet NaN ``0x7FC00000``): numpy's own float32 arithmetic is one IEEE rounding per operation;
  :func:`vfma` rounds once (exact float64 product, TwoSum, round to odd, one cast);
  :func:`vrsum` / :func:`vrmax` go left to right; :func:`exp32`, :func:`silu32`, :func:`gelu32`
  follow the specification's step lists, one float32 operation per step.
- Indexed moves: :func:`vgather` (fancy indexing) and :func:`vscatadd`, which adds in the
  specification's order without a sequential loop: the terms of each destination column are
  ranked by their position, and round ``t`` adds every destination's ``t``-th term at once.
- Storage conversions: :func:`bf16` (float32 -> bfloat16 value, RNE, NaN quieted),
  :func:`scaled_f64` (a quantized tensor's ``value(code) * scale``, exact in float64).
"""

from __future__ import annotations

import numba
import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.functional import spec
from prodigy_sim.numerics import QuantizedTensor, encode

__all__ = ["scaled_f64", "lsb_exp", "chunk_exact", "chunk_exact_mask", "rne32_of_sum", "mma",
           "bf16", "canonical", "vmax", "vrsum", "vrmax", "vfma", "vrcp", "vrsqrt", "exp32",
           "silu32", "gelu32", "dequant_f32", "index_values", "vgather", "vscatadd"]

F32 = np.float32
_NAN = F32(np.nan)
CHUNK = spec.CHUNK


# ---- storage --------------------------------------------------------------------------------

def scaled_f64(q: QuantizedTensor | np.ndarray, rows: slice = slice(None)) -> np.ndarray:
    """The MMA operand values ``value(code) * scale`` as float64 ``(R, K)`` (exact), for a 2-D
    tensor quantized along its last axis (dense or n:m sparse: pruned positions are exact zeros,
    the scale not applied), or a float array (float32 / bfloat16 values, taken as they are);
    ``rows``: only those rows."""
    if not isinstance(q, QuantizedTensor):
        return np.asarray(q, dtype=np.float32)[rows].astype(np.float64)
    if len(q.shape) != 2 or q.axis != 1:
        raise ConfigError(f"an MMA operand is 2-D and quantized along its last axis (got shape "
                          f"{q.shape}, axis {q.axis})")
    vals = q.fmt.values_f32.astype(np.float64)[q.element_codes()[rows]]
    if q.scale != "none":
        scales = np.repeat(q.scale_values()[rows].astype(np.float64), q.kept_block, axis=1)
        vals = vals * scales[:, : vals.shape[1]]
    mask = q.mask()  # None when dense
    if mask is None:
        return vals
    dense = np.zeros((vals.shape[0], q.shape[1]), dtype=np.float64)
    dense[mask[rows]] = vals.reshape(-1)
    return dense


def dequant_f32(q: QuantizedTensor) -> np.ndarray:
    """VDEQUANT: ``fl32(value(code) * scale)`` of a dense 2-D tensor, float32 ``(R, C)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return canonical(scaled_f64(q).astype(np.float32))


def bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> the bfloat16 value (as float32): the numerics ``bfloat16`` codec (round to
    nearest even; a NaN keeps its sign and top payload bits with the quiet bit set)."""
    codes = encode(np.asarray(x, dtype=np.float32), "bfloat16", "nonsaturating")
    return (codes.astype(np.uint32) << np.uint32(16)).view(np.float32)


def canonical(x: np.ndarray) -> np.ndarray:
    """float32 with every NaN replaced by the canonical quiet NaN 0x7FC00000."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.isnan(x), _NAN, x).astype(np.float32)


# ---- MMA ------------------------------------------------------------------------------------

_NOLSB = 1 << 20


def _parts(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(odd, e)`` int64 with ``v = odd * 2^e`` and ``odd`` odd, for finite float64 ``v`` (zeros
    and non-finite values: ``(0, _NOLSB)``), from the bits."""
    bits = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
    ef = (bits >> 52) & 0x7FF
    sig = (bits & ((1 << 52) - 1)) | np.where(ef > 0, 1 << 52, 0)
    e0 = np.maximum(ef, 1) - 1075
    live = (sig != 0) & (ef != 0x7FF)
    sig = np.where(live, sig, 1)
    low = (sig & -sig).astype(np.float64).view(np.int64) >> 52   # biased exponent of 2^tz
    tz = low - 1023
    odd = np.where(live, (sig >> tz) * np.where(bits < 0, -1, 1), 0)
    return odd, np.where(live, e0 + tz, _NOLSB)


def lsb_exp(v: np.ndarray) -> np.ndarray:
    """Exponent of the lowest set bit of each finite nonzero float64 (``1 << 20`` for zeros and
    non-finite values)."""
    bits = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
    ef = (bits >> 52) & 0x7FF
    sig = bits & ((1 << 52) - 1)
    sig |= np.where(ef > 0, 1 << 52, 0)
    live = (sig != 0) & (ef != 0x7FF)
    low = np.where(live, sig & -sig, 1).astype(np.float64).view(np.int64) >> 52   # 1023 + tz
    return np.where(live, np.maximum(ef, 1) - 2098 + low, _NOLSB)


def chunk_exact_mask(a: np.ndarray, w: np.ndarray, lsb_a: np.ndarray | None = None,
                     lsb_w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(a @ w^T, exact)`` for finite float64 ``a (..., M, K)``, ``w (..., N, K)`` (leading axes
    broadcast): ``exact[..., m, n]`` is True where the float64 GEMM is provably exact - every
    product is a multiple of ``2^(qa[m] + qw[n])`` (row-wise lowest set bits) and
    ``sum_k |a w| < 2^52 * quantum`` (one bit of margin for the rounding of the bound), so every
    partial sum, in any order, is a representable multiple of the quantum. Exact zeros are +0.
    ``lsb_a``, ``lsb_w``: :func:`lsb_exp` of ``a`` and ``w`` if already known.

    The bound is first taken as ``sum_k |a_k| * max_k |w_k|`` (row statistics, no GEMM); only
    if that fails somewhere is ``sum_k |a_k w_k|`` computed by a second GEMM."""
    qa = (lsb_exp(a) if lsb_a is None else lsb_a).min(axis=-1)
    qw = (lsb_exp(w) if lsb_w is None else lsb_w).min(axis=-1)
    wt = np.swapaxes(w, -1, -2)
    # in units of the quanta (powers of two; a zero row has q = _NOLSB and scales to 0). The
    # cheap bound's float64 row sum may round down by far less than its factor-2 margin.
    qa_, qw_ = -np.minimum(qa, 1 << 12), -np.minimum(qw, 1 << 12)
    with np.errstate(over="ignore"):
        cheap = (np.ldexp(np.abs(a).sum(axis=-1), qa_)[..., :, None]
                 * np.ldexp(np.abs(w).max(axis=-1, initial=0.0), qw_)[..., None, :])
        exact = cheap < 2.0**51
        if not exact.all():
            sa = np.ldexp(np.abs(a), qa_[..., None])
            sw = np.ldexp(np.abs(w), qw_[..., None])
            exact = (sa @ np.swapaxes(sw, -1, -2)) < 2.0**52
    if qa.min(initial=_NOLSB) + qw.min(initial=_NOLSB) < -1074:
        exact &= (qa[..., :, None] + qw[..., None, :]) >= -1074
    x = a @ wt
    x[x == 0.0] = 0.0
    return x, exact


def chunk_exact(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``a @ w.T`` in float64 (2-D, finite), raising ConfigError unless provably exact
    (:func:`chunk_exact_mask`)."""
    if not (np.isfinite(a).all() and np.isfinite(w).all()):
        raise ConfigError("numpy MMA: non-finite scaled operands")
    x, exact = chunk_exact_mask(a, w)
    if not exact.all():
        raise ConfigError("numpy MMA: a chunk sum is not provably exact in float64")
    return x


@numba.njit(cache=True)
def _rne32_of_sum_kernel(acc, x, zero_plus, out):
    """Element by element: TwoSum of float64(acc) + x, round to odd, one cast to float32."""
    for i in range(x.size):
        a = np.float64(acc[i])
        s = a + x[i]
        bb = s - a
        err = (a - (s - bb)) + (x[i] - bb)
        if err != 0.0:
            if not (np.int64(np.float64(s).view(np.int64)) & 1):
                s = np.nextafter(s, np.inf if err > 0 else -np.inf)
        elif zero_plus and s == 0.0:
            s = 0.0
        out[i] = np.float32(s)


def rne32_of_sum(acc: np.ndarray, x: np.ndarray, *, zero_plus: bool = True) -> np.ndarray:
    """``RNE_fp32(acc + x)`` of the exact sum of float32 ``acc`` and an exact float64 ``x``
    (finite): TwoSum, round to odd in float64, then one cast (float64 keeps >= 24 + 2 bits, so
    round-to-odd then round-to-nearest-even is one correct rounding). ``zero_plus``: an exact
    zero sum is +0 (the MMA rule); else IEEE (``-0 + -0 = -0``). The per-element steps run as
    one compiled loop (plain IEEE float64 operations, no fast-math), not as numpy temporaries."""
    a32, xx = np.broadcast_arrays(np.asarray(acc, dtype=np.float32), np.asarray(x, np.float64))
    a32 = np.ascontiguousarray(a32).reshape(-1)
    xx = np.ascontiguousarray(xx).reshape(-1)
    out = np.empty(xx.size, dtype=np.float32)
    _rne32_of_sum_kernel(a32, xx, zero_plus, out)
    return out.reshape(np.broadcast_shapes(np.shape(acc), np.shape(x)))


def _superacc_rne32(terms: np.ndarray) -> np.ndarray:
    """``RNE_fp32(sum of the row)`` of finite float64 ``terms (F, T)`` with at most 32
    significant bits each, exactly (an exact zero sum is +0), by a base-2^16 integer
    superaccumulator: each term ``mi * 2^e`` (odd ``mi``) adds ``mi << s`` to limb ``(e - e0) //
    16`` (``s`` the remainder), carries are propagated, the top 48 bits plus a sticky bit give a
    float64 that rounds once to float32."""
    f, t = terms.shape
    out = np.zeros(f, dtype=np.float32)
    if f == 0:
        return out
    odd, e = _parts(terms)
    if int(np.abs(odd).max(initial=0)) >> 32:
        raise ConfigError("numpy MMA: an operand product has more than 32 significant bits")
    nz = odd != 0
    e0 = np.where(nz, e, _NOLSB).min(axis=1, keepdims=True)
    e0 = np.where(e0 == _NOLSB, 0, e0)
    rel = np.where(nz, e - e0, 0)
    limb, s = rel // 16, rel % 16
    nl = int(limb.max()) + 6                      # 32-bit terms span 3 limbs; 3 of headroom
    v = odd << s                                  # |v| < 2^48
    flat = (np.arange(f)[:, None] * nl + limb).reshape(-1)
    lo = np.bincount(flat, (v & 0xFFFFFF).reshape(-1).astype(np.float64), f * nl)
    hi = np.bincount(flat, (v >> 24).reshape(-1).astype(np.float64), f * nl)
    acc = (lo.astype(np.int64) + (hi.astype(np.int64) << 24)).reshape(f, nl)  # sums < 2^32

    def carry(v: np.ndarray) -> np.ndarray:
        v = v.copy()
        for j in range(nl - 1):
            c = v[:, j] >> 16
            v[:, j] -= c << 16
            v[:, j + 1] += c
        return v

    d = carry(acc)
    neg = d[:, -1] < 0
    d = np.where(neg[:, None], carry(-acc), d)
    nzl = d != 0
    top = np.where(nzl.any(axis=1), nl - 1 - np.argmax(nzl[:, ::-1], axis=1), -1)
    live = top >= 0
    idx = np.arange(f)
    tt = np.maximum(top, 2)
    big = (d[idx, tt] << 32) + (d[idx, tt - 1] << 16) + d[idx, tt - 2]
    below = np.arange(nl)[None, :] < (tt - 2)[:, None]
    sticky = (nzl & below).any(axis=1)
    t2 = (big << 1) + sticky.astype(np.int64)
    exp = 16 * (tt - 2) + e0[:, 0] - 1
    with np.errstate(over="ignore"):
        val = np.ldexp(t2.astype(np.float64), exp)
        val = np.where(neg, -val, val)
        out = np.where(live, val, 0.0).astype(np.float32)
    return out


def _special_pairs(ac: np.ndarray, wc: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(..., M, N) True where the chunk of row m of a or of row n of w holds a NaN or an Inf."""
    sa = ~np.isfinite(ac).all(axis=-1)
    sw = ~np.isfinite(wc).all(axis=-1)
    return np.broadcast_to(sa[..., :, None] | sw[..., None, :], shape)


def mma(acc: np.ndarray, a: np.ndarray, w: np.ndarray, *,
        bounds: tuple[int, ...] | None = None, chunk: int = CHUNK,
        lsb_w: np.ndarray | None = None) -> np.ndarray:
    """The MMA of the specification: float32 ``acc (..., M, N)`` plus the scaled float64
    operands ``a (..., M, K)``, ``w (..., N, K)`` (leading axes broadcast; :func:`scaled_f64`),
    returning the new float32 accumulator.

    ``bounds``: the K offsets where the program starts a new MMA instruction (its K tiles; default
    one instruction over all of K); each instruction's K is cut into chunks of ``chunk`` from its
    start. Per chunk, in K order: ``acc <- RNE_fp32(acc + X_c)`` with ``X_c`` the exact sum;
    NaN / Inf operands and accumulators follow IEEE (spec rule 3), every NaN canonical.
    ``lsb_w``: :func:`lsb_exp` of ``w`` if already known.
    """
    k = a.shape[-1]
    starts = sorted(set(bounds or (0,)) | {0})
    edges: list[int] = []
    for i, s0 in enumerate(starts):
        s1 = starts[i + 1] if i + 1 < len(starts) else k
        edges += list(range(s0, s1, chunk))
    edges.append(k)
    lead = np.broadcast_shapes(a.shape[:-2], w.shape[:-2])
    shape = lead + (a.shape[-2], w.shape[-2])
    acc = np.broadcast_to(np.asarray(acc, dtype=np.float32), shape).copy()
    lsb_a, lsb_w = lsb_exp(a), (lsb_exp(w) if lsb_w is None else lsb_w)
    for c0, c1 in zip(edges[:-1], edges[1:], strict=True):
        ac, wc = a[..., c0:c1], w[..., c0:c1]
        spec = _special_pairs(ac, wc, shape)
        if spec.any():
            ac, wc = np.where(np.isfinite(ac), ac, 0.0), np.where(np.isfinite(wc), wc, 0.0)
        x, exact = chunk_exact_mask(ac, wc, lsb_a[..., c0:c1], lsb_w[..., c0:c1])
        bad = ~np.isfinite(acc) | spec
        new = rne32_of_sum(np.where(bad, F32(0), acc), x)
        slow = ~exact & ~bad
        if slow.any():
            idx = np.nonzero(slow)
            ab = np.broadcast_to(ac, lead + ac.shape[-2:])
            wb = np.broadcast_to(wc, lead + wc.shape[-2:])
            ar = ab[idx[:-2] + (idx[-2],)]
            wr = wb[idx[:-2] + (idx[-1],)]
            terms = np.concatenate([ar * wr, acc[idx].astype(np.float64)[:, None]], axis=1)
            new[idx] = _superacc_rne32(terms)
        if bad.any():
            idx = np.nonzero(bad)
            ab = np.broadcast_to(a[..., c0:c1], lead + ac.shape[-2:])
            wb = np.broadcast_to(w[..., c0:c1], lead + wc.shape[-2:])
            with np.errstate(all="ignore"):
                xs = (ab[idx[:-2] + (idx[-2],)] * wb[idx[:-2] + (idx[-1],)]).sum(axis=-1)
                xs = np.where(spec[idx], xs, x[idx])
                new[idx] = (acc[idx].astype(np.float64) + xs).astype(np.float32)
        acc = canonical(new)
    return acc


# ---- vector unit ----------------------------------------------------------------------------

def vmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """VMAX: NaN propagates (canonical), ``max(-0, +0) = +0``; broadcasting."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
    r = np.where((a > b) | ((a == b) & ~np.signbit(a)), a, b)
    return np.where(np.isnan(a) | np.isnan(b), _NAN, r).astype(np.float32)


def vrsum(a: np.ndarray) -> np.ndarray:
    """VRSUM over the last axis, ``s = +0; s = fl32(s + a[..., j])`` left to right -> (..., 1)."""
    a = np.asarray(a, dtype=np.float32)
    s = np.zeros(a.shape[:-1], dtype=np.float32)
    with np.errstate(all="ignore"):
        for j in range(a.shape[-1]):
            s = s + a[..., j]
    return canonical(s[..., None])


def vrmax(a: np.ndarray) -> np.ndarray:
    """VRMAX over the last axis, left to right with :func:`vmax` -> (..., 1)."""
    a = np.asarray(a, dtype=np.float32)
    m = a[..., 0]
    for j in range(1, a.shape[-1]):
        m = vmax(m, a[..., j])
    return canonical(m[..., None])


def vfma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """VFMA ``a * b + c`` with one rounding (the float64 product is exact), broadcasting; IEEE
    signed zeros, Inf and NaN (canonical)."""
    a, b, c = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                  np.asarray(c, np.float32))
    with np.errstate(all="ignore"):
        p = a.astype(np.float64) * b.astype(np.float64)
        s = p + c.astype(np.float64)
        fin = np.isfinite(s)
        r = rne32_of_sum(np.where(fin, c, F32(0)), np.where(fin, p, 0.0), zero_plus=False)
        return canonical(np.where(fin, r, s.astype(np.float32)))


def vrcp(a: np.ndarray) -> np.ndarray:
    """VRCP: IEEE float32 ``1 / a``."""
    with np.errstate(all="ignore"):
        return canonical(F32(1.0) / np.asarray(a, np.float32))


def vrsqrt(a: np.ndarray) -> np.ndarray:
    """VRSQRT: ``fl32(1 / fl32(sqrt(a)))``."""
    with np.errstate(all="ignore"):
        return canonical(F32(1.0) / np.sqrt(np.asarray(a, np.float32)))


_LOG2E = F32(spec.LOG2E)
_MAGIC = F32(spec.RNE_MAGIC)
_C1, _C2 = F32(spec.LN2_HI), F32(spec.LN2_LO)
_P = tuple(F32(c) for c in spec.EXP_COEFFS)
_E = tuple(F32(c) for c in spec.ERFC_COEFFS)
_EXP_HI, _EXP_LO = F32(spec.EXP_OVERFLOW), F32(spec.EXP_UNDERFLOW)
_POW2 = np.ldexp(np.float32(1.0), np.arange(-126, 128)).astype(np.float32)


def exp32(x: np.ndarray) -> np.ndarray:
    """EXP (Cody-Waite + degree-5 polynomial), one float32 operation per step of the spec."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        xc = np.where((x > _EXP_LO) & (x < _EXP_HI), x, F32(0.0))
        t = xc * _LOG2E
        n = (t + _MAGIC) - _MAGIC
        r = xc - n * _C1
        r = r - n * _C2
        p = _P[0] * r + _P[1]
        for c in _P[2:]:
            p = p * r + c
        y = ((p * (r * r)) + r) + F32(1.0)
        ni = n.astype(np.int64)
        n1 = ni >> 1
        y = (y * _POW2[n1 + 126]) * _POW2[ni - n1 + 126]
    y = np.where(x >= _EXP_HI, F32(np.inf), y)
    y = np.where(x <= _EXP_LO, F32(0.0), y)
    return canonical(np.where(np.isnan(x), _NAN, y))


def silu32(x: np.ndarray) -> np.ndarray:
    """SILU: ``x / (1 + exp(-x))`` for x > -20, ``x * exp(x)`` for x <= -20, ``silu(-Inf) = -0``."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        hi = x / (F32(1.0) + exp32(-x))
        lo = x * exp32(x)
    y = np.where(x > F32(spec.SILU_SWITCH), hi, lo)
    y = np.where(x == F32(-np.inf), F32(-0.0), y)
    return canonical(np.where(np.isnan(x), _NAN, y))


def gelu32(x: np.ndarray) -> np.ndarray:
    """GELU, exact-erf form by the Chebyshev erfc of the spec (``h = 0.5 erfc(|x| / sqrt 2)``)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        xa = np.abs(x)
        xa = np.where(xa < F32(spec.GELU_SATURATION), xa, F32(0.0))
        u = xa * F32(spec.SQRT1_2)
        t = F32(1.0) / (F32(1.0) + F32(0.5) * u)
        q = _E[0] * t + _E[1]
        for c in _E[2:]:
            q = q * t + c
        xh = (xa.view(np.uint32) & np.uint32(spec.GELU_SPLIT_MASK)).view(np.float32)
        big = -(xh * xh) * F32(0.5)
        small = ((xh - xa) * (xh + xa)) * F32(0.5) + q
        h = F32(0.5) * ((t * exp32(big)) * exp32(small))
        y = np.where(x >= F32(0.0), x * (F32(1.0) - h), x * h)
    far = np.abs(x) >= F32(spec.GELU_SATURATION)
    y = np.where(far, np.where(x > F32(0.0), x, F32(-0.0)), y)
    return canonical(np.where(np.isnan(x), _NAN, y))


# ---- indexed moves --------------------------------------------------------------------------

def index_values(idx: np.ndarray, width: int) -> np.ndarray:
    """The column numbers an index tile holds, int64 ``(J,)``: its float values, each an integer
    in ``[0, width)`` (ConfigError otherwise)."""
    v = np.asarray(idx, dtype=np.float64).reshape(-1)
    ok = np.isfinite(v) & (v >= 0) & (v < width)
    ok &= np.where(ok, v == np.rint(np.where(ok, v, 0.0)), False)
    if not ok.all():
        raise ConfigError(f"index {v[~ok][0]!r} is not an integer in [0, {width})")
    return v.astype(np.int64)


def vgather(src: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """VGATHER: ``src[..., idx]`` (float32 ``(..., C)``; ``idx`` the index tile's values)."""
    src = np.asarray(src, dtype=np.float32)
    return src[..., index_values(idx, src.shape[-1])]


def vscatadd(dst: np.ndarray, src: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """VSCATADD: ``dst[..., idx[j]] = fl32(dst[..., idx[j]] + src[..., j])`` for j = 0, 1, ...
    in order (float32 ``dst (..., C)``, ``src (..., J)``); returns the new ``dst``. Rounds: the
    ``t``-th term of every destination (terms ranked by ``j``) is added in round ``t``, all
    destinations of a round at once (they are distinct)."""
    out = np.array(dst, dtype=np.float32)
    src = np.asarray(src, dtype=np.float32)
    cols = index_values(idx, out.shape[-1])
    if cols.size == 0:
        return canonical(out)
    order = np.argsort(cols, kind="stable")                  # by destination, then by j
    sc = cols[order]
    first = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    rank = np.arange(sc.size) - np.repeat(first, np.diff(np.r_[first, sc.size]))
    by_rank = order[np.argsort(rank, kind="stable")]
    edges = np.r_[0, np.cumsum(np.bincount(rank))]
    with np.errstate(all="ignore"):
        for t in range(edges.size - 1):
            j = by_rank[edges[t]:edges[t + 1]]
            out[..., cols[j]] = out[..., cols[j]] + src[..., j]
    return canonical(out)
