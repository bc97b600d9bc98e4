"""The executor's plans: batched cores, races run core by core, the step budget, bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import prodigy_sim.testing.core_oracle as ref
from prodigy_sim.errors import ConfigError, ProgramError
from prodigy_sim.functional import _executor as fx
from prodigy_sim.functional import from_bf16, matmul, run, to_bf16
from prodigy_sim.isa import CID, ProgramBuilder, Reg, assemble
from prodigy_sim.numerics import quantize

ROOT = Path(__file__).resolve().parents[1]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(np.asarray(a, np.float32).view(np.uint32),
                                                 np.asarray(b, np.float32).view(np.uint32))


def test_racing_cores_get_the_core_order_result():
    """Every core loads A, adds 1 and stores A back in one epoch: run core after core (the
    executor's order), A grows by the number of cores; run together it would grow by one."""
    b = ProgramBuilder()
    ta = b.tensor("A", (1, 16), "float32")
    t = b.tile("T", (1, 16), "float32")
    b.dma_ld(t, ta, 0, 0)
    b.vaddi(t, t, 1.0)
    b.dma_st(ta, 0, 0, t)
    prog = b.build()
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    for cores in (1, 3):
        assert same_bits(run(prog, ddr={"A": a}, cores=cores).tensor("A"), a + cores)


def test_cores_with_different_streams_and_barriers():
    """Cores that skip work (BNE on cid) form their own groups; the result does not depend on
    how the cores are grouped: each core scales its own row, then core 0 sums all rows."""
    rows = 4
    b = ProgramBuilder()
    tx = b.tensor("X", (rows, 32), "float32")
    ty = b.tensor("Y", (rows, 32), "float32")
    ts = b.tensor("S", (1, 32), "float32")
    t = b.tile("T", (1, 32), "float32")
    acc = b.tile("ACC", (1, 32), "float32")
    b.dma_ld(t, tx, CID, 0)
    b.bne(CID, Reg(0), "odd")
    b.vmuli(t, t, 3.0)
    b.label("odd")
    b.vaddi(t, t, 0.5)
    b.dma_st(ty, CID, 0, t)
    b.barrier()
    b.bne(CID, Reg(0), "end")
    b.dma_ld(acc, ty, 0, 0)
    with b.loop(Reg(1), rows - 1, step=1):
        b.addi(Reg(2), Reg(1), 1)
        b.dma_ld(t, ty, Reg(2), 0)
        b.vadd(acc, acc, t)
    b.dma_st(ts, 0, 0, acc)
    b.label("end")
    prog = b.build()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((rows, 32)).astype(np.float32)
    state = run(prog, ddr={"X": x}, cores=rows)
    y = x.copy()
    y[0] = y[0] * np.float32(3.0)
    y = y + np.float32(0.5)
    s = y[0].copy()
    for r in range(1, rows):
        s = s + y[r]
    assert same_bits(state.tensor("Y"), y)
    assert same_bits(state.tensor("S"), s.reshape(1, 32))
    assert [c.regs[16] for c in state.cores] == [0, 1, 2, 3]
    assert state.cores[0].regs[2] == rows - 1 and state.cores[1].regs[2] == 0


def bf16(x: np.ndarray) -> np.ndarray:
    return from_bf16(to_bf16(x))


def test_bfloat16_mma_on_several_cores():
    """BF16 operands (the float32-values path of the MMA) on 3 cores, each its own rows."""
    m, n, k = 8, 6, 256
    b = ProgramBuilder()
    tx = b.tensor("X", (3 * m, k), "bfloat16")
    tw = b.tensor("W", (n, k), "bfloat16")
    ty = b.tensor("Y", (3 * m, n), "float32")
    ax = b.tile("AX", (m, k), "bfloat16")
    aw = b.tile("AW", (n, k), "bfloat16")
    yt = b.tile("YT", (m, n), "float32")
    c = b.acc("C", (m, n))
    b.muli(Reg(1), CID, m)
    b.dma_ld(ax, tx, Reg(1), 0)
    b.dma_ld(aw, tw, 0, 0)
    b.acc_zero(c)
    b.mma(c, ax, aw)
    b.acc_st(yt, c)
    b.dma_st(ty, Reg(1), 0, yt)
    prog = b.build()
    rng = np.random.default_rng(2)
    x = bf16(rng.standard_normal((3 * m, k)).astype(np.float32)
             * np.exp2(rng.integers(-20, 20, (3 * m, k))).astype(np.float32))
    w = bf16(rng.standard_normal((n, k)).astype(np.float32))
    state = run(prog, ddr={"X": x, "W": w}, cores=3)
    want = np.zeros((3 * m, n), np.float32)
    for i in range(3 * m):
        for j in range(n):
            s = np.float32(0.0)
            for c0 in range(0, k, 128):
                s = ref.acc_add(s, ref.chunk_sum([float(v) for v in x[i, c0:c0 + 128]],
                                                 [float(v) for v in w[j, c0:c0 + 128]]))
            want[i, j] = s
    assert same_bits(state.tensor("Y"), want)
    assert state.mma.f32_tiles + state.mma.blas_tiles + state.mma.fallback_tiles > 0


def test_plans_are_kept_with_their_program_and_give_the_same_bits():
    rng = np.random.default_rng(3)
    prog = assemble((ROOT / "isa/examples/gemm_fp8_tai4.s").read_text())
    x = rng.standard_normal((64, 1024), dtype=np.float32)
    w = rng.standard_normal((256, 1024), dtype=np.float32)
    first = run(prog, ddr={"X": x, "W": w}).tensor("Y")
    assert prog in fx._PLANS
    assert same_bits(run(prog, ddr={"X": x, "W": w}).tensor("Y"), first)
    want = matmul(quantize(x, "float8_e4m3fn"), quantize(w, "tai4"))
    assert same_bits(first, bf16(want))


def test_a_branch_loop_hits_the_step_budget():
    prog = assemble("spin:\n    JMP spin\n")
    with pytest.raises(ProgramError, match=r"program 'spin', core 0, line 2 \(JMP\): more "
                                           r"than 1,000 instructions"):
        run(prog, ddr={}, max_steps=1000, name="spin")


def test_default_budget_ends_a_loop_of_2_to_the_50():
    """A LOOP of 2^50 - 1 iterations with the default budget: a ProgramError, not a hang."""
    prog = assemble("    LI r1, 1125899906842623\n    LOOP r2, r1, 1\n    NOP\n    ENDLOOP\n")
    with pytest.raises(ProgramError, match="step budget"):
        run(prog, ddr={})


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"chunk": 0}, "'chunk' must be >= 1"),
    ({"chunk": 2.5}, "'chunk' must be an integer"),
    ({"cores": 0}, "'cores' must be >= 1"),
    ({"cores": "2"}, "'cores' must be an integer"),
    ({"max_steps": 0}, "'max_steps' must be >= 1"),
    ({"ddr": [1, 2]}, "'ddr' must be"),
    ({"params": {"onchip_bytes": 4}}, "'params' must be"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    prog = assemble("    NOP\n")
    args = {"ddr": {}} | kwargs
    with pytest.raises(ConfigError, match=match):
        run(prog, **args)
    with pytest.raises(ConfigError, match="'program' must be"):
        run("NOP", ddr={})


def test_a_reused_operand_is_decoded_again_after_any_write_to_its_bytes():
    """An A tile used by two MMAs, then overwritten through an aliasing tile (explicit spm
    placement): the third MMA sees the new bytes."""
    rng = np.random.default_rng(4)
    b = ProgramBuilder()
    tx = b.tensor("X", (2 * 16, 128), "float8_e4m3fn")
    tw = b.tensor("W", (16, 128), "tai4")
    ty = b.tensor("Y", (3 * 16, 16), "float32")
    a = b.tile("A", (16, 128), "float8_e4m3fn", spm=0)
    alias = b.tile("B", (16, 128), "float8_e4m3fn", spm=0)
    wt = b.tile("WT", (16, 128), "tai4", spm=8192)
    yt = b.tile("YT", (16, 16), "float32", spm=16384)
    c = b.acc("C", (16, 16))
    b.dma_ld(wt, tw, 0, 0)
    b.dma_ld(a, tx, 0, 0)
    for i in range(3):
        if i == 2:
            b.dma_ld(alias, tx, 16, 0)
        b.acc_zero(c)
        b.mma(c, a, wt)
        b.acc_st(yt, c)
        b.dma_st(ty, 16 * i, 0, yt)
    prog = b.build()
    x = rng.standard_normal((32, 128)).astype(np.float32)
    w = rng.standard_normal((16, 128)).astype(np.float32)
    y = run(prog, ddr={"X": x, "W": w}, cores=2).tensor("Y")
    wq = quantize(w, "tai4")
    first = matmul(quantize(x[:16], "float8_e4m3fn"), wq)
    second = matmul(quantize(x[16:], "float8_e4m3fn"), wq)
    assert same_bits(y, np.concatenate([first, first, second]))


_LDM = """.tensor X shape=(8,64) fmt=float32
.tensor Y shape=(16,64) fmt=float32
.tile T shape=(4,64) fmt=float32

    LI r1, 0
    MULI r2, cid, {row_step}
    LI r3, 0
    {guard}
    DMA.LDM T, X, r2, r3, 2, 1
skip:
    MULI r4, cid, 4
    DMA.ST Y, r4, 0, T
"""


def _ldm(row_step: int, guard: str = "") -> str:
    return _LDM.format(row_step=row_step, guard=guard)


def test_multicast_load_delivers_the_window_to_every_member():
    """DMA.LDM (a group of 2 cores, stride 1) runs as a load on every member, cores batched."""
    x = np.random.default_rng(4).standard_normal((8, 64)).astype(np.float32)
    state = run(assemble(_ldm(0)), ddr={"X": x}, cores=4)
    y = state.tensor("Y")
    for c in range(4):
        assert same_bits(y[4 * c:4 * c + 4], x[:4])


def test_multicast_members_reading_other_windows_fail():
    with pytest.raises(ProgramError, match=r"core 1, line \d+ \(DMA.LDM\): multicast load 0 of "
                                           r"group \[0, 1\] reads X\[4, 0\] but another member "
                                           r"reads X\[0, 0\]"):
        run(assemble(_ldm(4)), ddr={}, cores=2)


def test_multicast_load_not_issued_by_every_member_fails():
    """Core 1 skips its DMA.LDM: the group would wait forever (checked before a BARRIER / end)."""
    with pytest.raises(ProgramError, match=r"multicast load 0 of group \[0, 1\] \(X\) was "
                                           r"issued by 1 of its 2 members"):
        run(assemble(_ldm(0, "BNE cid, r1, skip")), ddr={}, cores=2)


def test_float16_tiles_round_to_nearest_even_on_batched_cores():
    """A float16 tile (a wide format) written and read by two cores at once, as float16 does
    (overflow to infinity, subnormals kept)."""
    prog = assemble(""".tensor X shape=(8,64) fmt=float32
.tensor Y shape=(8,64) fmt=float32
.tile T shape=(4,64) fmt=float32
.tile H shape=(4,64) fmt=float16
    MULI r1, cid, 4
    DMA.LD T, X, r1, 0
    VCVT H, T
    VCVT T, H
    DMA.ST Y, r1, 0, T
""")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((8, 64)) * np.exp2(rng.integers(-28, 20, (8, 64)))).astype(
        np.float32)
    y = run(prog, ddr={"X": x}, cores=2).tensor("Y")
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(np.float32)
    assert np.isinf(want).any() and (np.abs(want[want != 0]) < 2.0**-14).any()
    assert same_bits(y, want)
