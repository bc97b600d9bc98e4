"""Mixture-of-experts timing: the routing models' closed forms, expert weight traffic checked by
hand, MoE decode against dense models of equal active and equal total parameters, the switch
encoder-decoder lowering, and the CLI's routing flags."""

import json
import math
from pathlib import Path

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import emulate_kernel, lower_model
from prodigy_sim.models import Routing, Scenario, load_card, parse_card, parse_scenario
from prodigy_sim.simulation import simulate

CFG = load_preset("prodigy-t16128")
H, F, E, K = 4096, 1024, 8, 2
TAI4_BYTES = 4.25 / 8          # tai4: 4-bit codes + an 8-bit E8M0 scale per 32 weights


def _card(name: str, f: int, experts: int = 0, top_k: int = 1):
    data = dict(name=name, family="llama", source="a test card (not a published model)",
                hidden_size=H, intermediate_size=f, num_layers=1, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=1024, max_position_embeddings=4096,
                norm="rmsnorm", norm_eps=1e-5, activation="silu", mlp="gated",
                position_embedding="rope", rope_theta=1e4)
    if experts:
        data.update(num_experts=experts, experts_per_token=top_k)
    return parse_card(data)


MOE = _card("tiny-moe", F, E, K)


def _decode(**kw):
    return Scenario(model="unused", phase="decode", context_length=256, **kw)


def _ops(lm):
    return {op.name: op for st in lm.stages for op in st.ops}


# --- routing models ----------------------------------------------------------------------------

@pytest.mark.parametrize("tokens", [1, 2, 5, 64, 1000])
def test_uniform_experts_hit_is_the_closed_form(tokens):
    hit = Routing().experts_hit(tokens, K, E)
    assert hit == pytest.approx(E * (1 - (1 - K / E) ** tokens), rel=1e-12)


def test_more_tokens_hit_more_experts_and_skew_hits_fewer():
    uni = [Routing().experts_hit(t, 1, 2048) for t in (1, 8, 64, 512, 4096)]
    assert uni[0] == pytest.approx(1.0) and all(a < b for a, b in zip(uni, uni[1:], strict=False))
    zipf = Routing(model="zipf", zipf_exponent=1.0)
    assert zipf.experts_hit(512, 1, 2048) < Routing().experts_hit(512, 1, 2048)
    # one token with top-k always picks exactly k experts, skewed or not
    assert zipf.experts_hit(1, K, E) == pytest.approx(K)


def test_trace_counts_distinct_experts_and_cycles():
    r = Routing(model="trace", trace=((0, 1), (0, 2), (3, 1)))
    assert r.experts_hit(2, 2, 8) == 3 and r.experts_hit(3, 2, 8) == 4
    assert r.loads(4, 2, 8)[:4] == [3, 3, 1, 1]          # row 0 again for the 4th token
    assert r.capacity(4, 2, 8) == math.ceil(1.25 * 8 / 8)
    assert Routing(model="trace", trace=r.trace, capacity_factor=None).capacity(4, 2, 8) == 3
    with pytest.raises(ConfigError, match="row 1"):
        Routing(model="trace", trace=((0, 1), (2, 2))).check(2, 8)


def test_routing_options_are_checked():
    with pytest.raises(ValueError, match="zipf_exponent"):
        Routing(model="zipf")
    with pytest.raises(ConfigError, match="give uniform"):
        Routing.from_spec("powerlaw")
    assert Routing.from_spec("zipf:1.5", "none").capacity_factor is None
    with pytest.raises(ConfigError, match="no experts"):
        parse_scenario({"model": "llama-2-7b", "phase": "decode", "context_length": 8,
                        "routing": {"model": "zipf", "zipf_exponent": 1.0}})
    with pytest.raises(ConfigError, match="trace"):
        parse_scenario({"model": "mixtral-8x7b", "phase": "decode", "context_length": 8,
                        "routing": {"model": "trace", "trace": [[0, 9]]}})


# --- lowering ----------------------------------------------------------------------------------

def test_expert_weight_traffic_by_hand():
    """Decode of one token, top-2 of 8: the expert kernels stream the 2 used experts' weights
    (gate, up, down: 3 x F x H tai4 weights each) and nothing else but their activations."""
    lm = lower_model(MOE, _decode(), CFG)
    assert lm.moe and "2.00 experts" in lm.moe[-1]
    ops = _ops(lm)
    expert = F * H * TAI4_BYTES
    assert ops["experts_gate_up"].weight_bytes == 2 * K * expert
    assert ops["experts_down"].weight_bytes == K * expert
    sim = simulate(lm, CFG)
    res = {o.name: o for st in sim.stages for o in st.ops}
    for name, n_mat, x_elems, y_bytes in (
            ("experts_gate_up", 2, H, K * F * 1.0),        # X (1, H) FP8, Y (1, 2F) FP8
            ("experts_down", 1, F, K * H * 2.0)):          # X (1, F) FP8, Y (1, 2H) BF16
        w = n_mat * K * expert
        act = 2 * x_elems + 2 * y_bytes                    # generous: scales, partial lines
        assert w <= res[name].ddr_bytes <= w + act, name
    # prefill: 64 tokens hit (almost) every expert; weight bytes follow the experts hit
    pre = lower_model(MOE, Scenario(model="unused", phase="prefill", sequence_length=64), CFG)
    used = math.ceil(Routing().experts_hit(64, K, E) - 1e-9)
    assert _ops(pre)["experts_down"].weight_bytes == used * expert


def test_moe_timing_kernels_are_not_emulated():
    route = _ops(lower_model(MOE, _decode(), CFG))["route"].kernel
    with pytest.raises(ConfigError, match="not emulated"):
        emulate_kernel(route, {})


def test_moe_decode_between_dense_active_and_dense_total():
    """Top-2 of 8 experts of width F: slower than a dense model of width 2F (same active
    weights, plus router, dispatch and combine), faster than one of width 8F (every expert)."""
    t = {c.name: simulate(lower_model(c, _decode(), CFG), CFG).seconds
         for c in (MOE, _card("dense-active", K * F), _card("dense-all", E * F))}
    assert t["dense-active"] < t["tiny-moe"] < t["dense-all"]


def test_routing_model_changes_the_lowered_experts():
    trace = {"model": "trace", "trace": [[i % E, (i + 1) % E] for i in range(0, 6, 2)]}
    lm = lower_model(MOE, Scenario(model="unused", phase="prefill", sequence_length=32,
                                   routing=trace), CFG)
    # 32 tokens cycle through 3 rows using experts 0..5: 6 experts lowered
    assert _ops(lm)["experts_down"].weight_bytes == 6 * F * H * TAI4_BYTES
    assert "trace of 3 tokens" in lm.moe[-1]


def test_switch_lowers_decoder_only_in_decode_and_encoder_too_in_prefill():
    card = load_card("switch-1.6t")
    dec = lower_model(card, Scenario(model=card.name, phase="decode", context_length=64), CFG)
    assert sum(s.repeat for s in dec.stages if s.name != "head") == card.decoder_layers
    names = {op.name for s in dec.stages for op in s.ops}
    assert {"cross_attention", "router", "experts_up", "combine"} <= names
    assert "cross_kv" not in names                  # decode reads the encoder's cached K/V
    # one token, top-1: one expert's up and down (2 x 6144 x 2080 tai4) per decoder layer
    up = _ops(dec)["experts_up"].weight_bytes
    assert up == 6144 * 2080 * TAI4_BYTES
    pre = lower_model(card, Scenario(model=card.name, phase="prefill", sequence_length=64),
                      CFG)
    assert sum(s.repeat for s in pre.stages if s.layers) == card.num_layers
    assert "cross_kv" in {op.name for s in pre.stages for op in s.ops}
    with pytest.raises(ConfigError, match="encoder_length"):
        lower_model(card, Scenario(model=card.name, phase="prefill", sequence_length=64,
                                   encoder_length=32), CFG)


def test_cli_simulates_a_moe_card_with_a_routing_flag(tmp_path, capsys):
    path = tmp_path / "tiny-moe.json"
    path.write_text(json.dumps(MOE.model_dump()))
    rc = main(["simulate", "--model", str(path), "--context", "64", "--routing", "zipf:1.2",
               "--capacity-factor", "none", "--quiet", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and "Zipf-skewed routing (exponent 1.2), dropless" in out["routing"]
    assert main(["simulate", "--model", str(path), "--routing", "zipf"]) == 2
    assert "zipf_exponent" in capsys.readouterr().err


DOC = (Path(__file__).parent.parent / "docs" / "lowering.md").read_text()


@pytest.mark.parametrize(("model", "kw"), [
    ("mixtral-8x7b", dict(phase="decode", batch=1, context_length=2048)),
    ("switch-1.6t", dict(phase="decode", batch=1, context_length=512)),
])
def test_doc_table_cells_recomputed(model, kw):
    """The lowering-side cells of the measured table (bytes streamed per pass, experts hit)."""
    length = kw.get("context_length")
    row = next(ln for ln in DOC.splitlines()
               if ln.startswith(f"| {model} | {kw['phase']} | {kw['batch']} | {length} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    lm = lower_model(load_card(model), Scenario(model=model, **kw), CFG)
    expert = sum(op.weight_bytes * st.repeat for st in lm.stages for op in st.ops
                 if op.name.startswith("experts_"))
    assert cells[6] == f"{lm.weight_bytes / 1e9:,.3f}" and cells[7] == f"{expert / 1e9:,.3f}"
    assert f"hit {cells[8]} experts" in lm.moe[-1]
