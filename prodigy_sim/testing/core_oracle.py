"""A slow, independent reference of the numeric specification (isa/README.md).

MMA with Python ``fractions.Fraction`` (exact operands, exact chunk sums, RNE to float32 done by
hand on integers); vector operations with numpy float32 *scalars*, one operation at a time, and the
same named float32 algorithms written out again. Nothing here calls prodigy_sim.functional.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

F = np.float32
NAN32 = F(np.nan)


def rne32(v: Fraction) -> np.float32:
    """Round an exact rational to float32, nearest even, +-Inf past the overflow threshold."""
    if v == 0:
        return F(0.0)
    sign = -1 if v < 0 else 1
    mag = abs(v)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1  # now 2^e <= mag < 2^(e+1)
    lsb = max(e - 23, -149)
    scaled = mag / Fraction(2) ** lsb
    q = scaled.numerator // scaled.denominator
    rem = scaled - q
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and q % 2 == 1):
        q += 1
    if q * Fraction(2) ** lsb >= Fraction(2) ** 128:
        return F(sign * np.inf)
    return F(sign * math.ldexp(q, lsb))


def scaled_dense(q) -> list[list[float]]:
    """Dense scaled operand a'[r][k] = value(code) * scale (exact floats; pruned = 0.0)."""
    codes = q.element_codes()
    vals = q.fmt.values
    rows, k = q.shape
    if q.scale == "none":
        sv = np.ones((rows, 1))
        kb = max(q.kept_per_row, 1)
    else:
        sv = q.scale_values().astype(np.float64)
        kb = q.kept_block
    mask = q.mask()
    out = []
    for r in range(rows):
        row = []
        i = 0
        for j in range(k):
            if mask is not None and not mask[r, j]:
                row.append(0.0)
                continue
            row.append(float(vals[codes[r, i]]) * float(sv[r, i // kb]))
            i += 1
        out.append(row)
    return out


def chunk_sum(a: list[float], w: list[float]):
    """Exact chunk sum: a Fraction, or a float NaN / +-Inf by spec rule 3."""
    nan = pinf = ninf = False
    total = Fraction(0)
    for x, y in zip(a, w, strict=True):
        if math.isnan(x) or math.isnan(y):
            nan = True
        elif math.isinf(x) or math.isinf(y):
            if x == 0 or y == 0:
                nan = True
            elif (x > 0) == (y > 0):
                pinf = True
            else:
                ninf = True
        else:
            total += Fraction(x) * Fraction(y)
    if nan or (pinf and ninf):
        return math.nan
    if pinf:
        return math.inf
    if ninf:
        return -math.inf
    return total


def acc_add(acc: np.float32, x) -> np.float32:
    """RNE_fp32(acc + X) with IEEE rules for specials; NaN is canonical."""
    if isinstance(x, Fraction) and math.isfinite(acc):
        r = rne32(Fraction(float(acc)) + x)
    else:
        with np.errstate(all="ignore"):
            r = F(float(acc) + float(x))
    return NAN32 if np.isnan(r) else r


def ref_matmul(a, w, acc=None, chunk: int = 128) -> np.ndarray:
    """The MMA specification, element by element."""
    ad, wd = scaled_dense(a), scaled_dense(w)
    m, k = a.shape
    n = w.shape[0]
    out = np.zeros((m, n), dtype=np.float32) if acc is None else acc.astype(np.float32).copy()
    for i in range(m):
        for j in range(n):
            s = out[i, j]
            for c0 in range(0, k, chunk):
                s = acc_add(s, chunk_sum(ad[i][c0:c0 + chunk], wd[j][c0:c0 + chunk]))
            out[i, j] = s
    return out


def single_rounding(a, w) -> np.ndarray:
    """RNE32 of the whole exact dot product (what one rounding at the end would give)."""
    ad, wd = scaled_dense(a), scaled_dense(w)
    return np.array([[rne32(chunk_sum(r, s)) for s in wd] for r in ad], dtype=np.float32)


# ------------------------------------------------------------------ vector operations

def canon(x: np.float32) -> np.float32:
    return NAN32 if np.isnan(x) else F(x)


def fma32(a, b, c) -> np.float32:
    a, b, c = float(a), float(b), float(c)
    if not all(math.isfinite(v) for v in (a, b, c)):
        with np.errstate(all="ignore"):
            return canon(F(a * b + c))
    return rne32(Fraction(a) * Fraction(b) + Fraction(c))


def exp32(x) -> np.float32:
    x = F(x)
    if np.isnan(x):
        return NAN32
    if x >= F(89.0):
        return F(np.inf)
    if x <= F(-104.0):
        return F(0.0)
    n = (x * F(1.4426950408889634) + F(12582912.0)) - F(12582912.0)
    r = x - n * F(0.693359375)
    r = r - n * F(-2.12194440e-4)
    p = F(1.9875691500e-4)
    for coef in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                 5.0000001201e-1):
        p = p * r + F(coef)
    y = ((p * (r * r)) + r) + F(1.0)
    ni = int(n)
    n1 = ni // 2
    n2 = ni - n1
    with np.errstate(all="ignore"):
        return (y * F(2.0 ** n1)) * F(2.0 ** n2)


def silu32(x) -> np.float32:
    x = F(x)
    if np.isnan(x):
        return NAN32
    if x == -np.inf:
        return F(-0.0)
    with np.errstate(all="ignore"):
        if x <= F(-20.0):
            return canon(x * exp32(x))
        return canon(x / (F(1.0) + exp32(-x)))


def gelu32(x) -> np.float32:
    x = F(x)
    if np.isnan(x):
        return NAN32
    xa = abs(x)
    if xa >= F(15.5):
        return x if x > 0 else F(-0.0)
    u = xa * F(0.7071067811865476)
    t = F(1.0) / (F(1.0) + F(0.5) * u)
    coefs = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
             0.09678418, 0.37409196, 1.00002368, -1.26551223)
    q = F(coefs[0])
    for coef in coefs[1:]:
        q = q * t + F(coef)
    xh = np.array([xa], dtype=np.float32).view(np.uint32)
    xh = (xh & np.uint32(0xFFFFF000)).view(np.float32)[0]
    big = -(xh * xh) * F(0.5)
    small = ((xh - xa) * (xh + xa)) * F(0.5) + q
    h = F(0.5) * ((t * exp32(big)) * exp32(small))
    return x * (F(1.0) - h) if x >= 0 else x * h


def rsum(row) -> np.float32:
    s = F(0.0)
    with np.errstate(all="ignore"):
        for v in row:
            s = F(s + F(v))
    return canon(s)


def fmax(a, b) -> np.float32:
    a, b = F(a), F(b)
    if np.isnan(a) or np.isnan(b):
        return NAN32
    if a == b:
        return b if np.signbit(a) else a
    return a if a > b else b


def fmin(a, b) -> np.float32:
    a, b = F(a), F(b)
    if np.isnan(a) or np.isnan(b):
        return NAN32
    if a == b:
        return a if np.signbit(a) else b
    return a if a < b else b
