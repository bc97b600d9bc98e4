"""Codes of the wide IEEE-style storage formats (``specials: ieee``; bfloat16, float16, float32).

Encoding rounds a float64 (or float32) value once, directly to the target's precision - round to
nearest, ties to even, with gradual underflow to subnormals - so float64 input is never rounded
twice (float64 -> float32 -> bfloat16 would be). With ``p = mantissa_bits`` and the smallest
normal exponent ``emin = 1 - bias``, a finite ``x != 0`` has the quantum::

    q = 2^(max(floor(log2 |x|), emin) - p)          x / q is exact (a power-of-two scaling)
    y = rne(x / q) * q                               one rounding

``|y|`` above the largest finite value overflows (to Inf, or to the largest finite value with
``overflow='saturate'``). Codes are then read off ``y``, which is exactly representable::

    [ sign | exponent field | mantissa field ]
    normal:     field = e + bias,   mantissa = |y| / 2^(e - p) - 2^p
    subnormal:  field = 0,          mantissa = |y| / 2^(emin - p)

A NaN keeps its sign and the top ``p`` payload bits of its float32 form, with the quiet bit
set (so the canonical NaN 0x7FC00000 stays canonical: 0x7FC0 in bfloat16). Decoding uses the
value table (16 bits) or the float32 bit pattern itself (32 bits).

float32 input to a format with float32's exponent field (8 bits, bias 127: bfloat16, float32)
takes a bit-level path that computes the same codes: drop the low ``23 - p`` bits rounding to
nearest even (``(b + 2^(s-1) - 1 + lsb) >> s``; a carry into the exponent is the next binade or
Inf)::

    float32:   s eeeeeeee mmmmmmm|mmmmmmmmmmmmmmmm      bfloat16 = upper 16 bits, rounded
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.numerics._spec import FormatSpec

__all__ = ["encode_wide", "decode_wide", "code_dtype"]


def code_dtype(spec: FormatSpec) -> np.dtype:
    """Unsigned integer dtype holding one code of a wide format (uint16 or uint32)."""
    return np.dtype(np.uint16 if spec.bits == 16 else np.uint32)


def _nan_codes(x32: np.ndarray, spec: FormatSpec) -> np.ndarray:
    """Codes of NaN inputs: sign, all-ones exponent, top payload bits, quiet bit (int64)."""
    p = spec.mantissa_bits
    b = x32.view(np.uint32).astype(np.int64)
    payload = ((b & 0x7FFFFF) >> (23 - p)) | (1 << (p - 1))
    return ((b >> 31) << (spec.bits - 1)) | (((1 << spec.exponent_bits) - 1) << p) | payload


def _encode_f32_bits(x: np.ndarray, spec: FormatSpec, overflow: str) -> np.ndarray:
    """float32 ``x`` -> codes of an 8-bit-exponent, bias-127 format, on the bits."""
    shift = 23 - spec.mantissa_bits
    b = x.view(np.uint32).astype(np.int64)
    codes = (b + ((1 << shift) >> 1) - (1 if shift else 0) + ((b >> shift) & 1)) >> shift \
        if shift else b.copy()
    if overflow == "saturate":
        mag = codes & ((1 << (spec.bits - 1)) - 1)
        top = ((1 << spec.exponent_bits) - 1) << spec.mantissa_bits
        codes = np.where(mag >= top, (codes & ~((1 << (spec.bits - 1)) - 1)) | (top - 1),
                         codes)
    nan = np.isnan(x)
    if nan.any():
        codes = np.where(nan, _nan_codes(x, spec), codes)
    return codes.astype(code_dtype(spec))


def encode_wide(x: np.ndarray, spec: FormatSpec, overflow: str) -> np.ndarray:
    """Codes (uint16/uint32, shape of ``x``) of float32/float64 ``x`` (see the module docstring)."""
    if (isinstance(x, np.ndarray) and x.dtype == np.float32 and spec.exponent_bits == 8
            and spec.bias == 127):
        return _encode_f32_bits(x, spec, overflow)
    with np.errstate(all="ignore"):
        return _encode_f64(np.asarray(x, dtype=np.float64), spec, overflow)


def _encode_f64(v: np.ndarray, spec: FormatSpec, overflow: str) -> np.ndarray:
    p, e_bits, bits = spec.mantissa_bits, spec.exponent_bits, spec.bits
    emin = 1 - spec.bias
    top = (1 << e_bits) - 1
    a = np.abs(v)
    finite = np.isfinite(v)
    nonzero = finite & (a > 0)
    _, e2 = np.frexp(np.where(nonzero, a, 1.0))        # a = f * 2^e2, 0.5 <= f < 1
    e = np.maximum(e2.astype(np.int64) - 1, emin)
    y = np.where(nonzero, np.round(np.ldexp(a, p - e)), 0.0)     # rne(|x| / q), exact scaling
    y = np.ldexp(y, e - p)
    big = finite & (y > spec.max_finite)
    y = np.where(big, spec.max_finite if overflow == "saturate" else np.inf, y)
    _, ey2 = np.frexp(np.where(y > 0, y, 1.0))
    ey = ey2.astype(np.int64) - 1
    normal = np.isfinite(y) & (y > 0) & (ey >= emin)
    field = np.where(normal, ey + spec.bias, 0)
    man = np.where(normal, np.ldexp(y, p - ey) - (1 << p),
                   np.where(np.isfinite(y), np.ldexp(y, p - emin), 0.0)).astype(np.int64)
    nan = np.isnan(v)
    inf = (~finite & ~nan) | np.isinf(y)            # Inf input, or a finite overflow to Inf
    if overflow == "saturate":                      # Inf input -> the largest finite value
        field = np.where(inf, top - 1, field)
        man = np.where(inf, (1 << p) - 1, man)
    else:
        field = np.where(inf, top, field)
        man = np.where(inf, 0, man)
    sign = np.signbit(v).astype(np.int64)
    codes = (sign << (bits - 1)) | (field << p) | man
    if nan.any():
        codes = np.where(nan, _nan_codes(v.astype(np.float32), spec), codes)
    return codes.astype(code_dtype(spec))


def decode_wide(codes: np.ndarray, spec: FormatSpec) -> np.ndarray:
    """float32 values of wide-format codes (any shape)."""
    arr = np.asarray(codes)
    if spec.bits == 32:
        return np.ascontiguousarray(arr, dtype=np.uint32).view(np.float32).copy()
    return spec.values_f32[arr.astype(np.int64)]
