"""Exact arithmetic kernels: round-to-odd accumulation and an integer superaccumulator.

Two ways to compute ``RNE_fp32(acc + X)`` where ``acc`` is a float32 and ``X`` an exact chunk sum:

Fast path (``X`` known exactly as a float64)
    ``s = fl64(acc + X)`` and its rounding error ``e`` come from TwoSum (Knuth; exact in float64
    without overflow). If ``e == 0``, ``s`` is the exact sum. Otherwise the exact sum ``v`` lies
    strictly between ``s`` and its float64 neighbour ``s'`` on the side of ``e``; of the two, take
    the one whose last significand bit is 1 - this is ``v`` rounded to odd at 53 bits, ``ro(v)``.
    Then ``RNE_24(ro(v)) == RNE_24(v)``, because 53 >= 24 + 2: every float32 rounding boundary
    (a float32 value or a midpoint between two, at most 25 significant bits) is a float64 number
    with last bit 0, so ``ro(v)`` - which is never such a number when inexact - lies on the same
    side of every boundary as ``v`` (the classic double-rounding-with-round-to-odd lemma; it also
    holds for float32 subnormal results and for the overflow threshold, which are boundaries of
    the same kind). The final ``float32(ro(v))`` is one IEEE conversion: RNE, +-Inf on overflow,
    and the sign of ``v`` on underflow to zero.

Slow path (any chunk: the products need not fit a common float64 quantum)
    Every product ``a * w`` of two float64 numbers is ``p + err`` exactly (Dekker's TwoProduct
    with Veltkamp splitting, no FMA needed, valid while nothing overflows or underflows - operands
    here lie within 2^+-300). ``acc``, every ``p`` and ``err`` are added into a fixed-point
    integer *superaccumulator*: int64 limbs of 32 bits each covering bit weights 2^-1088 ..
    2^1184, so the sum is exact. The total is then rounded to float32 by hand (RNE on its
    integer bits, with the float32 subnormal grid 2^-149 and overflow to +-Inf at 2^128).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["add_rne32", "superacc_dot_rne32", "f64_bits", "bits_f64"]

_BASE = -1088  # weight of bit 0 of limb 0
_NLIMBS = 72
_M32 = np.int64(0xFFFFFFFF)
_SPLIT = 134217729.0  # 2^27 + 1 (Veltkamp)


@intrinsic
def f64_bits(typingctx, x):
    """The IEEE bits of a float64 as an int64 (a register bitcast; no memory round trip)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def bits_f64(typingctx, b):
    """The float64 whose IEEE bits are the int64 ``b``."""
    if not isinstance(b, types.Integer) or b.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@numba.njit(cache=True, inline="always")
def add_rne32(acc, x):
    """``RNE_fp32(acc + x)`` for float32 ``acc`` and an exact float64 ``x`` (see module doc).

    Branch-free: the round-to-odd step moves the significand of ``s`` by one float64 ulp towards
    the exact value (|bits| +1 away from zero, -1 towards it) when the TwoSum error is nonzero
    and the last bit of ``s`` is 0; a non-finite ``s`` is converted as is."""
    a = np.float64(acc)
    s = a + x
    bb = s - a
    e = (a - (s - bb)) + (x - bb)
    bits = f64_bits(s)
    step = np.int64(1) if (e > 0.0) == (s > 0.0) else np.int64(-1)
    if e != 0.0 and (bits & 1) == 0 and np.abs(s) < np.inf:
        bits += step
    return np.float32(bits_f64(bits))


@numba.njit(cache=True, inline="always")
def significand_exponent(b):
    """``(m, e)`` with ``|x| = m * 2^e``, m an integer, for the bits ``b`` of a finite float64."""
    ex = (b >> 52) & 0x7FF
    m = b & 0xFFFFFFFFFFFFF
    if ex == 0:
        return m, np.int64(-1074)
    return m | 0x10000000000000, ex - 1075


@numba.njit(cache=True, inline="always")
def _limb_add(limbs, x):
    """limbs += x exactly, for a finite float64 x."""
    if x == 0.0:
        return
    b = f64_bits(x)
    neg = b < 0
    m, e = significand_exponent(b)
    p = e - _BASE
    i = p >> 5
    sh = p & 31
    sgn = np.int64(-1) if neg else np.int64(1)
    t0 = (m & _M32) << sh
    t1 = (m >> 32) << sh
    limbs[i] += sgn * (t0 & _M32)
    limbs[i + 1] += sgn * ((t0 >> 32) + (t1 & _M32))
    limbs[i + 2] += sgn * (t1 >> 32)


@numba.njit(cache=True, inline="always")
def _two_prod(a, b):
    """(p, err) with p + err == a * b exactly (Dekker; no FMA)."""
    p = a * b
    c = _SPLIT * a
    ah = c - (c - a)
    al = a - ah
    c = _SPLIT * b
    bh = c - (c - b)
    bl = b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, err


@numba.njit(cache=True, nogil=True)
def _limbs_rne32(limbs):
    """Round the exact value held in ``limbs`` to float32 (RNE); destroys ``limbs``."""
    n = limbs.size
    for i in range(n - 1):
        c = limbs[i] >> 32
        limbs[i] -= c << 32
        limbs[i + 1] += c
    neg = limbs[n - 1] < 0
    if neg:
        for i in range(n):
            limbs[i] = -limbs[i]
        for i in range(n - 1):
            c = limbs[i] >> 32
            limbs[i] -= c << 32
            limbs[i + 1] += c
    h = n - 1
    while h >= 0 and limbs[h] == 0:
        h -= 1
    if h < 0:
        return np.float32(0.0)
    top = limbs[h]
    b = 0
    while (top >> (b + 1)) != 0:
        b += 1
    lead = _BASE + 32 * h + b
    if lead >= 128:
        return np.float32(-np.inf) if neg else np.float32(np.inf)
    lsb = max(lead - 23, -149)
    sig = np.int64(0)
    for pos in range(lead, lsb - 1, -1):
        q = pos - _BASE
        sig = (sig << 1) | ((limbs[q >> 5] >> (q & 31)) & 1)
    rpos = lsb - 1 - _BASE
    rnd = (limbs[rpos >> 5] >> (rpos & 31)) & 1
    sticky = False
    low = rpos >> 5
    if (limbs[low] & ((np.int64(1) << (rpos & 31)) - 1)) != 0:
        sticky = True
    for i in range(low):
        if limbs[i] != 0:
            sticky = True
            break
    if rnd == 1 and (sticky or (sig & 1) == 1):
        sig += 1
    val = np.float64(sig) * 2.0 ** lsb
    return np.float32(-val) if neg else np.float32(val)


@numba.njit(cache=True, nogil=True)
def superacc_dot_rne32(acc, a, w, k0, k1):
    """``RNE_fp32(acc + sum_{k0<=k<k1} a[k] * w[k])`` exactly, for finite float64 rows a, w."""
    limbs = np.zeros(_NLIMBS, dtype=np.int64)
    _limb_add(limbs, np.float64(acc))
    for k in range(k0, k1):
        x = a[k]
        y = w[k]
        if x == 0.0 or y == 0.0:
            continue
        p, err = _two_prod(x, y)
        _limb_add(limbs, p)
        _limb_add(limbs, err)
    return _limbs_rne32(limbs)
