"""The accuracy table: every weight format x sparsity, FP8 activations, on both real models.

Rows: float32, then ``float8_e4m3fn``, ``tai4``, ``tai2``, ``float4_e2m1fn``, ``int4`` weights
(MX E8M0 block 32 along K), each dense, 8:4 magnitude and 8:4 Wanda, all with FP8 E4M3
activations. Columns: all-MiniLM-L6-v2 mean and min cosine similarity of each evaluation
sentence's embedding to its float32 embedding; SmolLM2 perplexity over the first ``ppl_tokens``
tokens of the public-domain text; the bytes of the blocks' linear weights of each model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.realmodels._bert import encode_batch, sentence_embeddings
from prodigy_sim.realmodels._data import calibration_segments, eval_sentences, eval_text
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._llama import llama_hidden_many, mean_exp, perplexity
from prodigy_sim.realmodels._minilm import minilm_weights
from prodigy_sim.realmodels._quantize import (
    WEIGHT_FORMATS,
    Calibration,
    QuantScheme,
    calibrate,
    weight_footprint_bytes,
)
from prodigy_sim.realmodels._smollm2 import smollm2_weights
from prodigy_sim.realmodels._tokenizers import minilm_tokenizer, smollm2_tokenizer
from prodigy_sim.realmodels._weights import ModelWeights

__all__ = ["AccuracyRow", "table_schemes", "calibrate_minilm", "calibrate_smollm2",
           "accuracy_table", "format_table", "MODELS"]


@dataclass(frozen=True)
class AccuracyRow:
    """One row of the accuracy table (see the module docstring).

    A model left out of the table has None in its columns. ``minilm_sentences_per_s`` and
    ``smollm2_tokens_per_s`` are the simulated throughput of the same model and scheme on the
    hardware preset (:func:`~prodigy_sim.realmodels._throughput.simulated_throughput`; None when
    not asked for). ``seconds`` is the host time spent measuring the row's accuracy.
    ``e2e_*``: the same measures with the whole network run as the simulator's lowered kernels
    (:mod:`~prodigy_sim.realmodels._pipeline`: FP8 MX activations everywhere, FP8 KV cache,
    bfloat16 residual stream, attention, norms and activations on the vector unit, FP8 MX LM
    head); None when not asked for or when the format does not run on the matrix unit.
    """

    scheme: str
    minilm_mean_cosine: float | None
    minilm_min_cosine: float | None
    smollm2_perplexity: float | None
    minilm_linear_bytes: int | None
    smollm2_linear_bytes: int | None
    seconds: float
    minilm_sentences_per_s: float | None = None
    smollm2_tokens_per_s: float | None = None
    e2e_minilm_mean_cosine: float | None = None
    e2e_minilm_min_cosine: float | None = None
    e2e_smollm2_perplexity: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def table_schemes() -> list[QuantScheme]:
    """float32, then every weight format dense / 8:4 magnitude / 8:4 Wanda (16 schemes)."""
    out = [QuantScheme(None)]
    for fmt in WEIGHT_FORMATS:
        out += [QuantScheme(fmt), QuantScheme(fmt, "8:4", "magnitude"),
                QuantScheme(fmt, "8:4", "wanda")]
    return out


def calibrate_minilm(weights: ModelWeights, sentences: list[str] | None = None,
                     fp32: Fp32Linears | None = None) -> Calibration:
    """MiniLM calibration: the float32 forward of each calibration segment alone (no padding;
    default :func:`calibration_segments`); keeps the ``(ids, mask)`` sequences for PTQ.
    ``fp32``: the float32 linears to run (default new ones)."""
    tok = minilm_tokenizer()
    seqs = tuple(encode_batch(tok, [s]) for s in (sentences or calibration_segments()))

    def run(linears: Linears) -> None:
        from prodigy_sim.realmodels._bert import bert_hidden

        for ids, mask in seqs:
            bert_hidden(weights, ids, mask, linears)

    return calibrate(weights, run, seqs, fp32)


def calibrate_smollm2(weights: ModelWeights, sentences: list[str] | None = None,
                      fp32: Fp32Linears | None = None) -> Calibration:
    """SmolLM2 calibration: the float32 forward of each calibration segment alone (default
    :func:`calibration_segments`); keeps the token sequences for PTQ. ``fp32``: the float32
    linears to run (default new ones). The segments go through the linear layers stacked
    (:func:`~prodigy_sim.realmodels._llama.llama_hidden_many`: attention per segment, the same
    bits as one forward per segment, larger products)."""
    tok = smollm2_tokenizer()
    seqs = tuple(np.asarray(tok.encode(s).ids) for s in (sentences or calibration_segments()))

    def run(linears: Linears) -> None:
        llama_hidden_many(weights, seqs, linears)

    return calibrate(weights, run, seqs, fp32, segments=tuple(int(s.size) for s in seqs))


MODELS: tuple[str, ...] = ("minilm", "smollm2")


@dataclass(eq=False)
class _Context:
    """Loaded models, references and calibrations shared by the rows of one table run.

    ``fp32``: each model's float32 linears (weights split once), made for the calibration and
    kept for the float32 row, which takes them (so they are freed after it). ``throughput``:
    the simulated throughput of the scenarios measured so far
    (:class:`~prodigy_sim.realmodels._throughput.ThroughputCache`; made on first use)."""

    hardware: str | ChipConfig
    fp32: dict[str, Fp32Linears] = field(default_factory=dict)
    throughput: Any = None
    mini: ModelWeights | None = None
    mtok: Any = None  # a tokenizers.Tokenizer
    evals: list | None = None
    mini_cal: Calibration | None = None
    reference: np.ndarray | None = None
    smol: ModelWeights | None = None
    ids: np.ndarray | None = None
    smol_cal: Calibration | None = None

    def minilm(self) -> tuple[ModelWeights, Any, list[str], np.ndarray]:
        """MiniLM's weights, tokenizer, evaluation sentences and float32 embeddings (loaded)."""
        if self.mini is None or self.evals is None or self.reference is None:
            raise ConfigError("MiniLM is not loaded in this run")
        return self.mini, self.mtok, self.evals, self.reference

    def smollm2(self) -> tuple[ModelWeights, np.ndarray]:
        """SmolLM2's weights and evaluation token ids (loaded)."""
        if self.smol is None or self.ids is None:
            raise ConfigError("SmolLM2 is not loaded in this run")
        return self.smol, self.ids


def _context(models, ppl_tokens: int, sentences: int | None,
             hardware: str | ChipConfig, keep_fp32: bool) -> _Context:
    ctx = _Context(hardware=hardware)
    if "minilm" in models:
        ctx.mini, ctx.mtok = minilm_weights(), minilm_tokenizer()
        ctx.evals = eval_sentences()[:sentences]
        fp32 = Fp32Linears(ctx.mini)
        ctx.mini_cal = calibrate_minilm(ctx.mini, fp32=fp32)
        ctx.reference = sentence_embeddings(ctx.mini, ctx.mtok, ctx.evals, fp32)
        if keep_fp32:
            ctx.fp32["minilm"] = fp32
    if "smollm2" in models:
        ctx.smol = smollm2_weights()
        ctx.ids = np.asarray(smollm2_tokenizer().encode(eval_text()).ids[:ppl_tokens])
        fp32 = Fp32Linears(ctx.smol)
        ctx.smol_cal = calibrate_smollm2(ctx.smol, fp32=fp32)
        if keep_fp32:
            ctx.fp32["smollm2"] = fp32
    return ctx


def _cosines(emb: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cos = np.sum(emb.astype(np.float64) * reference, axis=-1)
    return float(cos.mean()), float(cos.min())


def _measure(scheme: QuantScheme, ctx: _Context, *, throughput: bool, end_to_end: bool,
             backend: str) -> AccuracyRow:
    """One row: accuracy, bytes, simulated throughput (and lowered columns) of ``scheme``."""
    from prodigy_sim.realmodels._overheads import extras_of
    from prodigy_sim.realmodels._ptq import quantize_model
    from prodigy_sim.realmodels._throughput import ThroughputCache, simulated_throughput

    start = time.perf_counter()
    vals: dict = {}
    for model in MODELS:
        weights = ctx.mini if model == "minilm" else ctx.smol
        if weights is None:
            continue
        cal = ctx.mini_cal if model == "minilm" else ctx.smol_cal
        qm = None
        if scheme.weight_format is None:
            linears = ctx.fp32.pop(model, None) or Fp32Linears(weights)
            nbytes = weight_footprint_bytes(weights.card, scheme)
        else:
            qm = quantize_model(weights, scheme, cal)
            linears = qm.linears()
            nbytes = qm.linear_bytes
        if model == "minilm":
            _, tok, evals, reference = ctx.minilm()
            emb = sentence_embeddings(qm.weights if qm else weights, tok, evals, linears)
            vals["minilm_mean_cosine"], vals["minilm_min_cosine"] = _cosines(emb, reference)
            vals["minilm_linear_bytes"] = nbytes
        else:
            vals["smollm2_perplexity"] = perplexity(qm.weights if qm else weights,
                                                    ctx.smollm2()[1], linears)
            vals["smollm2_linear_bytes"] = nbytes
        key = "minilm_sentences_per_s" if model == "minilm" else "smollm2_tokens_per_s"
        if throughput:
            extras = None
            if qm is not None and (qm.online or qm.results):
                extras = extras_of(qm)
            if ctx.throughput is None:
                ctx.throughput = ThroughputCache()
            vals[key] = simulated_throughput(model, scheme, ctx.hardware, extras,
                                             ctx.throughput)
        if end_to_end:
            vals.update(_end_to_end(model, scheme, qm, ctx, backend))
    return AccuracyRow(scheme=scheme.label, minilm_mean_cosine=vals.get("minilm_mean_cosine"),
                       minilm_min_cosine=vals.get("minilm_min_cosine"),
                       smollm2_perplexity=vals.get("smollm2_perplexity"),
                       minilm_linear_bytes=vals.get("minilm_linear_bytes"),
                       smollm2_linear_bytes=vals.get("smollm2_linear_bytes"),
                       seconds=time.perf_counter() - start,
                       minilm_sentences_per_s=vals.get("minilm_sentences_per_s"),
                       smollm2_tokens_per_s=vals.get("smollm2_tokens_per_s"),
                       e2e_minilm_mean_cosine=vals.get("e2e_minilm_mean_cosine"),
                       e2e_minilm_min_cosine=vals.get("e2e_minilm_min_cosine"),
                       e2e_smollm2_perplexity=vals.get("e2e_smollm2_perplexity"))


def accuracy_table(schemes: list[QuantScheme] | None = None, ppl_tokens: int = 512,
                   progress: Callable[[AccuracyRow], None] | None = None, *,
                   models: tuple[str, ...] | list[str] = MODELS, sentences: int | None = None,
                   throughput: bool = False, end_to_end: bool = False,
                   backend: str = "numpy", hardware: str | ChipConfig | None = None
                   ) -> list[AccuracyRow]:
    """Measure every scheme (default :func:`table_schemes`) on ``models``.

    ``progress`` is called with each row as soon as it is measured. ``sentences``: use only the
    first N evaluation sentences (default all). ``throughput``: also simulate each model and
    scheme on ``hardware`` (a preset name or a configuration, default the default preset) and
    fill the throughput columns. ``end_to_end``: also
    run every layer as the lowered kernels on ``backend`` (``"numpy"``: the plain-numpy
    emulation, bit-identical to the functional core; ``"core"``: the functional core itself,
    slower) and fill the ``e2e_*`` columns.
    """
    from prodigy_sim.hardware import DEFAULT_PRESET
    from prodigy_sim.realmodels._pipeline import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
    schemes = schemes if schemes is not None else table_schemes()
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown model {unknown[0] if unknown else ''!r}; models: "
                          f"{', '.join(MODELS)}")
    if ppl_tokens < 2:
        raise ConfigError(f"perplexity needs >= 2 tokens (got {ppl_tokens})")
    if sentences is not None and sentences < 1:
        raise ConfigError(f"'sentences' must be >= 1 (got {sentences})")
    ctx = _context(models, ppl_tokens, sentences, hardware or DEFAULT_PRESET,
                   keep_fp32=any(s.weight_format is None for s in schemes))
    rows = []
    for scheme in schemes:
        row = _measure(scheme, ctx, throughput=throughput, end_to_end=end_to_end,
                       backend=backend)
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _end_to_end(model: str, scheme: QuantScheme, qm, ctx: _Context, backend: str) -> dict:
    """The ``e2e_*`` values of ``model`` with every layer lowered (a rotated model with its
    online Hadamard kernels, an SpQR model with its outlier kernels); none where the format is
    not lowered."""
    from prodigy_sim.lowering import matrix_runs
    from prodigy_sim.realmodels._pipeline import (
        _scenario,
        fuse_tensors,
        pipeline_embeddings,
        pipeline_nll,
    )
    from prodigy_sim.realmodels._throughput import chip_of

    st = scheme.lowered_storage
    if st is None or not matrix_runs(st.fmt, chip_of(ctx.hardware)[0]) or qm is None:
        return {}
    outliers = {n: r.outliers for n, r in qm.results.items() if r.outliers is not None}
    wq = fuse_tensors(qm.weights, qm.tensors, _scenario(qm.weights.card.name, scheme, 8,
                                                        ctx.hardware))
    if model == "minilm":
        _, tok, evals, reference = ctx.minilm()
        emb = pipeline_embeddings(qm.weights, tok, evals, scheme, backend=backend,
                                  hardware=ctx.hardware, weights_q=wq, online=qm.online,
                                  outliers=outliers)
        mean, low = _cosines(emb, reference)
        return {"e2e_minilm_mean_cosine": mean, "e2e_minilm_min_cosine": low}
    _, ids = ctx.smollm2()
    nll = pipeline_nll(qm.weights, ids, scheme, backend=backend, hardware=ctx.hardware,
                       weights_q=wq, online=qm.online, outliers=outliers)
    return {"e2e_smollm2_perplexity": mean_exp(nll)}


def _cell(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[AccuracyRow]) -> str:
    """Markdown table of ``rows`` (throughput columns only if some row has them)."""
    tp = any(r.minilm_sentences_per_s is not None or r.smollm2_tokens_per_s is not None
             for r in rows)
    head = ("| weights (FP8 E4M3 activations) | MiniLM mean cos | MiniLM min cos | "
            "SmolLM2 perplexity | MiniLM linear bytes | SmolLM2 linear bytes |")
    rule = "|---|---:|---:|---:|---:|---:|"
    if tp:
        head += " MiniLM sim. sentences/s | SmolLM2 sim. tokens/s |"
        rule += "---:|---:|"
    e2e = any(r.e2e_minilm_mean_cosine is not None or r.e2e_smollm2_perplexity is not None
              for r in rows)
    if e2e:
        head += " lowered: MiniLM mean cos | lowered: MiniLM min cos | lowered: SmolLM2 ppl |"
        rule += "---:|---:|---:|"
    lines = [head, rule]
    for r in rows:
        name = "float32 (float32 activations)" if r.scheme == "fp32" else r.scheme
        line = (f"| {name} | {_cell(r.minilm_mean_cosine, '.5f')} | "
                f"{_cell(r.minilm_min_cosine, '.5f')} | {_cell(r.smollm2_perplexity, '.3f')} | "
                f"{_cell(r.minilm_linear_bytes, ',')} | {_cell(r.smollm2_linear_bytes, ',')} |")
        if tp:
            line += (f" {_cell(r.minilm_sentences_per_s, ',.0f')} | "
                     f"{_cell(r.smollm2_tokens_per_s, ',.0f')} |")
        if e2e:
            line += (f" {_cell(r.e2e_minilm_mean_cosine, '.5f')} | "
                     f"{_cell(r.e2e_minilm_min_cosine, '.5f')} | "
                     f"{_cell(r.e2e_smollm2_perplexity, '.3f')} |")
        lines.append(line)
    return "\n".join(lines)
