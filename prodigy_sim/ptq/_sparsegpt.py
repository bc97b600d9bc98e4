"""SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned
in One-Shot", ICML 2023) for N:M sparsity, optionally quantizing in the same sweep.

The sweep of :mod:`._sweep` with the mask chosen as it goes (the paper's section 3 and the
reference ``fasterprune`` with ``prunen``/``prunem``): when the sweep reaches column ``j`` with
``j % m == 0``, in every row the ``n`` of the ``m`` columns ``j .. j+m-1`` with the largest
``w^2 / [H^-1]_jj^2`` (current, error-compensated weights; ``[H^-1]_jj = U[j, j]^2``) are kept,
ties to the lower column (``numerics.nm_mask``); so every group keeps exactly ``n`` of ``m``.
A pruned weight is replaced by 0 and a kept one by its quantized value (prune, then quantize,
in the same loop), and both errors are compensated on the later columns.

With quantization, a block's scale is chosen when the sweep reaches the block's first column,
from the current weights at the positions the N:M rule would keep at that moment (the groups of
the block after the first are re-selected when the sweep reaches them, so a few kept positions
can differ from the ones the scale saw).

Act-order (``act_order=True``, not in the paper): *block act-order* - whole blocks of
consecutive columns (the scale block, or the group ``m`` when there is none) are swept by
descending sum of ``diag H`` (:func:`~prodigy_sim.ptq.inverse_factor` with ``act_block``), so the
N:M groups and scale blocks stay contiguous and the masks and scales are still chosen in the
sweep; the result is returned in the original column order. As GPTQ's act-order does for the
columns, it quantizes the blocks whose inputs carry the most energy first, while the most later
columns remain to absorb their error. Measured on SmolLM2's ``v_proj`` layers at tai2 8:4, it
takes the output error from above magnitude pruning + round to nearest to about half of it
(docs/ptq.md).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.ptq._checks import check_weight, kept_group, resolve_factor
from prodigy_sim.ptq._gptq import run_obs
from prodigy_sim.ptq._grid import Grid, make_grid
from prodigy_sim.ptq._hessian import InverseFactor
from prodigy_sim.ptq._result import PTQResult

__all__ = ["sparsegpt", "sparsegpt_act_block"]


def sparsegpt_act_block(sparsity, grid: Grid | None, k: int) -> int:
    """Columns that SparseGPT's block act-order moves together: the grid's scale block when it
    has one, else the sparsity group ``m`` (``sparsity``: ``"8:4"``, ``(n, m)`` or the pair
    :func:`kept_group` gives; ``k``: the weight's K)."""
    nm = kept_group(sparsity)
    if nm is None:
        raise ConfigError("sparsegpt needs a 'sparsity' such as '8:4' or '2:4'")
    if grid is not None and grid.scale != "none" and grid.block is not None:
        return grid.block_for(k)
    return nm[1]


@one_blas_thread
def sparsegpt(weight: np.ndarray, h: np.ndarray | InverseFactor, *, sparsity="8:4", fmt=None,
              block: int | None = 32, scale: str = "e8m0", rule: str | None = None,
              blocksize: int = 128, percdamp: float = 0.01, act_order: bool = False
              ) -> PTQResult:
    """Prune ``weight`` (N, K) to N:M along K with SparseGPT, and quantize it if ``fmt`` is given.

    Args:
        weight: float ``(N, K)``.
        h: Hessian ``(K, K)`` or an :class:`InverseFactor` (prepared with the same
            ``act_order`` and, with it, ``act_block`` = :func:`sparsegpt_act_block`).
        sparsity: ``"8:4"`` (keep 4 of 8), ``"2:4"``, or ``(n, m)``.
        fmt: element format, or None to prune only (the kept weights stay float, compensated).
        block, scale, rule: the quantization grid (:func:`make_grid`); ``block`` must be a
            multiple of ``m``.
        blocksize, percdamp: as in :func:`gptq`.
        act_order: block act-order (module docstring).

    Returns:
        :class:`PTQResult` with ``mask`` (exactly n of every m along K), ``weight`` (float32,
        pruned positions 0) and, when quantized, ``quantized``.
    """
    nm = kept_group(sparsity)
    if nm is None:
        raise ConfigError("sparsegpt needs a 'sparsity' such as '8:4' or '2:4'")
    grid = None if fmt is None else make_grid(fmt, block, scale, rule)
    w = check_weight(weight)
    fac = resolve_factor(h, w.shape[1], percdamp=percdamp, act_order=act_order,
                         act_block=sparsegpt_act_block(nm, grid, w.shape[1]))
    return run_obs(w, fac, grid, keep=None, nm=nm, select=True, static_scales=None,
                   blocksize=blocksize, method="sparsegpt")
