"""Encoding real numbers to format codes, and decoding codes to float32.

The rule, for every format (it is data-driven, not written per format):

1. The sign of the input picks a *side*: the codes whose value is >= 0 with a clear sign bit
   (side 0), or <= 0 with a set sign bit (side 1). A side lists its magnitudes in increasing
   order; a format without a negative zero puts its zero on both sides (two's complement
   integers, ``fnuz`` floats), an unsigned format has only its zero (if any) on side 1.
2. The magnitude ``a`` rounds to the nearest listed magnitude. Exactly between two neighbours
   (a "tie") it goes to the one whose code has least significant bit 0 - "ties to even" - or, if
   both or neither are even, to the smaller magnitude. (A format may instead declare
   ``rounding: nearest_away``: ties go to the larger magnitude.)
3. Overflow is decided after rounding: above the largest magnitude ``M`` the next magnitude the
   format *would* have (``M + ulp`` for floats, ``2M`` for log formats, ``M + 1`` for integers,
   whose code parity is the opposite of ``M``'s) takes part in the rounding. If the input rounds
   to it, it overflows: ``saturate`` writes ``M``, ``nonsaturating`` writes the Inf code of that
   sign, or the NaN code if there is no Inf.
4. ``+-Inf`` overflows the same way; NaN writes the format's NaN code (see
   :meth:`FormatSpec.nan_code_for`). A format with no NaN code cannot take NaN: encoding raises
   :class:`~prodigy_sim.errors.EncodeError`, as does any value on a side with no codes (a
   negative number in an unsigned format without zero).

This is exactly what ml_dtypes does for the OCP FP8 formats in non-saturating mode, and what
``clip`` then ml_dtypes does in saturating mode. float64 input is rounded once, directly.

Two kernels implement the rule. ``_encode_exact`` binary-searches the midpoints in float64 (any
format, any float input). ``_encode_lut`` serves float32 input from a table indexed by the
upper 16 bits of the float32 (sign, exponent, 7 mantissa bits)::

    float32 bits:  s eeeeeeee mmmmmmm | mmmmmmmmmmmmmmmm
                   '---- bucket h ---'   low 16 bits
    code = hi_code[h] if bits >= threshold[h] else lo_code[h]

A bucket of 65536 consecutive float32 values contains at most one rounding decision point for
every format whose neighbouring values differ in more than the 8th significant bit; the table
builder proves that for each bucket (with the exact kernel) and otherwise refuses, in which case
the exact kernel is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numba
import numpy as np

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import EncodeError, FormatError
from prodigy_sim.numerics._spec import FormatSpec
from prodigy_sim.numerics._wide import decode_wide, encode_wide

Overflow = Literal["saturate", "nonsaturating"]

__all__ = ["encode", "decode", "EncodeTable", "encode_table"]


@dataclass(frozen=True, eq=False)
class EncodeTable:
    """Rounding tables of one format and overflow policy (see the module docstring).

    ``mags[s, i]``: i-th magnitude of side s (float64); ``mids[s, i]``: the decision point above
    it (the last one is the overflow point); ``tie_up[s, i]``: a tie at ``mids[s, i]`` goes up;
    ``codes[s, i]``: code of ``mags[s, i]``, with ``codes[s, count[s]]`` the overflow code;
    ``inf_code[s]``, ``nan_code[s]``: codes for +-Inf and NaN inputs (-1 = not encodable).
    """

    mags: np.ndarray
    mids: np.ndarray
    tie_up: np.ndarray
    codes: np.ndarray
    count: np.ndarray
    inf_code: np.ndarray
    nan_code: np.ndarray


def _next_magnitude(spec: FormatSpec, top: float) -> float:
    """The magnitude right above the largest one, had the format one more code."""
    if top == 0.0:
        return spec.min_positive
    if spec.kind == "int":
        return top + 1.0
    if spec.kind == "log":
        return 2.0 * top
    exp = np.frexp(top)[1] - 1
    return top + 2.0 ** (exp - spec.mantissa_bits)


@lru_cache(maxsize=64)
def encode_table(spec: FormatSpec, overflow: Overflow) -> EncodeTable:
    """Build (and memoize) the rounding tables of ``spec`` under ``overflow``."""
    vals = spec.values
    neg_bit = spec.sign_bits()
    n = spec.n_codes
    sides: list[list[tuple[float, int]]] = [[], []]
    zero_on: dict[bool, list[int]] = {False: [], True: []}
    for code in range(n):
        v = vals[code]
        if np.isnan(v) or np.isinf(v):
            continue
        if v == 0:
            zero_on[bool(neg_bit[code])].append(code)
            continue
        sides[int(v < 0)].append((abs(float(v)), code))
    pos_zero = zero_on[False]
    neg_zero = zero_on[True] or pos_zero
    if pos_zero:
        sides[0].append((0.0, pos_zero[0]))
    if neg_zero:
        sides[1].append((0.0, neg_zero[0]))
    length = max(len(sides[0]), len(sides[1]), 1)
    mags = np.zeros((2, length))
    mids = np.zeros((2, length))
    tie_up = np.zeros((2, length), dtype=np.bool_)
    codes = np.full((2, length + 1), -1, dtype=np.int16)
    count = np.zeros(2, dtype=np.int64)
    inf_code = np.full(2, -1, dtype=np.int16)
    nan_code = np.array([spec.nan_code_for(False), spec.nan_code_for(True)], dtype=np.int16)
    for s in (0, 1):
        entries = sorted(sides[s])
        k = len(entries)
        count[s] = k
        if k == 0:
            continue
        m = np.array([e[0] for e in entries])
        c = np.array([e[1] for e in entries], dtype=np.int16)
        mags[s, :k] = m
        codes[s, :k] = c
        nxt = _next_magnitude(spec, float(m[-1]))
        upper = np.append(m[1:], nxt)
        mids[s, :k] = (m + upper) / 2.0  # exact: neighbours differ in at most 9 significant bits
        upper_even = np.append((c[1:] & 1) == 0, (c[-1] & 1) == 1)
        lower_even = (c & 1) == 0
        if spec.rounding == "nearest_away":
            tie_up[s, :k] = True
        else:
            tie_up[s, :k] = upper_even & ~lower_even
        over = [i for i in spec.inf_codes if bool(neg_bit[i]) == bool(s)]
        if overflow == "saturate":
            ov = int(c[-1])
        elif over:
            ov = over[0]
        else:
            ov = int(nan_code[s])
        codes[s, k] = ov
        inf_code[s] = ov
    return EncodeTable(mags, mids, tie_up, codes, count, inf_code, nan_code)


@numba.njit(cache=True, inline="always")
def _encode_one(x, mids, tie_up, codes, count, inf_code, nan_code):
    s = 1 if math.copysign(1.0, x) < 0.0 else 0
    if x != x:
        return nan_code[s]
    n = count[s]
    if n == 0:
        return nan_code[s]
    a = abs(x)
    if a == np.inf:
        return inf_code[s]
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if mids[s, mid] < a:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and a == mids[s, lo] and tie_up[s, lo]:
        return codes[s, lo + 1]
    return codes[s, lo]


@parallel_if_large
def _encode_exact(x, mids, tie_up, codes, count, inf_code, nan_code, out):
    """out[i] = code of x[i] (int16; -1 = not encodable). Returns the number of -1 codes."""
    bad = 0
    for i in numba.prange(x.size):
        c = _encode_one(np.float64(x[i]), mids, tie_up, codes, count, inf_code, nan_code)
        out[i] = c
        if c < 0:
            bad += 1
    return bad


def _exact_codes(x: np.ndarray, t: EncodeTable) -> np.ndarray:
    out = np.empty(x.size, dtype=np.int16)
    _encode_exact(np.ascontiguousarray(x).ravel(), t.mids, t.tie_up, t.codes, t.count,
                  t.inf_code, t.nan_code, out)
    return out


@dataclass(frozen=True, eq=False)
class _Lut:
    threshold: np.ndarray  # uint32[65536]
    lo_code: np.ndarray  # int16[65536]
    hi_code: np.ndarray  # int16[65536]
    entry: np.ndarray  # int64[65536]: threshold << 32 | (hi_code & 0xFFFF) << 16 | lo_code & 0xFFFF


@lru_cache(maxsize=64)
def _lut(spec: FormatSpec, overflow: Overflow) -> _Lut | None:
    """The float32 bucket table of ``spec``, or None if some bucket has two decision points."""
    t = encode_table(spec, overflow)
    h = np.arange(1 << 16, dtype=np.uint32)
    first = h << np.uint32(16)
    last = first | np.uint32(0xFFFF)
    c_first = _exact_codes(first.view(np.float32), t)
    c_last = _exact_codes(last.view(np.float32), t)
    threshold = np.zeros(1 << 16, dtype=np.uint32)
    varying = np.flatnonzero(c_first != c_last)
    lo = first[varying] + np.uint32(1)  # first bit pattern whose code is not c_first: in lo..hi
    hi = last[varying].copy()
    ref = c_first[varying]
    while np.any(lo < hi):
        active = lo < hi
        mid = lo + (hi - lo) // np.uint32(2)
        differs = _exact_codes(mid.view(np.float32), t) != ref
        hi = np.where(active & differs, mid, hi)
        lo = np.where(active & ~differs, mid + np.uint32(1), lo)
    if np.any(_exact_codes(lo.view(np.float32), t) != c_last[varying]):
        return None  # a bucket with two decision points: this format needs the exact kernel
    threshold[varying] = lo
    entry = ((threshold.astype(np.int64) << 32) | ((c_last.astype(np.int64) & 0xFFFF) << 16)
             | (c_first.astype(np.int64) & 0xFFFF))
    return _Lut(threshold, c_first, c_last, entry)


@parallel_if_large
def _encode_lut(bits, threshold, lo_code, hi_code, out):
    """out[i] = code of the float32 with bit pattern bits[i]; returns the count of -1 codes."""
    bad = 0
    for i in numba.prange(bits.size):
        b = bits[i]
        h = b >> 16
        c = hi_code[h] if b >= threshold[h] else lo_code[h]
        out[i] = np.uint8(c & 0xFF)
        if c < 0:
            bad += 1
    return bad


def _raise_unencodable(x: np.ndarray, codes16: np.ndarray | None, spec: FormatSpec,
                       overflow: Overflow) -> None:
    if codes16 is None:
        codes16 = _exact_codes(x, encode_table(spec, overflow))
    flat = int(np.flatnonzero(codes16 < 0)[0])
    idx = np.unravel_index(flat, x.shape) if x.ndim else ()
    v = x.ravel()[flat]
    why = ("it has no NaN code" if np.isnan(v)
           else "it has no code of that sign" if not np.isinf(v)
           else "it has no Inf or NaN code")
    raise EncodeError(
        f"cannot encode {v!r} (at index {tuple(int(i) for i in idx)}) in format "
        f"'{spec.name}': {why}"
    )


def encode(x, fmt: FormatSpec | str, overflow: Overflow | None = None) -> np.ndarray:
    """Round ``x`` to the nearest code of ``fmt`` (ties to even; see the module docstring).

    x: array-like of float32 or float64 (other dtypes are converted to float64, exactly for
    integers below 2^53), any shape. Returns uint8 codes of the same shape, one per element
    (uint16 / uint32 for the wide formats, see :mod:`prodigy_sim.numerics._wide`).
    ``overflow`` defaults to the format's own policy.
    """
    from prodigy_sim.numerics._registry import get_format

    spec = get_format(fmt)
    policy: Overflow = overflow or spec.overflow
    if policy == "nonsaturating" and not (spec.inf_codes or spec.nan_codes or spec.wide):
        raise FormatError(
            f"format '{spec.name}' has no Inf or NaN code, so overflow='nonsaturating' is "
            "impossible; use 'saturate'"
        )
    if policy not in ("saturate", "nonsaturating"):
        raise FormatError(f"'overflow' must be 'saturate' or 'nonsaturating' (got {policy!r})")
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if spec.wide:
        return encode_wide(arr, spec, policy)
    flat = np.ascontiguousarray(arr).ravel()
    lut = _lut(spec, policy) if arr.dtype == np.float32 else None
    if lut is not None:
        out = np.empty(flat.size, dtype=np.uint8)
        bad = _encode_lut(flat.view(np.uint32), lut.threshold, lut.lo_code, lut.hi_code, out)
        if bad:
            _raise_unencodable(arr, None, spec, policy)
        return out.reshape(arr.shape)
    t = encode_table(spec, policy)
    out16 = np.empty(flat.size, dtype=np.int16)
    bad = _encode_exact(flat, t.mids, t.tie_up, t.codes, t.count, t.inf_code, t.nan_code, out16)
    if bad:
        _raise_unencodable(arr, out16.reshape(arr.shape), spec, policy)
    return out16.astype(np.uint8).reshape(arr.shape)


@parallel_if_large
def _decode(codes, table, out):
    for i in numba.prange(codes.size):
        out[i] = table[codes[i]]


def decode(codes, fmt: FormatSpec | str) -> np.ndarray:
    """Values of ``codes`` (unsigned integers < 2**bits, any shape) as float32, same shape."""
    from prodigy_sim.numerics._registry import get_format

    spec = get_format(fmt)
    arr = np.asarray(codes)
    if arr.dtype.kind not in "ui":
        raise EncodeError(f"codes must be an integer array (got dtype {arr.dtype})")
    if arr.size and (arr.min() < 0 or arr.max() >= spec.n_codes):
        raise EncodeError(
            f"codes must lie in 0..{spec.n_codes - 1} for '{spec.name}' "
            f"(got {int(arr.min())}..{int(arr.max())})"
        )
    if spec.wide:
        return decode_wide(arr, spec)
    flat = np.ascontiguousarray(arr, dtype=np.uint8).ravel()
    out = np.empty(flat.size, dtype=np.float32)
    _decode(flat, spec.values_f32, out)
    return out.reshape(arr.shape)
