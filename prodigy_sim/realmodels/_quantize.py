"""Quantized emulation of a real model: schemes, calibration, and the quantized linears.

What is quantized (a :class:`QuantScheme` other than float32):

- every linear weight of the transformer blocks (the card's ``attention`` and ``mlp`` tensors:
  q/k/v/o, up/down, gate) -> codes and block scales along K (default MX: block 32, E8M0),
  optionally 8:4 pruned, chosen by the scheme's method (round to nearest, GPTQ, SparseGPT, SpQR,
  Hadamard rotations: :mod:`~prodigy_sim.realmodels._ptq`), then dequantized;
- the input of every such linear layer -> FP8 E4M3 codes with a static per-tensor power-of-two
  scale (:func:`~prodigy_sim.realmodels._linear.act_scale_for` of the calibration ``amax``);
  products and sums are exact, rounded once to float32 (:func:`linear_q`).

Kept in float32: token / position / token-type embeddings (SmolLM2's is the file's Q8_0 table,
dequantized), every norm weight and bias, the linear biases (added in float32 after the rounded
dot product), the attention score and context products (activation x activation), softmax, GELU /
SiLU, residual adds, MiniLM's pooling, and SmolLM2's LM head (the tied embedding, float32 weights
and float32 activations). Calibration runs the float32 model on the calibration data (each
sentence or paragraph alone, no padding; ``_data.calibration_segments``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import ModelCard
from prodigy_sim.numerics import QuantizedTensor, Storage, footprint, parse_sparsity, quantize
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._linear import (
    PreparedWeight,
    QuantizedInput,
    linear_q_from,
    quantize_input,
)
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["WEIGHT_FORMATS", "METHODS", "PTQ_METHODS", "SPARSEGPT_METHODS", "DEFAULT_DAMPING",
           "WIDE_WEIGHTS",
           "QuantScheme",
           "Calibration", "segment_rows", "RecordingLinears", "calibrate", "rtn_tensor",
           "quantize_weights",
           "QuantizedLinears", "make_linears", "weight_footprint_bytes"]

WEIGHT_FORMATS: tuple[str, ...] = ("float8_e4m3fn", "tai4", "tai2", "float4_e2m1fn", "int4")

METHODS: tuple[str, ...] = ("rtn", "gptq", "gptq-act", "sparsegpt", "sparsegpt-act", "spqr",
                            "hadamard", "hadamard-gptq")
"""How the weights are chosen (docs/accuracy.md, "Post-training quantization"):

- ``rtn``: round to nearest (after magnitude or Wanda N:M pruning when sparse);
- ``gptq`` / ``gptq-act``: GPTQ, layer by layer on the calibration inputs (act-order: columns by
  descending Hessian diagonal); sparse: the magnitude / Wanda mask, GPTQ-compensated;
- ``sparsegpt`` / ``sparsegpt-act``: SparseGPT N:M mask chosen jointly with the quantization
  (sparse only); act: *block act-order*, whole scale blocks by descending Hessian diagonal sum
  (``prodigy_sim.ptq.sparsegpt(..., act_order=True)``);
- ``spqr``: SpQR (groups of 16 with 3-bit scales, float16 outliers; dense only);
- ``hadamard`` / ``hadamard-gptq``: QuaRot-style Hadamard rotations folded into the float
  weights (online transforms where the plan says), then ``rtn`` / ``gptq``.
"""

PTQ_METHODS: frozenset[str] = frozenset({"gptq", "gptq-act", "sparsegpt", "sparsegpt-act",
                                         "spqr", "hadamard-gptq"})
SPARSEGPT_METHODS: frozenset[str] = frozenset({"sparsegpt", "sparsegpt-act"})
"""Methods that choose their own N:M mask (no pruning criterion; sparse only)."""
"""Methods that need each layer's calibration inputs (a sequential pass over the model)."""

DEFAULT_DAMPING = 0.01
"""Hessian damping of the PTQ methods when a scheme gives none: ``0.01 * mean(diag H)`` added to
the diagonal, the GPTQ / SparseGPT reference implementations' ``--percdamp`` default."""

WIDE_WEIGHTS: tuple[str, ...] = ("bfloat16", "float32")
"""Unscaled weight formats run with FP8 activations (the white paper's FP8-activation baseline)."""


@dataclass(frozen=True)
class QuantScheme:
    """How the linear layers run.

    ``weight_format=None`` is the float32 reference (nothing quantized, activations included).
    Otherwise activations are FP8 E4M3 and weights are ``weight_format``: a wide format
    (``bfloat16``, ``float32``: unscaled, round to nearest) or a narrow one, block-scaled
    (``block`` elements along K share a scale of kind ``scale``, ``e8m0`` or ``e4m3``; None = the
    format's default, E8M0) with the scale chosen by ``scale_rule`` (``floor`` = OCP MX for E8M0,
    ``nearest``, ``noclip``, ``mse``; None = the kind's default, see ``prodigy_sim.ptq``),
    optionally ``sparsity="8:4"`` pruned by ``prune`` (``magnitude`` or ``wanda``; SparseGPT
    chooses its own mask), by ``method`` (:data:`METHODS`). ``damping``: the Hessian damping of
    the methods that take one (:data:`PTQ_METHODS`; fraction of ``mean(diag H)`` added to the
    diagonal; None = :data:`DEFAULT_DAMPING`, the GPTQ reference's 1 %).
    """

    weight_format: str | None
    sparsity: str | None = None
    prune: str = "magnitude"
    block: int = 32
    scale: str | None = None
    method: str = "rtn"
    scale_rule: str | None = None
    damping: float | None = None

    def __post_init__(self) -> None:
        from prodigy_sim.ptq import SCALE_RULES

        if self.damping is not None:
            if self.method not in PTQ_METHODS:
                raise ConfigError(f"'damping' is for the methods that use a Hessian "
                                  f"({', '.join(sorted(PTQ_METHODS))}), not {self.method!r}")
            if not (isinstance(self.damping, (int, float)) and math.isfinite(self.damping)
                    and self.damping > 0):
                raise ConfigError(f"'damping' must be a positive number (got {self.damping!r})")

        if self.prune not in ("magnitude", "wanda"):
            raise ConfigError(f"'prune' must be 'magnitude' or 'wanda' (got {self.prune!r})")
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; methods: {', '.join(METHODS)}")
        if self.scale_rule is not None and self.scale_rule not in SCALE_RULES:
            raise ConfigError(f"unknown scale rule {self.scale_rule!r}; rules: "
                              f"{', '.join(SCALE_RULES)}")
        if self.scale not in (None, "e8m0", "e4m3"):
            raise ConfigError(f"'scale' must be e8m0 or e4m3 (got {self.scale!r})")
        if self.weight_format is None:
            if self.sparsity is not None or self.method != "rtn":
                raise ConfigError("the float32 scheme (weight_format=None) takes no sparsity "
                                  "and no method")
            return
        if self.weight_format in WIDE_WEIGHTS and (self.sparsity or self.method != "rtn"
                                                   or self.scale_rule):
            raise ConfigError(f"{self.weight_format} weights are unscaled and dense: method "
                              "'rtn', no sparsity, no scale rule")
        if self.method in SPARSEGPT_METHODS and not self.sparsity:
            raise ConfigError(f"method {self.method!r} prunes: give a sparsity such as '8:4'")
        if self.method == "spqr" and self.sparsity:
            raise ConfigError("method 'spqr' is dense (its outliers are its own sparse part)")
        if self.method == "spqr" and (self.scale or self.scale_rule or self.block != 32):
            raise ConfigError("method 'spqr' stores its own scales (groups of 16, 3-bit codes): "
                              "no scale, block or scale rule")

    @property
    def wide(self) -> bool:
        """Unscaled 16/32-bit weights with FP8 activations."""
        return self.weight_format in WIDE_WEIGHTS

    @property
    def storage(self) -> Storage | None:
        """The linear weights' storage (sparsity excluded; None for the float32 scheme). SpQR's
        own layout is not a :class:`Storage`: this is its base MX storage (its element format;
        the lowered layers run :attr:`lowered_storage`)."""
        if self.weight_format is None:
            return None
        if self.wide:
            return Storage.of(self.weight_format)
        return Storage.of(self.weight_format, block=self.block, scale=self.scale)

    @property
    def lowered_storage(self) -> Storage | None:
        """The storage the lowered linear layers multiply (the matrix unit's weight tiles):
        :attr:`storage`, except SpQR's dense part, whose first-level scales are decoded to
        float32 per ``SPQR_GROUP`` (16) weights - what ``PTQResult.quantized`` holds (SpQR
        stores them as 3-bit codes; see docs/lowering.md)."""
        if self.method != "spqr" or self.weight_format is None:
            return self.storage
        from prodigy_sim.ptq import SPQR_GROUP

        return Storage.of(self.weight_format, block=SPQR_GROUP, scale="fp32")

    @property
    def sparse_storage(self) -> Storage | None:
        """:attr:`storage` with the scheme's sparsity: how each linear weight is stored."""
        st = self.storage
        return None if st is None else st.model_copy(
            update={"sparsity": parse_sparsity(self.sparsity)})

    @property
    def rule(self) -> str | None:
        """The scale rule actually used (None for unscaled weights)."""
        if self.storage is None or self.wide:
            return None
        return self.scale_rule or ("floor" if self.storage.scale.value == "e8m0" else "nearest")

    @property
    def label(self) -> str:
        """Short name, e.g. ``'tai4 8:4 wanda'``, ``'tai4 dense gptq'``, ``'fp32'``."""
        if self.storage is None:
            return "fp32"
        if self.method in SPARSEGPT_METHODS:
            sparse = f" {self.sparsity}"
        else:
            sparse = f" {self.sparsity} {self.prune}" if self.sparsity else " dense"
        out = self.storage.fmt.name + sparse
        if self.method != "rtn":
            out += f" {self.method}"
        if self.scale not in (None, "e8m0") or self.block != 32:
            out += f" {self.scale or 'e8m0'}/{self.block}"
        if self.scale_rule is not None:
            out += f" {self.scale_rule}"
        if self.damping is not None:
            out += f" damp={self.damping:g}"
        return out

    @property
    def percdamp(self) -> float:
        """The Hessian damping used (:attr:`damping` or :data:`DEFAULT_DAMPING`)."""
        return DEFAULT_DAMPING if self.damping is None else float(self.damping)


@dataclass(frozen=True, eq=False)
class Calibration:
    """Statistics of every linear layer's float32 input over the calibration tokens.

    ``amax[name]``: largest ``|x|``; ``act_norms[name]``: ``(K,)`` L2 norm per input feature
    (Wanda's ``||X_j||_2``); ``tokens``: calibration tokens seen per layer; ``sequences``: the
    calibration inputs themselves, as the model's forward takes them (BERT: ``(ids, mask)``
    batches of one sentence; LLaMA: a token id array), for the layer-by-layer PTQ pass.
    """

    amax: dict[str, float]
    act_norms: dict[str, np.ndarray]
    tokens: int
    sequences: tuple = ()


def segment_rows(x2: np.ndarray, segments: tuple[int, ...], name: str) -> list[np.ndarray]:
    """The rows of each sequence a stacked call holds, in order: views of ``x2 (T, K)`` of
    ``segments[s]`` rows each (the lengths of
    :class:`~prodigy_sim.realmodels._llama.LlamaState`); no segments: ``[x2]``, one sequence.
    Statistics summed over these parts one after the other are the bits of calls made one
    sequence at a time.

    Raises:
        ConfigError: the lengths do not add up to ``T`` (``name``: the linear layer, for the
            message).
    """
    if not segments:
        return [x2]
    if sum(segments) != x2.shape[0]:
        raise ConfigError(f"{name}: a call of {x2.shape[0]} rows, but the stacked sequences "
                          f"have {sum(segments)}")
    return np.split(x2, np.cumsum(segments)[:-1])


@dataclass(eq=False)
class RecordingLinears:
    """float32 linears that also record each layer's input amax and per-feature sum of squares
    (``fp32``: the float32 linears of ``weights`` to compute with, e.g. shared with a later
    float32 forward; default new ones). ``segments``: the lengths of sequences each call stacks
    (:func:`~prodigy_sim.realmodels._llama.llama_hidden_many`), whose sums of squares are
    added one sequence after the other, as calls one sequence at a time would add them (the
    same bits); empty: a call is one sequence."""

    weights: ModelWeights
    amax: dict[str, float] = field(default_factory=dict)
    sumsq: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    fp32: Fp32Linears | None = None
    segments: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self._fp32 = self.fp32 if self.fp32 is not None else Fp32Linears(self.weights)

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        x2 = x.reshape(-1, x.shape[-1]).astype(np.float64)
        self.amax[name] = max(self.amax.get(name, 0.0), float(np.abs(x2).max()))
        total = self.sumsq.get(name, 0.0)
        for part in segment_rows(x2, self.segments, name):
            total = total + (part * part).sum(axis=0)
        self.sumsq[name] = np.asarray(total)
        self.tokens[name] = self.tokens.get(name, 0) + x2.shape[0]
        return self._fp32(name, x)

    def result(self, sequences: tuple = ()) -> Calibration:
        missing = [n for n in self.weights.linear_names() if n not in self.amax]
        if missing:
            raise ConfigError(f"calibration never ran linear layer {missing[0]!r}")
        return Calibration(amax=dict(self.amax),
                           act_norms={n: np.sqrt(v) for n, v in self.sumsq.items()},
                           tokens=min(self.tokens.values()), sequences=tuple(sequences))


def calibrate(weights: ModelWeights, run: Callable[[Linears], object],
              sequences: tuple = (), fp32: Fp32Linears | None = None,
              segments: tuple[int, ...] = ()) -> Calibration:
    """Run ``run(linears)`` (float32 forward passes) and collect a :class:`Calibration`
    (``sequences``: the inputs ``run`` fed, kept for the PTQ pass; ``fp32``, ``segments``: see
    :class:`RecordingLinears`)."""
    rec = RecordingLinears(weights, fp32=fp32, segments=segments)
    run(rec)
    return rec.result(sequences)


def rtn_tensor(w: np.ndarray, scheme: QuantScheme, act_norms: np.ndarray | None
               ) -> QuantizedTensor:
    """Round-to-nearest of one weight ``(N, K)`` by ``scheme`` (pruned first when sparse):
    ``numerics.quantize`` for the default scale rule, :func:`prodigy_sim.ptq.rtn` (the same
    layout, bit for bit where the rules agree) for another."""
    from prodigy_sim.ptq import rtn

    st = scheme.storage
    if st is None:
        raise ConfigError("the float32 scheme has no quantized weights")
    if scheme.wide:
        return quantize(w, st, axis=-1)
    wanda = bool(scheme.sparsity) and scheme.prune == "wanda"
    if wanda and act_norms is None:
        raise ConfigError("Wanda pruning needs a calibration (activation norms)")
    if scheme.scale_rule is None:
        return quantize(w, st.model_copy(update={"sparsity": parse_sparsity(scheme.sparsity)}),
                        axis=-1,
                        prune=scheme.prune if scheme.sparsity else "magnitude",
                        act_norms=act_norms if wanda else None)
    res = rtn(w, fmt=st.fmt, block=st.block, scale=st.scale.value, rule=scheme.rule,
              sparsity=scheme.sparsity, prune=scheme.prune if scheme.sparsity else "magnitude",
              act_norms=act_norms if wanda else None)
    assert res.quantized is not None  # rtn always stores on the grid (only SpQR does not)
    return res.quantized


def quantize_weights(weights: ModelWeights, scheme: QuantScheme,
                     calibration: Calibration | None = None) -> dict[str, PreparedWeight]:
    """Every linear weight quantized by ``scheme`` and prepared for :func:`linear_q` (any
    method: :func:`~prodigy_sim.realmodels._ptq.quantize_model`).

    ``calibration`` is needed for Wanda pruning and the PTQ methods.
    """
    from prodigy_sim.realmodels._ptq import quantize_model

    return dict(quantize_model(weights, scheme, calibration).prepared)


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
    """The linears of ``scheme``: float32, or quantized weights with FP8 activations (online
    Hadamard transforms included for the rotation methods)."""
    if scheme.weight_format is None:
        return Fp32Linears(weights)
    if calibration is None:
        raise ConfigError("FP8 activations need a calibration (activation amax)")
    from prodigy_sim.realmodels._ptq import quantize_model

    return quantize_model(weights, scheme, calibration).linears()


def weight_footprint_bytes(card: ModelCard, scheme: QuantScheme) -> int:
    """Bytes of the blocks' linear weights under ``scheme``'s storage (codes + scales + N:M
    masks, by :func:`prodigy_sim.numerics.footprint`); float32 = 4 bytes per weight. SpQR's
    bytes depend on its outlier count: see ``QuantizedModel.linear_bytes``."""
    if scheme.method == "spqr":
        raise ConfigError("SpQR's footprint depends on its outliers: use "
                          "quantize_model(...).linear_bytes")
    storage = scheme.sparse_storage or Storage.of("float32")
    return sum(footprint(t.shape, storage).total_bytes for t in card.tensors() if t.is_linear)
