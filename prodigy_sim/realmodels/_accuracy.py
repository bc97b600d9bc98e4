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
           "accuracy_table", "format_table"]


@dataclass(frozen=True)
class AccuracyRow:
    """One row of the accuracy table (see the module docstring)."""

    scheme: str
    minilm_mean_cosine: float
    minilm_min_cosine: float
    smollm2_perplexity: float
    minilm_linear_bytes: int
    smollm2_linear_bytes: int
    seconds: float

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


def accuracy_table(schemes: list[QuantScheme] | None = None, ppl_tokens: int = 512,
                   progress: Callable[[AccuracyRow], None] | None = None) -> list[AccuracyRow]:
    """Measure every scheme (default :func:`table_schemes`) on both models.

    ``progress`` is called with each row as soon as it is measured.
    """
    schemes = schemes if schemes is not None else table_schemes()
    mini, smol = minilm_weights(), smollm2_weights()
    mtok, stok = minilm_tokenizer(), smollm2_tokenizer()
    sentences = eval_sentences()
    ids = np.asarray(stok.encode(eval_text()).ids[:ppl_tokens])
    calib = calibration_sentences()
    mini_cal, smol_cal = calibrate_minilm(mini, calib), calibrate_smollm2(smol, calib)
    reference = sentence_embeddings(mini, mtok, sentences)
    rows = []
    for scheme in schemes:
        start = time.perf_counter()
        emb = sentence_embeddings(mini, mtok, sentences, make_linears(mini, scheme, mini_cal))
        cos = np.sum(emb.astype(np.float64) * reference, axis=-1)
        ppl = perplexity(smol, ids, make_linears(smol, scheme, smol_cal))
        row = AccuracyRow(
            scheme=scheme.label,
            minilm_mean_cosine=float(cos.mean()),
            minilm_min_cosine=float(cos.min()),
            smollm2_perplexity=ppl,
            minilm_linear_bytes=weight_footprint_bytes(mini.card, scheme),
            smollm2_linear_bytes=weight_footprint_bytes(smol.card, scheme),
            seconds=time.perf_counter() - start,
        )
        rows.append(row)
        if progress is not None:
            progress(row)
    return rows


def format_table(rows: list[AccuracyRow]) -> str:
    """Markdown table of ``rows``."""
    head = ("| weights (FP8 E4M3 activations) | MiniLM mean cos | MiniLM min cos | "
            "SmolLM2 perplexity | MiniLM linear bytes | SmolLM2 linear bytes |")
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        name = "float32 (float32 activations)" if r.scheme == "fp32" else r.scheme
        lines.append(f"| {name} | {r.minilm_mean_cosine:.5f} | {r.minilm_min_cosine:.5f} | "
                     f"{r.smollm2_perplexity:.3f} | {r.minilm_linear_bytes:,} | "
                     f"{r.smollm2_linear_bytes:,} |")
    return "\n".join(lines)
