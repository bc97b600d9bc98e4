"""A real model end to end through the simulator: every layer's lowered kernels, chained.

:func:`lower_real_model` lowers the model card of the loaded weights for one quantization scheme
and one prompt length (prefill, batch 1) with :func:`prodigy_sim.lowering.lower_model` - the
programs the timing model simulates - and quantizes the weights for them. :func:`run_bert` and
:func:`run_llama` then execute those kernels in order, each kernel's outputs becoming the next
kernel's DDR inputs, on one of two backends:

- ``"core"``: :func:`prodigy_sim.functional.run` executes each program instruction by
  instruction (the bit-exact functional core);
- ``"numpy"``: :func:`prodigy_sim.lowering.emulate_kernel`, an independent plain-numpy
  emulation of the same arithmetic (fast; the tests prove both give the same bits).

SpQR schemes run their outliers as the lowering's ``spqr_<op>`` kernels: before each linear whose
weights have outliers in that layer, ``C = (residual +) X O^T`` (``VGATHER`` / ``VMUL`` /
``VSCATADD``), and the linear's accumulators start from ``C`` (its dense part: the element codes
with SpQR's float32 group scales, ``QuantScheme.lowered_storage``).

What runs where. On the kernels (as the lowering defines them): every norm (BERT LayerNorm, with
the embedding LayerNorm as one more norm kernel; LLaMA RMSNorm, including the final norm), the
Q/K/V projections with their biases, RoPE and the FP8 K/V cache writes, attention (QK^T, scale,
mask, online softmax, PV, normalization), the output and MLP projections with GELU or
``silu(gate) * up``, the residual adds and, for SmolLM2, the LM head (over every position, for
perplexity; the lowered model's own head, used by the timing model, computes the last position
as a real prefill does). In numpy (not lowered, data-dependent or outside the model): the
embedding lookups and their sum (rounded to the bfloat16 residual stream the kernels read), the
RoPE cos/sin tables (bfloat16 inputs), the attention mask tile, and after the last kernel the
sentence-transformers mean pooling + L2 normalization (MiniLM) or the log-softmax (SmolLM2).

Data path: the residual stream is bfloat16; every MMA input is FP8 E4M3 with MX E8M0 scales per
32 elements, quantized by the kernel that produces it; weights are the scheme's format (MX E8M0 /
32 along K, optionally 8:4 pruned by magnitude or Wanda); the KV cache is FP8. Prompts are padded
to the kernels' tile (:func:`prodigy_sim.lowering.padded_tokens`); padded keys are masked with
the most negative float32, padded rows are computed and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.lowering import (
    AttentionParams,
    Budgets,
    Kernel,
    LoweredModel,
    lower_model,
    norm_kernel,
    padded_tokens,
    plan_linear,
    spqr_inputs,
    weight_storage,
)
from prodigy_sim.numerics import QuantizedTensor, quantize
from prodigy_sim.ptq import Outliers
from prodigy_sim.realmodels._overheads import fuse_outliers
from prodigy_sim.realmodels._quantize import Calibration, QuantScheme
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["BACKENDS", "LoweredRealModel", "lower_real_model", "run_bert", "run_llama",
           "written_tensors", "pipeline_embeddings", "pipeline_nll", "simulate_real"]

BACKENDS = ("core", "numpy")
"""``core``: the functional core runs every program; ``numpy``: the plain-numpy emulation."""

_NEG = float(np.finfo(np.float32).min)
Tensors = dict[str, "np.ndarray | QuantizedTensor"]


def written_tensors(kernel: Kernel) -> tuple[str, ...]:
    """Names of the DDR tensors ``kernel``'s program stores to (``DMA.ST`` destinations)."""
    return tuple(dict.fromkeys(str(i.operands[0]) for i in kernel.program.instructions
                               if i.opcode == "DMA.ST"))


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest even), as float32: what a bfloat16 DDR tensor
    holds."""
    from prodigy_sim.functional import from_bf16, to_bf16

    return from_bf16(to_bf16(x))


@dataclass(frozen=True, eq=False)
class LoweredRealModel:
    """A loaded model lowered for ``scheme`` at one padded prompt length (prefill, batch 1).

    ``lowered``: the kernels (also what :func:`prodigy_sim.lowering.simulate_model` times);
    ``kernels``: extra kernels of the functional pass (``embed_norm`` for BERT; ``final_norm``
    and ``lm_head`` over every position for LLaMA); ``weights_q``: quantized weights by fused
    name (``layers.{i}.qkv_proj``, ``.o_proj``, ``.up_proj``, ``.gate_proj``, ``.down_proj``,
    ``lm_head``); ``padded``: rows the kernels compute; ``online``: online Hadamard rotations
    by linear name (:class:`~prodigy_sim.ptq.HadamardRotation`), whose kernels
    (``hadamard_<op>``) run before the ops of those linears; ``outliers``: SpQR outliers by
    linear name, as given; ``op_outliers``: the same by lowered op (``layers.{i}.<op>``, one
    per weight of the op, as terms added to the dense weights:
    :func:`~prodigy_sim.realmodels._overheads.fuse_outliers`), whose kernels (``spqr_<op>``)
    run before the ops where they have any.
    """

    weights: ModelWeights
    scheme: QuantScheme
    lowered: LoweredModel
    kernels: dict[str, Kernel]
    weights_q: dict[str, QuantizedTensor]
    padded: int
    online: dict = field(default_factory=dict)
    outliers: dict[str, Outliers] = field(default_factory=dict)
    op_outliers: dict[str, tuple[Outliers, ...]] = field(default_factory=dict)

    def has_op(self, name: str, layer: int) -> bool:
        """Whether ``layer`` has a lowered op ``name``."""
        return any(layer in st.layers and any(op.name == name for op in st.ops)
                   for st in self.lowered.stages)

    def op(self, name: str, layer: int) -> Kernel:
        """The kernel ``name`` of ``layer`` (structurally identical layers share a stage)."""
        for st in self.lowered.stages:
            if layer in st.layers:
                for op in st.ops:
                    if op.name == name:
                        return op.kernel
        raise ConfigError(f"no lowered op {name!r} for layer {layer} of {self.lowered.model}")


def _scenario(card_name: str, scheme: QuantScheme, tokens: int,
              hardware: str | ChipConfig | None):
    from prodigy_sim.models import Formats, Scenario
    from prodigy_sim.realmodels._throughput import chip_of

    if scheme.lowered_storage is None:
        raise ConfigError("the float32 scheme does not run on the matrix unit; give a weight "
                          "format")
    kw = {} if hardware is None else {"hardware": chip_of(hardware)[1]}
    return Scenario(model=card_name, phase="prefill", batch=1, sequence_length=tokens,
                    formats=Formats(weights=scheme.lowered_storage),
                    sparsity=scheme.sparsity or "none", **kw)


def lower_real_model(weights: ModelWeights, scheme: QuantScheme, tokens: int, *,
                     calibration: Calibration | None = None,
                     hardware: str | ChipConfig | None = None, cores: int | None = None,
                     weights_q: dict[str, QuantizedTensor] | None = None,
                     online: dict | None = None,
                     outliers: dict[str, Outliers] | None = None) -> LoweredRealModel:
    """Lower ``weights.card`` for a ``tokens``-long prompt and quantize its weights by ``scheme``.

    ``hardware``: preset name or configuration (default the scenario default); ``cores``:
    logical cores of the programs (default all of the chip's). ``calibration`` supplies
    Wanda's activation norms.
    ``weights_q``: the quantized weights of an earlier call with the same weights and scheme
    (they do not depend on the prompt length), to skip quantizing them again.
    ``online``: the online Hadamard rotations of a rotated model (``QuantizedModel.online``;
    ``weights`` are then its rotated weights and ``weights_q`` must be given): their kernels
    are lowered into every layer and run before the linears they rotate the input of.
    ``outliers``: an SpQR model's outliers by linear name (``PTQResult.outliers``; needed with
    the ``weights_q`` of an SpQR scheme, else computed with them): their ``spqr_<op>`` kernels
    are lowered into the layers that have them.
    """
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.timing import isa_params

    card = weights.card
    if tokens < 1:
        raise ConfigError(f"'tokens' must be >= 1 (got {tokens})")
    if scheme.sparsity and scheme.prune == "wanda" and calibration is None:
        raise ConfigError("Wanda pruning needs a calibration (activation norms)")
    scenario = _scenario(card.name, scheme, tokens, hardware)
    config = hardware if isinstance(hardware, ChipConfig) else load_preset(scenario.hardware)
    if online and weights_q is None:
        raise ConfigError("a rotated model runs end to end with its quantized weights "
                          "(weights_q)")
    if scheme.method == "spqr" and weights_q is not None and outliers is None:
        raise ConfigError("an SpQR model runs end to end with its outliers (outliers=, by "
                          "linear name) beside its quantized weights")
    wq = weights_q
    if wq is None:
        wq, found = _quantized_weights(weights, scheme, calibration, scenario)
        outliers = outliers if outliers is not None else found
    op_outliers = fuse_outliers(outliers or {}, card.family, dense=wq)
    lowered = lower_model(card, scenario, config, cores=cores,
                          ptq=_ptq_work(online, op_outliers, card.family))
    p, t, h = lowered.cores, padded_tokens(tokens), card.hidden_size
    bud = Budgets.of(isa_params(config))
    kernels: dict[str, Kernel] = {}
    if card.family == "llama":
        kernels["final_norm"] = norm_kernel("final_norm", t, h, kind="rmsnorm",
                                            eps=card.norm_eps, cores=p, budgets=bud)
        hst = weight_storage(scenario.formats.head, None, config, "formats.head")
        kernels["lm_head"] = plan_linear("lm_head", t, card.vocab_size, h, hst, p, "store",
                                         config, bud)
    else:
        kernels["embed_norm"] = norm_kernel("embed_norm", t, h, kind="layernorm",
                                            eps=card.norm_eps, cores=p, budgets=bud)
    return LoweredRealModel(weights, scheme, lowered, kernels, wq, t, dict(online or {}),
                            dict(outliers or {}), op_outliers)


def _ptq_work(online: dict | None, op_outliers: dict[str, tuple[Outliers, ...]], family: str):
    """The lowering's PTQ work of online rotations and SpQR outliers (None without either)."""
    from prodigy_sim.lowering import PtqWork
    from prodigy_sim.realmodels._overheads import online_work, op_sites

    work = PtqWork(online_work(online, family).online if online else (), op_sites(op_outliers))
    return None if work.empty else work


def concat_rows(parts: list[QuantizedTensor]) -> QuantizedTensor:
    """Row-wise concatenation of 2-D tensors quantized along K with the same storage (each row is
    stored on its own: codes, scales and mask bits concatenate)."""
    first = parts[0]
    for q in parts[1:]:
        if q.storage != first.storage or q.shape[1] != first.shape[1]:
            raise ConfigError("concat_rows needs tensors with the same storage and K")
    return QuantizedTensor(
        codes=np.concatenate([q.codes for q in parts]),
        scales=np.concatenate([q.scales for q in parts]), fmt=first.fmt,
        shape=(sum(q.shape[0] for q in parts), first.shape[1]), axis=first.axis,
        block=first.block, scale=first.scale, sparsity=first.sparsity,
        mask_bits=(None if first.mask_bits is None
                   else np.concatenate([q.mask_bits for q in parts])))


def fuse_tensors(weights: ModelWeights, tensors: dict[str, QuantizedTensor], scenario
                 ) -> dict[str, QuantizedTensor]:
    """The lowered model's weights from per-linear quantized tensors (card names): q/k/v fused
    into ``layers.{i}.qkv_proj``, the others renamed, and the LM head quantized to the scenario's
    head storage."""
    card = weights.card
    out: dict[str, QuantizedTensor] = {}
    for i in range(card.num_layers):
        a, m = f"layers.{i}.attn.", f"layers.{i}.mlp."
        out[f"layers.{i}.qkv_proj"] = concat_rows(
            [tensors[a + n] for n in ("q_proj", "k_proj", "v_proj")])
        out[f"layers.{i}.o_proj"] = tensors[a + "o_proj"]
        out[f"layers.{i}.up_proj"] = tensors[m + "up_proj"]
        out[f"layers.{i}.down_proj"] = tensors[m + "down_proj"]
        if card.mlp == "gated":
            out[f"layers.{i}.gate_proj"] = tensors[m + "gate_proj"]
    if card.family == "llama":
        head = weights.tensors.get("lm_head", weights["embed_tokens"])
        out["lm_head"] = quantize(head, scenario.formats.head, axis=-1)
    return out


def _quantized_weights(weights: ModelWeights, scheme: QuantScheme,
                       calibration: Calibration | None, scenario
                       ) -> tuple[dict[str, QuantizedTensor], dict[str, Outliers]]:
    """The lowered model's weights (:func:`fuse_tensors`) and SpQR's outliers by linear name."""
    from prodigy_sim.realmodels._quantize import rtn_tensor

    outliers: dict[str, Outliers] = {}
    if calibration is None:
        if scheme.method == "spqr":
            raise ConfigError("SpQR quantizes with a calibration (its Hessians)")
        tensors = {n: rtn_tensor(np.asarray(weights[n]), scheme, None)
                   for n in weights.linear_names()}
    else:
        from prodigy_sim.realmodels._ptq import quantize_model

        qm = quantize_model(weights, scheme, calibration)
        if qm.online:
            raise ConfigError(f"{scheme.label}: give the rotated model's weights, quantized "
                              "weights and online rotations (QuantizedModel.weights, .tensors, "
                              ".online)")
        tensors = qm.tensors
        outliers = {n: r.outliers for n, r in qm.results.items() if r.outliers is not None}
    return fuse_tensors(weights, tensors, scenario), outliers


# ---- execution ---------------------------------------------------------------------------------

def _executor(backend: str, operands: dict | None = None
              ) -> Callable[[Kernel, Tensors], Tensors]:
    """``execute(kernel, ddr) -> outputs`` of ``backend``; ``operands``: the numpy backend's
    cache of decoded weights (see :func:`prodigy_sim.lowering.emulate_kernel`)."""
    if backend == "core":
        from prodigy_sim.functional import run

        def execute(kernel: Kernel, ddr: Tensors) -> Tensors:
            state = run(kernel.program, ddr=ddr, cores=kernel.cores)
            return {n: state.tensor(n) for n in written_tensors(kernel)}
        return execute
    if backend == "numpy":
        from prodigy_sim._jit import blas_single_thread
        from prodigy_sim.lowering import emulate_kernel

        def emulate(kernel: Kernel, ddr: Tensors) -> Tensors:
            with blas_single_thread():            # many small GEMMs
                return emulate_kernel(kernel, ddr, operands=operands)
        return emulate
    raise ConfigError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")


def _row(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=np.float32).reshape(1, -1)


def _mask(kernel: Kernel, real: int, causal: bool) -> np.ndarray:
    """The MASK tile ``(qr, ck)`` of a prefill attention kernel: the causal diagonal chunk, or
    the padded keys of the last chunk (every padded key lies in the last chunk)."""
    qr, ck = kernel.program.tensor["MASK"].shape
    if not isinstance(kernel.params, AttentionParams):
        raise TypeError(f"{kernel.name} is not an attention kernel")
    cp = kernel.params.cp                                   # the context padded to chunks
    if causal:
        return np.triu(np.full((qr, ck), _NEG, dtype=np.float32), k=1)
    if cp - real >= ck:
        raise ConfigError(f"{cp - real} padded keys do not fit in the last key chunk ({ck})")
    mask = np.zeros((qr, ck), dtype=np.float32)
    mask[:, ck - (cp - real):] = _NEG
    return mask


def _linear(m: LoweredRealModel, op: str, i: int, ex: Callable[[Kernel, Tensors], Tensors],
            ddr: Tensors):
    """``Y`` of layer ``i``'s linear op ``op`` on the DDR tensors ``ddr`` (``X``, ``W``, ...);
    where the layer has SpQR outliers for it, their kernel first computes ``C`` (``CU``) from
    ``X`` (and the residual ``R``), and the linear starts from them instead of ``R``."""
    if m.has_op(f"spqr_{op}", i):
        kern = m.op(f"spqr_{op}", i)
        src = {"X": ddr["X"], **spqr_inputs(kern, m.op_outliers[f"layers.{i}.{op}"])}
        if "R" in kern.program.tensor:
            src["R"] = ddr["R"]
        c = ex(kern, src)
        ddr = {k: v for k, v in ddr.items() if k != "R"}
        ddr.update({k: c[k] for k in ("C", "CU") if k in c})
    return ex(m.op(op, i), ddr)["Y"]


def _rotated(m: LoweredRealModel, op: str, linear: str, i: int,
             ex: Callable[[Kernel, Tensors], Tensors], x):
    """``x`` through layer ``i``'s online Hadamard kernel before ``op`` (whose input is that of
    linear ``layers.{i}.<linear>``), or ``x`` when the layer has none."""
    if not m.has_op(f"hadamard_{op}", i):
        return x
    signs = m.online[f"layers.{i}.{linear}"].signs
    return ex(m.op(f"hadamard_{op}", i), {"X": x, "S": _row(signs)})["Y"]


def _attention(m: LoweredRealModel, i: int, ex: Callable[[Kernel, Tensors], Tensors],
               qkv: np.ndarray | QuantizedTensor, real: int,
               cos_sin: dict) -> np.ndarray | QuantizedTensor:
    """Q/K/V from the fused projection -> the attention output ``O`` (FP8)."""
    llama = m.weights.card.family == "llama"
    prep = m.op("rope_kv" if llama else "qkv_cache", i)
    kv = ex(prep, {"QKV": qkv, **cos_sin})
    att = m.op("attention", i)
    mask = _mask(att, real, causal=llama)
    return ex(att, {"Q": kv["Q"], "KC": kv["KC"], "VT": kv["VT"], "MASK": mask})["O"]


def run_bert(m: LoweredRealModel, ids: np.ndarray, backend: str = "numpy",
             operands: dict | None = None) -> np.ndarray:
    """Last hidden state ``(T, H)`` float32 (bfloat16 values) of one sentence's token ids
    ``(T,)`` (``T`` = the lowered prompt length, no padding tokens), every layer on ``backend``
    (``operands``: the numpy backend's decoded-weight cache, kept by the caller across calls)."""
    w, card = m.weights, m.weights.card
    ids = _check_ids(m, ids)
    t, pt = ids.size, m.padded
    ex = _executor(backend, operands)
    x = np.zeros((pt, card.hidden_size), dtype=np.float32)
    x[:t] = w["embeddings.word"][ids] + w["embeddings.position"][:t] + w["embeddings.token_type"][0]
    out = ex(m.kernels["embed_norm"], {"X": _bf16(x), "G": _row(w["embeddings.norm"]),
                                       "B": _row(w["embeddings.norm.bias"])})
    n, hs = out["Y"], out["YS"]
    for i in range(card.num_layers):
        p = f"layers.{i}."
        qb = np.concatenate([w[p + f"attn.{k}.bias"] for k in ("q_proj", "k_proj", "v_proj")])
        n = _rotated(m, "qkv_proj", "attn.q_proj", i, ex, n)
        qkv = _linear(m, "qkv_proj", i, ex, {"X": n, "W": m.weights_q[p + "qkv_proj"],
                                             "BIAS": _row(qb)})
        o = _attention(m, i, ex, qkv, t, {})
        y = _linear(m, "o_proj", i, ex, {"X": o, "W": m.weights_q[p + "o_proj"],
                                         "BIAS": _row(w[p + "attn.o_proj.bias"]), "R": hs})
        out = ex(m.op("attn_norm", i), {"X": y, "G": _row(w[p + "attn_norm"]),
                                     "B": _row(w[p + "attn_norm.bias"])})
        n1, hs1 = out["Y"], out["YS"]
        n1 = _rotated(m, "up_proj", "mlp.up_proj", i, ex, n1)
        u = _linear(m, "up_proj", i, ex, {"X": n1, "W": m.weights_q[p + "up_proj"],
                                          "BIAS": _row(w[p + "mlp.up_proj.bias"])})
        u = _rotated(m, "down_proj", "mlp.down_proj", i, ex, u)
        y = _linear(m, "down_proj", i, ex, {"X": u, "W": m.weights_q[p + "down_proj"],
                                            "BIAS": _row(w[p + "mlp.down_proj.bias"]),
                                            "R": hs1})
        out = ex(m.op("mlp_norm", i), {"X": y, "G": _row(w[p + "mlp_norm"]),
                                    "B": _row(w[p + "mlp_norm.bias"])})
        n, hs = out["Y"], out["YS"]
    return np.asarray(hs, dtype=np.float32)[:t]


def run_llama(m: LoweredRealModel, ids: np.ndarray, backend: str = "numpy") -> np.ndarray:
    """Next-token logits ``(T, vocab)`` float32 (bfloat16 values) of token ids ``(T,)``, every
    layer, the final norm and the LM head on ``backend``."""
    from prodigy_sim.realmodels._llama import rope_tables

    w, card = m.weights, m.weights.card
    ids = _check_ids(m, ids)
    t, pt = ids.size, m.padded
    ex = _executor(backend)
    x = np.zeros((pt, card.hidden_size), dtype=np.float32)
    x[:t] = w["embed_tokens"][ids]
    h: np.ndarray | QuantizedTensor = _bf16(x)
    cos, sin = rope_tables(np.arange(pt), card.head_size, float(card.rope_theta or 0.0))
    cos_sin = {"COS": _bf16(cos), "SIN": _bf16(sin)}
    for i in range(card.num_layers):
        p = f"layers.{i}."
        n = ex(m.op("attn_norm", i), {"X": h, "G": _row(w[p + "attn_norm"])})["Y"]
        n = _rotated(m, "qkv_proj", "attn.q_proj", i, ex, n)
        qkv = _linear(m, "qkv_proj", i, ex, {"X": n, "W": m.weights_q[p + "qkv_proj"]})
        o = _attention(m, i, ex, qkv, t, cos_sin)
        h = _linear(m, "o_proj", i, ex, {"X": o, "W": m.weights_q[p + "o_proj"], "R": h})
        n = ex(m.op("mlp_norm", i), {"X": h, "G": _row(w[p + "mlp_norm"])})["Y"]
        n = _rotated(m, "gate_up", "mlp.up_proj", i, ex, n)
        g = _linear(m, "gate_up", i, ex, {"X": n, "W": m.weights_q[p + "gate_proj"],
                                          "WU": m.weights_q[p + "up_proj"]})
        g = _rotated(m, "down_proj", "mlp.down_proj", i, ex, g)
        h = _linear(m, "down_proj", i, ex, {"X": g, "W": m.weights_q[p + "down_proj"],
                                            "R": h})
    n = ex(m.kernels["final_norm"], {"X": h, "G": _row(w["final_norm"])})["Y"]
    logits = ex(m.kernels["lm_head"], {"X": n, "W": m.weights_q["lm_head"]})["Y"]
    return np.asarray(logits, dtype=np.float32)[:t]


def _check_ids(m: LoweredRealModel, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    want = m.lowered.scenario.query_tokens
    if ids.size != want:
        raise ConfigError(f"the model was lowered for {want} tokens; got {ids.size}")
    return ids



# ---- whole evaluations -------------------------------------------------------------------------

def pipeline_embeddings(weights: ModelWeights, tokenizer, sentences: list[str],
                        scheme: QuantScheme, *, backend: str = "numpy",
                        calibration: Calibration | None = None, cores: int | None = None,
                        hardware: str | ChipConfig | None = None,
                        weights_q: dict[str, QuantizedTensor] | None = None,
                        online: dict | None = None,
                        outliers: dict[str, Outliers] | None = None) -> np.ndarray:
    """MiniLM sentence embeddings ``(len(sentences), H)`` float32 with every layer on
    ``backend``: each sentence alone (batch 1, its own prompt length), mean pooling over its
    tokens and L2 normalization in numpy (sentence-transformers' ``Pooling`` + ``Normalize``)."""
    if weights.card.family != "bert":
        raise ConfigError(f"pipeline_embeddings needs a BERT model (got {weights.card.name!r})")
    out = np.zeros((len(sentences), weights.card.hidden_size), dtype=np.float32)
    lowered: dict[int, LoweredRealModel] = {}   # by sentence length; the weights shared
    operands: dict = {}                          # decoded weights, shared by the sentences
    for i, s in enumerate(sentences):
        ids = np.asarray(tokenizer.encode(s).ids, dtype=np.int64)
        if ids.size not in lowered:
            first = next(iter(lowered.values()), None)
            wq = first.weights_q if first is not None else weights_q
            if first is not None and outliers is None:
                outliers = first.outliers
            lowered[ids.size] = lower_real_model(weights, scheme, ids.size,
                                                 calibration=calibration, cores=cores,
                                                 hardware=hardware, weights_q=wq,
                                                 online=online, outliers=outliers)
        m = lowered[ids.size]
        pooled = run_bert(m, ids, backend, operands).astype(np.float32).mean(axis=0)
        out[i] = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
    return out


def pipeline_nll(weights: ModelWeights, ids: np.ndarray, scheme: QuantScheme, *,
                 backend: str = "numpy", calibration: Calibration | None = None,
                 cores: int | None = None, hardware: str | ChipConfig | None = None,
                 weights_q: dict[str, QuantizedTensor] | None = None,
                 online: dict | None = None,
                 outliers: dict[str, Outliers] | None = None) -> np.ndarray:
    """Negative log-likelihood (nats, float64) of ``ids[1:]`` given their prefixes, ``(T - 1,)``,
    from the logits of one prefill of ``ids[:-1]`` with every layer and the LM head on
    ``backend`` (log-softmax by :func:`~prodigy_sim.realmodels._llama.logits_nll`)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if weights.card.family != "llama":
        raise ConfigError(f"pipeline_nll needs a LLaMA model (got {weights.card.name!r})")
    if ids.size < 2:
        raise ConfigError(f"perplexity needs >= 2 tokens (got {ids.size})")
    m = lower_real_model(weights, scheme, ids.size - 1, calibration=calibration, cores=cores,
                         hardware=hardware, weights_q=weights_q, online=online,
                         outliers=outliers)
    from prodigy_sim.realmodels._llama import logits_nll

    return logits_nll(run_llama(m, ids[:-1], backend), ids[1:])


def simulate_real(m: LoweredRealModel):
    """The timing model on the very kernels of ``m`` (``m.lowered``): a
    :class:`~prodigy_sim.reports.ModelReport` of one prefill on the preset it was lowered for."""
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.reports import report_lowered

    return report_lowered(m.lowered, load_preset(m.lowered.config_name))
