"""Simulating lowered models: reuse of identical layers and steady-state extrapolation against
the full simulation; LLaMA-2-7B decode against its roofline; the residency plan."""

import dataclasses

import pytest

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import RESIDENT_SHARE, linear_op, lower_model
from prodigy_sim.models import ModelCard, Scenario, load_card, load_scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import (
    STEADY_STATE_BOUND,
    SimMethod,
    simulate_lowered,
    simulate_op,
)
from prodigy_sim.timing import default_l3_bytes, isa_params

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
    once = simulate_lowered(lm, CFG, method=SimMethod(reuse=True))
    every = simulate_lowered(lm, CFG, method=SimMethod(reuse=False))
    assert every.stages[0].simulated_layers == 2 and once.stages[0].simulated_layers == 1
    assert once.seconds == every.seconds
    assert [o.seconds for o in once.stages[0].ops] == [o.seconds for o in every.stages[0].ops]


@pytest.mark.parametrize("shape, cores, extrapolated", [((8192, 4096, 1024), 2, True),
                                                        ((1024, 4096, 512), 4, False)])
def test_steady_state_extrapolation_agrees_with_the_full_unit_loop(shape, cores, extrapolated):
    """GEMMs whose cores run many blocks: the extrapolation (once three successive windows of
    units agree) is within STEADY_STATE_BOUND of simulating every block; a loop that does not
    settle before its units run out is simulated in full."""
    m, n, k = shape
    op = linear_op("g", m, n, k, Storage.of("tai4"), CFG, cores=cores)
    assert op.kernel.per_core_units >= 32
    steady = simulate_op(op, CFG, method=SimMethod(steady_units=2))
    full = simulate_op(op, CFG, method=SimMethod(steady_units=None))
    assert ("steady" in steady.method) == extrapolated and full.method == "full"
    assert steady.seconds == pytest.approx(full.seconds, rel=STEADY_STATE_BOUND)


def test_steady_state_of_a_model_agrees_with_the_full_method():
    card = load_card("all-minilm-l6-v2")
    sc = Scenario(model=card.name, phase="prefill", batch=4, sequence_length=128)
    lm = lower_model(card, sc, CFG, cores=8)
    full = simulate_lowered(lm, CFG, method=SimMethod(steady_units=None))
    steady = simulate_lowered(lm, CFG, method=SimMethod(steady_units=2))
    assert steady.seconds == pytest.approx(full.seconds, rel=STEADY_STATE_BOUND)


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
    assert r.phase == "prefill" and r.forward_pass_s > 0 and r.time_to_first_token_s is None


# ---- residency: activations kept on chip between kernels ---------------------------------------

def _small_bert():
    return Scenario(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128)


def test_small_prefill_keeps_every_activation_on_chip():
    sc = _small_bert()
    lm = lower_model(sc.card(), sc, CFG)
    res = {op.name: op.residency.resident for op in lm.stages[0].ops}
    assert res["qkv_proj"] == {"X", "Y"}
    assert res["attention"] == {"Q", "KC", "VT", "O"}
    assert res["down_proj"] == {"X", "R", "Y"}
    assert res["mlp_norm"] == {"X", "Y", "YS"}
    # weights and gains stay in DDR
    assert all("W" not in r and "G" not in r for r in res.values())


def test_residency_respects_the_on_chip_capacity():
    """A prompt whose activations do not all fit: every op's kept bytes (its own resident
    tensors plus those it holds for others) stay within its share of its on-chip memory -
    RESIDENT_SHARE, or all of it for a linear op mapped for the plan on a multicast grid with
    its input kept on chip (the four linears of a layer here: the QKV projection and the MLP's
    two linears keep their outputs, the attention's output projection its residual input), or
    all but its other inputs' bytes for a norm, RoPE or attention."""
    from prodigy_sim.isa import validate
    from prodigy_sim.lowering._residency import private_rows_share

    sc = Scenario(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048)
    lm = lower_model(sc.card(), sc, CFG)
    kept_somewhere = dropped_somewhere = False
    full = set()
    for st in lm.stages:
        for op in st.ops:
            lay = validate(op.kernel.program, isa_params(CFG))
            own = sum(lay.tensors[t].nbytes
                      for t in op.residency.resident - op.residency.aliased)
            if op.kernel.private_rows:      # a norm, RoPE, attention: all but its other inputs
                assert op.residency.share in (RESIDENT_SHARE, private_rows_share(
                    op.kernel, CFG, lm.cores))
            else:
                assert op.residency.share in (RESIDENT_SHARE, 1.0)
            if op.residency.share == 1.0:
                full.add(op.name)
                assert "multicast" in op.kernel.mapping and "X" in op.residency.resident
            cap = op.residency.share * default_l3_bytes(CFG, lm.cores, lay)
            assert op.residency.held_bytes + own <= cap * 1.001
            reads = {t for t, _ in op.flow.reads}
            kept_somewhere |= bool(reads & op.residency.resident)
            dropped_somewhere |= bool(reads - op.residency.resident)
    assert kept_somewhere and dropped_somewhere
    assert full == {"qkv_proj", "o_proj", "gate_up", "down_proj"}


def test_resident_activations_never_touch_ddr_and_save_time():
    sc = _small_bert()
    lm = lower_model(sc.card(), sc, CFG)
    on = simulate_lowered(lm, CFG)
    off = simulate_lowered(lm, CFG, method=SimMethod(l3=False))
    for a, b in zip(on.stages[0].ops, off.stages[0].ops, strict=True):
        assert a.compulsory_bytes <= b.compulsory_bytes
        assert a.ddr_bytes <= b.ddr_bytes
    norm = next(o for o in on.stages[0].ops if o.name == "mlp_norm")
    assert norm.ddr_bytes < 4096 * 4        # only the gains: X, Y and YS stay on chip
    assert on.seconds < off.seconds


def test_no_l3_means_no_residency():
    sc = _small_bert()
    lm = lower_model(sc.card(), sc, CFG, l3=False)
    assert all(not op.residency.resident for st in lm.stages for op in st.ops)
    lm_on = lower_model(sc.card(), sc, CFG)
    stripped = dataclasses.replace(lm_on, stages=tuple(
        dataclasses.replace(st, ops=tuple(dataclasses.replace(op, residency=type(op.residency)())
                                          for op in st.ops)) for st in lm_on.stages))
    a = simulate_lowered(stripped, CFG, method=SimMethod(l3=True))
    b = simulate_lowered(lm_on, CFG, method=SimMethod(l3=True))
    assert b.seconds < a.seconds


@pytest.mark.parametrize("kind", ["linear", "model"])
def test_a_capped_kernel_is_a_prefix_of_the_full_one(kind):
    """The steady-state runs time prefixes of the full unit loop: a kernel capped at (or
    above) its own unit count runs exactly the full program's instructions, to the cycle. (A
    cap that added instructions shifted every core by two cycles, which moved the 70B
    prefill's qkv_proj by 4% and made its extrapolation disagree with the full run.)"""
    from prodigy_sim.timing import simulate as simulate_program

    if kind == "linear":
        ops = [linear_op("g", 1024, 4096, 512, Storage.of("tai4"), CFG, cores=4)]
    else:
        card = _two_layer_smollm()
        sc = Scenario(model="smollm2-135m", phase="decode", batch=2, context_length=256)
        ops = list(lower_model(card, sc, CFG, cores=16).stages[0].ops)
    ops = [op for op in ops if op.kernel.uniform_units]    # the ones it extrapolates
    assert len(ops) >= (1 if kind == "linear" else 4)
    for op in ops:
        k, n = op.kernel, op.kernel.per_core_units
        full = simulate_program(k.program, CFG, cores=k.cores)
        for cap in (n, n + 3):
            capped = op.rebuild(cap)
            run = simulate_program(capped.program, CFG, cores=k.cores)
            assert (run.cycles, run.dram_bytes) == (full.cycles, full.dram_bytes), (op.name, cap)


def test_steady_extrapolation_needs_steady_windows_and_the_compulsory_bytes():
    """``steady_extrapolation``: three windows of equal per-unit time extrapolate the last
    window's rate; windows that disagree, a first window shorter than the refresh window, or
    an extrapolation moving fewer DDR bytes than the op must are no steady state."""
    from prodigy_sim.simulation._driver import steady_extrapolation

    # u = 2: runs of 2, 4, 8, 16 units at 100 cycles and 10 bytes a unit (after a 50-cycle,
    # 5-byte start), n = 64 units
    runs = [(50 + 100 * x, 5 + 10 * x) for x in (2, 4, 8, 16)]
    assert steady_extrapolation(runs, 2, 64, 100, 0) == (50 + 100 * 64, 5 + 10 * 64)
    assert steady_extrapolation(runs, 2, 64, 100, 5 + 10 * 64) is not None
    assert steady_extrapolation(runs, 2, 64, 100, 6 + 10 * 64) is None      # too few bytes
    assert steady_extrapolation(runs, 2, 64, 201, 0) is None                  # short window
    slow_start = [(c + (150 if x == 0 else 0), d) for x, (c, d) in enumerate(runs)]
    assert steady_extrapolation(slow_start, 2, 64, 100, 0) is None            # not steady


@pytest.mark.slow
def test_an_extrapolation_below_the_compulsory_bytes_is_not_taken():
    """LLaMA-3-8B's ``gate_up`` (batch 8 x 2048) on a 32x4 multicast grid with K steps of 256,
    its input on chip: its windows of 4-8 and 8-16 units per core agree in time, but their
    rate of DDR bytes extrapolates to 298.3 MB for the 304.6 MB of weights it must read (and
    4% slow against every unit). The default method now simulates every unit there."""
    from prodigy_sim.lowering import LinearMapping
    from prodigy_sim.lowering._candidates import with_mapping

    sc = Scenario(model="llama-3-8b", phase="prefill", batch=8, sequence_length=2048)
    lm = lower_model(sc.card(), sc, CFG)
    op = next(o for o in lm.stages[0].ops if o.name == "gate_up")
    alt = with_mapping(op, LinearMapping(64, 2, 64, 2, 256, 32, 4, "nm", True))
    alt = dataclasses.replace(alt, residency=dataclasses.replace(op.residency,
                                                                 resident=frozenset({"X"})))
    r = simulate_op(alt, CFG)
    assert r.ddr_bytes >= r.compulsory_bytes
    assert r.method == "full"
