"""VGATHER and VSCATADD (the indexed moves SpQR's outlier kernel needs): the functional core
against a plain Python loop over the specification and against the independent reference
(``functional.reference``), to the bit; the assembler / binary round trip; what the validator
and the executor refuse; their cost in the timing model (rows x indices, not the indexed tile)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import ProgramError
from prodigy_sim.functional import reference as sp
from prodigy_sim.functional import run
from prodigy_sim.hardware import DEFAULT_PRESET, load_preset
from prodigy_sim.isa import ProgramBuilder, assemble, decode, disassemble, encode, validate
from prodigy_sim.timing import roofline_bound, vector_elements


def _program(r: int, c: int, j: int, idx_fmt: str = "float16", dst_fmt: str = "float32"):
    """Load S (r, c), I (1, j), D (r, c); G = gather(S, I); D += scatter(G * 3, I); store both."""
    b = ProgramBuilder()
    s, i, d = (b.tensor("S", (r, c), "float32"), b.tensor("I", (1, j), idx_fmt),
               b.tensor("D", (r, c), dst_fmt))
    g = b.tensor("G", (r, j), "float32")
    st_, it, dt, gt, pt = (b.tile("st", (r, c), "float32"), b.tile("it", (1, j), idx_fmt),
                           b.tile("dt", (r, c), dst_fmt), b.tile("gt", (r, j), "float32"),
                           b.tile("pt", (r, j), "float32"))
    b.dma_ld(st_, s, 0, 0)
    b.dma_ld(it, i, 0, 0)
    b.dma_ld(dt, d, 0, 0)
    b.vgather(gt, st_, it)
    b.vmuli(pt, gt, 3.0)
    b.vscatadd(dt, pt, it)
    b.dma_st(g, 0, 0, gt)
    b.dma_st(d, 0, 0, dt)
    return b.build()


def _loop_reference(s: np.ndarray, d: np.ndarray, idx: list[int]) -> tuple[np.ndarray, ...]:
    """The specification as a Python loop: one float32 addition per element, j in order."""
    g = np.empty((s.shape[0], len(idx)), dtype=np.float32)
    for j, c in enumerate(idx):
        g[:, j] = s[:, c]
    p = (g * np.float32(3.0)).astype(np.float32)
    out = d.copy()
    for j, c in enumerate(idx):
        for r in range(out.shape[0]):
            out[r, c] = np.float32(out[r, c] + p[r, j])
    return g, out


def _bits(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).view(np.uint32)


@st.composite
def _cases(draw):
    r = draw(st.integers(1, 4))
    c = draw(st.integers(1, 12))
    # few distinct columns so that indices repeat often; sometimes one column only
    pool = draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=3))
    idx = draw(st.lists(st.sampled_from(pool) | st.integers(0, c - 1), min_size=1,
                        max_size=16))
    vals = st.floats(-1e4, 1e4, width=32, allow_subnormal=True)
    s = np.array(draw(st.lists(vals, min_size=r * c, max_size=r * c)), np.float32)
    d = np.array(draw(st.lists(vals, min_size=r * c, max_size=r * c)), np.float32)
    return s.reshape(r, c), d.reshape(r, c), idx


@given(_cases())
def test_gather_and_scatter_add_follow_the_specification_to_the_bit(case):
    s, d, idx = case
    r, c = s.shape
    prog = _program(r, c, len(idx))
    state = run(prog, ddr={"S": s, "I": np.array([idx], np.float32), "D": d})
    g, want = _loop_reference(s, d, idx)
    assert np.array_equal(_bits(state.tensor("G")), _bits(g))
    assert np.array_equal(_bits(state.tensor("D")), _bits(want))
    # the independent reference (ranks, not a loop) agrees too
    ref_g = sp.vgather(s, np.array(idx, np.float32))
    ref_d = sp.vscatadd(d, sp.canonical(ref_g * np.float32(3.0)), np.array(idx, np.float32))
    assert np.array_equal(_bits(ref_g), _bits(g)) and np.array_equal(_bits(ref_d), _bits(want))


def test_repeated_indices_sum_in_increasing_j():
    # 1 + 2^-24 + 2^-24 in order rounds twice to 1; any other order of the three terms (or a
    # single rounding of their sum) gives 1 + 2^-23
    tiny = np.float32(2.0**-24)
    s = np.array([[1.0, tiny]], np.float32)
    d = np.zeros((1, 2), np.float32)
    prog = _program(1, 2, 3)
    out = run(prog, ddr={"S": s / 3, "I": np.array([[0, 1, 1]], np.float32), "D": d})
    p = (sp.vgather(s / 3, np.array([0, 1, 1])) * np.float32(3)).astype(np.float32)
    want = np.float32(np.float32(p[0, 0] + p[0, 1]) + p[0, 2])
    assert out.tensor("D")[0, 0] == want == np.float32(1.0)


def test_float32_indices_reach_beyond_float16_and_a_bfloat16_dst_rounds_once():
    c = 5000                                         # 4099 is not a float16 value
    s = np.arange(c, dtype=np.float32).reshape(1, c)
    prog = _program(1, c, 2, idx_fmt="float32", dst_fmt="bfloat16")
    out = run(prog, ddr={"S": s, "I": np.array([[4099, 4099]], np.float32),
                         "D": np.zeros((1, c), np.float32)})
    assert list(out.tensor("G")[0]) == [4099.0, 4099.0]
    # two float32 additions (0 + 12297 + 12297 = 24594), then one bfloat16 rounding
    assert out.tensor("D")[0, 4099] == sp.bf16(np.float32(24594.0))


@pytest.mark.parametrize("bad", [10.0, -1.0, 2.5, np.inf, np.nan])
def test_an_index_outside_the_columns_stops_the_program(bad):
    prog = _program(2, 10, 3)
    with pytest.raises(ProgramError, match=r"instruction 3 \(VGATHER\).*not an integer in "
                                           r"\[0, 10\)"):
        run(prog, ddr={"I": np.array([[1, bad, 2]], np.float32)})


def test_the_validator_checks_shapes_and_index_formats():
    b = ProgramBuilder()
    a = b.tile("a", (2, 8), "float32")
    g = b.tile("g", (2, 3), "float32")
    i4 = b.tile("i4", (1, 4), "float16")
    ib = b.tile("ib", (1, 3), "bfloat16")
    b.vgather(g, a, i4)
    b.vscatadd(a, g, ib)
    with pytest.raises(ProgramError) as err:
        validate(b.build())
    assert "idx i4 is (1, 4), expected (1,3)" in str(err.value)
    assert "idx ib is bfloat16; expected" in str(err.value)


def test_text_and_binary_round_trip():
    prog = _program(3, 7, 5)
    text = disassemble(prog)
    assert "VGATHER gt, st, it" in text and "VSCATADD dt, pt, it" in text
    assert assemble(text) == prog
    assert decode(encode(prog)) == prog


def test_cost_is_rows_times_indices_not_the_indexed_tile():
    prog = _program(4, 1000, 8)
    ops = {ins.opcode: ins for ins in prog.instructions}
    assert vector_elements(ops["VGATHER"], prog) == 4 * 8
    assert vector_elements(ops["VSCATADD"], prog) == 4 * 8
    assert vector_elements(ops["VMULI"], prog) == 4 * 8
    _, flops, _ = roofline_bound(prog, load_preset(DEFAULT_PRESET), cores=1)
    assert flops == 3 * 4 * 8
