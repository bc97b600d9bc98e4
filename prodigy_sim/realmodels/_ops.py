"""Elementwise and normalization operations of the float32 reference forwards (numpy).

All take and return float32 arrays; reductions run over the last axis. Every result is the same
on every host: the transcendental functions are correctly rounded float32
(:mod:`prodigy_sim.detmath`), the rest is numpy's elementwise IEEE arithmetic and its pairwise
reductions (fixed algorithms).
"""

from __future__ import annotations

import numpy as np

from prodigy_sim.detmath import exp_f32, gelu_f32, silu_f32

__all__ = ["layer_norm", "rms_norm", "gelu", "silu", "softmax"]


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
    """Exact (erf) GELU, ``0.5 x (1 + erf(x / sqrt 2))``, correctly rounded to float32."""
    return gelu_f32(x)


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU ``x * sigmoid(x) = x / (1 + exp(-x))``, correctly rounded to float32."""
    return silu_f32(x)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (max subtracted first; ``exp`` correctly rounded)."""
    z = exp_f32(x - x.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)
