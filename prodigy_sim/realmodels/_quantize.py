"""Quantized emulation of a real model: schemes, calibration, and the quantized linears.

What is quantized (a :class:`QuantScheme` other than float32):

- every linear weight of the transformer blocks (the card's ``attention`` and ``mlp`` tensors:
  q/k/v/o, up/down, gate) -> ``quantize(W, fmt, block=32, axis=-1 (K), scale="e8m0")``, optionally
  pruned to 8:4 along K first (``magnitude``, or ``wanda`` with ``act_norms`` = the per-input-
  feature L2 norms of that layer's input over the calibration tokens), then dequantized;
- the input of every such linear layer -> FP8 E4M3 codes with a static per-tensor power-of-two
  scale (:func:`~prodigy_sim.realmodels._linear.act_scale_for` of the calibration ``amax``);
  products and sums are exact, rounded once to float32 (:func:`linear_q`).

Kept in float32: token / position / token-type embeddings (SmolLM2's is the file's Q8_0 table,
dequantized), every norm weight and bias, the linear biases (added in float32 after the rounded
dot product), the attention score and context products (activation x activation), softmax, GELU /
SiLU, residual adds, MiniLM's pooling, and SmolLM2's LM head (the tied embedding, float32 weights
and float32 activations). Calibration runs the float32 model on ``calibration.txt`` (each
sentence alone, no padding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import ModelCard
from prodigy_sim.numerics import Storage, footprint, parse_sparsity, quantize
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._linear import (
    PreparedWeight,
    QuantizedInput,
    act_scale_for,
    linear_q_from,
    prepare_weight,
    quantize_input,
)
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["WEIGHT_FORMATS", "QuantScheme", "Calibration", "RecordingLinears", "calibrate",
           "quantize_weights", "QuantizedLinears", "make_linears", "weight_footprint_bytes"]

WEIGHT_FORMATS: tuple[str, ...] = ("float8_e4m3fn", "tai4", "tai2", "float4_e2m1fn", "int4")


@dataclass(frozen=True)
class QuantScheme:
    """How the linear layers run.

    ``weight_format=None`` is the float32 reference (nothing quantized, activations included).
    Otherwise weights are block-scaled (``block`` elements along K share a scale of kind
    ``scale``; None = the format's default, E8M0 for <= 8 bits, none for the wide formats),
    optionally ``sparsity="8:4"`` pruned by ``prune``, and activations are FP8 E4M3.
    """

    weight_format: str | None
    sparsity: str | None = None
    prune: str = "magnitude"
    block: int = 32
    scale: str | None = None

    def __post_init__(self) -> None:
        if self.prune not in ("magnitude", "wanda"):
            raise ConfigError(f"'prune' must be 'magnitude' or 'wanda' (got {self.prune!r})")
        if self.weight_format is None and self.sparsity is not None:
            raise ConfigError("the float32 scheme (weight_format=None) takes no sparsity")

    @property
    def storage(self) -> Storage | None:
        """The linear weights' storage (sparsity excluded; None for the float32 scheme)."""
        if self.weight_format is None:
            return None
        return Storage.of(self.weight_format, block=self.block, scale=self.scale)

    @property
    def sparse_storage(self) -> Storage | None:
        """:attr:`storage` with the scheme's sparsity: how each linear weight is stored."""
        st = self.storage
        return None if st is None else st.model_copy(
            update={"sparsity": parse_sparsity(self.sparsity)})

    @property
    def label(self) -> str:
        """Short name, e.g. ``'tai4 8:4 wanda'`` or ``'fp32'``."""
        if self.storage is None:
            return "fp32"
        sparse = f" {self.sparsity} {self.prune}" if self.sparsity else " dense"
        return self.storage.fmt.name + sparse


@dataclass(frozen=True, eq=False)
class Calibration:
    """Statistics of every linear layer's float32 input over the calibration tokens.

    ``amax[name]``: largest ``|x|``; ``act_norms[name]``: ``(K,)`` L2 norm per input feature
    (Wanda's ``||X_j||_2``); ``tokens``: calibration tokens seen per layer.
    """

    amax: dict[str, float]
    act_norms: dict[str, np.ndarray]
    tokens: int


@dataclass(eq=False)
class RecordingLinears:
    """float32 linears that also record each layer's input amax and per-feature sum of squares."""

    weights: ModelWeights
    amax: dict[str, float] = field(default_factory=dict)
    sumsq: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(-1, x.shape[-1]).astype(np.float64)
        self.amax[name] = max(self.amax.get(name, 0.0), float(np.abs(x2).max()))
        self.sumsq[name] = self.sumsq.get(name, 0.0) + (x2 * x2).sum(axis=0)
        self.tokens[name] = self.tokens.get(name, 0) + x2.shape[0]
        return Fp32Linears(self.weights)(name, x)

    def result(self) -> Calibration:
        missing = [n for n in self.weights.linear_names() if n not in self.amax]
        if missing:
            raise ConfigError(f"calibration never ran linear layer {missing[0]!r}")
        return Calibration(amax=dict(self.amax),
                           act_norms={n: np.sqrt(v) for n, v in self.sumsq.items()},
                           tokens=min(self.tokens.values()))


def calibrate(weights: ModelWeights, run: Callable[[Linears], object]) -> Calibration:
    """Run ``run(linears)`` (float32 forward passes) and collect a :class:`Calibration`."""
    rec = RecordingLinears(weights)
    run(rec)
    return rec.result()


def quantize_weights(weights: ModelWeights, scheme: QuantScheme,
                     calibration: Calibration | None = None) -> dict[str, PreparedWeight]:
    """Every linear weight quantized by ``scheme`` and prepared for :func:`linear_q`.

    ``calibration`` is needed for Wanda pruning (its ``act_norms``).
    """
    st = scheme.sparse_storage
    if st is None:
        raise ConfigError("the float32 scheme has no quantized weights")
    if scheme.sparsity and scheme.prune == "wanda" and calibration is None:
        raise ConfigError("Wanda pruning needs a calibration (activation norms)")
    out = {}
    for name in weights.linear_names():
        norms = (calibration.act_norms[name]
                 if scheme.sparsity and scheme.prune == "wanda" and calibration else None)
        q = quantize(weights[name], st, axis=-1,
                     prune=scheme.prune if scheme.sparsity else "magnitude", act_norms=norms)
        out[name] = prepare_weight(q)
    return out


class QuantizedLinears:
    """Linears running :func:`linear_q` with prepared weights and per-layer activation scales."""

    def __init__(self, weights: ModelWeights, prepared: dict[str, PreparedWeight],
                 act_scales: dict[str, float]) -> None:
        self.weights = weights
        self.prepared = prepared
        self.act_scales = act_scales
        # The last input and its FP8 codes: q/k/v (and gate/up) read the same array with the
        # same calibrated scale, so it is quantized once. ``x`` is held, so ``is`` is safe.
        self._last: tuple[np.ndarray, float, QuantizedInput] | None = None

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        scale = self.act_scales[name]
        last = self._last
        if last is not None and last[0] is x and last[1] == scale:
            qx = last[2]
        else:
            qx = quantize_input(x, scale)
            self._last = (x, scale, qx)
        return linear_q_from(qx, self.prepared[name], self.weights.tensors.get(name + ".bias"))


def make_linears(weights: ModelWeights, scheme: QuantScheme,
                 calibration: Calibration | None) -> Linears:
    """The linears of ``scheme``: float32, or quantized weights with FP8 activations."""
    if scheme.weight_format is None:
        return Fp32Linears(weights)
    if calibration is None:
        raise ConfigError("FP8 activations need a calibration (activation amax)")
    prepared = quantize_weights(weights, scheme, calibration)
    scales = {n: act_scale_for(calibration.amax[n]) for n in prepared}
    return QuantizedLinears(weights, prepared, scales)


def weight_footprint_bytes(card: ModelCard, scheme: QuantScheme) -> int:
    """Bytes of the blocks' linear weights under ``scheme`` (codes + E8M0 scales + 8:4 masks, by
    :func:`prodigy_sim.numerics.footprint`); float32 = 4 bytes per weight."""
    storage = scheme.sparse_storage or Storage.of("float32")
    return sum(footprint(t.shape, storage).total_bytes for t in card.tensors() if t.is_linear)
