"""Correctly rounded float32 elementwise functions (Ziv's rounding test, exact fallback).

numpy's ``exp``/``cos``/``tanh`` and libm's ``erfc`` differ between hosts (SIMD dispatch to
AVX-512 or AVX2 code, glibc's FMA variants) in the last bits. Here a function ``f`` of a float32
``x`` is first evaluated in float64 by those libraries (error far below ``2^-40`` relative); if
that value lies farther than ``tol * |v|`` from every float32 rounding boundary (midpoint between
neighbouring float32 values), its float32 rounding *is* the correctly rounded ``f(x)``, whatever
the library. The few values near a boundary (about ``2^(25 - log2(1/tol))`` of them) are
recomputed with Python's ``decimal`` at 50+ significant digits and rounded directly to float32.
So every result is ``f(x)`` rounded once to nearest-even float32: a function of ``x`` alone, the
same on every host. (Exact ties cannot occur: the functions are transcendental at every
nonzero float32 argument where they are not exact.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import Decimal, localcontext

import numba
import numpy as np

__all__ = ["exp_f32", "silu_f32", "gelu_f32", "cos_f32", "sin_f32", "decimal_to_f32",
           "ln_decimal", "exp_decimal"]

_PREC = 60


@numba.vectorize(["float64(float64)"], cache=True)
def _erfc64(v):
    return math.erfc(v)


def decimal_to_f32(d: Decimal) -> np.float32:
    """``d`` rounded once to float32 (nearest, ties to even; beyond the range +-Inf)."""
    if d == 0:
        return np.float32(-0.0 if d.is_signed() else 0.0)
    f = float(d)
    big = float(np.finfo(np.float32).max)
    c = np.float32(f) if abs(f) <= big else np.float32(math.copysign(big, f))
    with np.errstate(over="ignore"):
        cands = [c, np.nextafter(c, np.float32(-np.inf)), np.nextafter(c, np.float32(np.inf))]
    top = Decimal(float(np.finfo(np.float32).max))
    half_ulp = Decimal(2) ** 103  # float32 max + half ulp rounds to Inf
    best: np.float32 | None = None
    best_err: Decimal | None = None
    for cand in cands:
        if not np.isfinite(cand):
            if abs(d) >= top + half_ulp:
                return np.float32(math.copysign(np.inf, float(d)))
            continue
        err = abs(Decimal(float(cand)) - d)
        if best is None or best_err is None or err < best_err or (err == best_err and
                                                int(np.float32(cand).view(np.uint32)) % 2 == 0):
            best, best_err = cand, err
    return np.float32(best)


@numba.njit(cache=True)
def _near_boundary(v, r, tol, hard):
    """``hard[i]`` = ``v[i]`` (float64) lies within ``tol |v[i]|`` of the midpoint between its
    float32 rounding ``r[i]`` and the float32 neighbour on ``v[i]``'s side (or overflows)."""
    for i in range(v.size):
        vi = v[i]
        ri = np.float64(r[i])
        if vi != vi:
            hard[i] = False
            continue
        if math.isinf(ri):
            hard[i] = not math.isinf(vi)
            continue
        nb = np.float64(np.nextafter(r[i], np.float32(np.inf) if vi > ri else np.float32(-np.inf)))
        if math.isinf(nb):
            hard[i] = True
            continue
        mid = (ri + nb) * 0.5
        hard[i] = not abs(vi - mid) > tol * abs(vi)


def _round_f32(x: np.ndarray, v: np.ndarray, tol: float,
               exact: Callable[[float], Decimal]) -> np.ndarray:
    """float32 of ``v`` (float64 approximations of ``f(x)``), except where ``v`` is within
    ``tol * |v|`` of a float32 rounding boundary: there ``decimal_to_f32(exact(x))``."""
    with np.errstate(over="ignore"):
        r = v.astype(np.float32)
    hard = np.empty(v.shape, dtype=np.bool_)
    _near_boundary(v.reshape(-1), r.reshape(-1), tol, hard.reshape(-1))
    if hard.any():
        idx = np.nonzero(hard)
        r[idx] = [decimal_to_f32(exact(float(xv))) for xv in x[idx]]
    return r


def exp_decimal(x: Decimal | float, prec: int = _PREC) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec
        ctx.Emin, ctx.Emax = -999999, 999999
        return Decimal(x).exp()


def ln_decimal(x: Decimal | float, prec: int = _PREC) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = prec
        return Decimal(x).ln()


@functools.lru_cache(maxsize=16)
def _pi(prec: int) -> Decimal:
    """pi to ``prec`` digits (the ``decimal`` module documentation's recipe)."""
    with localcontext() as ctx:
        ctx.prec = prec + 5
        three = Decimal(3)
        lasts: Decimal | int = 0
        s: Decimal = three
        t, n, na, d, da = three, 1, 0, 0, 24
        while s != lasts:
            lasts = s
            n, na = n + na, na + 8
            d, da = d + da, da + 32
            t = (t * n) / d
            s += t
        return +s


def _cos_sin_decimal(x: float, which: str) -> Decimal:
    prec = _PREC + 10 + max(0, int(math.log10(abs(x) + 1)))
    with localcontext() as ctx:
        ctx.prec = prec
        two_pi = 2 * _pi(prec)
        r = Decimal(x) % two_pi
        term = Decimal(1) if which == "cos" else r
        s, i = term, 0 if which == "cos" else 1
        r2 = r * r
        while True:
            term = -term * r2 / ((i + 1) * (i + 2))
            i += 2
            if abs(term) < Decimal(10) ** (-prec):
                break
            s += term
        return +s


def _erfc_decimal(z: Decimal) -> Decimal:
    """erfc(z) by the Taylor series of erf, with enough digits for the cancellation."""
    zf = float(z)
    extra = int(zf * zf / 2.302585 * 1.1) + 10
    with localcontext() as ctx:
        ctx.prec = _PREC + extra
        z = +z
        z2 = z * z
        term, n, s = z, 0, z
        while True:
            n += 1
            term = -term * z2 / n
            add = term / (2 * n + 1)
            s += add
            if abs(add) < Decimal(10) ** (-ctx.prec) * abs(s) and n > 2:
                break
        erf = s * 2 / _pi(ctx.prec).sqrt()
        return 1 - erf


def exp_f32(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 ``exp(x)`` of float32 ``x``."""
    x = np.asarray(x, dtype=np.float32)
    v = np.exp(x.astype(np.float64))
    return _round_f32(x, v, 2.0**-40, exp_decimal)


def _silu_exact(x: float) -> Decimal:
    if x < -300.0:
        return Decimal(0) * Decimal(-1)
    with localcontext() as ctx:
        ctx.prec = _PREC
        ctx.Emin, ctx.Emax = -999999, 999999
        return Decimal(x) / (1 + Decimal(-x).exp())


def silu_f32(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 SiLU ``x / (1 + exp(-x))`` of float32 ``x``."""
    x = np.asarray(x, dtype=np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        v = x64 / (1.0 + np.exp(-x64))
    return _round_f32(x, v, 2.0**-40, _silu_exact)


def _gelu_exact(x: float) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = _PREC + 10
        z = -Decimal(x) / Decimal(2).sqrt()
        if z > 27:  # erfc(27) < 1e-318: the value rounds to -0 in float32
            return Decimal("-0")
        if z < -27:
            return Decimal(x)
        return Decimal(x) * _erfc_decimal(z) / 2


def gelu_f32(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 exact (erf) GELU ``x/2 (1 + erf(x/sqrt 2)) = x/2 erfc(-x/sqrt
    2)`` of float32 ``x`` (erfc avoids the cancellation for negative ``x``)."""
    x = np.asarray(x, dtype=np.float32)
    x64 = x.astype(np.float64)
    v = 0.5 * x64 * _erfc64(-x64 / math.sqrt(2.0))
    # error of v: the library's few ulps plus the rounding of x / sqrt 2, amplified by
    # |d ln erfc(z) / d ln z| <= 2 z^2 + 1 (<= 1500 where erfc(z) does not underflow, z < 27):
    # below 2^-42 relative
    return _round_f32(x, v, 2.0**-40, _gelu_exact)


def cos_f32(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 ``cos(x)`` of float32 ``x``."""
    x = np.asarray(x, dtype=np.float32)
    return _round_f32(x, np.cos(x.astype(np.float64)), 2.0**-40,
                      lambda v: _cos_sin_decimal(v, "cos"))


def sin_f32(x: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 ``sin(x)`` of float32 ``x``."""
    x = np.asarray(x, dtype=np.float32)
    return _round_f32(x, np.sin(x.astype(np.float64)), 2.0**-40,
                      lambda v: _cos_sin_decimal(v, "sin"))
