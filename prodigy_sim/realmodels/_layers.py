"""How a forward pass computes its linear layers: the "linears" object.

The forward functions (``_bert.py``, ``_llama.py``) call ``linears(name, x)`` for every linear layer
of the blocks, with the card's weight name (e.g. ``"layers.3.attn.q_proj"``) and the float32 input
``(..., K)``; it returns ``(..., N)`` float32 including the bias. Swapping that object is the only
difference between the float32 reference, calibration and quantized emulation.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from prodigy_sim.detmath import SplitWeight, split_weight
from prodigy_sim.realmodels._linear import linear_fp32
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["Linears", "Fp32Linears"]


class Linears(Protocol):
    def __call__(self, name: str, x: np.ndarray) -> np.ndarray: ...


class Fp32Linears:
    """float32 reference: ``x @ W.T + b`` with the loaded float32 weights (each weight split once
    for :func:`prodigy_sim.detmath.matmul_f32`, kept by this object)."""

    def __init__(self, weights: ModelWeights) -> None:
        self.weights = weights
        self._split: dict[str, SplitWeight] = {}

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        sw = self._split.get(name)
        if sw is None:
            sw = self._split[name] = split_weight(self.weights[name])
        return linear_fp32(x, sw, self.weights.tensors.get(name + ".bias"))
