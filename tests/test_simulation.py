"""Simulating lowered models: reuse of identical layers, representative core subsets and
steady-state extrapolation against the full simulation; LLaMA-2-7B decode against its roofline."""

import pytest

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import lower_model
from prodigy_sim.models import ModelCard, Scenario, load_card, load_scenario
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import simulate_lowered as simulate_model

CFG = load_preset("prodigy-t16128")


def _two_layer_smollm():
    data = load_card("smollm2-135m").model_dump()
    data["num_layers"] = 2
    return ModelCard.model_validate(data)


def test_reuse_of_identical_layers_equals_simulating_every_layer():
    card = _two_layer_smollm()
    sc = Scenario(model="smollm2-135m", phase="decode", batch=2, context_length=256)
    lm = lower_model(card, sc, CFG, cores=16)
    assert [s.layers for s in lm.stages] == [(0, 1), ()]
    once = simulate_model(lm, CFG, reuse=True)
    every = simulate_model(lm, CFG, reuse=False)
    assert every.stages[0].simulated_layers == 2 and once.stages[0].simulated_layers == 1
    assert once.seconds == every.seconds
    assert [o.seconds for o in once.stages[0].ops] == [o.seconds for o in every.stages[0].ops]


def test_core_subset_agrees_with_the_full_chip():
    card = load_card("smollm2-135m")
    sc = Scenario(model=card.name, phase="decode", batch=4, context_length=512)
    lm = lower_model(card, sc, CFG, cores=32)
    full = simulate_model(lm, CFG)
    sub = simulate_model(lm, CFG, core_subset=8)
    assert sub.settings["core_subset"] == 8
    assert sub.seconds == pytest.approx(full.seconds, rel=0.10)


def test_steady_state_extrapolation_agrees_with_the_full_unit_loop():
    card = load_card("all-minilm-l6-v2")
    sc = Scenario(model=card.name, phase="prefill", batch=4, sequence_length=128)
    lm = lower_model(card, sc, CFG, cores=8)
    full = simulate_model(lm, CFG)
    steady = simulate_model(lm, CFG, steady_units=2)
    assert any("steady" in o.method for s in steady.stages for o in s.ops)
    assert steady.seconds == pytest.approx(full.seconds, rel=0.10)


def test_llama2_7b_decode_is_memory_bound_and_below_its_roofline():
    sc = Scenario(model="llama-2-7b", phase="decode", batch=1, context_length=2048)
    r = simulate_scenario(sc, config=CFG)
    assert r.bound == "memory"
    peak_tokens = CFG.peak_ddr_bandwidth_bytes_per_s / r.ideal_bytes
    assert r.tokens_per_s <= peak_tokens
    assert r.tokens_per_s <= r.roofline_tokens_per_s
    assert r.seconds >= r.program_roofline_s
    for op in r.ops:
        assert op["seconds"] >= op["roofline_seconds"]
    assert r.fits


def test_builtin_scenario_runs():
    r = simulate_scenario(load_scenario("bert-base-prefill-fp8"), config=CFG)
    assert r.phase == "prefill" and r.time_to_first_token_s > 0
