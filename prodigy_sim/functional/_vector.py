"""Vector unit kernels: IEEE float32 per operation, named float32 algorithms for EXP/SiLU/GELU.

Every arithmetic result that is NaN is the canonical quiet NaN ``0x7FC00000`` (bfloat16
``0x7FC0``), so results do not depend on the host's NaN-propagation rules. bfloat16 is a storage
type: reading widens exactly, writing rounds to nearest even (:func:`to_bf16`).

The transcendental algorithms (every step one IEEE float32 operation, no contraction):

``exp32(x)``
    NaN -> NaN; ``x >= 89`` -> +Inf; ``x <= -104`` -> +0. Otherwise
    ``n = rne_int(x * LOG2E)`` (by ``(t + 1.5*2^23) - 1.5*2^23``), Cody-Waite
    ``r = (x - n*C1) - n*C2`` with ``C1 = 0.693359375``, ``C2 = -2.12194440e-4``,
    ``p = ((((P0*r + P1)*r + P2)*r + P3)*r + P4)*r + P5`` with P0..P5 = 1.9875691500e-4,
    1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
    ``y = ((p*(r*r)) + r) + 1``, result ``(y * 2^n1) * 2^n2`` with ``n1 = floor(n/2)``,
    ``n2 = n - n1`` (the first product is exact, so the only rounding of the scaling is the
    second, which gives IEEE overflow and gradual underflow).
``silu32(x)``
    ``x / (1 + exp32(-x))`` for ``x > -20``, else ``x * exp32(x)`` (there ``1 + exp(-x)``
    rounds to ``exp(-x)``; this keeps tiny results instead of overflowing); ``silu32(-Inf) =
    -Inf * 0 = NaN`` is defined as ``-0``.
``gelu32(x)``
    ``x * Phi(x)`` with ``Phi(x) = 0.5 * erfc(-x / sqrt 2)``. ``|x| >= 15.5``: Phi = 1 (x > 0)
    or 0 (x < 0) exactly. Otherwise, with ``xa = |x|``, ``u = xa * 0.70710677``, the Chebyshev
    erfc of Numerical Recipes (fractional error < 1.2e-7): ``t = 1 / (1 + 0.5*u)``,
    ``q = (...((E0*t + E1)*t + E2)...)*t + E9`` with E0..E9 = ``ERFC_COEFFS``, and
    ``h = 0.5 * ((t * exp32(-(xh*xh) * 0.5)) * exp32(((xh - xa)*(xh + xa)) * 0.5 + q))`` where
    ``xh`` is ``xa`` with its 12 low significand bits cleared - so ``-x^2/2`` is split into an
    exact part ``-(xh*xh)*0.5`` and a small one, and the rounding of ``u`` is not amplified by
    the exponential. ``gelu = x * (1 - h)`` for x >= 0, ``x * h`` for x < 0;
    ``gelu(+Inf) = +Inf``, ``gelu(-Inf) = -0``.
"""

from __future__ import annotations

import numba
import numpy as np

from prodigy_sim.functional import spec
from prodigy_sim.numerics import encode

__all__ = ["exp32", "silu32", "gelu32", "to_bf16", "from_bf16", "vexp", "vsilu", "vgelu",
           "vfma", "vmax", "vmin", "vrsum", "vrmax", "vrcp", "vrsqrt", "canonical", "vgather",
           "vscatadd"]

_F = np.float32
_NAN = _F(np.nan)
_INF = _F(np.inf)
_LOG2E = _F(spec.LOG2E)
_MAGIC = _F(spec.RNE_MAGIC)  # (t + MAGIC) - MAGIC rounds t to an integer, ties to even
_C1 = _F(spec.LN2_HI)
_C2 = _F(spec.LN2_LO)
_P0, _P1, _P2, _P3, _P4, _P5 = (_F(c) for c in spec.EXP_COEFFS)
_E = tuple(_F(c) for c in spec.ERFC_COEFFS)
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9 = _E
_SQRT1_2 = _F(spec.SQRT1_2)
_EXP_HI = _F(spec.EXP_OVERFLOW)
_EXP_LO = _F(spec.EXP_UNDERFLOW)
_SILU_SWITCH = _F(spec.SILU_SWITCH)
_GELU_SAT = _F(spec.GELU_SATURATION)
_SPLIT = np.uint32(spec.GELU_SPLIT_MASK)
_POW2 = np.array([2.0 ** k for k in range(-126, 128)], dtype=np.float32)  # 2^k at k + 126


@numba.njit(cache=True, inline="always")
def _pow2(k):
    return _POW2[k + 126]


@numba.njit(cache=True)
def exp32(x):
    """exp(x) in float32 by the algorithm of the module docstring."""
    if x != x:
        return _NAN
    if x >= _EXP_HI:
        return _INF
    if x <= _EXP_LO:
        return _F(0.0)
    t = x * _LOG2E
    n = (t + _MAGIC) - _MAGIC
    r = x - n * _C1
    r = r - n * _C2
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    y = ((p * (r * r)) + r) + _F(1.0)
    ni = np.int64(n)
    n1 = ni >> 1
    n2 = ni - n1
    return (y * _pow2(n1)) * _pow2(n2)


@numba.njit(cache=True)
def silu32(x):
    """x * sigmoid(x) = x / (1 + exp32(-x)); -Inf -> -0."""
    if x != x:
        return _NAN
    if x == -_INF:
        return _F(-0.0)
    if x <= _SILU_SWITCH:
        return x * exp32(x)  # 1 + exp(-x) == exp(-x) in float32 here; avoids exp overflow
    return x / (_F(1.0) + exp32(-x))


@numba.njit(cache=True)
def _clear_low12(u):
    arr = np.empty(1, dtype=np.float32)
    arr[0] = u
    b = arr.view(np.uint32)
    b[0] = b[0] & _SPLIT
    return arr[0]


@numba.njit(cache=True)
def _phi_tail(xa):
    """0.5 * erfc(xa / sqrt 2) for 0 <= xa < 11 * sqrt 2 (float32; see the module docstring)."""
    u = xa * _SQRT1_2
    t = _F(1.0) / (_F(1.0) + _F(0.5) * u)
    q = _E0 * t + _E1
    q = q * t + _E2
    q = q * t + _E3
    q = q * t + _E4
    q = q * t + _E5
    q = q * t + _E6
    q = q * t + _E7
    q = q * t + _E8
    q = q * t + _E9
    xh = _clear_low12(xa)
    big = -(xh * xh) * _F(0.5)
    small = ((xh - xa) * (xh + xa)) * _F(0.5) + q
    return _F(0.5) * ((t * exp32(big)) * exp32(small))


@numba.njit(cache=True)
def gelu32(x):
    """x * Phi(x), exact-erf GELU by the algorithm of the module docstring."""
    if x != x:
        return _NAN
    xa = abs(x)
    if xa >= _GELU_SAT:
        return x if x > _F(0.0) else _F(-0.0)
    h = _phi_tail(xa)
    if x >= _F(0.0):
        return x * (_F(1.0) - h)
    return x * h


@numba.njit(cache=True)
def _map_exp(x, out):
    for i in range(x.size):
        out[i] = exp32(x[i])


@numba.njit(cache=True)
def _map_silu(x, out):
    for i in range(x.size):
        out[i] = silu32(x[i])


@numba.njit(cache=True)
def _map_gelu(x, out):
    for i in range(x.size):
        out[i] = gelu32(x[i])


def _unary(kernel, x: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(x, dtype=np.float32).ravel()
    out = np.empty_like(flat)
    kernel(flat, out)
    return canonical(out.reshape(np.shape(x)))


def canonical(x: np.ndarray) -> np.ndarray:
    """float32 array with every NaN replaced by the canonical quiet NaN 0x7FC00000."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(np.isnan(x), _NAN, x).astype(np.float32)


def vexp(x: np.ndarray) -> np.ndarray:
    """Elementwise :func:`exp32`."""
    return _unary(_map_exp, x)


def vsilu(x: np.ndarray) -> np.ndarray:
    """Elementwise :func:`silu32`."""
    return _unary(_map_silu, x)


def vgelu(x: np.ndarray) -> np.ndarray:
    """Elementwise :func:`gelu32`."""
    return _unary(_map_gelu, x)


def vmax(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max with NaN propagating (canonical NaN) and max(-0, +0) = +0, broadcasting."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
    r = np.where((a > b) | ((a == b) & ~np.signbit(a)), a, b)
    return np.where(np.isnan(a) | np.isnan(b), _NAN, r).astype(np.float32)


def vmin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min with NaN propagating (canonical NaN) and min(-0, +0) = -0, broadcasting."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32))
    r = np.where((a < b) | ((a == b) & np.signbit(a)), a, b)
    return np.where(np.isnan(a) | np.isnan(b), _NAN, r).astype(np.float32)


@numba.njit(cache=True)
def _fma(a, b, c, out):
    for i in range(out.size):
        p = np.float64(a[i]) * np.float64(b[i])  # exact: 24 + 24 significant bits
        x = np.float64(c[i])
        s = p + x
        if np.isfinite(s):
            bb = s - p
            e = (p - (s - bb)) + (x - bb)
            if e != 0.0:
                arr = np.empty(1, dtype=np.float64)
                arr[0] = s
                bits = arr.view(np.int64)
                if (bits[0] & 1) == 0:
                    bits[0] += 1 if (e > 0.0) == (s > 0.0) else -1
                s = arr[0]
        out[i] = np.float32(s)


def vfma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a * b + c with one rounding (round-to-odd at 53 bits, then RNE to 24), broadcasting."""
    a, b, c = np.broadcast_arrays(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                  np.asarray(c, np.float32))
    out = np.empty(a.shape, dtype=np.float32)
    _fma(np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel(),
         np.ascontiguousarray(c).ravel(), out.reshape(-1))
    return canonical(out)


def vrcp(a: np.ndarray) -> np.ndarray:
    """IEEE 1 / a in float32."""
    with np.errstate(all="ignore"):
        return canonical(np.float32(1.0) / np.asarray(a, np.float32))


def vrsqrt(a: np.ndarray) -> np.ndarray:
    """fl32(1 / fl32(sqrt(a))): two IEEE float32 operations."""
    with np.errstate(all="ignore"):
        return canonical(np.float32(1.0) / np.sqrt(np.asarray(a, np.float32)))


@numba.njit(cache=True)
def _rsum(x, out):
    for i in range(x.shape[0]):
        s = _F(0.0)
        for j in range(x.shape[1]):
            s = s + x[i, j]
        out[i, 0] = s


def vrsum(a: np.ndarray) -> np.ndarray:
    """Row sums (R, 1): ``s = 0; s = fl32(s + a[i, j])`` for j = 0, 1, ... in order."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    out = np.empty((a.shape[0], 1), dtype=np.float32)
    _rsum(a, out)
    return canonical(out)


def vrmax(a: np.ndarray) -> np.ndarray:
    """Row maxima (R, 1), left to right with :func:`vmax` (NaN propagates)."""
    a = np.asarray(a, dtype=np.float32)
    out = a[:, :1].copy()
    for j in range(1, a.shape[1]):
        out = vmax(out, a[:, j:j + 1])
    return canonical(out)


def vgather(src: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Columns by index of stacked tiles: ``out[g, :, j] = src[g, :, idx[g, j]]`` for ``src``
    (G, R, C) and int64 ``idx`` (G, J) (in range: the caller checks)."""
    g, r, _ = src.shape
    return np.take_along_axis(src, np.broadcast_to(idx[:, None, :], (g, r, idx.shape[1])),
                              axis=2)


@numba.njit(cache=True)
def _scatter_add(dst, src, idx):
    for g in range(dst.shape[0]):
        for j in range(idx.shape[1]):
            t = idx[g, j]
            for r in range(dst.shape[1]):
                dst[g, r, t] = dst[g, r, t] + src[g, r, j]


def vscatadd(dst: np.ndarray, src: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Scatter-add of stacked tiles, in place order: for j = 0, 1, ..., ``dst[g, :, idx[g, j]]
    = fl32(dst[g, :, idx[g, j]] + src[g, :, j])`` (``dst`` (G, R, C), ``src`` (G, R, J) float32,
    int64 ``idx`` (G, J) in range). Returns the new ``dst`` (canonical NaN)."""
    out = np.array(dst, dtype=np.float32, order="C")
    _scatter_add(out, np.ascontiguousarray(src, dtype=np.float32),
                 np.ascontiguousarray(idx, dtype=np.int64))
    return canonical(out)


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits (uint16), round to nearest even; NaN -> quiet NaN (sign kept,
    top payload bits kept, quiet bit set), so the canonical NaN becomes 0x7FC0 (the numerics
    codec of ``bfloat16``)."""
    return encode(np.asarray(x, dtype=np.float32), "bfloat16", "nonsaturating")


def from_bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32 (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(
        np.float32)
