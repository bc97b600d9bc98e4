"""Argument checks shared by the PTQ methods (one clear :class:`ConfigError` each)."""

from __future__ import annotations

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import compress, parse_sparsity
from prodigy_sim.ptq._hessian import InverseFactor, inverse_factor

__all__ = ["check_weight", "check_mask", "resolve_factor", "kept_group"]


def kept_group(sparsity) -> tuple[int, int] | None:
    """``(kept, group)`` of a sparsity given as ``"8:4"``, a pair or a
    :class:`~prodigy_sim.numerics.Sparsity` (None for dense): the ``(n, m)`` the sweeps use."""
    sp = parse_sparsity(sparsity)
    return None if sp is None else (sp.kept, sp.group)


def check_weight(weight: np.ndarray) -> np.ndarray:
    """``weight`` as float64 (N, K), finite."""
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ConfigError(f"a linear weight must be 2-D (N out, K in) (got shape {w.shape})")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ConfigError("the weight must be finite (it holds NaN or Inf)")
    return w


def check_mask(mask: np.ndarray | None, sparsity, shape: tuple[int, int]
               ) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """A given N:M keep-mask and its ``(n, m)``; the mask must keep exactly n of every m."""
    nm = kept_group(sparsity)
    if mask is None:
        return None, nm
    if nm is None:
        raise ConfigError("a 'mask' needs its 'sparsity' (e.g. '8:4' or (4, 8))")
    keep = np.asarray(mask)
    if keep.dtype != np.bool_ or keep.shape != shape:
        raise ConfigError(f"'mask' must be a bool array of shape {shape} (got {keep.dtype} "
                          f"{keep.shape})")
    compress(np.zeros(shape, np.float32), nm[0], nm[1], mask=keep)  # raises unless exactly N:M
    return keep, nm


def resolve_factor(h, k: int, *, percdamp: float, act_order: bool | None,
                   act_block: int = 1) -> InverseFactor:
    """An :class:`InverseFactor` for ``K = k`` from a Hessian or a prepared factor
    (``act_block``: see :func:`inverse_factor`; checked against a prepared factor's when
    ``act_order``)."""
    if isinstance(h, InverseFactor):
        if act_order is not None and act_order != h.act_order:
            raise ConfigError(f"'act_order' = {act_order} contradicts the prepared factor "
                              f"(act_order = {h.act_order})")
        if act_order and act_block != h.act_block:
            raise ConfigError(f"'act_block' = {act_block} contradicts the prepared factor "
                              f"(act_block = {h.act_block})")
        fac = h
    else:
        fac = inverse_factor(h, percdamp=percdamp, act_order=bool(act_order),
                             act_block=act_block if act_order else 1)
    if fac.k != k:
        raise ConfigError(f"the Hessian is {fac.k} x {fac.k}, the weight has K = {k}")
    return fac
