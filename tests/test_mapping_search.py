"""The search by simulation over a linear op's cheapest mappings (``mapping_candidates``): the
candidates are the mapper's next cheapest distinct mappings, respect the residency plan, and the
fastest simulated one never makes a model slower."""

import dataclasses
import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import validate
from prodigy_sim.lowering import (
    RESIDENT_SHARE,
    Residency,
    is_mapped_linear,
    lower_model,
    mapping_candidates,
    ranked_mappings,
)
from prodigy_sim.models import Scenario, load_card
from prodigy_sim.simulation import SimMethod, fastest_mapping, simulate_lowered, simulate_op
from prodigy_sim.timing import default_l3_bytes, isa_params

CFG = load_preset("prodigy-t16128")


@pytest.fixture(scope="module")
def minilm():
    """A small encoder on 8 cores: four linear ops per layer, activations kept on chip."""
    card = load_card("all-minilm-l6-v2")
    sc = Scenario(model=card.name, phase="prefill", batch=4, sequence_length=128)
    return lower_model(card, sc, CFG, cores=8)


def _ops(lm):
    return [(st.name, op) for st in lm.stages for op in st.ops]


def test_candidates_are_the_next_cheapest_distinct_mappings(minilm):
    linears = [op for _, op in _ops(minilm) if is_mapped_linear(op)]
    assert len(linears) >= 4
    for op in linears:
        cands = mapping_candidates(op, CFG, 5)
        assert cands[0] is op and 2 <= len(cands) <= 5
        names = [c.kernel.mapping for c in cands]
        assert len(set(names)) == len(names)
        # in the mapper's cost order, the first the mapper's choice
        ranked = ranked_mappings(op)
        assert ranked[0][2].describe() == op.kernel.mapping
        cost = {}
        for _, c, mp in ranked:
            cost.setdefault(mp.describe(), c)
        costs = [cost[n] for n in names]
        assert costs == sorted(costs)
        # a candidate is the same layer: same FLOPs and weights, its own kernel
        assert all(c.flops == op.flops and c.weight_bytes == op.weight_bytes for c in cands)
        assert all(c.rebuild(1).mapping == c.kernel.mapping for c in cands)


def test_other_ops_and_one_candidate_are_the_op_itself(minilm):
    others = [op for _, op in _ops(minilm) if not is_mapped_linear(op)]
    assert others and all(mapping_candidates(op, CFG, 4) == [op] for op in others)
    op = next(op for _, op in _ops(minilm) if is_mapped_linear(op))
    assert mapping_candidates(op, CFG, 1) == [op]
    from prodigy_sim.simulation import RunCache

    runs = RunCache()               # one candidate: the op itself, nothing simulated for it
    assert fastest_mapping(op, CFG, method=SimMethod(), cache=runs) is op and len(runs) == 0
    with pytest.raises(ValueError, match="top"):
        mapping_candidates(op, CFG, 0)


def test_candidates_leave_the_kept_activations_their_share_of_the_l3(minilm):
    params = isa_params(CFG)
    kept_ops = [op for _, op in _ops(minilm)
                if is_mapped_linear(op) and (op.residency.resident or op.residency.held_bytes)]
    assert kept_ops
    for op in kept_ops:
        for c in mapping_candidates(op, CFG, 12)[1:]:
            lay = validate(c.kernel.program, params)
            kept = op.residency.onchip_bytes({t: p.nbytes for t, p in lay.tensors.items()})
            assert kept <= RESIDENT_SHARE * default_l3_bytes(CFG, c.kernel.cores, lay)
    # an op whose kept activations take (nearly) the whole chip admits no other mapping
    op = kept_ops[0]
    full = dataclasses.replace(op, residency=Residency(op.residency.resident, 10 ** 12))
    assert mapping_candidates(full, CFG, 12) == [full]


def test_the_fastest_candidate_never_makes_a_model_slower(minilm):
    base = simulate_lowered(minilm, CFG)
    method = SimMethod(mapping_candidates=3)
    best = simulate_lowered(minilm, CFG, method=method)
    assert best.seconds <= base.seconds
    for a, b in zip(base.stages, best.stages, strict=True):
        for oa, ob in zip(a.ops, b.ops, strict=True):
            assert ob.seconds <= oa.seconds
    # the result's lowered model holds the ops kept, whose own simulation gives their time
    for st, res in zip(best.lowered.stages, best.stages, strict=True):
        for op, r in zip(st.ops, res.ops, strict=True):
            assert op.kernel.mapping == r.mapping
            assert simulate_op(op, CFG, stage=st.name).seconds == r.seconds
    # the search is deterministic, and what it found is one of the candidates
    again = simulate_lowered(minilm, CFG, method=method)
    assert [o.mapping for s in again.stages for o in s.ops] == \
        [o.mapping for s in best.stages for o in s.ops]
    assert again.seconds == best.seconds
    for (name, op), st_op in zip(_ops(minilm), _ops(best.lowered), strict=True):
        kept = fastest_mapping(op, CFG, method=method, stage=name)
        assert kept.kernel.mapping == st_op[1].kernel.mapping
        assert kept.kernel.mapping in [c.kernel.mapping for c in mapping_candidates(op, CFG, 3)]
    assert "3 cheapest" in method.describe() and "cheapest" not in SimMethod().describe()


def test_progress_counts_every_candidate(minilm):
    from prodigy_sim.simulation import sim_kernel_count

    done = []
    simulate_lowered(minilm, CFG, method=SimMethod(mapping_candidates=2), progress=done.append)
    assert sum(done) == sim_kernel_count(minilm, True, 2) > sim_kernel_count(minilm)


def test_cli_mapping_candidates(capsys):
    argv = ["simulate", "--model", "all-minilm-l6-v2", "--batch", "2", "--context", "64",
            "--cores", "8", "--quiet", "--json"]
    assert main(argv) == 0
    base = json.loads(capsys.readouterr().out)
    assert main(argv + ["--mapping-candidates", "2"]) == 0
    two = json.loads(capsys.readouterr().out)
    assert two["seconds"] <= base["seconds"]
    # in worker processes (kernels and candidates submitted ahead): the same report
    assert main(argv + ["--mapping-candidates", "2", "--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == two
    assert main(argv + ["--workers", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == base
    assert "2 cheapest" in json.dumps(two) and "cheapest" not in json.dumps(base)
    assert main(argv + ["--mapping-candidates", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mapping-candidates" in err


def test_more_cores_stay_faster_with_the_search():
    """The search runs per configuration; on BERT-base b8 s128 over 32 / 64 / 128 cores it
    keeps the trend of the default method (more cores, less time) and is never slower than
    it."""
    from prodigy_sim.reports import simulate_scenario

    sc = Scenario(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128)
    searched, default = [], []
    for cores in (32, 64, 128):
        searched.append(simulate_scenario(sc, config=CFG, cores=cores,
                                          mapping_candidates=3).seconds)
        default.append(simulate_scenario(sc, config=CFG, cores=cores).seconds)
    assert searched[0] > searched[1] > searched[2]
    assert all(s <= d for s, d in zip(searched, default, strict=True))


def test_candidates_in_worker_processes_give_the_same_choice(minilm):
    """With ``RunCache(workers=2)`` the candidates' runs are made in parallel: the same
    mappings and times as one process."""
    from prodigy_sim.simulation import RunCache

    method = SimMethod(mapping_candidates=3)
    serial = simulate_lowered(minilm, CFG, method=method)
    with RunCache(workers=2) as cache:
        parallel = simulate_lowered(minilm, CFG, method=method, cache=cache)
        assert cache.submitted > 0
    assert [(o.mapping, o.seconds) for s in parallel.stages for o in s.ops] == \
        [(o.mapping, o.seconds) for s in serial.stages for o in s.ops]
