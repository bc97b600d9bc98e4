"""Block-scaled quantization: :func:`quantize` and :class:`QuantizedTensor`.

A tensor is quantized along one axis (the reduction axis of a matmul) in blocks of ``block``
consecutive elements; every block shares one scale ``s`` and stores element codes ``q`` with
``x ~= decode(q) * s``. Scale rules (``scale=``):

``e8m0`` (default, OCP MX v1.0)
    ``e = floor(log2(amax)) - emax_elem`` clamped to [-127, 127], with ``floor(log2)`` taken from
    the float's exponent bits (exact just below a power of two) and ``emax_elem =
    floor(log2(max finite element))``; ``s = 2^e`` stored as E8M0 code ``e + 127``. A block of
    zeros gets ``e = -127``; a block holding NaN or Inf gets the NaN scale 0xFF (it dequantizes
    to NaN). Elements are ``x * 2^-e`` (exact) rounded to nearest-even and clamped to the
    element format's largest finite value.
``e4m3``
    ``s = fl32(amax / max_elem)`` rounded to FP8 E4M3 (nearest-even, saturating; a nonzero
    block whose scale would round to 0 gets the smallest positive E4M3, 2^-9); elements are
    ``x / s`` rounded once (the quotient is formed in float64, which is exact enough that no
    double rounding can occur: see docs/formats.md) and clamped. ``s = 0`` stores zeros.
``fp32``
    ``s = fl32(amax / max_elem)`` kept as float32 (per-channel when ``block=None``); a nonzero
    block whose scale underflows gets 2^-149 instead of 0 (likewise for ``absmean``).
``absmean``
    ``s = fl32(mean |x|)`` (BitNet b1.58; use with ``ternary``), elements ``x / s`` clamped.
``none``
    No scale: elements are ``x`` rounded and clamped.

With ``sparsity="8:4"`` (a :class:`~prodigy_sim.numerics.Sparsity`: keep ``kept`` of every
``group``) the tensor is first pruned along the axis (see :mod:`prodigy_sim.numerics._sparsity`);
only kept values are quantized, in blocks of ``block * kept / group`` kept values (= ``block``
dense positions), and the group masks are stored.

The wide formats (bfloat16, float16, float32) take no scale: their codes are stored as
little-endian 16/32-bit words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim._jit import parallel_if_large
from prodigy_sim.errors import ConfigError, EncodeError
from prodigy_sim.numerics._codec import _encode_one, _lut, decode, encode, encode_table
from prodigy_sim.numerics._packing import pack_row, packed_row_bytes, unpack
from prodigy_sim.numerics._registry import get_format
from prodigy_sim.numerics._spec import FormatSpec
from prodigy_sim.numerics._storage import (
    ScaleKind,
    Sparsity,
    Storage,
    parse_sparsity,
    scale_kind,
)
from prodigy_sim.numerics._wide import code_dtype

_FMAX = np.float32(np.finfo(np.float32).max)
_SCALE_MODE = {ScaleKind.NONE: 0, ScaleKind.E8M0: 1, ScaleKind.E4M3: 2, ScaleKind.FP32: 3,
               ScaleKind.ABSMEAN: 4}

__all__ = ["QuantizedTensor", "quantize"]


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """A block-scaled (and optionally n:m sparse) tensor.

    Arrays have the quantized axis last; ``lead`` = the other axes, ``K`` = the axis length,
    ``Kk`` = kept elements per row (``K`` dense, ``K * n / m`` sparse):

    - ``codes``: uint8 ``(*lead, ceil(Kk * bits / 8))``, packed (see ``pack``);
    - ``scales``: ``(*lead, n_blocks)`` uint8 E8M0/E4M3 codes, or float32 for fp32/absmean,
      ``(*lead, 0)`` for ``none``;
    - ``mask_bits``: uint8 group masks ``(*lead, K / m * ceil(m / 8))`` when sparse, else None.
    """

    codes: np.ndarray
    scales: np.ndarray
    fmt: FormatSpec
    shape: tuple[int, ...]
    axis: int
    block: int
    scale: ScaleKind
    sparsity: Sparsity | None = None
    mask_bits: np.ndarray | None = None

    @property
    def K(self) -> int:  # noqa: N802
        return self.shape[self.axis]

    @property
    def storage(self) -> Storage:
        """How each row (along the quantized axis) is stored."""
        block = None if self.scale == ScaleKind.NONE else self.block
        return Storage(fmt=self.fmt, block=block, scale=self.scale, sparsity=self.sparsity)

    @property
    def kept_per_row(self) -> int:
        return self.K if self.sparsity is None else self.sparsity.kept_of(self.K)

    @property
    def kept_block(self) -> int:
        """Kept (stored) elements per scale block."""
        return self.block if self.sparsity is None else self.sparsity.kept_of(self.block)

    @property
    def lead_shape(self) -> tuple[int, ...]:
        return tuple(s for i, s in enumerate(self.shape) if i != self.axis)

    @property
    def nbytes(self) -> int:
        """Bytes of codes + scales + sparsity metadata."""
        meta = 0 if self.mask_bits is None else self.mask_bits.nbytes
        return self.codes.nbytes + self.scales.nbytes + meta

    def element_codes(self) -> np.ndarray:
        """Unpacked element codes ``(*lead, Kk)``: uint8, or uint16/uint32 for wide formats."""
        if self.fmt.wide:
            return np.ascontiguousarray(self.codes).view(code_dtype(self.fmt).newbyteorder("<"))
        return unpack(self.codes, self.fmt.bits, self.kept_per_row)

    def scale_values(self) -> np.ndarray:
        """Block scales as float32 ``(*lead, n_blocks)`` (NaN for an E8M0 NaN scale)."""
        if self.scale.code_format is not None:
            return decode(self.scales, self.scale.code_format)
        return self.scales.astype(np.float32)

    def kept_values(self) -> np.ndarray:
        """Dequantized kept values, float32 ``(*lead, Kk)``: ``fl32(decode(code) * scale)``."""
        vals = decode(self.element_codes(), self.fmt)
        if self.scale == ScaleKind.NONE:
            return vals
        per_block = min(self.kept_block, self.kept_per_row)
        s = np.repeat(self.scale_values(), per_block, axis=-1)[..., : self.kept_per_row]
        with np.errstate(over="ignore", invalid="ignore"):
            return (vals * s).astype(np.float32)

    def mask(self) -> np.ndarray | None:
        """bool ``(*lead, K)`` keep-mask of a sparse tensor, else None."""
        if self.sparsity is None:
            return None
        if self.mask_bits is None:
            raise ConfigError(f"a sparse ({self.sparsity}) quantized tensor needs 'mask_bits'")
        from prodigy_sim.numerics._sparsity import unpack_mask

        return unpack_mask(self.mask_bits, self.sparsity.kept, self.sparsity.group, self.K)

    def dequantize(self) -> np.ndarray:
        """float32 array of :attr:`shape` (original axis order)."""
        kept = self.kept_values()
        if self.sparsity is not None:
            dense = np.zeros(self.lead_shape + (self.K,), dtype=np.float32)
            dense[self.mask()] = kept.reshape(-1)
            kept = dense
        return np.moveaxis(kept, -1, self.axis)


@numba.njit(cache=True)
def _floor_log2(a):
    """floor(log2(a)) of a finite float64 a > 0, exact (also just below a power of two)."""
    return math.frexp(a)[1] - 1  # frexp reads the exponent field: a = f * 2^e, 0.5 <= f < 1


@numba.njit(cache=True, inline="always")
def _floor_log2_bits(m):
    """floor(log2(a)) of the positive finite float32 whose bits are ``m`` (the exponent field,
    or for a subnormal the position of its top bit: a = m * 2^-149)."""
    ex = m >> 23
    if ex > 0:
        return ex - 127
    top = 0
    while (m >> (top + 1)) != 0:
        top += 1
    return top - 149


@numba.njit(cache=True)
def _mx_row_lut(x, xr, block, scaled, emax, zero_code, lut, t_mids, t_tie, t_codes, t_count,
                t_inf, t_nan, out_codes, out_scale_codes, out_scales):
    """One row of E8M0-scaled (``scaled``) or unscaled elements by the float32 LUT, in one pass
    per block: the block maximum ``mb`` and smallest nonzero magnitude ``mn`` on the magnitude
    bits (which order like the magnitudes), the scale, then the codes. ``x`` / ``xr``: the row
    as float32 and as its uint32 bits; ``lut``: ``_Lut.entry`` (threshold << 32 | hi << 16 |
    lo, 16-bit codes). Returns the number of elements that could not be encoded (code -1).

    In block b with shift ``e``, ``x * 2^-e`` is the exponent-field subtraction ``bits - (e <<
    23)`` (exact) when ``x`` is normal and so is the result; a zero keeps its bits. ``mn`` and
    ``mb`` tell whether every element of the block is in that window (the block is *fast*: a
    branch-free loop of table look-ups); otherwise every element of the block takes the exact
    float64 path (``_encode_one`` of ``x * 2^-e``, exact in float64), which gives the same codes
    as the table for the elements the table could take. A block holding NaN or Inf gets the NaN
    scale and zero codes when ``scaled``; unscaled, it takes the exact path."""
    neg = 0
    k = xr.size
    nb = -(-k // block)
    for b in range(nb):
        j0 = b * block
        j1 = min(j0 + block, k)
        mb = np.uint32(0)
        mn = np.uint32(0xFFFFFFFF)
        for j in range(j0, j1):
            m = xr[j] & np.uint32(0x7FFFFFFF)
            mb = max(mb, m)
            mn = min(mn, m if m != 0 else np.uint32(0xFFFFFFFF))
        shift = 0
        if scaled:
            if mb >= np.uint32(0x7F800000):  # NaN or Inf: NaN scale, zero codes
                out_scale_codes[b] = 255
                out_scales[b] = np.nan
                for j in range(j0, j1):
                    out_codes[j] = zero_code
                continue
            e = -127 if mb == 0 else _floor_log2_bits(np.int64(mb)) - emax
            shift = max(-127, min(127, e))
            out_scale_codes[b] = shift + 127
            out_scales[b] = math.ldexp(1.0, shift)  # exact: a normal float64
        exmin = np.int64(mn >> 23)  # 511 for a block of zeros
        exmax = np.int64(mb >> 23)
        if exmax < 255 and exmin > 0 and exmin - shift >= 1 and exmax - shift <= 254:
            sh = np.int64(shift) << 23
            seen = np.int64(0)
            for j in range(j0, j1):
                bx = np.int64(xr[j])
                by = bx - sh if (bx & 0x7FFFFFFF) != 0 else bx
                t = lut[(by >> 16) & 0xFFFF]
                c = (t >> 16) if (by & 0xFFFFFFFF) >= ((t >> 32) & 0xFFFFFFFF) else t
                out_codes[j] = np.uint8(c & 0xFF)
                seen |= c
            if (seen >> 15) & 1:  # some 16-bit code is -1 (no code): count them (rare)
                for j in range(j0, j1):
                    bx = np.int64(xr[j])
                    by = bx - sh if (bx & 0x7FFFFFFF) != 0 else bx
                    t = lut[(by >> 16) & 0xFFFF]
                    c = (t >> 16) if (by & 0xFFFFFFFF) >= ((t >> 32) & 0xFFFFFFFF) else t
                    neg += (c >> 15) & 1
            continue
        mul = math.ldexp(1.0, -shift)
        for j in range(j0, j1):
            c = _encode_one(np.float64(x[j]) * mul, t_mids, t_tie, t_codes, t_count, t_inf,
                            t_nan)
            out_codes[j] = np.uint8(c & 0xFF)
            if c < 0:
                neg += 1
    return neg


@parallel_if_large
def _quantize_rows(x, xbits, block, mode, emax, max_elem, t_mids, t_tie, t_codes, t_count,
                   t_inf, t_nan, lut, s_mids, s_tie, s_codes, s_count, s_inf,
                   s_nan, s_values, bits, out_packed, out_scale_codes, out_scales):
    """Quantize rows of x (R, K) in blocks; see the module docstring for the scale rules.

    ``xbits`` is x viewed as uint32 when x is float32 and the element format has a float32 LUT
    (``lut``, the ``_Lut.entry`` table, non-empty), else empty. Then E8M0 scaling of a normal
    float32 by 2^-e, when the result stays normal, is the exponent-field subtraction
    ``bits - (e << 23)``:

        s eeeeeeee mmm...m  ->  s (eeeeeeee - e) mmm...m      (exact, no rounding)

    and the code comes from the LUT (:func:`_mx_row_lut`, one pass per block, its block
    maximum taken on the magnitude bits, which order like the magnitudes); a block with an
    element outside that window (a subnormal input or result, NaN or Inf unscaled) takes the
    exact float64 path.
    Returns the number of elements that could not be encoded.
    """
    rows, k = x.shape
    nb = out_scales.shape[1]
    fast = xbits.size > 0 and lut.size > 0
    zero_code = _encode_one(0.0, t_mids, t_tie, t_codes, t_count, t_inf, t_nan)
    bad = 0
    for r in numba.prange(rows):
        out_codes = np.empty(k, dtype=np.uint8)
        if fast and mode <= 1:
            bad += _mx_row_lut(x[r], xbits[r], block, mode == 1, emax, zero_code, lut, t_mids,
                               t_tie, t_codes, t_count, t_inf, t_nan, out_codes,
                               out_scale_codes[r], out_scales[r])
            pack_row(out_codes, bits, out_packed[r])
            continue
        for b in range(nb):
            start = b * block
            end = min(start + block, k)
            amax = x.dtype.type(0.0)
            total = 0.0
            finite = True
            for j in range(start, end):
                a = abs(x[r, j])
                if not a <= _FMAX:  # NaN or Inf
                    finite = False
                if mode == 4:
                    total += np.float64(a)
                if a > amax:
                    amax = a
            amax = np.float64(amax)
            div = 1.0
            mul = 1.0
            use_div = False
            zero = False
            if mode == 1:
                if not finite:
                    out_scale_codes[r, b] = 255
                    out_scales[r, b] = np.nan
                    zero = True
                else:
                    e = -127 if amax == 0.0 else _floor_log2(amax) - emax
                    e = max(-127, min(127, e))
                    out_scale_codes[r, b] = e + 127
                    out_scales[r, b] = 2.0 ** e
                    mul = 2.0 ** (-e)
            elif mode >= 2:
                if mode == 4:
                    s = np.float64(np.float32(total / (end - start)))
                else:
                    s = np.float64(np.float32(np.float32(amax) / np.float32(max_elem)))
                if s == 0.0 and amax > 0.0:
                    s = 2.0**-149  # a nonzero block's scale never underflows to 0
                if mode == 2:
                    c = _encode_one(s, s_mids, s_tie, s_codes, s_count, s_inf, s_nan)
                    if s_values[c] == 0.0 and amax > 0.0:
                        c = s_codes[0, 1]  # never let a nonzero block's scale underflow to 0
                    out_scale_codes[r, b] = c
                    s = np.float64(s_values[c])
                out_scales[r, b] = s
                if not finite:
                    if mode == 2:
                        out_scale_codes[r, b] = s_nan[0]
                    out_scales[r, b] = np.nan
                    zero = True
                elif s == 0.0:
                    zero = True
                else:
                    div = s
                    use_div = True
            if zero:
                for j in range(start, end):
                    out_codes[j] = zero_code
                continue
            for j in range(start, end):
                v = np.float64(x[r, j])
                y = v / div if use_div else v * mul
                c = _encode_one(y, t_mids, t_tie, t_codes, t_count, t_inf, t_nan)
                out_codes[j] = np.uint8(c & 0xFF)
                if c < 0:
                    bad += 1
        pack_row(out_codes, bits, out_packed[r])
    return bad


def _encode_blocks(x2: np.ndarray, spec: FormatSpec, block: int, scale: ScaleKind):
    """Quantize rows ``x2`` (R, K) -> (packed codes (R, row bytes), scales (R, n_blocks))."""
    rows, k = x2.shape
    if spec.wide:
        codes = encode(x2, spec, "saturate").astype(code_dtype(spec).newbyteorder("<"))
        return codes.view(np.uint8).reshape(rows, -1), np.zeros((rows, 0), dtype=np.uint8)
    nb = -(-k // block) if scale != ScaleKind.NONE else 0
    t = encode_table(spec, "saturate")
    s_spec = get_format("float8_e4m3fn")
    st = encode_table(s_spec, "saturate")
    packed = np.zeros((rows, packed_row_bytes(k, spec.bits)), dtype=np.uint8)
    scale_codes = np.zeros((rows, max(nb, 1)), dtype=np.int16)
    scales = np.zeros((rows, max(nb, 1)), dtype=np.float64)
    x2 = np.ascontiguousarray(x2)
    lut = _lut(spec, "saturate") if x2.dtype == np.float32 else None
    empty32 = np.zeros((0, 0), dtype=np.uint32)
    xbits = x2.view(np.uint32) if lut is not None else empty32
    entry = lut.entry if lut is not None else np.zeros(0, np.int64)
    bad = _quantize_rows(x2, xbits, block if scale != ScaleKind.NONE else max(k, 1),
                         _SCALE_MODE[scale], spec.emax, spec.max_finite,
                         t.mids, t.tie_up, t.codes, t.count, t.inf_code, t.nan_code,
                         entry,
                         st.mids, st.tie_up, st.codes, st.count, st.inf_code, st.nan_code,
                         s_spec.values, spec.bits, packed, scale_codes, scales)
    if bad:
        raise EncodeError(f"{bad} element(s) are NaN, but format '{spec.name}' has no NaN code "
                          "(with scale='none' there is no NaN scale to carry them)")
    if scale.code_format is not None:
        out_scales = scale_codes[:, :nb].astype(np.uint8)
    elif scale != ScaleKind.NONE:
        out_scales = scales[:, :nb].astype(np.float32)
    else:
        out_scales = np.zeros((rows, 0), dtype=np.uint8)
    return packed, out_scales


def quantize(x, fmt: FormatSpec | str | Storage, block: int | None = 32, axis: int = -1,
             scale: ScaleKind | str | None = None,
             sparsity: Sparsity | str | tuple[int, int] | None = None,
             prune: str = "magnitude", act_norms: np.ndarray | None = None) -> QuantizedTensor:
    """Quantize ``x`` (float32/float64, any shape) along ``axis`` with block scales.

    ``fmt``: a format (name, file or :class:`FormatSpec`), or a :class:`Storage` that then
    gives ``block``, ``scale`` and ``sparsity`` (the keyword values are ignored). ``block``:
    elements per scale block along ``axis`` (``None`` = the whole axis, i.e. one scale per
    channel). ``scale``: a :class:`ScaleKind` (``e8m0`` OCP MX, ``e4m3``, ``fp32``, ``absmean``,
    ``none``); None = the format's default (``e8m0``, or ``none`` for a wide format).
    ``sparsity``: ``"8:4"`` (keep 4 of every 8) prunes first, by ``prune`` = ``"magnitude"``
    or ``"wanda"`` (which needs ``act_norms``, shape ``(x.shape[axis],)``).
    """
    if isinstance(fmt, Storage):
        if fmt.per_tensor:
            raise ConfigError("quantize: a per-tensor scale (block=0) is stored by the ISA "
                              "layer; quantize the flattened tensor with block=None")
        spec, block, kind, nm = fmt.fmt, fmt.block, fmt.scale, fmt.sparsity
    else:
        spec, nm = get_format(fmt), parse_sparsity(sparsity)
        kind = (ScaleKind.NONE if spec.wide else ScaleKind.E8M0) if scale is None \
            else scale_kind(scale)
    if spec.wide and kind != ScaleKind.NONE:
        raise ConfigError(f"{spec.name} is stored unscaled: 'scale' must be none (got {kind})")
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    if arr.ndim == 0:
        raise ConfigError("quantize needs an array with at least one axis")
    ax = axis % arr.ndim if -arr.ndim <= axis < arr.ndim else None
    if ax is None:
        raise ConfigError(f"'axis' = {axis} is out of range for a {arr.ndim}-d array")
    k = arr.shape[ax]
    if k == 0:
        raise ConfigError(f"'axis' = {axis} has length 0: nothing to quantize along it")
    blk = k if block is None else int(block)
    if blk < 1:
        raise ConfigError(f"'block' must be >= 1 (got {block})")
    blk = min(blk, k) if nm is None else blk
    moved = np.moveaxis(arr, ax, -1)
    lead = moved.shape[:-1]
    rows = moved.reshape(-1, k)
    mask_bits = None
    if nm is not None:
        from prodigy_sim.numerics._sparsity import compress

        if blk % nm.group:
            raise ConfigError(f"'block' = {blk} must be a multiple of the sparsity group "
                              f"{nm.group}")
        sp = compress(rows, nm.kept, nm.group, axis=-1, method=prune, act_norms=act_norms)
        rows = sp.values
        mask_bits = sp.mask_bits.reshape(lead + sp.mask_bits.shape[-1:])
        kept_block = nm.kept_of(blk)
    else:
        kept_block = blk
    packed, scales = _encode_blocks(rows, spec, kept_block, kind)
    return QuantizedTensor(
        codes=packed.reshape(lead + packed.shape[-1:]),
        scales=scales.reshape(lead + scales.shape[-1:]),
        fmt=spec, shape=tuple(arr.shape), axis=ax, block=blk, scale=kind,
        sparsity=nm, mask_bits=mask_bits,
    )
