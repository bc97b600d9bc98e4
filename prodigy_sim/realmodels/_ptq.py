"""Post-training quantization of a whole real model, layer by layer (the GPTQ way).

:func:`quantize_model` turns a :class:`QuantScheme` into quantized weights for every linear layer
of the blocks:

- ``rtn`` (and ``hadamard``): each weight on its own, round to nearest after optional magnitude /
  Wanda N:M pruning (Wanda's norms from the float32 calibration pass).
- ``gptq``, ``gptq-act``, ``sparsegpt``, ``sparsegpt-act``, ``spqr``, ``hadamard-gptq``: a
  *sequential* pass over the calibration sequences. Layer ``i``'s linear layers are quantized in the
  order the forward calls them, in groups that read the same input - ``(q, k, v)``, ``(o)``,
  ``(up)`` or ``(gate, up)``, ``(down)`` - and each group's Hessian ``H = (2/T) X^T X`` is built
  from the inputs that the *already quantized* model produces: every earlier layer and earlier group
  of this layer runs quantized (FP8 activations x quantized weights, :func:`linear_q`), and ``X`` is
  what the matrix unit will multiply, the group's input quantized to FP8 with its calibrated scale
  and dequantized. One inverse factor serves a group. Then layer ``i`` is run quantized on every
  sequence to give layer ``i + 1`` its inputs. (The reference GPTQ implementation's
  "true-sequential" order; it keeps activations in float there.) LLaMA runs the pass on all
  sequences stacked in one state (:func:`~prodigy_sim.realmodels._llama.llama_embed_many`:
  attention per sequence, the linear layers on every row at once, each row the bits of its
  sequence alone) and sums each group's Hessian over all rows at once, which gives the bits of
  summing it sequence after sequence (:func:`_add_inputs`: the FP8 inputs make every sum
  exact): the same bits as one sequence at a time, larger and fewer products. BERT runs one
  sequence at a time.
- ``hadamard`` / ``hadamard-gptq``: the float weights are first rotated by the model's QuaRot plan
  (:func:`prodigy_sim.ptq.llama_rotation_plan` / ``bert_rotation_plan``; randomized Hadamard
  matrices, folded into the weights where computational invariance allows), the activation
  scales are recalibrated on the rotated float model, and at run time the *online* rotations are
  applied to the inputs of the linear layers the plan names (:class:`OnlineLinears`).

Every number is deterministic (:mod:`prodigy_sim.detmath`, exact :func:`linear_q`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim._jit import one_blas_thread
from prodigy_sim.errors import ConfigError
from prodigy_sim.numerics import QuantizedTensor, footprint
from prodigy_sim.realmodels._bert import bert_embed, bert_layer
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._linear import (
    PreparedWeight,
    act_scale_for,
    dequantize_activations,
    prepare_weight,
    quantize_activations,
)
from prodigy_sim.realmodels._llama import llama_embed, llama_embed_many, llama_layer
from prodigy_sim.realmodels._quantize import (
    PTQ_METHODS,
    SPARSEGPT_METHODS,
    Calibration,
    QuantizedLinears,
    QuantScheme,
    RecordingLinears,
    rtn_tensor,
    segment_rows,
)
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["Family", "family_of", "run_sequences", "OnlineLinears", "RotatedModel", "layer_errors",
           "heldout_errors", "heldout_sparse_errors",
           "rotate_model", "QuantizedModel", "quantize_model", "ROTATION_SEED"]

ROTATION_SEED = 0
"""Seed of the first rotation site's random signs (site ``k`` uses ``ROTATION_SEED + k``)."""


@dataclass(frozen=True)
class Family:
    """How a model family runs layer by layer: ``embed(weights, sequence) -> state``,
    ``layer(weights, i, state, linears) -> state``, and the per-layer linear groups (names
    relative to ``layers.{i}.``) in the order the forward calls them; a group reads one input.

    ``stack(weights, sequences) -> state``: every sequence in one state, rows in order, their
    lengths in ``state.segments``, each row the bits of its sequence embedded alone (the
    layers keep it so); None: the family runs one sequence at a time."""

    embed: Callable
    layer: Callable
    groups: tuple[tuple[str, ...], ...]
    stack: Callable | None = None

    def states(self, weights: ModelWeights, sequences) -> list[tuple[object, tuple[int, ...]]]:
        """The states a pass over ``sequences`` runs, each with the lengths of the sequences
        it stacks (empty: the state is one sequence): one state of them all if the family
        stacks, else one per sequence."""
        if self.stack is None:
            return [(self.embed(weights, seq), ()) for seq in sequences]
        state = self.stack(weights, sequences)
        return [(state, tuple(state.segments))]


_QKV = ("attn.q_proj", "attn.k_proj", "attn.v_proj")


def family_of(weights: ModelWeights) -> Family:
    """The :class:`Family` of ``weights.card`` (``bert`` or ``llama``)."""
    fam = weights.card.family
    if fam == "bert":
        return Family(embed=lambda w, seq: bert_embed(w, *seq), layer=bert_layer,
                      groups=(_QKV, ("attn.o_proj",), ("mlp.up_proj",), ("mlp.down_proj",)))
    if fam == "llama":
        return Family(embed=llama_embed, layer=llama_layer,
                      groups=(_QKV, ("attn.o_proj",), ("mlp.gate_proj", "mlp.up_proj"),
                              ("mlp.down_proj",)),
                      stack=llama_embed_many)
    raise ConfigError(f"PTQ of real models supports families bert and llama (got {fam!r})")


def run_sequences(weights: ModelWeights, sequences, linears: Linears) -> None:
    """Run the model's layers on every calibration sequence (outputs discarded)."""
    fam = family_of(weights)
    for seq in sequences:
        state = fam.embed(weights, seq)
        for i in range(weights.card.num_layers):
            state = fam.layer(weights, i, state, linears)


class OnlineLinears:
    """``inner`` with the online Hadamard rotations applied first: the input ``x`` of a linear
    layer named in ``online`` becomes ``fl32(x Q)`` (:meth:`HadamardRotation.apply`, a fixed
    operation order). Layers reading the same ``x`` (q/k/v) share one transform."""

    def __init__(self, inner: Linears, online: dict) -> None:
        self.inner = inner
        self.online = online
        self._last: tuple[np.ndarray, object, np.ndarray] | None = None

    def rotate(self, name: str, x: np.ndarray) -> np.ndarray:
        rot = self.online.get(name)
        if rot is None:
            return x
        last = self._last
        if last is not None and last[0] is x and last[1] is rot:
            return last[2]
        y = rot.apply(x).astype(np.float32)
        self._last = (x, rot, y)
        return y

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        return self.inner(name, self.rotate(name, x))


@dataclass(frozen=True, eq=False)
class RotatedModel:
    """A model with the QuaRot plan folded in: ``weights`` (float32, ``lm_head`` its own tensor
    for a tied LLaMA), ``online`` (full linear name -> the rotation of its input),
    ``plan``/``rotations`` (the sites and their :class:`~prodigy_sim.ptq.HadamardRotation`)."""

    weights: ModelWeights
    online: dict
    plan: tuple
    rotations: dict


def rotate_model(weights: ModelWeights) -> RotatedModel:
    """Fold the model family's QuaRot plan into ``weights`` (module docstring)."""
    from prodigy_sim.ptq import (
        bert_rotation_plan,
        fold_rotations,
        llama_rotation_plan,
        random_hadamard,
    )

    card = weights.card
    make_plan = {"llama": llama_rotation_plan, "bert": bert_rotation_plan}.get(card.family)
    if make_plan is None:
        raise ConfigError(f"no rotation plan for family {card.family!r}")
    plan = make_plan(hidden=card.hidden_size, intermediate=card.intermediate_size,
                     head_dim=card.head_size)
    rotations = {site.name: random_hadamard(site.size, seed=ROTATION_SEED + k)
                 for k, site in enumerate(plan)}
    tensors = dict(weights.tensors)
    if card.family == "llama" and "lm_head" not in tensors:
        tensors["lm_head"] = tensors["embed_tokens"]
    folded = fold_rotations(tensors, plan, rotations)
    out = {}
    for k, v in folded.items():
        a = np.ascontiguousarray(v, dtype=np.float32)
        a.flags.writeable = False
        out[k] = a
    online = {f"layers.{i}.{name}": rotations[site.name]
              for site in plan if site.mode == "online" for name in site.right
              for i in range(card.num_layers)}
    return RotatedModel(ModelWeights(card, out, weights.source), online, plan, rotations)


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """A model quantized by a scheme.

    ``weights``: the float weights the forward reads (rotated for the Hadamard methods);
    ``tensors``: each linear weight as the functional core reads it (SpQR: the dense part);
    ``prepared``: the weights :func:`linear_q` multiplies (SpQR: outliers included);
    ``act_scales``: FP8 activation scale per linear; ``online``: online rotations by linear name;
    ``results``: the :class:`~prodigy_sim.ptq.PTQResult` of each linear (PTQ methods);
    ``calibration``: the calibration the activation scales come from.
    """

    weights: ModelWeights
    scheme: QuantScheme
    tensors: dict[str, QuantizedTensor]
    prepared: dict[str, PreparedWeight]
    act_scales: dict[str, float]
    calibration: Calibration
    online: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)

    def linears(self) -> Linears:
        """The quantized linears (online rotations first, where the plan has them)."""
        q = QuantizedLinears(self.weights, self.prepared, self.act_scales)
        return OnlineLinears(q, self.online) if self.online else q

    @property
    def linear_bytes(self) -> int:
        """Bytes of the blocks' linear weights: the method's own footprint (SpQR: codes,
        3-bit scales, second-level scales, outlier values and indices), else the storage's."""
        total = 0
        for name, qt in self.tensors.items():
            res = self.results.get(name)
            total += (res.nbytes if res is not None and res.outliers is not None
                      else footprint(qt.shape, _storage_of(self.scheme)).total_bytes)
        return total


def _storage_of(scheme: QuantScheme):
    return scheme.sparse_storage


def _hessian_inputs(x: np.ndarray, scale: float) -> np.ndarray:
    """What the matrix unit multiplies: ``x`` quantized to FP8 with ``scale`` and decoded."""
    x2 = np.asarray(x, dtype=np.float32).reshape(-1, x.shape[-1])
    return dequantize_activations(quantize_activations(x2, scale), scale)


class _Stop(Exception):
    """Raised by :class:`_Recorder` once the group's input has been recorded."""


_EXACT_GRAM_ROWS = 1 << 17
"""Rows of FP8 inputs up to which their Hessian sums are exact (:func:`_add_inputs`)."""


def _add_inputs(acc, x2: np.ndarray, segments: tuple[int, ...], name: str) -> None:
    """Add the recorded inputs ``x2 (T, K)`` of the stacked sequences ``segments`` to ``acc``
    with the bits of adding them one sequence after the other: in one gram when ``T <=``
    :data:`_EXACT_GRAM_ROWS` (faster: one ``K x K`` combination instead of one per sequence),
    else sequence by sequence.

    Why one gram gives those bits: every input is ``n 2^(k-9)`` with an integer ``|n| <= 448 *
    2^9 < 2^18`` (an E4M3 value times the layer's scale ``2^k``), so in each nonzero column
    ``2^(k-9) <= max |x| < 2^e`` with ``e <= k + 9``. ``detmath.gram`` of ``T`` rows scales
    a column by ``2^(beta - e)`` with ``beta = (53 - ceil(log2 T)) // 2``, which is ``>= 18``
    for ``T <= 2^17``: every scaled input is then an integer below ``2^beta``, held whole by
    the high slice (the low slice is 0), and the slice product is exact (detmath's bound), so
    each gram is the exact ``X^T X``, with +0 for its zeros (it ends with ``triu(g) +
    triu(g, 1).T``, which adds +0 to every entry). The exact sums are integer multiples of
    ``2^(2k-18)`` below ``T 448^2 2^(2k) < 2^53 2^(2k-18)`` (``448^2 2^18 < 2^35.7``), so the
    float64 additions of the per-sequence grams are exact too: both ways give the one exact
    value."""
    parts = segment_rows(x2, segments, name)  # checks the lengths
    if x2.shape[0] <= _EXACT_GRAM_ROWS:
        acc.add(x2)
        return
    for part in parts:
        acc.add(part)


class _Recorder:
    """Linears for one recording run: the group's first member records its (rotated, FP8)
    input and stops the layer; earlier members run quantized. ``segments``: the lengths of the
    sequences the state stacks (their inputs are added to ``acc`` with the bits of one run per
    sequence, :func:`_add_inputs`)."""

    def __init__(self, quantized: OnlineLinears, stop_at: str, acc, scale: float,
                 segments: tuple[int, ...] = ()) -> None:
        self.quantized, self.stop_at, self.acc, self.scale = quantized, stop_at, acc, scale
        self.segments = segments

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        if name == self.stop_at:
            x2 = _hessian_inputs(self.quantized.rotate(name, x), self.scale)
            _add_inputs(self.acc, x2, self.segments, name)
            raise _Stop
        return self.quantized(name, x)


def _group_hessian(fam: Family, weights: ModelWeights, i: int, runs: list,
                   quantized: OnlineLinears, first: str, scale: float):
    """The :class:`~prodigy_sim.ptq.HessianAccumulator` of the input of linear ``first`` of
    layer ``i`` over the states ``runs`` (``(state, segments)``, :meth:`Family.states`), the
    layer run quantized up to it."""
    from prodigy_sim.ptq import HessianAccumulator

    acc = HessianAccumulator(weights[first].shape[1])
    for state, segments in runs:
        try:
            fam.layer(weights, i, state, _Recorder(quantized, first, acc, scale, segments))
        except _Stop:
            pass
    return acc


def _ptq_one(w: np.ndarray, scheme: QuantScheme, fac, norms: np.ndarray):
    """One linear weight by a PTQ method with its group's inverse factor."""
    from prodigy_sim.ptq import gptq, prune_mask, sparsegpt, spqr

    st = scheme.storage
    assert st is not None  # PTQ methods quantize (the float32 scheme has no method)
    grid = dict(fmt=st.fmt, block=st.block, scale=st.scale.value, rule=scheme.rule)
    if scheme.method in SPARSEGPT_METHODS:
        return sparsegpt(w, fac, sparsity=scheme.sparsity, act_order=fac.act_order, **grid)
    if scheme.method == "spqr":
        return spqr(w, fac, fmt=st.fmt)
    mask = None
    if scheme.sparsity:
        mask = prune_mask(w, scheme.sparsity, prune=scheme.prune,
                          act_norms=norms if scheme.prune == "wanda" else None)
    return gptq(w, fac, mask=mask, sparsity=scheme.sparsity if mask is not None else None,
                **grid)


def _act_block(scheme: QuantScheme, k: int) -> int:
    """Columns the scheme's act-order moves together (SparseGPT's block act-order: its scale
    block; 1 for GPTQ's)."""
    from prodigy_sim.ptq import make_grid, sparsegpt_act_block

    if scheme.method != "sparsegpt-act":
        return 1
    st = scheme.storage
    assert st is not None  # PTQ methods quantize
    return sparsegpt_act_block(scheme.sparsity, make_grid(st.fmt, st.block, st.scale.value,
                                                          scheme.rule), k)


def _sequential(weights: ModelWeights, scheme: QuantScheme, calibration: Calibration,
                act_scales: dict[str, float], online: dict
                ) -> tuple[dict, dict, dict]:
    from prodigy_sim.ptq import inverse_factor

    if not calibration.sequences:
        raise ConfigError(f"method {scheme.method!r} needs the calibration sequences (calibrate "
                          "with calibrate_minilm / calibrate_smollm2)")
    fam = family_of(weights)
    prepared: dict[str, PreparedWeight] = {}
    tensors: dict[str, QuantizedTensor] = {}
    results: dict = {}
    quantized = OnlineLinears(QuantizedLinears(weights, prepared, act_scales), online)
    runs = fam.states(weights, calibration.sequences)
    act_order = scheme.method in ("gptq-act", "sparsegpt-act")
    for i in range(weights.card.num_layers):
        for group in fam.groups:
            names = [f"layers.{i}.{g}" for g in group]
            acc = _group_hessian(fam, weights, i, runs, quantized, names[0],
                                 act_scales[names[0]])
            h = acc.result()
            # Wanda's ||X_j||_2 from the same inputs: H_jj = (2/T) sum_t x_tj^2
            norms = np.sqrt(np.diagonal(h) * (acc.tokens / 2.0))
            fac = inverse_factor(h, percdamp=scheme.percdamp, act_order=act_order,
                                 act_block=_act_block(scheme, h.shape[0]))
            for name in names:
                res = _ptq_one(np.asarray(weights[name]), scheme, fac, norms)
                results[name] = res
                tensors[name] = res.quantized
                prepared[name] = prepare_weight(res.weight if res.outliers is not None
                                                else res.quantized)
        runs = [(fam.layer(weights, i, st, quantized), segments) for st, segments in runs]
    return tensors, prepared, results


def calibrate_rotated(rot: RotatedModel, sequences) -> Calibration:
    """Activation statistics of the rotated float model (online rotations applied)."""
    rec = RecordingLinears(rot.weights)
    run_sequences(rot.weights, sequences, OnlineLinears(rec, rot.online))
    return rec.result(sequences)


@one_blas_thread
def quantize_model(weights: ModelWeights, scheme: QuantScheme,
                   calibration: Calibration | None) -> QuantizedModel:
    """Quantize every linear layer of the blocks of ``weights`` by ``scheme`` (module
    docstring). ``calibration``: the float32 model's (:func:`calibrate_minilm` /
    :func:`calibrate_smollm2`), with its sequences for the PTQ methods."""
    if scheme.weight_format is None:
        raise ConfigError("the float32 scheme has no quantized weights")
    if calibration is None:
        raise ConfigError("FP8 activations need a calibration (activation amax)")
    online: dict = {}
    if scheme.method.startswith("hadamard"):
        if not calibration.sequences:
            raise ConfigError("the Hadamard methods recalibrate the rotated model: the "
                              "calibration needs its sequences")
        rot = rotate_model(weights)
        weights, online = rot.weights, rot.online
        calibration = calibrate_rotated(rot, calibration.sequences)
    act_scales = {n: act_scale_for(calibration.amax[n]) for n in weights.linear_names()}
    if scheme.method in PTQ_METHODS:
        tensors, prepared, results = _sequential(weights, scheme, calibration, act_scales, online)
    else:
        tensors, results = {}, {}
        for name in weights.linear_names():
            tensors[name] = rtn_tensor(np.asarray(weights[name]), scheme,
                                       calibration.act_norms.get(name))
        prepared = {n: prepare_weight(t) for n, t in tensors.items()}
    return QuantizedModel(weights=weights, scheme=scheme, tensors=tensors, prepared=prepared,
                          act_scales=act_scales, calibration=calibration, online=online,
                          results=results)


def fp32_linears(weights: ModelWeights) -> Linears:
    """The float32 reference linears (for symmetry with :meth:`QuantizedModel.linears`)."""
    return Fp32Linears(weights)


class _Collect:
    """float32 linears that keep the inputs of the named layers."""

    def __init__(self, weights: ModelWeights, names: set[str]) -> None:
        self.fp32, self.names = Fp32Linears(weights), names
        self.x: dict[str, list[np.ndarray]] = {}

    def __call__(self, name: str, x: np.ndarray) -> np.ndarray:
        if name in self.names:
            self.x.setdefault(name, []).append(np.asarray(x, np.float32).reshape(-1, x.shape[-1]))
        return self.fp32(name, x)


@one_blas_thread
def layer_errors(weights: ModelWeights, calibration: Calibration, names: list[str], *,
                 formats: tuple[str, ...] = ("tai4", "tai2", "int4", "float4_e2m1fn"),
                 sparsity: str = "8:4") -> dict[str, dict[str, float]]:
    """Per linear layer, the output error ``||X W^T - X W_q^T||_F`` on its float32 calibration
    inputs ``X`` (the float model over the calibration sequences) of: round to nearest
    (``rtn <fmt>``) and GPTQ with act-order (``gptq <fmt>``, Hessian from the same ``X``, 1 %
    damping, MX E8M0/32, OCP floor rule; the tables' "GPTQ", ``gptq-act``) for every format;
    magnitude pruning and SparseGPT, without and with block act-order (``sparsegpt-act``), at
    ``sparsity``, without quantization (``magnitude``, ``sparsegpt``, ``sparsegpt-act``) and
    with tai4 and tai2 (``magnitude tai4``, ``sparsegpt tai4``, ``sparsegpt-act tai4``, ...)."""
    from prodigy_sim.ptq import (
        gptq,
        hessian,
        inverse_factor,
        output_error,
        prune_mask,
        rtn,
        sparsegpt,
    )

    col = _Collect(weights, set(names))
    run_sequences(weights, calibration.sequences, col)
    out = {}
    for name in names:
        x = np.concatenate(col.x[name])
        w = np.asarray(weights[name])
        h = hessian(x)
        fac, fac_act = inverse_factor(h), inverse_factor(h, act_order=True)
        errs = {}
        for fmt in formats:
            errs[f"rtn {fmt}"] = output_error(w, rtn(w, fmt=fmt).weight, x)
            errs[f"gptq {fmt}"] = output_error(w, gptq(w, fac_act, fmt=fmt).weight, x)
        mask = prune_mask(w, sparsity)
        errs["magnitude"] = output_error(w, np.where(mask, w, 0.0), x)
        errs["sparsegpt"] = output_error(w, sparsegpt(w, fac, sparsity=sparsity).weight, x)
        errs["sparsegpt-act"] = output_error(
            w, sparsegpt(w, h, sparsity=sparsity, act_order=True).weight, x)
        for fmt in ("tai4", "tai2"):
            errs[f"magnitude {fmt}"] = output_error(
                w, rtn(w, fmt=fmt, sparsity=sparsity).weight, x)
            errs[f"sparsegpt {fmt}"] = output_error(
                w, sparsegpt(w, fac, sparsity=sparsity, fmt=fmt).weight, x)
            errs[f"sparsegpt-act {fmt}"] = output_error(
                w, sparsegpt(w, h, sparsity=sparsity, fmt=fmt, act_order=True).weight, x)
        out[name] = errs
    return out


def _layer_inputs(weights: ModelWeights, calibration: Calibration, heldout, names: list[str]):
    """Per linear layer ``name``: ``(name, W, X_c, X_h)``, its float32 weight and the float
    model's inputs over the calibration sequences and over ``heldout``."""
    cal, held = _Collect(weights, set(names)), _Collect(weights, set(names))
    run_sequences(weights, calibration.sequences, cal)
    run_sequences(weights, heldout, held)
    for name in names:
        yield (name, np.asarray(weights[name]), np.concatenate(cal.x[name]),
               np.concatenate(held.x[name]))


@one_blas_thread
def heldout_errors(weights: ModelWeights, calibration: Calibration, heldout, names: list[str],
                   *, dampings: tuple[float, ...] = (0.01, 0.1, 1.0), fmt: str = "tai4",
                   act_order: bool = True) -> dict[str, dict]:
    """Does GPTQ's gain over round to nearest carry over to inputs it was not calibrated on?

    Per linear layer ``name``: the float32 model's inputs ``X_c`` over the calibration
    sequences and ``X_h`` over ``heldout`` (sequences as the forward takes them); GPTQ with
    act-order (``act_order=False``: block scales chosen in the sweep; MX E8M0/32, OCP floor)
    from ``H = (2/T) X_c^T X_c`` with each damping; the ratio
    ``||X (W - W_gptq)^T||_F / ||X (W - W_rtn)^T||_F`` on ``X_c`` (``"calib"``) and on
    ``X_h`` (``"heldout"``). Returns ``{name: {"k": K, "rank": rank of X_c,
    (damping, "calib" | "heldout"): ratio}}`` (rank by SVD of the float64 inputs, numpy's
    default tolerance)."""
    from prodigy_sim.ptq import gptq, hessian, inverse_factor, output_error, rtn

    out: dict[str, dict] = {}
    for name, w, xc, xh in _layer_inputs(weights, calibration, heldout, names):
        h = hessian(xc)
        wr = rtn(w, fmt=fmt).weight
        row: dict = {"k": w.shape[1], "rank": int(np.linalg.matrix_rank(xc.astype(np.float64)))}
        for d in dampings:
            wg = gptq(w, inverse_factor(h, percdamp=d, act_order=act_order), fmt=fmt).weight
            row[(d, "calib")] = output_error(w, wg, xc) / output_error(w, wr, xc)
            row[(d, "heldout")] = output_error(w, wg, xh) / output_error(w, wr, xh)
        out[name] = row
    return out


@one_blas_thread
def heldout_sparse_errors(weights: ModelWeights, calibration: Calibration, heldout,
                          names: list[str], *, fmt: str = "tai4",
                          damping: float = 0.01) -> dict[str, dict]:
    """Does SparseGPT's gain over magnitude pruning carry over to inputs it was not calibrated
    on? (8:4, quantized to ``fmt`` with MX E8M0/32 scales, OCP floor.)

    Per linear layer ``name``: the float32 model's inputs ``X_c`` over the calibration
    sequences and ``X_h`` over ``heldout``; magnitude pruning + round to nearest
    (``"magnitude"``), SparseGPT (``"sparsegpt"``) and SparseGPT with block act-order
    (``"sparsegpt-act"``) from ``H = (2/T) X_c^T X_c`` with ``damping``; the relative output
    error ``||X (W - W_q)^T||_F / ||X W^T||_F`` on ``X_c`` (``"calib"``) and ``X_h``
    (``"heldout"``). Returns ``{name: {"tokens": T, (method, "calib" | "heldout"): error}}``.
    Deterministic (``output_error`` is; the Hessian and the sweeps are)."""
    from prodigy_sim.ptq import hessian, inverse_factor, output_error, rtn, sparsegpt

    out: dict[str, dict] = {}
    for name, w, xc, xh in _layer_inputs(weights, calibration, heldout, names):
        h = hessian(xc)
        zero = np.zeros_like(w)
        cands = {
            "magnitude": rtn(w, fmt=fmt, sparsity="8:4").weight,
            "sparsegpt": sparsegpt(w, inverse_factor(h, percdamp=damping), sparsity="8:4",
                                   fmt=fmt).weight,
            "sparsegpt-act": sparsegpt(w, h, sparsity="8:4", fmt=fmt, act_order=True,
                                       percdamp=damping).weight,
        }
        row: dict = {"tokens": xc.shape[0]}
        ref_c, ref_h = output_error(w, zero, xc), output_error(w, zero, xh)
        for key, wq in cands.items():
            row[(key, "calib")] = output_error(w, wq, xc) / ref_c
            row[(key, "heldout")] = output_error(w, wq, xh) / ref_h
        out[name] = row
    return out

