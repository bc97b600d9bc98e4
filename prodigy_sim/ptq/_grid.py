"""The quantization grid: block scales chosen by a rule, and rounding to given scales.

A weight ``W`` (rows, K) is stored as element codes of a :class:`FormatSpec` times one scale per
``block`` consecutive elements of a row along K (the input dimension). :class:`Grid` names the
four choices (format, block, scale kind, scale rule); :func:`block_scales` picks every block's
scale from the values it will hold and :func:`round_to_scales` rounds values to given scales, with
the project's rounding (``numerics.encode``: nearest, ties to even, saturating) - the step GPTQ
runs column by column.

Scale kinds (what a stored scale is; as in ``numerics.quantize``): ``e8m0`` (a power of two
``2^e``, ``-127 <= e <= 127``, 1 byte), ``e4m3`` (an FP8 E4M3 value, 1 byte), ``fp32`` (a float32,
4 bytes), ``absmean`` (float32 ``mean |x|``, BitNet b1.58), ``none`` (no scale).

Scale rules (how ``amax``, the largest ``|x|`` of the block's kept elements, picks the scale;
``M`` = the element format's largest finite value, ``emax = floor(log2 M)``):

=========== ============================================= =========================================
rule        e8m0 (``s = 2^e``)                            e4m3 / fp32 (``s`` on that grid)
=========== ============================================= =========================================
``floor``   OCP MX v1.0: ``e = floor(log2 amax) - emax``  the largest ``s`` with ``s * M <= amax``
            (the ``numerics.quantize`` default)           (clips the block maximum, like OCP)
``nearest`` ``e = round(log2(amax / M))``                 ``amax / M`` rounded to nearest (the
                                                          ``numerics.quantize`` rule and default)
``noclip``  the smallest ``e`` with ``amax <= M * 2^e``   the smallest ``s`` with ``amax <= s * M``
``mse``     of the candidates ``e_noclip, e_noclip - 1,    of ``noclip`` and the next 8 smaller
            e_noclip - 2``, the one with the least         grid values (E4M3 codes; fp32:
            squared rounding error over the block (ties:   ``s_noclip * (1 - i/16)``), likewise
            the larger scale)
=========== ============================================= =========================================

All comparisons are exact (powers of two by ``ldexp``, ``log2`` rounding by comparing ``amax^2``
with ``2 (M 2^e)^2`` using an error-free square), so ``floor`` with ``e8m0`` and ``nearest`` with
``e4m3``/``fp32``/``absmean`` store exactly what ``numerics.quantize`` stores (tested bit for
bit). Clamping: E8M0 exponents to [-127, 127], E4M3 scales to [2^-9, 448] for a nonzero block
(``noclip`` cannot avoid clipping beyond 448 * M); a block of zeros gets ``2^-127`` (E8M0) or 0.
``noclip`` always satisfies ``|x| / s <= M`` within those ranges; for tai4 and tai2 (``M = 1``)
``floor <= nearest <= noclip``. For a format whose ``M`` is not a power of two (FP4 E2M1: 6, int4:
7) ``nearest`` can pick a smaller scale than OCP's ``floor`` (it rounds ``log2(amax / M)``, while
OCP ignores the mantissa of ``M``); ``floor <= noclip`` always holds.

Elements: ``y = x / s`` formed in float64 - exact for a power of two; for other scales and
float32 ``x`` the single-rounding argument of ``docs/formats.md`` applies, as in numerics; for
float64 ``x`` (GPTQ's compensated weights) it is ``fl64(x / s)`` that is rounded -
``code = encode(y, fmt, "saturate")``,
value ``fl32(decode(code) * s)``. A scale of 0 (e4m3/fp32 block of zeros) stores ``encode(0)``
and the value 0, as ``numerics.quantize`` does. Inputs must be finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import FormatSpec, ScaleKind, decode, encode, get_format

__all__ = ["SCALE_RULES", "Grid", "BlockScales", "make_grid", "block_scales", "round_to_scales",
           "quantize_rows", "expand_scales"]

SCALE_RULES: tuple[str, ...] = ("floor", "nearest", "noclip", "mse")
_DEFAULT_RULE = {"e8m0": "floor", "e4m3": "nearest", "fp32": "nearest", "absmean": "nearest",
                 "none": "nearest"}
_E8M0_MSE_STEPS = 3  # candidates e_noclip, e_noclip - 1, e_noclip - 2
_GRID_MSE_STEPS = 9  # noclip and the next 8 smaller E4M3 codes / fp32 shrink factors
_E4M3_MAX_CODE = 0x7E  # 448; 0x7F is NaN
_F32_TINY = 2.0**-149


@dataclass(frozen=True)
class Grid:
    """How a weight is stored: element format ``fmt``, ``block`` elements per scale along K
    (``None`` = one scale per row), scale kind ``scale`` and scale rule ``rule`` (see the module
    docstring). Build it with :func:`make_grid`, which validates and fills the default rule."""

    fmt: FormatSpec
    block: int | None = 32
    scale: str = "e8m0"
    rule: str = "floor"

    def block_for(self, k: int) -> int:
        """Elements per scale block for rows of length ``k``."""
        return k if self.block is None else self.block

    def n_blocks(self, k: int) -> int:
        """Scale blocks per row of length ``k`` (0 for ``scale='none'``)."""
        return 0 if self.scale == "none" else -(-k // self.block_for(k))


def make_grid(fmt: FormatSpec | str | Grid, block: int | None = 32, scale: str = "e8m0",
              rule: str | None = None) -> Grid:
    """A validated :class:`Grid` (a ``Grid`` is returned as is). ``rule=None`` takes the scale
    kind's default: ``floor`` (OCP) for ``e8m0``, ``nearest`` otherwise."""
    if isinstance(fmt, Grid):
        return fmt
    spec = get_format(fmt)
    if scale not in tuple(ScaleKind):
        raise ConfigError(f"'scale' must be one of {', '.join(k.value for k in ScaleKind)} "
                          f"(got {scale!r})")
    scale = ScaleKind(scale).value
    r = _DEFAULT_RULE[scale] if rule is None else rule
    if r not in SCALE_RULES:
        raise ConfigError(f"'rule' must be one of {', '.join(SCALE_RULES)} (got {rule!r})")
    if scale in ("absmean", "none") and r != "nearest":
        raise ConfigError(f"scale {scale!r} has a single rule; 'rule' must be None or 'nearest' "
                          f"(got {rule!r})")
    if block is not None and (not isinstance(block, (int, np.integer)) or block < 1):
        raise ConfigError(f"'block' must be an integer >= 1 or None (got {block!r})")
    return Grid(fmt=spec, block=None if block is None else int(block), scale=scale, rule=r)


@dataclass(frozen=True, eq=False)
class BlockScales:
    """Scales of a 2-D array's blocks.

    ``values``: float32 ``(rows, n_blocks)``, the number each block's elements are divided by;
    ``codes``: what is stored - uint8 ``(rows, n_blocks)`` E8M0 / E4M3 codes, float32 for
    ``fp32`` / ``absmean`` (equal to ``values``), uint8 ``(rows, 0)`` for ``none``.
    """

    values: np.ndarray
    codes: np.ndarray


# ---- helpers ------------------------------------------------------------------------------------


def _blocked(a: np.ndarray, block: int, nb: int, fill) -> np.ndarray:
    """``a`` (rows, K) padded with ``fill`` to ``nb * block`` columns, as (rows, nb, block)."""
    rows, k = a.shape
    pad = nb * block - k
    if pad:
        a = np.concatenate([a, np.full((rows, pad), fill, dtype=a.dtype)], axis=1)
    return a.reshape(rows, nb, block)


def _exponent(a: np.ndarray) -> np.ndarray:
    """floor(log2 a) of positive float64 ``a``, exact (read from the exponent field)."""
    return (np.frexp(a)[1] - 1).astype(np.int64)


def _square_exceeds(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * a > c`` exactly, for float64 ``a >= 0`` and ``c`` (``a * a`` computed error-free:
    Veltkamp split ``a = hi + lo``, ``a^2 = p + err`` with ``p = fl(a * a)``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = a * 134217729.0  # 2^27 + 1
        hi = t - (t - a)
        lo = a - hi
        p = a * a
        err = ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
    return (p > c) | ((p == c) & (err > 0))


def _e4m3_positive() -> np.ndarray:
    """float64 values of the E4M3 codes 0x00..0x7E (0 and the positive values, increasing)."""
    return decode(np.arange(_E4M3_MAX_CODE + 1, dtype=np.uint8), "float8_e4m3fn").astype(
        np.float64)


def _amax(x: np.ndarray, kept: np.ndarray | None, block: int, nb: int) -> np.ndarray:
    """Largest |x| of each block's kept elements, float64 (rows, nb); the max is taken in the
    input's dtype first, as ``numerics.quantize`` does."""
    a = np.abs(x)
    if kept is not None:
        a = np.where(kept, a, a.dtype.type(0))
    return _blocked(a, block, nb, 0).max(axis=2).astype(np.float64)


# ---- E8M0 ---------------------------------------------------------------------------------------


def _e8m0_exponents(amax: np.ndarray, spec: FormatSpec, rule: str) -> np.ndarray:
    """Unclamped exponents (int64) for blocks with ``amax > 0`` (others: anything)."""
    pos = np.where(amax > 0, amax, 1.0)
    top = spec.max_finite
    t = _exponent(pos) - spec.emax  # OCP floor
    if rule == "floor":
        return t
    # e_fl: the largest e with top * 2^e <= amax (it is t or t - 1).
    e_fl = np.where(np.ldexp(top, t) <= pos, t, t - 1)
    base = np.ldexp(top, e_fl)
    if rule == "nearest":
        # round(log2(amax / top)) = e_fl + 1 iff amax / base > sqrt(2), i.e. amax^2 > 2 base^2
        # (never a tie: sqrt(2) is irrational). base has <= 9 significant bits: 2 base^2 is exact.
        return np.where(_square_exceeds(pos, 2.0 * base * base), e_fl + 1, e_fl)
    return np.where(base == pos, e_fl, e_fl + 1)  # noclip


def _e8m0_codes(e: np.ndarray, amax: np.ndarray) -> np.ndarray:
    e = np.where(amax > 0, np.clip(e, -127, 127), -127)
    return (e + 127).astype(np.uint8)


def _e8m0_values(codes: np.ndarray) -> np.ndarray:
    return np.ldexp(np.float32(1.0), codes.astype(np.int32) - 127).astype(np.float32)


# ---- E4M3 ---------------------------------------------------------------------------------------


def _e4m3_codes(amax: np.ndarray, spec: FormatSpec, rule: str) -> np.ndarray:
    """E4M3 scale codes (int64) for every block (0 for a block of zeros)."""
    top = spec.max_finite
    if rule == "nearest":
        s = (amax.astype(np.float32) / np.float32(top)).astype(np.float64)
        s = np.where((s == 0) & (amax > 0), _F32_TINY, s)
        c = encode(s, "float8_e4m3fn", overflow="saturate").astype(np.int64)
        return np.where((c == 0) & (amax > 0), 1, c)
    grid = _e4m3_positive() * top  # exact: <= 4 + 9 significant bits
    if rule == "floor":
        c = np.searchsorted(grid, amax, side="right") - 1  # largest grid value <= amax
    else:  # noclip
        c = np.searchsorted(grid, amax, side="left")  # smallest grid value >= amax
    c = np.clip(c, 1, _E4M3_MAX_CODE)
    return np.where(amax > 0, c, 0)


# ---- float32 ------------------------------------------------------------------------------------


def _fp32_scales(amax: np.ndarray, spec: FormatSpec, rule: str) -> np.ndarray:
    """float32 scales (as float64) for every block; 0 for a block of zeros."""
    top = spec.max_finite
    s = (amax.astype(np.float32) / np.float32(top)).astype(np.float32)
    s = np.where((s == 0) & (amax > 0), np.float32(_F32_TINY), s).astype(np.float32)
    if rule in ("floor", "noclip"):
        for _ in range(3):  # s is within an ulp or two of amax / top; settle exactly
            prod = s.astype(np.float64) * top  # exact: 24 + 9 significant bits
            if rule == "floor":
                fix = (prod > amax) & (s > np.float32(_F32_TINY))
                s = np.where(fix, np.nextafter(s, np.float32(0)), s)
            else:
                fix = prod < amax
                s = np.where(fix, np.nextafter(s, np.float32(np.inf)), s)
            if not fix.any():
                break
    return np.where(amax > 0, s, np.float32(0)).astype(np.float64)


# ---- public -------------------------------------------------------------------------------------


def round_to_scales(x: np.ndarray, s: np.ndarray, fmt: FormatSpec
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Round ``x`` to the grid ``s * values(fmt)``, element by element.

    Args:
        x: float array, any shape (finite).
        s: float32 scales broadcastable to ``x`` (0 = a zero block; pass ``np.float32(1)`` for no
            scale).
        fmt: element format.

    Returns:
        ``(codes, values)``: uint8 codes of ``x / s`` (nearest, ties to even, saturating) and
        float32 values ``fl32(decode(code) * s)``, both of ``x``'s broadcast shape.
    """
    x64 = np.asarray(x, dtype=np.float64)
    s32 = np.asarray(s, dtype=np.float32)
    s64 = s32.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(s64 != 0, x64 / np.where(s64 != 0, s64, 1.0), 0.0)
    spec = get_format(fmt)
    codes = encode(y, spec, overflow="saturate")
    values = (spec.values_f32[codes] * s32).astype(np.float32)  # = decode(codes) * s
    return codes, values


def expand_scales(values: np.ndarray, block: int, k: int) -> np.ndarray:
    """Per-element scales ``(rows, k)`` from per-block ``values (rows, n_blocks)``."""
    return np.repeat(values, block, axis=1)[:, :k]


def _block_error(x: np.ndarray, kept: np.ndarray | None, s: np.ndarray, grid: Grid, block: int,
                 nb: int) -> np.ndarray:
    """Squared rounding error of each block's kept elements under scales ``s (rows, nb)``."""
    k = x.shape[1]
    _, v = round_to_scales(x, expand_scales(s.astype(np.float32), block, k), grid.fmt)
    d = (x.astype(np.float64) - v) ** 2
    if kept is not None:
        d = np.where(kept, d, 0.0)
    return _blocked(d, block, nb, 0.0).sum(axis=2)


def _pick_least_error(x, kept, candidates: list[np.ndarray], grid: Grid, block: int, nb: int
                      ) -> np.ndarray:
    """Index (rows, nb) of the candidate scale with the least block error (first on ties)."""
    errs = np.stack([_block_error(x, kept, c, grid, block, nb) for c in candidates])
    return np.argmin(errs, axis=0)


def block_scales(x: np.ndarray, grid: Grid, kept: np.ndarray | None = None) -> BlockScales:
    """Scales of the blocks of ``x`` (rows, K) under ``grid``.

    Args:
        x: float32 or float64 ``(rows, K)``, finite; blocks are ``grid.block`` consecutive
            elements of a row (the last one may be shorter).
        grid: format, block, scale kind and rule (:func:`make_grid`).
        kept: optional bool ``(rows, K)``: only kept elements count (N:M sparsity, SpQR
            outliers); ``absmean`` averages over the kept elements of the block.

    Returns:
        :class:`BlockScales` with ``values`` float32 ``(rows, n_blocks)`` and the stored
        ``codes``.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ConfigError(f"block_scales needs a 2-D array (rows, K) (got shape {x.shape})")
    if not np.isfinite(x).all():
        raise ConfigError("weights must be finite (they hold NaN or Inf)")
    if kept is not None and kept.shape != x.shape:
        raise ConfigError(f"'kept' must have the shape of x {x.shape} (got {kept.shape})")
    rows, k = x.shape
    spec = grid.fmt
    if grid.scale == "none":
        return BlockScales(values=np.ones((rows, 0), np.float32),
                           codes=np.zeros((rows, 0), np.uint8))
    block = grid.block_for(k)
    nb = grid.n_blocks(k)
    amax = _amax(x, kept, block, nb)
    if grid.scale == "e8m0":
        if grid.rule == "mse":
            top = _e8m0_exponents(amax, spec, "noclip")
            cands = [_e8m0_codes(top - i, amax) for i in range(_E8M0_MSE_STEPS)]
            best = _pick_least_error(x, kept, [_e8m0_values(c) for c in cands], grid, block, nb)
            codes = np.choose(best, cands).astype(np.uint8)
        else:
            codes = _e8m0_codes(_e8m0_exponents(amax, spec, grid.rule), amax)
        return BlockScales(values=_e8m0_values(codes), codes=codes)
    if grid.scale == "e4m3":
        table = _e4m3_positive().astype(np.float32)
        if grid.rule == "mse":
            top = _e4m3_codes(amax, spec, "noclip")
            cands = [np.where(amax > 0, np.maximum(top - i, 1), 0) for i in range(_GRID_MSE_STEPS)]
            best = _pick_least_error(x, kept, [table[c] for c in cands], grid, block, nb)
            c = np.choose(best, cands)
        else:
            c = _e4m3_codes(amax, spec, grid.rule)
        codes = c.astype(np.uint8)
        return BlockScales(values=table[codes], codes=codes)
    if grid.scale == "fp32":
        if grid.rule == "mse":
            top = _fp32_scales(amax, spec, "noclip")
            cands = [(top * (1.0 - i / 16.0)).astype(np.float32) for i in range(_GRID_MSE_STEPS)]
            cands = [np.where((c == 0) & (amax > 0), np.float32(_F32_TINY), c) for c in cands]
            best = _pick_least_error(x, kept, cands, grid, block, nb)
            s = np.choose(best, cands).astype(np.float32)
        else:
            s = _fp32_scales(amax, spec, grid.rule).astype(np.float32)
        return BlockScales(values=s, codes=s.copy())
    # absmean: fl32(mean |x|) over the kept elements, summed in order in float64
    a = np.abs(x).astype(np.float64)
    cnt = np.ones_like(a)
    if kept is not None:
        a = np.where(kept, a, 0.0)
        cnt = kept.astype(np.float64)
    total = np.cumsum(_blocked(a, block, nb, 0.0), axis=2)[:, :, -1]
    count = _blocked(cnt, block, nb, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(count > 0, total / np.where(count > 0, count, 1.0), 0.0).astype(np.float32)
    s = np.where((s == 0) & (amax > 0), np.float32(_F32_TINY), s).astype(np.float32)
    return BlockScales(values=s, codes=s.copy())


def quantize_rows(x: np.ndarray, grid: Grid, kept: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, BlockScales]:
    """Round-to-nearest quantization of ``x`` (rows, K) on ``grid``.

    Returns ``(codes uint8 (rows, K), values float32 (rows, K), scales)``; positions not
    ``kept`` get value 0 (their codes are those of the unpruned value and are not stored).
    """
    x = np.asarray(x)
    sc = block_scales(x, grid, kept)
    k = x.shape[1]
    if grid.scale == "none":
        s = np.float32(1.0)
    else:
        s = expand_scales(sc.values, grid.block_for(k), k)
    codes, values = round_to_scales(x, s, grid.fmt)
    if kept is not None:
        values = np.where(kept, values, np.float32(0)).astype(np.float32)
    return codes, values, sc
