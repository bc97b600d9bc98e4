"""Lowering: FLOP formulas, analytic counts against the ISA, validation of every card, and the
functional core on a small lowered linear layer."""

import numpy as np
import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import expand, validate
from prodigy_sim.lowering import (
    Storage,
    attention_flops,
    attention_kernel,
    linear_flops,
    linear_kernel,
    lower_model,
    norm_kernel,
    rope_kv_kernel,
)
from prodigy_sim.models import Scenario, card_names, load_card
from prodigy_sim.timing import isa_params, roofline_bound

CFG = load_preset("prodigy-t16128")


def _flops(lm):
    return {(s.name, o.name): o for s in lm.stages for o in s.ops}


def test_formulas():
    assert linear_flops(3, 5, 7) == 2 * 3 * 5 * 7
    assert attention_flops(2, 3, 5, 7, 11) == 4 * 2 * 3 * 5 * 7 * 11


@pytest.mark.parametrize("model,phase,batch,length", [
    ("llama-2-7b", "decode", 4, 2048), ("llama-2-7b", "prefill", 2, 256),
    ("llama-3-8b", "decode", 2, 1024), ("llama-3-8b", "prefill", 1, 512),
    ("smollm2-135m", "decode", 3, 512), ("bert-base-uncased", "prefill", 8, 128),
])
def test_op_flops_are_the_standard_formulas(model, phase, batch, length):
    card = load_card(model)
    key = "context_length" if phase == "decode" else "sequence_length"
    sc = Scenario(model=model, phase=phase, batch=batch, **{key: length})
    lm = lower_model(card, sc, CFG)
    h, f, d = card.hidden_size, card.intermediate_size, card.head_size
    nh, kv = card.num_attention_heads, card.kv_heads
    t = batch * (1 if phase == "decode" else length)
    ops = {o.name: o for o in lm.stages[0].ops}
    assert ops["qkv_proj"].flops == 2 * t * (nh + 2 * kv) * d * h
    assert ops["o_proj"].flops == 2 * t * h * nh * d
    mlp = 3 if card.mlp == "gated" else 2
    assert sum(ops[n].flops for n in ops if n in ("gate_up", "up_proj", "down_proj")) \
        == mlp * 2 * t * h * f
    q = 1 if phase == "decode" else length
    assert ops["attention"].flops == 4 * batch * q * length * nh * d
    # what the programs execute: linear layers exactly the formula (no padding here)
    for name in ("qkv_proj", "o_proj", "down_proj"):
        assert ops[name].kernel.mma_flops == ops[name].flops
    att = ops["attention"].kernel.mma_flops
    if phase == "decode" or card.family == "bert":
        assert att == ops["attention"].flops
    else:                                   # causal: the block lower triangle only
        nb = length // 64
        assert att * 2 * nb == ops["attention"].flops * (nb + 1)
    total = sum(o.flops for o in ops.values()) * card.num_layers
    assert lm.flops == total + sum(o.flops for o in lm.stages[-1].ops) * (
        lm.stages[-1].name == "head")


def _mma_flops(program, cores):
    total = 0
    for cid in range(cores):
        for step in expand(program, cid, cores):
            ins = step.instruction
            if ins.opcode in ("MMA", "MMA.SP"):
                mm, nn = program.acc[ins.operands[0]].shape
                total += 2 * mm * nn * program.tile[ins.operands[1]].shape[1]
    return total


def _check_counts(k, cores):
    validate(k.program, isa_params(CFG))
    _, _, nbytes = roofline_bound(k.program, CFG, cores=cores)
    assert nbytes == k.dma_bytes
    assert _mma_flops(k.program, cores) == k.mma_flops


@pytest.mark.parametrize("epilogue", ["store", "quant", "residual", "bias", "bias_store",
                                      "bias_residual", "gelu", "gated"])
@pytest.mark.parametrize("shape", [(1, 512, 640, 8, 1, 1, 64, None),
                                   (128, 256, 384, 4, 2, 2, 32, (8, 4))])
def test_linear_counts_match_the_isa(epilogue, shape):
    m, n, k, p, am, an, nt, sp = shape
    kern = linear_kernel("t", m, n, k, weight=Storage.of("tai2", sparsity=sp), cores=p,
                         epilogue=epilogue, am=am, an=an, nt=nt, kt=256)
    _check_counts(kern, p)
    assert kern.mma_flops == 2 * m * n * k * (2 if epilogue == "gated" else 1)


@pytest.mark.parametrize("kw", [
    dict(batch=2, heads=4, kv_heads=2, head_dim=128, queries=1, context=200, causal=True),
    dict(batch=1, heads=4, kv_heads=2, head_dim=64, queries=320, context=320, causal=True),
    dict(batch=1, heads=2, kv_heads=2, head_dim=64, queries=256, context=256, causal=True),
    dict(batch=2, heads=2, kv_heads=2, head_dim=32, queries=128, context=128, causal=False),
])
def test_attention_counts_match_the_isa(kw):
    _check_counts(attention_kernel("a", cores=4, **kw), 4)


def test_vector_counts_match_the_isa():
    for k in (norm_kernel("n", 8, 576, kind="rmsnorm", eps=1e-5, cores=4),
              norm_kernel("n", 128, 768, kind="layernorm", eps=1e-12, cores=4),
              rope_kv_kernel("r", batch=2, tokens=1, heads=4, kv_heads=2, head_dim=128,
                             position=199, context=200, rope=True, cores=4),
              rope_kv_kernel("r", batch=1, tokens=128, heads=4, kv_heads=2, head_dim=64,
                             position=0, context=128, rope=False, cores=4)):
        _check_counts(k, 4)


def _default(card):
    if card.is_decoder:
        return Scenario(model=card.name, phase="decode", batch=1, context_length=2048)
    return Scenario(model=card.name, phase="prefill", batch=8, sequence_length=128)


@pytest.mark.parametrize("name", [n for n in card_names() if not n.startswith("switch")])
def test_every_program_of_every_card_validates(name):
    card = load_card(name)
    lm = lower_model(card, _default(card), CFG)
    params = isa_params(CFG)
    kinds = set()
    for stage in lm.stages:
        for op in stage.ops:
            validate(op.kernel.program, params)
            kinds.add(op.name)
            assert len(op.kernel.program.instructions) < 400      # loops, not unrolled tiles
    assert {"qkv_proj", "attention", "o_proj", "down_proj"} <= kinds
    assert sum(s.repeat for s in lm.stages if s.name != "head") == card.num_layers


def test_prefill_of_a_decoder_validates_too():
    card = load_card("llama-2-70b")
    sc = Scenario(model=card.name, phase="prefill", batch=1, sequence_length=2048,
                  sparsity="8:4", formats={"weights": "tai2"})
    lm = lower_model(card, sc, CFG)
    for stage in lm.stages:
        for op in stage.ops:
            validate(op.kernel.program, isa_params(CFG))


def test_switch_and_bad_formats_are_refused():
    card = load_card("switch-1.6t")
    with pytest.raises(ConfigError, match="footprint"):
        lower_model(card, Scenario(model=card.name, phase="decode", context_length=16), CFG)
    llama = load_card("smollm2-135m")
    sc = Scenario(model=llama.name, phase="decode", context_length=64,
                  formats={"kv_cache": "bfloat16"})
    with pytest.raises(ConfigError, match="kv_cache"):
        lower_model(llama, sc, CFG)
    sc = Scenario(model=llama.name, phase="decode", context_length=64,
                  formats={"weights": "float32"})
    with pytest.raises(ConfigError, match="matrix unit"):
        lower_model(llama, sc, CFG)


def test_lowered_linear_runs_bit_exactly_on_the_functional_core():
    functional = pytest.importorskip("prodigy_sim.functional")
    from prodigy_sim.functional import quantize_decl

    rng = np.random.default_rng(7)
    m, n, k, cores = 2, 128, 384, 2
    kern = linear_kernel("t", m, n, k, weight=Storage.of("tai4"), cores=cores, nt=32,
                         epilogue="store", kt=128)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.1
    state = functional.run(kern.program, ddr={"X": x, "W": w}, cores=cores)
    y = np.asarray(state.tensor("Y"))
    qx = quantize_decl(x, kern.program.tensor["X"])
    qw = quantize_decl(w, kern.program.tensor["W"])
    ref = functional.matmul(qx, qw)
    expect = functional.from_bf16(functional.to_bf16(ref))
    assert np.array_equal(y.view(np.uint32), expect.astype(np.float32).view(np.uint32))
    # and numpy on the dequantized operands, within the FP32/BF16 rounding
    approx = qx.dequantize() @ qw.dequantize().T
    assert np.allclose(y, approx, rtol=1e-2, atol=1e-2)
