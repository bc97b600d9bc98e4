"""Independent, slow reference implementations of the numeric rules (the test oracles).

Written from the written rules (docs/formats.md), in plain Python with exact ``Fraction``
arithmetic, sharing no code with :mod:`prodigy_sim.numerics`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache
from typing import Any

NAN = "nan"


@cache
def ref_values(spec) -> tuple:
    """Value of every code: Fraction, or 'nan', or +-inf as float; zeros as (0, negative)."""
    out: list[Any] = []
    n = 1 << spec.bits
    for code in range(n):
        if spec.kind == "int":
            v = code - n if (spec.signed and code >= n // 2) else code
            neg = v < 0
            val = Fraction(v)
        else:
            neg = spec.signed and bool(code >> (spec.bits - 1))
            mag_field = code & ((1 << (spec.bits - 1)) - 1) if spec.signed else code
            if spec.kind == "log":
                val = Fraction(2) ** (mag_field - spec.bias)
            else:
                m = spec.mantissa_bits
                e, f = mag_field >> m, mag_field & ((1 << m) - 1)
                if spec.subnormals and e == 0:
                    val = Fraction(f, 1 << m) * Fraction(2) ** (1 - spec.bias)
                else:
                    val = (1 + Fraction(f, 1 << m)) * Fraction(2) ** (e - spec.bias)
            if neg:
                val = -val
        if code in spec.nan_codes:
            out.append(NAN)
        elif code in spec.inf_codes:
            out.append(-math.inf if neg else math.inf)
        elif code in spec.zero_codes:
            out.append((Fraction(0), neg))
        else:
            out.append(val)
    return tuple(out)


def _next_up(spec, top: Fraction) -> Fraction:
    if top == 0:
        return min(v for v in _finite_mags(spec) if v > 0)
    if spec.kind == "int":
        return top + 1
    if spec.kind == "log":
        return 2 * top
    e = math.floor(math.log2(top))
    while Fraction(2) ** e > top:
        e -= 1
    while Fraction(2) ** (e + 1) <= top:
        e += 1
    return top + Fraction(2) ** (e - spec.mantissa_bits)


def _finite_mags(spec):
    out = []
    for v in ref_values(spec):
        if isinstance(v, tuple):
            out.append(Fraction(0))
        elif isinstance(v, Fraction):
            out.append(abs(v))
    return out


def ref_encode(x: float, spec, overflow: str) -> int | None:
    """Code of float ``x`` by the written rule; None where encoding must be refused."""
    vals = ref_values(spec)
    negative = math.copysign(1.0, x) < 0
    if math.isnan(x):
        return ref_nan_or_none(spec, negative)
    # candidates on the input's side: (magnitude, code)
    cands = []
    zeros_same = [c for c, v in enumerate(vals) if isinstance(v, tuple) and v[1] == negative]
    zeros_any = [c for c, v in enumerate(vals) if isinstance(v, tuple)]
    for c, v in enumerate(vals):
        if isinstance(v, Fraction) and v != 0 and (v < 0) == negative:
            cands.append((abs(v), c))
    if zeros_same:
        cands.append((Fraction(0), zeros_same[0]))
    elif zeros_any and (negative or not spec.signed or spec.kind == "int"):
        pos = [c for c in zeros_any if not vals[c][1]]
        cands.append((Fraction(0), (pos or zeros_any)[0]))
    if not cands:
        return ref_nan_or_none(spec, negative)
    cands.sort()
    top_mag, top_code = cands[-1]
    inf_codes = [c for c in spec.inf_codes if (c >> (spec.bits - 1)) & 1 == int(negative)]
    over_code: int | None
    if overflow == "saturate":
        over_code = top_code
    elif inf_codes:
        over_code = inf_codes[0]
    else:
        over_code = ref_nan_or_none(spec, negative)
    if math.isinf(x):
        return over_code
    a = abs(Fraction(x))
    virtual = (_next_up(spec, top_mag), None, 1 - (top_code & 1))
    options = [(m, c, c & 1) for m, c in cands] + [virtual]
    best = min(abs(a - m) for m, _, _ in options)
    tied = [o for o in options if abs(a - o[0]) == best]
    if len(tied) == 2 and spec.rounding == "nearest_away":
        pick = max(tied, key=lambda o: o[0])
    elif len(tied) == 2:
        evens = [o for o in tied if o[2] == 0]
        pick = evens[0] if len(evens) == 1 else min(tied, key=lambda o: o[0])
    else:
        pick = tied[0]
    if pick[1] is None:
        return over_code
    return pick[1]


def ref_nan_or_none(spec, negative: bool) -> int | None:
    if not spec.nan_codes:
        return None
    code = spec.canonical_nan if spec.canonical_nan is not None else min(spec.nan_codes)
    if negative and spec.signed and (code | (1 << (spec.bits - 1))) in spec.nan_codes:
        code |= 1 << (spec.bits - 1)
    return code


def ref_floor_log2(a: float) -> int:
    """floor(log2(a)) for a > 0, exactly, by comparing with powers of two."""
    f = Fraction(a)
    e = 0
    while Fraction(2) ** e > f:
        e -= 1
    while Fraction(2) ** (e + 1) <= f:
        e += 1
    return e


def ref_mx_block(block: list[float], spec) -> tuple[int, list[int | None] | None]:
    """OCP MX v1.0 quantization of one block: (E8M0 scale code, element codes).

    Shared exponent X = floor(log2(amax)) - emax_elem, clamped to [-127, 127]; elements are
    x / 2^X rounded to nearest-even and clamped to the largest finite element (saturate).
    """
    if any(math.isnan(v) or math.isinf(v) for v in block):
        return 0xFF, None
    amax = max(abs(v) for v in block)
    top = max(v for v in ref_values(spec) if isinstance(v, Fraction))  # largest positive
    emax = ref_floor_log2(float(top))
    e = -127 if amax == 0 else ref_floor_log2(amax) - emax
    e = max(-127, min(127, e))
    codes = [ref_encode(float(Fraction(v) / Fraction(2) ** e), spec, "saturate") for v in block]
    return e + 127, codes
