"""The quantized linear layer: FP8 activations times block-scaled weights, computed exactly.

This is the arithmetic the simulator's functional core must reproduce bit for bit::

    y[t, i] = fl32( s_x * sum_j decode(q[t, j]) * w_hat[i, j] )   (+ bias[i], a float32 add)

- ``q = encode(x / s_x, float8_e4m3fn)`` (round to nearest even, saturating at +-448; see
  ``docs/formats.md``). ``s_x = 2^e`` is the layer's static per-tensor activation scale
  (:func:`act_scale_for`: the smallest power of two with ``amax <= 448 * s_x``, ``amax`` the
  largest ``|x|`` seen on the calibration data). ``x / s_x`` is a power-of-two scaling (exact
  wherever the result can round to a nonzero FP8 value).
- ``w_hat = QuantizedTensor.dequantize()`` (float32, exact: a format value times its E8M0 block
  scale); pruned positions are 0.
- The sum is the *exact* real number, rounded once to float32 (nearest even; beyond the float32
  range +-Inf). An exactly zero sum gives +0; a nonzero sum that rounds to zero keeps its sign.
  NaN inputs (NaN FP8 codes) give NaN. No accumulation order, no intermediate rounding: any
  hardware that accumulates exactly (or provably without error) and rounds once gets the same
  bits.

How it is computed: every FP8 value is an integer multiple of 2^-9 and every row of ``w_hat`` an
integer multiple of its own power of two ``2^g_i``, so ``sum_j`` is ``2^(g_i - 9)`` times an integer
dot product ``A[t] . M[i]`` with ``|A| <= 448 * 2^9``. One float64 matmul computes it exactly
whenever ``sum_j |A[t, j]| * max_j |M[i, j]| < 2^53`` (every partial sum of integers stays exact, in
any order, FMA or not: so the result does not depend on the BLAS). A few outputs where that bound
fails are recomputed with Python integers; many (wide rows: SpQR's float32 group scales and float16
outliers, bfloat16 weights) by splitting ``M`` into parts that each satisfy the bound, with the rare
sums that land near a float32 rounding boundary again recomputed exactly. The final ``* 2^(e + g_i -
9)`` is exact in float64 and ``astype(float32)`` rounds once.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim.detmath import matmul_f32
from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import QuantizedTensor, decode, encode

__all__ = ["ACT_FORMAT", "PreparedWeight", "prepare_weight", "act_scale_for",
           "quantize_activations", "dequantize_activations", "linear_q", "linear_fp32",
           "QuantizedInput", "quantize_input", "linear_q_from"]

ACT_FORMAT = "float8_e4m3fn"
_ACT_MAX = 448.0  # largest finite E4M3
_ACT_FRAC_BITS = 9  # every E4M3 value is an integer multiple of 2^-9 (smallest subnormal)
_EXACT_LIMIT = 2.0**53
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class PreparedWeight:
    """A linear weight ready for :func:`linear_q`.

    Attributes:
        integers: float64 ``(N, K)`` integer-valued; the dequantized weight is
            ``w_hat[i, j] = integers[i, j] * 2^row_exp[i]`` exactly.
        row_exp: int64 ``(N,)``, the exponent of the lowest set bit over the row's nonzero
            elements (0 for an all-zero row).
        row_absmax: float64 ``(N,)``, ``max_j |integers[i, j]|``.
        qtensor: the :class:`QuantizedTensor` it came from (None for a float32 weight).
    """

    integers: np.ndarray
    row_exp: np.ndarray
    row_absmax: np.ndarray
    qtensor: QuantizedTensor | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.integers.shape

    def values(self) -> np.ndarray:
        """The dequantized weight ``w_hat``, float32 ``(N, K)``."""
        return np.ldexp(self.integers, self.row_exp[:, None]).astype(np.float32)


@numba.njit(cache=True)
def _split_row(values, bits, out):
    """One row of :func:`_integer_rows`: writes ``out`` and returns ``(g, max |out|)``."""
    k = bits.shape[0]
    g = 1 << 30
    for j in range(k):
        b = bits[j]
        e = np.int64((b >> 23) & 0xFF)
        sig = (b & 0x7FFFFF) | (np.uint32(1 << 23) if e != 0 else np.uint32(0))
        if sig != 0:
            low = sig & (~sig + np.uint32(1))
            lsb = max(e, 1) - 150 + (math.frexp(np.float64(low))[1] - 1)
            g = min(g, lsb)
    if g == 1 << 30:
        g = 0
    inv = math.ldexp(1.0, -g)
    amax = 0.0
    for j in range(k):
        v = np.float64(values[j]) * inv
        out[j] = v
        amax = max(amax, abs(v))
    return g, amax


@numba.njit(cache=True, parallel=True)
def _integer_rows(values, bits, out, row_exp, row_absmax):
    """Split float32 rows ``values (N, K)`` (``bits``: the same memory as uint32) into integers
    times a power of two.

    A float32 is ``[s | E (8) | F (23)]``; its significand ``S = F | (E != 0) << 23`` has weight
    ``2^(max(E, 1) - 150)``, i.e. ``|x| = S * 2^(max(E, 1) - 150)``. The lowest set bit of ``S``
    (``S & -S`` isolates it: ``...1000 -> 1000``) gives the exponent of ``x``'s lowest set bit;
    the row minimum is ``g``, and ``out = x * 2^-g`` (a power-of-two multiply: exact) are
    integers.
    """
    for i in numba.prange(bits.shape[0]):
        row_exp[i], row_absmax[i] = _split_row(values[i], bits[i], out[i])


@numba.njit(cache=True)
def _dequantize_row(codes, table, scales, kept_block, mask_bits, m, out):
    """One row of :func:`_dequantize_rows` (``out`` zeroed by the caller)."""
    kept = codes.shape[0]
    nb = (m + 7) // 8
    j = 0
    for k in range(out.shape[0]):
        keep = True
        if m > 0:
            r = k % m
            keep = (mask_bits[(k // m) * nb + r // 8] >> (r % 8)) & 1 == 1
        if keep:
            if j < kept:
                out[k] = table[codes[j]] * scales[j // kept_block]
            j += 1


@numba.njit(cache=True, parallel=True)
def _dequantize_rows(codes, table, scales, kept_block, mask_bits, m, out):
    """``out[i, k] = fl32(table[codes[i, j]] * scales[i, j // kept_block])`` for the ``j``-th kept
    position ``k`` of row ``i``; pruned positions stay 0.

    ``m = 0``: dense (every position kept). Otherwise position ``k`` is kept when bit ``k % m`` of
    its group's little-endian mask (``ceil(m / 8)`` bytes per group) is set::

        group g = k // m, r = k % m:  mask_bits[i, g * ceil(m/8) + r // 8] >> (r % 8) & 1
    """
    for i in numba.prange(codes.shape[0]):
        mrow = mask_bits[i] if m > 0 else mask_bits[0]
        _dequantize_row(codes[i], table, scales[i], kept_block, mrow, m, out[i])


@numba.njit(cache=True, parallel=True)
def _prepared_rows(codes, table, scales, kept_block, mask_bits, m, out, row_exp, row_absmax,
                   finite):
    """:func:`_dequantize_rows` then :func:`_integer_rows`, a row at a time (the float32 row in a
    scratch buffer, never the whole ``w_hat``); ``finite[i]``: row ``i`` of ``w_hat`` holds no
    NaN or Inf."""
    k = out.shape[1]
    for i in numba.prange(codes.shape[0]):
        buf = np.zeros(k, dtype=np.float32)
        mrow = mask_bits[i] if m > 0 else mask_bits[0]
        _dequantize_row(codes[i], table, scales[i], kept_block, mrow, m, buf)
        ok = True
        for j in range(k):
            if not np.isfinite(buf[j]):
                ok = False
        finite[i] = ok
        row_exp[i], row_absmax[i] = _split_row(buf, buf.view(np.uint32), out[i])


def dequantize_weight(q: QuantizedTensor) -> np.ndarray:
    """``q.dequantize()`` of a 2-D tensor quantized along its last axis, computed by one kernel.

    The same arithmetic as :meth:`QuantizedTensor.dequantize` (a float32 product of the decoded
    element and its block scale; zeros at pruned positions), bit for bit (tested); other layouts
    fall back to it. The sparsity mask is read as stored, not re-validated.
    """
    if not _kernel_layout(q):
        return q.dequantize()
    out = np.zeros(q.shape, dtype=np.float32)
    _dequantize_rows(*_kernel_args(q), out)  # type: ignore[call-arg]
    return out


def _kernel_layout(q: QuantizedTensor) -> bool:
    """``q`` is 2-D, quantized along its last axis, block-scaled: the dequantize kernels' case."""
    return len(q.shape) == 2 and q.axis in (1, -1) and q.scale != "none"


def _kernel_args(q: QuantizedTensor) -> tuple:
    """(codes, table, scales, kept_block, mask_bits, m) of :func:`_dequantize_rows`."""
    m = q.sparsity.group if q.sparsity is not None else 0
    bits = q.mask_bits if q.mask_bits is not None else np.zeros((1, 0), dtype=np.uint8)
    return (q.element_codes(), q.fmt.values_f32, q.scale_values().astype(np.float32),
            q.kept_block, bits, m)


def prepare_weight(w: QuantizedTensor | np.ndarray) -> PreparedWeight:
    """Dequantize ``w`` (a ``QuantizedTensor`` with shape ``(N, K)``, or a float32 ``(N, K)``
    array used as is) and split each row into integers times a power of two.

    Raises:
        ConfigError: not 2-D, not quantized along the last axis (K), or not finite.
    """
    q = w if isinstance(w, QuantizedTensor) else None
    if q is not None and (len(q.shape) != 2 or q.axis not in (1, -1)):
        raise ConfigError(f"a linear weight must be (N, K) quantized along K (axis 1); got shape "
                          f"{q.shape}, axis {q.axis}")
    if q is not None and _kernel_layout(q):  # dequantized a row at a time, then split
        n = q.shape[0]
        integers = np.empty(q.shape, dtype=np.float64)
        row_exp = np.empty(n, dtype=np.int64)
        row_absmax = np.empty(n, dtype=np.float64)
        finite = np.empty(n, dtype=np.bool_)
        # mypy cannot match *args followed by positional arguments to a numba dispatcher
        _prepared_rows(*_kernel_args(q), integers, row_exp, row_absmax,  # type: ignore[call-arg]
                       finite)
        if not finite.all():
            raise ConfigError("a linear weight must be finite (it holds NaN or Inf)")
        integers.flags.writeable = False
        return PreparedWeight(integers=integers, row_exp=row_exp, row_absmax=row_absmax,
                              qtensor=q)
    values = np.ascontiguousarray(dequantize_weight(q) if q is not None else w, dtype=np.float32)
    if values.ndim != 2:
        raise ConfigError(f"a linear weight must be 2-D (N, K) (got shape {values.shape})")
    if not np.isfinite(values).all():
        raise ConfigError("a linear weight must be finite (it holds NaN or Inf)")
    n = values.shape[0]
    integers = np.empty(values.shape, dtype=np.float64)
    row_exp = np.empty(n, dtype=np.int64)
    row_absmax = np.empty(n, dtype=np.float64)
    _integer_rows(values, values.view(np.uint32), integers, row_exp, row_absmax)
    integers.flags.writeable = False
    return PreparedWeight(integers=integers, row_exp=row_exp, row_absmax=row_absmax, qtensor=q)


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
    # x * 2^-e in float32 is exact except for results below 2^-126 (float32 subnormals), which
    # encode to +-0 either way (FP8's smallest magnitude is 2^-9), and overflow to +-Inf, which
    # saturates to +-448 either way; float32 input takes the table-driven encoder.
    scaled = np.ldexp(np.asarray(x, dtype=np.float32), np.int32(-e))
    return encode(scaled, ACT_FORMAT, overflow="saturate")


@functools.lru_cache(maxsize=1)
def _fp8_integers() -> np.ndarray:
    """float64 ``(256,)``: ``decode(code) * 2^9`` for every E4M3 code (integers; NaN codes NaN)."""
    return np.ldexp(decode(np.arange(256, dtype=np.uint8), ACT_FORMAT).astype(np.float64),
                    _ACT_FRAC_BITS)


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
    return linear_q_from(quantize_input(x, act_scale), w, bias)


@dataclass(frozen=True, eq=False)
class QuantizedInput:
    """A linear layer's input quantized once (reusable by every layer reading the same ``x``
    with the same scale, e.g. q/k/v): ``a`` = ``decode(codes) * 2^9`` float64 ``(T, K)``
    integers, ``l1`` = ``sum_j |a[t, j]|``, ``e`` = ``log2(act_scale)``, ``lead`` = ``x``'s
    leading shape."""

    a: np.ndarray
    l1: np.ndarray
    e: int
    lead: tuple[int, ...]


def quantize_input(x: np.ndarray, act_scale: float) -> QuantizedInput:
    """The FP8 side of :func:`linear_q` for ``x (..., K)``."""
    x = np.asarray(x, dtype=np.float32)
    e = _scale_exponent(act_scale)
    codes = quantize_activations(x.reshape(-1, x.shape[-1]), act_scale)
    a = _fp8_integers()[codes]  # decode(code) * 2^9: integers, |a| <= 448 * 2^9
    return QuantizedInput(a=a, l1=np.abs(a).sum(axis=1), e=e, lead=x.shape[:-1])


def linear_q_from(qx: QuantizedInput, w: PreparedWeight,
                  bias: np.ndarray | None = None) -> np.ndarray:
    """:func:`linear_q` of an input already quantized by :func:`quantize_input` (same bits)."""
    n, k = w.shape
    if qx.a.shape[-1] != k:
        raise ConfigError(f"x has {qx.a.shape[-1]} input features, the weight expects K = {k}")
    a, l1, e, lead = qx.a, qx.l1, qx.e, qx.lead
    s = a @ w.integers.T  # exact where the bound below holds
    if not l1.max(initial=0.0) * w.row_absmax.max(initial=0.0) < _EXACT_LIMIT:
        with np.errstate(invalid="ignore"):  # NaN inputs: NaN results, not "unsafe"
            unsafe = l1[:, None] * w.row_absmax[None, :] >= _EXACT_LIMIT
    else:
        unsafe = None
    shift = w.row_exp + (e - _ACT_FRAC_BITS)
    with np.errstate(over="ignore"):  # beyond float32 range: +-Inf, as a single rounding gives
        y = (s * np.ldexp(1.0, shift)[None, :]).astype(np.float32)  # power-of-two multiply: exact
    y[s == 0.0] = 0.0  # an exact zero is +0, whatever signed zeros the matmul produced
    if unsafe is not None:
        rows, cols = np.nonzero(unsafe)
        if rows.size > _FEW:
            y[unsafe], hard = _split_sums(a, w, unsafe, shift)
            rows, cols = rows[hard], cols[hard]
        for t, i in zip(rows, cols, strict=True):
            exact = sum(int(av) * int(mv) for av, mv in zip(a[t], w.integers[i], strict=True)
                        if av and mv)
            y[t, i] = _round_int_to_f32(exact, int(shift[i]))
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float32)
    return y.reshape(*lead, n)


_FEW = 256  # unsafe outputs recomputed one by one with Python integers; more: by parts


def _split_sums(a: np.ndarray, w: PreparedWeight, unsafe: np.ndarray, shift: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The ``unsafe`` outputs (too wide for one exact float64 matmul) by parts.

    The integer weights are split into ``P`` parts of ``b`` bits, ``M = sum_p M_p 2^(p b)``,
    with ``b`` small enough that every ``a @ M_p.T`` is exact (``l1 * 2^b < 2^53``). The parts'
    exact sums are combined in float64 (most significant first) and rounded to float32; a value
    within ``2^-45`` (relative) of a float32 rounding boundary is flagged ``hard`` for the exact
    Python-integer path. Returns (float32 values of the unsafe outputs in ``np.nonzero`` order,
    bool ``hard`` per unsafe output).
    """
    l1max = float(a.__abs__().sum(axis=1).max())
    bits = max(1, int(math.floor(math.log2(_EXACT_LIMIT / max(l1max, 1.0)))) - 1)
    m = w.integers
    mag = float(np.abs(m).max(initial=0.0))
    parts = max(1, -(-max(1, int(math.ceil(math.log2(mag + 1)))) // bits))
    step = 2.0**bits
    rest = m.copy()
    total = np.zeros((a.shape[0], m.shape[0]))
    for p in range(parts - 1, -1, -1):
        hi = np.trunc(rest / step**p) if p else rest   # exact: power-of-two scaling, trunc
        rest = rest - hi * step**p                     # the low bits: exact
        total = total + (a @ hi.T) * step**p           # exact product, rounded sum of parts
    v = total[unsafe] * np.ldexp(1.0, shift[np.nonzero(unsafe)[1]])
    with np.errstate(over="ignore", invalid="ignore"):
        r = v.astype(np.float32)
        nb = np.nextafter(r, np.where(v > r, np.float32(np.inf), np.float32(-np.inf)))
        mid = (r.astype(np.float64) + nb.astype(np.float64)) * 0.5
        hard = ~(np.abs(v - mid) > 2.0**-45 * np.abs(v)) | (np.isinf(r) & np.isfinite(v))
    hard &= ~np.isnan(v)
    r[v == 0.0] = 0.0
    return r, hard


def linear_fp32(x: np.ndarray, weight, bias: np.ndarray | None = None) -> np.ndarray:
    """The float32 reference layer: ``x @ weight.T (+ bias)`` (``(..., K)`` x ``(N, K)`` ->
    ``(..., N)``; ``weight`` may be a :class:`~prodigy_sim.detmath.SplitWeight`): the error-free
    split product rounded once to float32 (:func:`prodigy_sim.detmath.matmul_f32`; the same bits
    on every host, whatever the BLAS), then the bias added in
    float32."""
    y = matmul_f32(x, weight)
    return y + bias if bias is not None else y
