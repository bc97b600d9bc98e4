"""GPTQ (Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers", ICLR 2023), for any element format and block scale.

Columns of ``W`` (N, K) are quantized one at a time and each column's rounding error is
compensated on the columns not yet quantized (:mod:`._sweep`), with the inverse Hessian of the
layer's calibration inputs (:mod:`._hessian`). What this implementation does, step by step:

1. Dead columns (``H[j, j] == 0``) get weight 0; ``percdamp * mean(diag H)`` is added to the
   diagonal; ``U`` = upper Cholesky factor of the inverse (:func:`inverse_factor`).
2. Block scales. Without act-order they are chosen *inside* the sweep: when it reaches the first
   column of a block (``block`` consecutive columns of the original K), from the current
   (error-compensated) weights of that block's columns, by the grid's scale rule. With act-order
   (columns processed by descending ``diag H``) the blocks stay the original contiguous column
   blocks the hardware reads, so their scales are chosen before the sweep from the weights of
   each block (the reference implementation's ``static_groups``); per-row scales (``block=None``)
   are likewise chosen up front. With *block act-order* (``inverse_factor(..., act_block=)`` a
   multiple of ``block``: whole blocks by descending sum of ``diag H``) the sweep still meets
   each block as consecutive columns, and its scale is chosen inside the sweep.
3. Column ``j``: ``q = fl32(decode(encode(w / s)) * s)`` with its block's scale ``s`` (0 at
   positions a given N:M ``mask`` prunes), error ``(w - q) / U[j, j]`` spread over later columns;
   lazy block updates of ``blocksize`` columns.
4. With act-order the permutation is undone; codes, scales and mask are returned in the original
   column order as a :class:`~prodigy_sim.numerics.QuantizedTensor`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import nm_mask
from prodigy_sim.ptq._checks import check_mask, check_weight, resolve_factor
from prodigy_sim.ptq._grid import BlockScales, Grid, block_scales, make_grid, round_to_scales
from prodigy_sim.ptq._hessian import InverseFactor
from prodigy_sim.ptq._result import PTQResult, build_quantized, quantized_footprint
from prodigy_sim.ptq._sweep import block_sizes, sweep

__all__ = ["gptq", "run_obs"]


@one_blas_thread
def gptq(weight: np.ndarray, h: np.ndarray | InverseFactor, *, fmt, block: int | None = 32,
         scale: str = "e8m0", rule: str | None = None, mask: np.ndarray | None = None,
         sparsity=None, act_order: bool | None = None, static_scales: bool | None = None,
         blocksize: int = 128, percdamp: float = 0.01) -> PTQResult:
    """Quantize a linear weight with GPTQ.

    Args:
        weight: float ``(N, K)`` (N outputs, K inputs).
        h: the Hessian ``(K, K)`` (:func:`hessian`) or a prepared :class:`InverseFactor` (share
            one between layers that read the same input, e.g. q/k/v).
        fmt: element format (a :class:`~prodigy_sim.numerics.FormatSpec` or a built-in name).
        block, scale, rule: the grid (:func:`make_grid`): elements per scale along K, scale kind
            (``e8m0``, ``e4m3``, ``fp32``, ``absmean``, ``none``), scale rule.
        mask, sparsity: an optional N:M keep-mask (bool ``(N, K)``) and its pattern (``"8:4"``
            or ``(n, m)``); pruned weights become 0 and their error is compensated too.
        act_order: process columns by descending ``diag(H)`` (default: False, or the factor's).
        static_scales: choose all block scales before the sweep (default: only with act-order
            or per-row scales, where it is required).
        blocksize: columns per lazy update (the result changes only by float rounding).
        percdamp: diagonal damping, a fraction of ``mean(diag H)``.

    Returns:
        :class:`PTQResult` with ``weight`` float32 ``(N, K)``, ``quantized`` (codes, scales,
        mask as ``numerics`` stores them) and ``stats['obs_loss']``.
    """
    grid = make_grid(fmt, block, scale, rule)
    w = check_weight(weight)
    keep, nm = check_mask(mask, sparsity, w.shape)
    fac = resolve_factor(h, w.shape[1], percdamp=percdamp, act_order=act_order)
    return run_obs(w, fac, grid, keep=keep, nm=nm, select=False, static_scales=static_scales,
                   blocksize=blocksize, method="gptq")


def run_obs(w: np.ndarray, fac: InverseFactor, grid: Grid | None, *, keep: np.ndarray | None,
            nm: tuple[int, int] | None, select: bool, static_scales: bool | None,
            blocksize: int, method: str) -> PTQResult:
    """The GPTQ / SparseGPT sweep (``select``: choose the N:M mask inside the sweep, by
    SparseGPT's ``w^2 / [H^-1]_jj^2`` every ``m`` columns; ``grid=None``: prune only)."""
    n, k = w.shape
    w = w.copy()
    w[:, fac.dead] = 0.0
    perm = fac.perm
    permuted = fac.act_order
    if select and permuted and (nm is None or fac.act_block % nm[1]):
        raise ConfigError("SparseGPT selects N:M masks on consecutive columns: act-order must "
                          "move whole groups (an act_block that is a multiple of m; "
                          f"got {fac.act_block})")
    if nm is not None and k % nm[1]:
        raise ConfigError(f"K = {k} must be a multiple of the sparsity group m = {nm[1]}")
    b = grid.block_for(k) if grid is not None else 0
    if grid is not None and nm is not None and b % nm[1]:
        raise ConfigError(f"'block' = {b} must be a multiple of the sparsity group m = {nm[1]}")
    has_scales = grid is not None and grid.scale != "none"
    per_row = grid is not None and grid.block is None
    # the sweep meets every scale block as consecutive columns unless act-order splits them
    scattered = permuted and not (b and fac.act_block % b == 0)
    static = static_scales if static_scales is not None else (scattered or per_row)
    if has_scales and not static and (scattered or per_row):
        raise ConfigError("with act-order (columns rather than whole scale blocks) or per-row "
                          "scales (block=None) the scales must be chosen before the sweep "
                          "(static_scales=True)")
    nb = grid.n_blocks(k) if grid is not None else 0
    code_dtype = np.float32 if grid is not None and grid.scale in ("fp32", "absmean") else np.uint8
    s_val = np.zeros((n, nb), np.float32)
    s_code = np.zeros((n, nb), code_dtype)
    if has_scales and static:
        assert grid is not None  # has_scales implies a grid
        bs = block_scales(w, grid, kept=keep)
        s_val, s_code = bs.values.copy(), bs.codes.copy()
    codes = np.zeros((n, k), np.uint8)
    mask_p = None
    if keep is not None:
        mask_p = keep[:, perm].copy()
    elif select:
        mask_p = np.ones((n, k), dtype=bool)
    diag_u = np.diagonal(fac.u)
    hooks: list[tuple[int, Callable[[int, np.ndarray], None]]] = []
    n_keep, m = nm if nm is not None else (0, 0)
    if select:

        def _scores(j: int, cur: np.ndarray) -> np.ndarray:
            return nm_mask(cur, n_keep, m, scores=cur * cur / diag_u[j:j + cur.shape[1]] ** 2)

    if has_scales and not static:
        assert grid is not None  # has_scales implies a grid

        def scale_hook(j: int, cur: np.ndarray) -> None:
            width = cur.shape[1]
            kept = None
            if select:  # the positions the N:M selection would keep now
                kept = _scores(j, cur)
            elif mask_p is not None:
                kept = mask_p[:, j:j + width]
            bs = block_scales(cur, grid, kept=kept)
            s_val[:, perm[j] // b] = bs.values[:, 0]     # the block's original position
            s_code[:, perm[j] // b] = bs.codes[:, 0]

        hooks.append((b, scale_hook))
    if select:
        assert mask_p is not None  # select sets a mask

        def mask_hook(j: int, cur: np.ndarray) -> None:
            mask_p[:, j:j + m] = _scores(j, cur)

        hooks.append((m, mask_hook))
    col_block = perm // b if b else perm
    one = np.float32(1.0)

    def column(j: int, wj: np.ndarray, d: float) -> np.ndarray:
        if grid is None:
            q = wj.copy()
        else:
            s = s_val[:, col_block[j]] if has_scales else one
            c, v = round_to_scales(wj, s, grid.fmt)
            codes[:, perm[j]] = c
            q = v.astype(np.float64)
        if mask_p is not None:
            q = np.where(mask_p[:, j], q, 0.0)
        return q

    out = sweep(w[:, perm], fac.u, column, blocksize=blocksize, hooks=hooks)
    inv = np.argsort(perm)
    weight_q = out.q[:, inv].astype(np.float32)
    mask_out = mask_p[:, inv] if mask_p is not None else None
    stats = {"method": method, "obs_loss": float(out.loss.sum()), "act_order": permuted,
             "static_scales": bool(static and has_scales), "damp": fac.damp,
             "blocksize": block_sizes(blocksize, [p for p, _ in hooks])[1]}
    if grid is None:
        return PTQResult(weight=weight_q, quantized=None, mask=mask_out,
                         footprint={"weights": 4 * n * k}, stats=stats)
    qt = build_quantized(codes, BlockScales(s_val, s_code), grid, mask_out, nm)
    return PTQResult(weight=weight_q, quantized=qt, mask=mask_out,
                     footprint=quantized_footprint(qt), stats=stats)
