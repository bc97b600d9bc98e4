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
can differ from the ones the scale saw). Act-order is not used (the N:M groups are consecutive
columns).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.ptq._checks import check_weight, kept_group, resolve_factor
from prodigy_sim.ptq._gptq import run_obs
from prodigy_sim.ptq._grid import make_grid
from prodigy_sim.ptq._hessian import InverseFactor
from prodigy_sim.ptq._result import PTQResult

__all__ = ["sparsegpt"]


@one_blas_thread
def sparsegpt(weight: np.ndarray, h: np.ndarray | InverseFactor, *, sparsity="8:4", fmt=None,
              block: int | None = 32, scale: str = "e8m0", rule: str | None = None,
              blocksize: int = 128, percdamp: float = 0.01) -> PTQResult:
    """Prune ``weight`` (N, K) to N:M along K with SparseGPT, and quantize it if ``fmt`` is given.

    Args:
        weight: float ``(N, K)``.
        h: Hessian ``(K, K)`` or an :class:`InverseFactor` without act-order.
        sparsity: ``"8:4"`` (keep 4 of 8), ``"2:4"``, or ``(n, m)``.
        fmt: element format, or None to prune only (the kept weights stay float, compensated).
        block, scale, rule: the quantization grid (:func:`make_grid`); ``block`` must be a
            multiple of ``m``.
        blocksize, percdamp: as in :func:`gptq`.

    Returns:
        :class:`PTQResult` with ``mask`` (exactly n of every m along K), ``weight`` (float32,
        pruned positions 0) and, when quantized, ``quantized``.
    """
    nm = kept_group(sparsity)
    if nm is None:
        raise ConfigError("sparsegpt needs a 'sparsity' such as '8:4' or '2:4'")
    grid = None if fmt is None else make_grid(fmt, block, scale, rule)
    w = check_weight(weight)
    fac = resolve_factor(h, w.shape[1], percdamp=percdamp, act_order=None)
    return run_obs(w, fac, grid, keep=None, nm=nm, select=True, static_scales=None,
                   blocksize=blocksize, method="sparsegpt")
