"""The quantized linear layer: FP8 activations times block-scaled weights, computed exactly.

This is the arithmetic the simulator's functional core must reproduce bit for bit::

    y[t, i] = fl32( s_x * sum_j decode(q[t, j]) * w_hat[i, j] )   (+ bias[i], a float32 add)

- ``q = encode(x / s_x, float8_e4m3fn)`` (round to nearest even, saturating at +-448; see
  ``docs/formats.md``). ``s_x = 2^e`` is the layer's static per-tensor activation scale
  (:func:`act_scale_for`: the smallest power of two with ``amax <= 448 * s_x``, ``amax`` the
  largest ``|x|`` seen on the calibration data). ``x / s_x`` is exact (float64).
- ``w_hat = QuantizedTensor.dequantize()`` (float32, exact: a format value times its E8M0 block
  scale); pruned positions are 0.
- The sum is the *exact* real number, rounded once to float32 (nearest even). No accumulation
  order, no intermediate rounding: any hardware that accumulates exactly (or provably without
  error) and rounds once gets the same bits.

How it is computed: every FP8 value is an integer multiple of 2^-9 and every row of ``w_hat`` an
integer multiple of its own power of two ``2^g_i``, so ``sum_j`` is ``2^(g_i - 9)`` times an integer
dot product ``A[t] . M[i]`` with ``|A| <= 448 * 2^9``. One float64 matmul computes it exactly
whenever ``sum_j |A[t, j]| * max_j |M[i, j]| < 2^53`` (every partial sum of integers stays exact, in
any order, FMA or not). The few outputs where that bound fails are recomputed with Python
integers. The final ``* 2^(e + g_i - 9)`` is exact in float64 and ``astype(float32)`` rounds once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import QuantizedTensor, decode, encode

__all__ = ["ACT_FORMAT", "PreparedWeight", "prepare_weight", "act_scale_for",
           "quantize_activations", "dequantize_activations", "linear_q", "linear_fp32"]

ACT_FORMAT = "float8_e4m3fn"
_ACT_MAX = 448.0  # largest finite E4M3
_ACT_FRAC_BITS = 9  # every E4M3 value is an integer multiple of 2^-9 (smallest subnormal)
_EXACT_LIMIT = 2.0**53
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class PreparedWeight:
    """A linear weight ready for :func:`linear_q`.

    Attributes:
        values: float32 ``(N, K)``, the dequantized weight ``w_hat``.
        row_exp: int64 ``(N,)``; ``values[i] * 2^-row_exp[i]`` are integers (the smallest such
            power for the row).
        row_absmax: float64 ``(N,)``, ``max_j |values[i, j]| * 2^-row_exp[i]``.
        qtensor: the :class:`QuantizedTensor` it came from (None for a float32 weight).
    """

    values: np.ndarray
    row_exp: np.ndarray
    row_absmax: np.ndarray
    qtensor: QuantizedTensor | None = None

    def integer_rows(self) -> np.ndarray:
        """float64 ``(N, K)`` integers ``M`` with ``values = M * 2^row_exp[:, None]`` (exact)."""
        return np.ldexp(self.values.astype(np.float64), -self.row_exp[:, None])


def _lowest_bit_exponents(w: np.ndarray) -> np.ndarray:
    """Per row of float32 ``w (N, K)``: the exponent of the lowest set significand bit over the
    row's nonzero elements (0 for an all-zero row). Rows must be finite."""
    mant, exp = np.frexp(w.astype(np.float64))  # w = mant * 2^exp, 0.5 <= |mant| < 1
    ints = np.abs(mant * 2.0**24).astype(np.int64)  # the 24-bit significand (exact for float32)
    lowest = ints & -ints  # isolate the lowest set bit: 0b...1000 -> 0b1000
    tz = np.frexp(lowest.astype(np.float64))[1] - 1  # log2 of that bit
    lsb = np.where(ints != 0, exp - 24 + tz, np.iinfo(np.int64).max)
    out = lsb.min(axis=1)
    return np.where(out == np.iinfo(np.int64).max, 0, out).astype(np.int64)


def prepare_weight(w: QuantizedTensor | np.ndarray) -> PreparedWeight:
    """Dequantize ``w`` (a ``QuantizedTensor`` with shape ``(N, K)``, or a float32 ``(N, K)``
    array used as is) and find each row's integer representation.

    Raises:
        ConfigError: not 2-D, not quantized along the last axis (K), or not finite.
    """
    q = w if isinstance(w, QuantizedTensor) else None
    if q is not None and (len(q.shape) != 2 or q.axis not in (1, -1)):
        raise ConfigError(f"a linear weight must be (N, K) quantized along K (axis 1); got shape "
                          f"{q.shape}, axis {q.axis}")
    values = np.ascontiguousarray(q.dequantize() if q is not None else w, dtype=np.float32)
    if values.ndim != 2:
        raise ConfigError(f"a linear weight must be 2-D (N, K) (got shape {values.shape})")
    if not np.isfinite(values).all():
        raise ConfigError("a linear weight must be finite (it holds NaN or Inf)")
    row_exp = _lowest_bit_exponents(values)
    absmax = np.ldexp(np.abs(values).max(axis=1).astype(np.float64), -row_exp)
    values.flags.writeable = False
    return PreparedWeight(values=values, row_exp=row_exp, row_absmax=absmax, qtensor=q)


def act_scale_for(amax: float) -> float:
    """Per-tensor FP8 activation scale: ``2^e``, the smallest power of two with
    ``amax <= 448 * 2^e`` (so the calibrated maximum never saturates), ``e`` clamped to
    [-127, 127] like an E8M0 scale; ``amax = 0`` gives ``2^-127``."""
    if not (math.isfinite(amax) and amax >= 0):
        raise ConfigError(f"'amax' must be finite and >= 0 (got {amax})")
    if amax == 0.0:
        return 2.0**-127
    e = math.ceil(math.log2(amax / _ACT_MAX))
    while amax > _ACT_MAX * 2.0**e:  # fix log2 rounding at the edges, exactly
        e += 1
    while e > -127 and amax <= _ACT_MAX * 2.0 ** (e - 1):
        e -= 1
    return 2.0 ** max(-127, min(127, e))


def _scale_exponent(act_scale: float) -> int:
    mant, exp = math.frexp(float(act_scale))
    if mant != 0.5 or not -127 <= exp - 1 <= 127:
        raise ConfigError(f"'act_scale' must be a power of two 2^e, -127 <= e <= 127 "
                          f"(got {act_scale!r})")
    return exp - 1


def quantize_activations(x: np.ndarray, act_scale: float) -> np.ndarray:
    """FP8 E4M3 codes (uint8, shape of ``x``) of ``x / act_scale``: nearest even, saturating."""
    e = _scale_exponent(act_scale)
    scaled = np.ldexp(np.asarray(x, dtype=np.float64), -e)  # exact
    return encode(scaled, ACT_FORMAT, overflow="saturate")


def dequantize_activations(codes: np.ndarray, act_scale: float) -> np.ndarray:
    """float32 ``decode(codes) * act_scale`` (exact: a power-of-two scale)."""
    e = _scale_exponent(act_scale)
    return np.ldexp(decode(codes, ACT_FORMAT), e).astype(np.float32)


def _round_int_to_f32(n: int, e: int) -> float:
    """``n * 2^e`` (Python int ``n``) rounded once to float32, nearest even, as a Python float."""
    if n == 0:
        return 0.0
    sign, n = (-1.0 if n < 0 else 1.0), abs(n)
    lsb = max(e + n.bit_length() - 24, -149)  # exponent of the last kept bit (24 bits, subnormals)
    shift = lsb - e
    if shift > 0:
        q, r = divmod(n, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
    else:
        q = n << -shift
    value = math.ldexp(q, lsb) if lsb < 1000 else math.inf
    return sign * (math.inf if value > _F32_MAX else value)


def linear_q(x: np.ndarray, weight: PreparedWeight | QuantizedTensor, act_scale: float,
             bias: np.ndarray | None = None) -> np.ndarray:
    """Quantized linear layer ``y = x @ w_hat.T (+ bias)`` with FP8 activations (module docstring).

    Args:
        x: float32 ``(..., K)`` activations.
        weight: ``(N, K)`` weight (a :class:`PreparedWeight`, or a ``QuantizedTensor`` prepared on
            the fly).
        act_scale: the layer's power-of-two activation scale (:func:`act_scale_for`).
        bias: optional float32 ``(N,)``, added in float32 after the rounding.

    Returns:
        float32 ``(..., N)``: ``fl32(act_scale * sum_j decode(q_j) * w_hat[i, j])`` exactly.
    """
    w = weight if isinstance(weight, PreparedWeight) else prepare_weight(weight)
    x = np.asarray(x, dtype=np.float32)
    n, k = w.values.shape
    if x.shape[-1] != k:
        raise ConfigError(f"x has {x.shape[-1]} input features, the weight expects K = {k}")
    lead = x.shape[:-1]
    e = _scale_exponent(act_scale)
    codes = quantize_activations(x.reshape(-1, k), act_scale)
    a = np.ldexp(decode(codes, ACT_FORMAT).astype(np.float64), _ACT_FRAC_BITS)  # integers
    m = w.integer_rows()
    s = a @ m.T  # exact where the bound below holds
    with np.errstate(invalid="ignore"):
        unsafe = np.abs(a).sum(axis=1)[:, None] * w.row_absmax[None, :] >= _EXACT_LIMIT
    shift = w.row_exp[None, :] + (e - _ACT_FRAC_BITS)
    with np.errstate(over="ignore"):  # beyond float32 range: +-Inf, as a single rounding gives
        y = np.ldexp(s, np.broadcast_to(shift, s.shape)).astype(np.float32)
    for t, i in zip(*np.nonzero(unsafe), strict=True):
        exact = sum(int(av) * int(mv) for av, mv in zip(a[t], m[i], strict=True) if av and mv)
        y[t, i] = _round_int_to_f32(exact, int(shift[0, i]))
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32)
    return y.reshape(*lead, n)


def linear_fp32(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """The float32 reference layer: ``x @ weight.T (+ bias)`` with float32 BLAS (``(..., K)`` x
    ``(N, K)`` -> ``(..., N)``)."""
    y = np.matmul(np.asarray(x, dtype=np.float32), weight.T)
    return y + bias if bias is not None else y
