"""The expander: loop counters, registers, cid / ncores resolved into addresses, lazily."""

from __future__ import annotations

import itertools

import pytest

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa import CID, ProgramBuilder, Reg, Segment, assemble, expand, validate

TWO_CORES = """\
.tensor X shape=(8,64) fmt=float32        # 256 bytes per row, placed at DDR 0
.tensor Y shape=(8,64) fmt=bfloat16       # 128 bytes per row, placed at DDR 4096
.tile T shape=(2,16) fmt=float32          # scratchpad 0
.tile U shape=(2,16) fmt=bfloat16         # scratchpad 128
    MULI r5, cid, 4                       # core c owns rows 4c .. 4c+3
    LOOP r1, 2, 2                         # r1 = 0, 2: row pairs
      ADD r2, r5, r1
      LOOP r3, 2, 32                      # r3 = 0, 32: column blocks of 16, every other one
        DMA.LD T, X, r2, r3+16
        VCVT U, T
        DMA.ST Y, r2, r3, U
      ENDLOOP
    ENDLOOP
    HALT
"""


def test_loop_indexed_addresses_narrative():
    program = assemble(TWO_CORES)
    lay = validate(program)
    log = []
    for core in (0, 1):
        for step in expand(program, core, 2, layout=lay, units={"dma"}):
            seg = step.ddr[0]
            log.append((core, step.instruction.opcode, step.args, seg.address, seg.length,
                        seg.stride, seg.count, step.spm))
    ld, st = "DMA.LD", "DMA.ST"
    assert log == [
        (0, ld, (0, 16), 0 + 0 * 256 + 16 * 4, 64, 256, 2, 0),
        (0, st, (0, 0), 4096 + 0 * 128 + 0 * 2, 32, 128, 2, 128),
        (0, ld, (0, 48), 0 + 0 * 256 + 48 * 4, 64, 256, 2, 0),
        (0, st, (0, 32), 4096 + 0 * 128 + 32 * 2, 32, 128, 2, 128),
        (0, ld, (2, 16), 2 * 256 + 16 * 4, 64, 256, 2, 0),
        (0, st, (2, 0), 4096 + 2 * 128, 32, 128, 2, 128),
        (0, ld, (2, 48), 2 * 256 + 48 * 4, 64, 256, 2, 0),
        (0, st, (2, 32), 4096 + 2 * 128 + 32 * 2, 32, 128, 2, 128),
        (1, ld, (4, 16), 4 * 256 + 16 * 4, 64, 256, 2, 0),
        (1, st, (4, 0), 4096 + 4 * 128, 32, 128, 2, 128),
        (1, ld, (4, 48), 4 * 256 + 48 * 4, 64, 256, 2, 0),
        (1, st, (4, 32), 4096 + 4 * 128 + 32 * 2, 32, 128, 2, 128),
        (1, ld, (6, 16), 6 * 256 + 16 * 4, 64, 256, 2, 0),
        (1, st, (6, 0), 4096 + 6 * 128, 32, 128, 2, 128),
        (1, ld, (6, 48), 6 * 256 + 48 * 4, 64, 256, 2, 0),
        (1, st, (6, 32), 4096 + 6 * 128 + 32 * 2, 32, 128, 2, 128),
    ]


def test_full_stream_order_and_loop_steps():
    program = assemble(TWO_CORES)
    ops = [(s.index, s.args) for s in expand(program, 1, 2)]
    assert ops[:6] == [(0, ()), (1, (2,)), (2, ()), (3, (2,)), (4, (4, 16)), (5, ())]
    assert ops[-3:] == [(7, ()), (8, ()), (9, ())]  # inner ENDLOOP, outer ENDLOOP, HALT
    # MULI, LOOP, 2 x (ADD, LOOP, 2 x (3 body + ENDLOOP), ENDLOOP), HALT
    assert len(ops) == 1 + 1 + 2 * (1 + 1 + 2 * (3 + 1) + 1) + 1


def test_expansion_is_lazy():
    b = ProgramBuilder()
    b.label("spin")
    b.nop()
    b.jmp("spin")
    steps = list(itertools.islice(expand(b.build()), 5))
    assert [s.instruction.opcode for s in steps] == ["NOP", "JMP", "NOP", "JMP", "NOP"]
    with pytest.raises(ProgramError, match="more than 100 instructions"):
        list(expand(b.build(), max_steps=100))


def test_branch_loop_and_zero_trip_loop():
    b = ProgramBuilder()
    r1, r2 = Reg(1), Reg(2)
    b.li(r2, 3)
    b.label("again")
    b.addi(r1, r1, 1)
    b.blt(r1, r2, "again")
    with b.loop(Reg(3), r1 + (-3)):     # count 0: body skipped
        b.barrier()
    b.halt()
    ops = [s.instruction.opcode for s in expand(b.build())]
    assert ops == ["LI"] + ["ADDI", "BLT"] * 3 + ["LOOP", "HALT"]


def test_out_of_bounds_and_misaligned_windows_are_program_errors():
    src = """\
.tensor X shape=(8,64) fmt=float32
.tile T shape=(4,16) fmt=float32
    LOOP r1, 3, 4
      DMA.LD T, X, r1, 0
    ENDLOOP
"""
    with pytest.raises(ProgramError, match=r"core 0, line 4 \(DMA.LD\): window rows 8..11"):
        list(expand(assemble(src)))
    scaled = """\
.tensor W shape=(8,64) fmt=float8_e4m3fn
.tile T shape=(8,32) fmt=float8_e4m3fn
    DMA.LD T, W, 0, cid
"""
    with pytest.raises(ProgramError, match="column offset 1 is not a multiple of the block"):
        list(expand(assemble(scaled), 1, 2))


def test_division_by_zero_and_bad_core():
    b = ProgramBuilder()
    b.div(Reg(1), CID, Reg(2))
    with pytest.raises(ProgramError, match="division by zero"):
        list(expand(b.build()))
    with pytest.raises(ProgramError, match="core 2 is not in 0..1"):
        list(expand(b.build(), 2, 2))


def test_dma_segments_cover_codes_scales_and_metadata():
    src = """\
.tensor W shape=(16,512) fmt=tai4 sparsity=8:4
.tile T shape=(4,128) fmt=tai4 sparsity=8:4
    DMA.LD T, W, 4, 256
"""
    program = assemble(src)
    lay = validate(program)
    (step,) = expand(program, layout=lay)
    p = lay.tensors["W"]
    # per row of 512: 256 kept 4-bit codes = 128 B, 16 E8M0 scales = 16 B, 64 mask bytes
    assert (p.row.code, p.row.scale, p.row.meta) == (128, 16, 64)
    assert step.ddr == (
        Segment(4 * 128 + 64, 32, 128, 4),
        Segment(16 * 128 + 4 * 16 + 8, 4, 16, 4),
        Segment(16 * (128 + 16) + 4 * 64 + 32, 16, 64, 4),
    )
    assert sum(s.nbytes for s in step.ddr) == lay.tiles["T"].nbytes


def test_window_of_padded_sub_byte_rows_must_start_on_a_code_byte():
    """A row of six 2-bit codes is 12 bits, padded to 2 bytes: columns 3..5 start in the middle
    of its first byte, so that window is refused (it was copied from the second byte); the
    whole row, padding included, is one window and moves bit-exactly."""
    import numpy as np

    from prodigy_sim import functional

    text = """\
.tensor X shape=(1,6) fmt=tai2 scale=none
.tensor Y shape=(1,{w}) fmt=tai2 scale=none
.tile T shape=(1,{w}) fmt=tai2 scale=none
    DMA.LD T, X, 0, {col}
    DMA.WAIT
    DMA.ST Y, 0, 0, T
    DMA.WAIT
    HALT
"""
    x = np.array([[0.5, -1, 2, -0.5, 1, -2]], dtype=np.float32)
    part = assemble(text.format(w=3, col=3))
    with pytest.raises(ProgramError, match="byte boundaries of X"):
        list(expand(part, layout=validate(part)))
    whole = assemble(text.format(w=6, col=0))
    state = functional.run(whole, ddr={"X": x}, cores=1)
    assert np.array_equal(state.tensor("Y").codes, state.tensor("X").codes)


@pytest.mark.parametrize("fmt, kw", [("tai2", {"scale": "none"}), ("tai2", {}), ("tai4", {}),
                                     ("float4_e2m1fn", {"scale": "none"}),
                                     ("float8_e4m3fn", {}), ("tai4", {"sparsity": (8, 4)}),
                                     ("int8", {"block": 0}), ("bfloat16", {})])
def test_byte_columns_is_the_smallest_whole_byte_slice(fmt, kw):
    """``byte_columns`` (computed once per DMA instruction) against the rule written out: a
    slice of ``n`` columns is whole bytes of every part (``column_bytes``) and of codes (kept
    elements x bits)."""
    from prodigy_sim.isa import ProgramBuilder
    from prodigy_sim.isa._layout import byte_columns, column_bytes

    for cols in (6, 12, 64, 96, 256):
        b = ProgramBuilder()
        st = b.tensor("X", (2, cols), fmt, **kw).storage
        if st.sparsity and cols % st.sparsity.group or st.block and st.scaled and cols % st.block:
            continue
        p = validate(b.build()).tensors["X"]
        whole = [n for n in range(1, cols + 1)
                 if (not st.sparsity or n % st.sparsity.group == 0)
                 and column_bytes(p.row, cols, n) is not None and st.kept(n) * st.bits % 8 == 0]
        step = byte_columns(p, st)
        assert [n for n in range(1, cols + 1) if n % step == 0] == whole, (fmt, kw, cols)
