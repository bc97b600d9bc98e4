"""Elementwise and normalization operations of the float32 reference forwards (numpy).

All take and return float32 arrays; reductions run over the last axis.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["layer_norm", "rms_norm", "gelu", "silu", "softmax"]


@numba.vectorize(["float64(float64)"], cache=True)
def _erf(v):
    return math.erf(v)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis: ``(x - mean) / sqrt(var + eps) * weight + bias`` (biased
    variance, as PyTorch)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    return (centered / np.sqrt(var + np.float32(eps)) * weight + bias).astype(np.float32)


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis: ``x / sqrt(mean(x^2) + eps) * weight`` (LLaMA)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return (weight * (x / np.sqrt(ms + np.float32(eps)))).astype(np.float32)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, ``0.5 x (1 + erf(x / sqrt 2))``, evaluated in float64, returned float32."""
    x64 = x.astype(np.float64)
    return (0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)))).astype(np.float32)


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU ``x * sigmoid(x)``, with ``sigmoid(x) = (1 + tanh(x / 2)) / 2`` (no overflow)."""
    half = np.float32(0.5)
    return (x * (half + half * np.tanh(half * x))).astype(np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max subtracted first)."""
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)
