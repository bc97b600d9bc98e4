"""SpQR (Dettmers, Svirschevski, Egiazarian, Kuznedelev, Frantar, Ashkboos, Borzunov, Hoefler,
Alistarh, "SpQR: A Sparse-Quantized Representation for Near-Lossless LLM Weight Compression",
2023), adapted to block-scaled formats: small groups with quantized scales, plus outliers.

What is implemented (the GPTQ sweep of :mod:`._sweep`, identity column order):

1. **Groups.** Every row is cut into groups of ``group`` (16) consecutive weights along K, each
   with a first-level scale ``s1``. When the sweep reaches a group's first column, ``s1 = amax /
   M`` (``M`` = the format's largest value) from the current weights of the group, leaving out the
   *likely outliers* (below; all weights with ``simplified=True``).
2. **Quantized scales (second level).** The ``s1`` of ``scale_group`` (16) consecutive rows of
   the same column group form a tile and are stored as ``scale_bits`` (3)-bit codes ``c`` with a
   per-tile minimum and step in float16: ``lo = f16(min s1)``, ``step = f16((max s1 - lo) /
   (2^bits - 1))``, ``c = clip(rint((s1 - lo) / step), 0, 2^bits - 1)``, and the weights use
   ``s1_hat = fl32(lo + step c)`` (SpQR's asymmetric min-max second level; here without a zero
   point, since the element formats are symmetric). ``step = 0`` stores ``c = 0``.
3. **Elements.** ``q = fl32(decode(encode(w / s1_hat)) * s1_hat)``, nearest, ties to even,
   saturating (a zero scale gives 0).
4. **Outliers.** With ``d = U[j, j]`` and ``err = (w - q) / d``, a weight is an outlier when
   ``err^2 > tau``, ``tau = outlier_threshold * mean_j(var_rows(W[:, j]) / d_j^2)`` (the
   reference's relative threshold; ``inf`` disables outliers). An outlier keeps its value
   rounded to ``outlier_dtype``; its element code is that of 0. The error of every weight
   (outlier or not) is compensated on the later columns.
5. **Likely outliers** for step 1 (SpQR's leave-one-out): for each weight, the decrease of the
   group's ``sum err^2`` if it were left out of the group (its own error, or for the row's
   largest weight the change from refitting the scale on the rest); above ``tau`` it does not
   count in the group's ``amax``.

Storage (``PTQResult.footprint``, bytes): ``codes`` = N rows of packed ``fmt.bits``-bit codes
(``numerics.pack`` layout, K per row, outliers included as the code of 0); ``scales`` = N rows of
packed 3-bit first-level codes (``ceil(G * 3 / 8)`` bytes per row, ``G = ceil(K / group)``);
``scales2`` = ``ceil(N / scale_group) * G`` tiles x 2 float16 (4 bytes); ``outlier_values`` = 2
bytes (float16, bfloat16) or 4 (float32) per outlier; ``outlier_index`` = CSR: int32 row
pointers ``(N + 1) * 4`` + a uint16 column index per outlier (int32 if ``K > 65536``).

``PTQResult.quantized`` is the dense part as a ``numerics`` tensor with ``fp32`` scales per
``group`` (``s1_hat``): ``quantized.dequantize()`` equals ``weight`` except at the outlier
positions, where ``weight`` holds the outlier values (they *replace* the dense value; for formats
with a zero code, the dense value there is 0 and replacing is adding). Not implemented: act-order
(SpQR permutes columns and stores the permutation), zero points, and the reference's
per-group refit that replaces outliers by the group mean (a symmetric ``amax`` scale just leaves
them out).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import packed_row_bytes
from prodigy_sim.ptq._checks import check_weight, resolve_factor
from prodigy_sim.ptq._grid import BlockScales, make_grid, round_to_scales
from prodigy_sim.ptq._hessian import InverseFactor
from prodigy_sim.ptq._result import Outliers, PTQResult, build_quantized
from prodigy_sim.ptq._sweep import sweep

__all__ = ["spqr", "OUTLIER_DTYPES", "SPQR_GROUP"]

OUTLIER_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32")
SPQR_GROUP = 16
"""Weights per first-level scale along K (``spqr``'s default ``group``): the dense part is
stored with float32 scales per ``SPQR_GROUP``."""


def _store(x: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (float64) rounded once to ``dtype``, nearest even: (stored array, float32 values).

    bfloat16 is stored as its uint16 bit pattern (the upper half of the float32): ``x`` is rounded
    to 8 significant bits (``frexp``/``rint``, subnormal spacing 2^-133), not via float32, which
    could round twice."""
    if dtype == "float32":
        s = x.astype(np.float32)
        return s, s
    if dtype == "float16":
        if np.any(np.abs(x) >= 65520.0):  # rounds to Inf in float16
            raise ConfigError("an outlier exceeds the float16 range; use outlier_dtype='bfloat16' "
                              "or 'float32'")
        s = x.astype(np.float16)
        return s, s.astype(np.float32)
    m, e0 = np.frexp(x)  # x = m 2^e0, 0.5 <= |m| < 1: 8 significant bits = ulp 2^(e0 - 8)
    e = np.maximum(e0, -125)  # below 2^-126: bfloat16 subnormals, fixed spacing 2^-133
    v = np.ldexp(np.rint(np.ldexp(m, 8 + e0 - e)), e - 8).astype(np.float32)
    return (v.view(np.uint32) >> np.uint32(16)).astype(np.uint16), v


def _likely_outliers(cur: np.ndarray, d: np.ndarray, tau: float, fmt) -> np.ndarray:
    """bool (N, g): weights whose leave-one-out decrease of the group's error exceeds ``tau``."""
    n, g = cur.shape
    top = fmt.max_finite
    a = np.abs(cur)
    amax = a.max(axis=1)
    _, q = round_to_scales(cur, (amax / top).astype(np.float32)[:, None], fmt)
    e2 = ((cur - q) / d) ** 2
    gain = e2.copy()
    arg = np.argmax(a, axis=1)
    rows = np.arange(n)
    if g > 1:
        others = a.copy()
        others[rows, arg] = -1.0
        second = others.max(axis=1)
        _, q2 = round_to_scales(cur, (second / top).astype(np.float32)[:, None], fmt)
        e2b = ((cur - q2) / d) ** 2
        e2b[rows, arg] = 0.0
        gain[rows, arg] = e2.sum(axis=1) - e2b.sum(axis=1)
    return gain > tau


def _second_level(s1: np.ndarray, tile: int, bits: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Quantize first-level scales ``s1`` (N,) in tiles of ``tile`` rows: (codes uint8 (N,),
    lo float16 (T,), step float16 (T,), s1_hat float32 (N,))."""
    n = s1.shape[0]
    t = -(-n // tile)
    pad = np.full(t * tile - n, np.nan)
    s = np.concatenate([s1, pad]).reshape(t, tile)
    lo = np.nanmin(s, axis=1).astype(np.float16)
    hi = np.nanmax(s, axis=1)
    levels = (1 << bits) - 1
    step = np.maximum((hi - lo.astype(np.float64)) / levels, 0.0).astype(np.float16)
    if not (np.isfinite(lo).all() and np.isfinite(step).all()):
        raise ConfigError("a group scale exceeds the float16 range of SpQR's second level")
    lo64 = np.repeat(lo.astype(np.float64), tile)[:n]
    st64 = np.repeat(step.astype(np.float64), tile)[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(st64 > 0, np.rint((s1 - lo64) / np.where(st64 > 0, st64, 1.0)), 0.0)
    c = np.clip(c, 0, levels)
    return c.astype(np.uint8), lo, step, (lo64 + st64 * c).astype(np.float32)


@one_blas_thread
def spqr(weight: np.ndarray, h: np.ndarray | InverseFactor, *, fmt, group: int = SPQR_GROUP,
         scale_bits: int = 3, scale_group: int = 16, outlier_threshold: float = 0.2,
         outlier_dtype: str = "float16", simplified: bool = False, blocksize: int = 128,
         percdamp: float = 0.01) -> PTQResult:
    """Quantize ``weight`` (N, K) with SpQR (module docstring).

    Args:
        weight: float ``(N, K)``.
        h: Hessian ``(K, K)`` or an :class:`InverseFactor` without act-order.
        fmt: element format (e.g. ``"int4"``, ``"tai4"``).
        group: weights per first-level scale along K.
        scale_bits: bits of a first-level scale code (1..8).
        scale_group: rows per second-level tile.
        outlier_threshold: relative outlier threshold (``inf``: no outliers).
        outlier_dtype: ``float16``, ``bfloat16`` or ``float32``.
        simplified: fit group scales on all weights (no leave-one-out).
        blocksize, percdamp: as in :func:`gptq`.

    Returns:
        :class:`PTQResult`: ``weight`` float32 (N, K), ``quantized`` (dense part, fp32 scales =
        ``s1_hat``), ``outliers``, ``footprint`` by part, ``parts`` (``scale_codes`` uint8
        (N, G), ``scale_lo`` and ``scale_step`` float16 (T, G)), ``stats['outliers']``.
    """
    if not (isinstance(group, int) and group >= 1):
        raise ConfigError(f"'group' must be an integer >= 1 (got {group!r})")
    if not (isinstance(scale_bits, int) and 1 <= scale_bits <= 8):
        raise ConfigError(f"'scale_bits' must be an integer in 1..8 (got {scale_bits!r})")
    if not (isinstance(scale_group, int) and scale_group >= 1):
        raise ConfigError(f"'scale_group' must be an integer >= 1 (got {scale_group!r})")
    if not outlier_threshold >= 0:
        raise ConfigError(f"'outlier_threshold' must be >= 0 (got {outlier_threshold})")
    if outlier_dtype not in OUTLIER_DTYPES:
        raise ConfigError(f"'outlier_dtype' must be one of {', '.join(OUTLIER_DTYPES)} "
                          f"(got {outlier_dtype!r})")
    grid = make_grid(fmt, group, "fp32", "nearest")
    spec = grid.fmt
    w = check_weight(weight)
    n, k = w.shape
    fac = resolve_factor(h, k, percdamp=percdamp, act_order=None)
    if fac.act_order:
        raise ConfigError("spqr does not implement act-order (give a factor without it)")
    w[:, fac.dead] = 0.0
    d = np.diagonal(fac.u).copy()
    ddof = 1 if n > 1 else 0
    tau = float(outlier_threshold * np.mean(np.var(w, axis=0, ddof=ddof) / d**2))
    if outlier_threshold == np.inf:
        tau = np.inf
    n_groups = -(-k // group)
    tiles = -(-n // scale_group)
    s_hat = np.zeros((n, n_groups), np.float32)
    s_codes = np.zeros((n, n_groups), np.uint8)
    s_lo = np.zeros((tiles, n_groups), np.float16)
    s_step = np.zeros((tiles, n_groups), np.float16)
    codes = np.zeros((n, k), np.uint8)
    is_out = np.zeros((n, k), bool)
    store_dtype = np.uint16 if outlier_dtype == "bfloat16" else np.dtype(outlier_dtype)
    stored_dense = np.zeros((n, k), store_dtype)
    top = spec.max_finite

    def group_hook(j: int, cur: np.ndarray) -> None:
        a = np.abs(cur)
        if not simplified and np.isfinite(tau):
            a = np.where(_likely_outliers(cur, d[j:j + cur.shape[1]], tau, spec), 0.0, a)
        c, lo, step, sh = _second_level(a.max(axis=1) / top, scale_group, scale_bits)
        g = j // group
        s_codes[:, g], s_lo[:, g], s_step[:, g], s_hat[:, g] = c, lo, step, sh

    def column(j: int, wj: np.ndarray, dj: float) -> np.ndarray:
        s = s_hat[:, j // group]
        c, v = round_to_scales(wj, s, spec)
        q = v.astype(np.float64)
        out = ((wj - q) / dj) ** 2 > tau
        if out.any():
            st, val = _store(wj[out], outlier_dtype)
            q[out] = val
            c[out] = round_to_scales(np.zeros(int(out.sum())), s[out], spec)[0]
            is_out[:, j] = out
            stored_dense[out, j] = st
        codes[:, j] = c
        return q

    res = sweep(w, fac.u, column, blocksize=blocksize, hooks=[(group, group_hook)])
    weight_q = res.q.astype(np.float32)
    rows, cols = np.nonzero(is_out)  # row-major: by row, then column
    stored = stored_dense[rows, cols]
    col_dtype = np.uint16 if k <= 65536 else np.int32
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int32)
    outliers = Outliers(row_ptr=row_ptr, cols=cols.astype(col_dtype), values=stored,
                        dtype=outlier_dtype, shape=(n, k))
    qt = build_quantized(codes, BlockScales(s_hat, s_hat.copy()), grid)
    footprint = {
        "codes": n * packed_row_bytes(k, spec.bits),
        "scales": n * packed_row_bytes(n_groups, scale_bits),
        "scales2": int(s_lo.nbytes + s_step.nbytes),
        "outlier_values": int(stored.nbytes),
        "outlier_index": int(row_ptr.nbytes + outliers.cols.nbytes),
    }
    stats = {"method": "spqr", "outliers": outliers.count, "tau": tau,
             "obs_loss": float(res.loss.sum()), "damp": fac.damp}
    return PTQResult(weight=weight_q, quantized=qt, outliers=outliers, footprint=footprint,
                     stats=stats, parts={"scale_codes": s_codes, "scale_lo": s_lo,
                                         "scale_step": s_step})
