"""Baselines: round-to-nearest (RTN), with magnitude or Wanda N:M pruning first.

RTN rounds every weight to the nearest grid value of its block's scale (:mod:`._grid`), with no
error compensation. With ``floor`` E8M0 scales (the default) it stores exactly what
``numerics.quantize`` stores - the quantization the simulator used before PTQ methods existed.
Pruning keeps the ``n`` largest ``|w|`` (magnitude) or ``|w| * ||X_j||_2`` (Wanda, Sun et al.
2023) of every ``m`` consecutive weights along K (``numerics.nm_mask``, ties to the lower
position); the block scales are then chosen from the kept weights.
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import nm_mask, wanda_scores
from prodigy_sim.ptq._checks import check_mask, check_weight, kept_group
from prodigy_sim.ptq._grid import make_grid, quantize_rows
from prodigy_sim.ptq._result import PTQResult, build_quantized, quantized_footprint

__all__ = ["rtn", "prune_mask"]


def prune_mask(weight: np.ndarray, sparsity, *, prune: str = "magnitude",
               act_norms: np.ndarray | None = None) -> np.ndarray:
    """bool ``(N, K)`` N:M keep-mask along K by ``prune`` = ``"magnitude"`` or ``"wanda"``
    (``act_norms``: ``(K,)`` L2 norms of each input feature over the calibration tokens)."""
    nm = kept_group(sparsity)
    if nm is None:
        raise ConfigError("prune_mask needs a 'sparsity' such as '8:4'")
    w = np.asarray(weight)
    if prune == "magnitude":
        if act_norms is not None:
            raise ConfigError("'act_norms' is only used by prune='wanda'")
        return nm_mask(w, nm[0], nm[1], axis=-1)
    if prune == "wanda":
        if act_norms is None:
            raise ConfigError("prune='wanda' needs 'act_norms' (per-input-feature L2 norms)")
        return nm_mask(w, nm[0], nm[1], axis=-1, scores=wanda_scores(w, act_norms, axis=-1))
    raise ConfigError(f"'prune' must be 'magnitude' or 'wanda' (got {prune!r})")


def rtn(weight: np.ndarray, *, fmt, block: int | None = 32, scale: str = "e8m0",
        rule: str | None = None, sparsity=None, prune: str = "magnitude",
        act_norms: np.ndarray | None = None, mask: np.ndarray | None = None) -> PTQResult:
    """Round-to-nearest quantization of ``weight`` (N, K) on the grid ``(fmt, block, scale,
    rule)``; with ``sparsity`` the weight is first pruned by ``prune`` (or by a given ``mask``).

    Returns a :class:`PTQResult` (``stats['method']`` = ``'rtn'``)."""
    grid = make_grid(fmt, block, scale, rule)
    w = check_weight(weight)
    keep, nm = check_mask(mask, sparsity, w.shape)
    if nm is not None and keep is None:
        keep = prune_mask(np.asarray(weight), nm, prune=prune, act_norms=act_norms)
    codes, values, scales = quantize_rows(np.asarray(weight), grid, kept=keep)
    qt = build_quantized(codes, scales, grid, keep, nm)
    stats: dict[str, object] = {"method": "rtn", "prune": prune if nm is not None else None}
    return PTQResult(weight=values, quantized=qt, mask=keep, footprint=quantized_footprint(qt),
                     stats=stats)
