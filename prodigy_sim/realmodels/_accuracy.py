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
from dataclasses import asdict, dataclass

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.realmodels._bert import encode_batch, sentence_embeddings
from prodigy_sim.realmodels._data import calibration_sentences, eval_sentences, eval_text
from prodigy_sim.realmodels._layers import Linears
from prodigy_sim.realmodels._llama import llama_hidden, perplexity
from prodigy_sim.realmodels._minilm import minilm_weights
from prodigy_sim.realmodels._quantize import (
    WEIGHT_FORMATS,
    Calibration,
    QuantScheme,
    calibrate,
    make_linears,
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


def calibrate_minilm(weights: ModelWeights, sentences: list[str]) -> Calibration:
    """MiniLM calibration: the float32 forward of each sentence alone (no padding tokens)."""
    tok = minilm_tokenizer()

    def run(linears: Linears) -> None:
        from prodigy_sim.realmodels._bert import bert_hidden

        for s in sentences:
            ids, mask = encode_batch(tok, [s])
            bert_hidden(weights, ids, mask, linears)

    return calibrate(weights, run)


def calibrate_smollm2(weights: ModelWeights, sentences: list[str]) -> Calibration:
    """SmolLM2 calibration: the float32 forward of each sentence alone."""
    tok = smollm2_tokenizer()

    def run(linears: Linears) -> None:
        for s in sentences:
            llama_hidden(weights, np.asarray(tok.encode(s).ids), linears)

    return calibrate(weights, run)


MODELS: tuple[str, ...] = ("minilm", "smollm2")


def accuracy_table(schemes: list[QuantScheme] | None = None, ppl_tokens: int = 512,
                   progress: Callable[[AccuracyRow], None] | None = None, *,
                   models: tuple[str, ...] | list[str] = MODELS, sentences: int | None = None,
                   throughput: bool = False, end_to_end: bool = False,
                   backend: str = "numpy", hardware: str | None = None) -> list[AccuracyRow]:
    """Measure every scheme (default :func:`table_schemes`) on ``models``.

    ``progress`` is called with each row as soon as it is measured. ``sentences``: use only the
    first N evaluation sentences (default all). ``throughput``: also simulate each model and
    scheme on ``hardware`` (default preset) and fill the throughput columns. ``end_to_end``: also
    run every layer as the lowered kernels on ``backend`` (``"numpy"``: the plain-numpy
    emulation, bit-identical to the functional core; ``"core"``: the functional core itself,
    slower) and fill the ``e2e_*`` columns.
    """
    from prodigy_sim.realmodels._pipeline import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
    from prodigy_sim.hardware import DEFAULT_PRESET
    from prodigy_sim.realmodels._throughput import simulated_throughput

    schemes = schemes if schemes is not None else table_schemes()
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown model {unknown[0] if unknown else ''!r}; models: "
                          f"{', '.join(MODELS)}")
    if ppl_tokens < 2:
        raise ConfigError(f"perplexity needs >= 2 tokens (got {ppl_tokens})")
    if sentences is not None and sentences < 1:
        raise ConfigError(f"'sentences' must be >= 1 (got {sentences})")
    hardware = hardware or DEFAULT_PRESET
    use_mini, use_smol = "minilm" in models, "smollm2" in models
    calib = calibration_sentences()
    if use_mini:
        mini, mtok = minilm_weights(), minilm_tokenizer()
        evals = eval_sentences()[:sentences]
        mini_cal = calibrate_minilm(mini, calib)
        reference = sentence_embeddings(mini, mtok, evals)
    if use_smol:
        smol, stok = smollm2_weights(), smollm2_tokenizer()
        ids = np.asarray(stok.encode(eval_text()).ids[:ppl_tokens])
        smol_cal = calibrate_smollm2(smol, calib)
    rows = []
    for scheme in schemes:
        start = time.perf_counter()
        mean_cos = min_cos = ppl = mini_bytes = smol_bytes = None
        if use_mini:
            emb = sentence_embeddings(mini, mtok, evals, make_linears(mini, scheme, mini_cal))
            cos = np.sum(emb.astype(np.float64) * reference, axis=-1)
            mean_cos, min_cos = float(cos.mean()), float(cos.min())
            mini_bytes = weight_footprint_bytes(mini.card, scheme)
        if use_smol:
            ppl = perplexity(smol, ids, make_linears(smol, scheme, smol_cal))
            smol_bytes = weight_footprint_bytes(smol.card, scheme)
        e2e = (_end_to_end(scheme, mini if use_mini else None, mtok if use_mini else None,
                           evals if use_mini else None, mini_cal if use_mini else None,
                           reference if use_mini else None, smol if use_smol else None,
                           ids if use_smol else None, smol_cal if use_smol else None, hardware,
                           backend)
               if end_to_end else (None, None, None))
        seconds = time.perf_counter() - start
        row = AccuracyRow(
            scheme=scheme.label,
            minilm_mean_cosine=mean_cos,
            minilm_min_cosine=min_cos,
            smollm2_perplexity=ppl,
            minilm_linear_bytes=mini_bytes,
            smollm2_linear_bytes=smol_bytes,
            seconds=seconds,
            minilm_sentences_per_s=(simulated_throughput("minilm", scheme, hardware)
                                    if throughput and use_mini else None),
            smollm2_tokens_per_s=(simulated_throughput("smollm2", scheme, hardware)
                                  if throughput and use_smol else None),
            e2e_minilm_mean_cosine=e2e[0], e2e_minilm_min_cosine=e2e[1],
            e2e_smollm2_perplexity=e2e[2],
        )
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def _end_to_end(scheme: QuantScheme, mini, mtok, evals, mini_cal, reference, smol, ids,
                smol_cal, hardware: str, backend: str
                ) -> tuple[float | None, float | None, float | None]:
    """(mean cosine, min cosine, perplexity) of ``scheme`` with every layer lowered (numpy
    emulation of the kernels); Nones where a model is left out or the format is not lowered."""
    from prodigy_sim.hardware import load_preset
    from prodigy_sim.lowering import matrix_runs
    from prodigy_sim.realmodels._pipeline import pipeline_embeddings, pipeline_nll

    if scheme.storage is None or not matrix_runs(scheme.storage.fmt, load_preset(hardware)):
        return None, None, None
    mean_cos = min_cos = ppl = None
    if mini is not None:
        emb = pipeline_embeddings(mini, mtok, evals, scheme, backend=backend,
                                  calibration=mini_cal, hardware=hardware)
        cos = np.sum(emb.astype(np.float64) * reference, axis=-1)
        mean_cos, min_cos = float(cos.mean()), float(cos.min())
    if smol is not None:
        ppl = float(np.exp(pipeline_nll(smol, ids, scheme, backend=backend,
                                        calibration=smol_cal, hardware=hardware).mean()))
    return mean_cos, min_cos, ppl


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
