"""A kernel's output written in place of one of its inputs (``Kernel.in_place``: a linear
layer's residual ``R`` and its output ``Y``): the residency plan keeps the two activations in one
buffer where the read is the input's last, and the timing engine counts the buffer once."""

from types import SimpleNamespace

import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.isa import validate
from prodigy_sim.lowering import lower_model
from prodigy_sim.lowering._linear import LinearMapping, linear_kernel
from prodigy_sim.lowering._residency import Dataflow, _Flows
from prodigy_sim.models import Scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.timing import default_l3_bytes, isa_params, simulate

CHIP = load_preset("prodigy-t16128")


def _op(reads=(), writes=(), in_place=()):
    return SimpleNamespace(flow=Dataflow(tuple(reads), tuple(writes), (), tuple(in_place)))


def _layers(head_reads: str) -> list:
    """A pre-norm layer (repeated) and a head reading ``head_reads``: the residual stream
    ``h`` -> ``h1`` (in place, at ``o_proj``) -> ``h`` (in place, at ``down_proj``)."""
    layer = [_op([("X", "h")], [("Y", "hn")]),                          # 0 attn_norm
             _op([("X", "hn"), ("R", "h")], [("Y", "h1")], [("R", "Y")]),  # 1 o_proj
             _op([("X", "h1")], [("Y", "hn1")]),                        # 2 mlp_norm
             _op([("X", "hn1"), ("R", "h1")], [("Y", "h")], [("R", "Y")])]  # 3 down_proj
    return [(layer, 4), ([_op([("X", head_reads)], [("Y", "hf")])], 1)]


def test_the_residual_stream_shares_one_buffer():
    g = _Flows(_layers("h"))
    sizes = {(n, key): 100 for n, key, _, _ in g.activations()}
    pairs = g.in_place(sizes)
    # o_proj (1) writes h1 over the h of the layer before, down_proj (3) h over h1; the head
    # reads the last layer's h, which no o_proj overwrites
    assert pairs[(3, "h")] == {1: (1, "h1"), 3: (1, "h1")}
    assert pairs[(1, "h1")] == {1: (3, "h"), 3: (3, "h")}


def test_no_buffer_is_shared_where_a_later_read_needs_the_input():
    # the head reads h1 of the last layer, which its down_proj would have overwritten
    g = _Flows(_layers("h1"))
    sizes = {(n, key): 100 for n, key, _, _ in g.activations()}
    pairs = g.in_place(sizes)
    assert pairs[(1, "h1")] == {1: (3, "h")}
    assert pairs[(3, "h")] == {1: (1, "h1")}
    # a reader after the in-place op in the same layer
    stages = [([_op([], [("Y", "a")]),
                _op([("R", "a")], [("Y", "b")], [("R", "Y")]),
                _op([("X", "a"), ("Y", "b")], [])], 1)]
    g = _Flows(stages)
    assert g.in_place({(0, "a"): 8, (1, "b"): 8}) == {}
    # without that reader: a pair, if the sizes agree
    g = _Flows([(stages[0][0][:2] + [_op([("X", "b")], [])], 1)])
    assert g.in_place({(0, "a"): 8, (1, "b"): 16}) == {}
    assert g.in_place({(0, "a"): 8, (1, "b"): 8}) == {(0, "a"): {1: (1, "b")},
                                                      (1, "b"): {1: (0, "a")}}


def test_a_residual_linear_declares_its_output_in_place():
    mp = LinearMapping(64, 1, 64, 1, 128, 1, 1)
    w = Storage.of("tai4")
    kern = linear_kernel("l", 64, 64, 128, weight=w, cores=1, mapping=mp, epilogue="residual")
    assert kern.in_place == (("R", "Y"),)
    for epi in ("store", "quant"):
        assert linear_kernel("l", 64, 64, 128, weight=w, cores=1, mapping=mp,
                             epilogue=epi).in_place == ()
    # starting from SpQR's float32 products, it reads no R
    assert linear_kernel("l", 64, 64, 128, weight=w, cores=1, mapping=mp, epilogue="residual",
                         init=True).in_place == ()


def test_the_timing_engine_counts_an_aliased_tensor_once():
    sc = Scenario(model="llama-2-7b", phase="decode", batch=1, context_length=2048)
    lm = lower_model(sc.card(), sc, CHIP)
    op = next(o for o in lm.stages[0].ops if o.name == "o_proj")
    r = op.residency
    assert r.aliased == {"Y"} and {"R", "Y"} <= r.resident
    assert op.flow.in_place == (("R", "Y"),)
    prog = op.kernel.program
    lay = validate(prog, isa_params(CHIP))
    sizes = {t: p.nbytes for t, p in lay.tensors.items()}
    assert r.onchip_bytes(sizes) == sum(sizes[t] for t in r.resident - {"Y"}) + r.held_bytes
    onchip = default_l3_bytes(CHIP, op.kernel.cores, lay)
    # other data that fills the on-chip memory exactly when Y shares R's buffer
    held = onchip - sum(sizes[t] for t in r.resident) + sizes["Y"]
    with pytest.raises(ConfigError, match="resident data takes"):
        simulate(prog, CHIP, cores=op.kernel.cores, resident=r.resident, held_bytes=held)
    res = simulate(prog, CHIP, cores=op.kernel.cores, resident=r.resident, held_bytes=held,
                   aliased=("Y",))
    assert res.cycles > 0
    with pytest.raises(ConfigError, match="'aliased'"):
        simulate(prog, CHIP, cores=op.kernel.cores, resident={"X"}, aliased=("Y",))
