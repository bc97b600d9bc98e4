"""The validator (shapes, formats, capacity, loops), the layout, and the builder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa import (
    CID,
    NCORES,
    Expr,
    Instruction,
    IsaParams,
    ProgramBuilder,
    Reg,
    assemble,
    disassemble,
    encode,
    validate,
)

EXAMPLES = sorted((Path(__file__).parent.parent / "isa" / "examples").glob("*.s"))
HEAD = """\
.tile A shape=(64,128) fmt=float8_e4m3fn
.tile W shape=(32,128) fmt=tai4
.tile WS shape=(32,128) fmt=tai4 sparsity=8:4
.tile B shape=(64,128) fmt=bfloat16
.tile F shape=(64,32) fmt=float32
.tile ROW shape=(64,1) fmt=float32
.tile COL shape=(1,32) fmt=float32
.tile Q shape=(64,32) fmt=float8_e4m3fn
.acc C shape=(64,32)
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate(path: Path):
    lay = validate(assemble(path.read_text()))
    assert all(p.base + p.nbytes <= IsaParams().onchip_bytes for p in lay.tiles.values())


def _problems(body: str, params: IsaParams | None = None) -> str:
    with pytest.raises(ProgramError) as info:
        validate(assemble(HEAD + body), params)
    return str(info.value)


@pytest.mark.parametrize(("body", "text"), [
    ("MMA C, A, WS", "w WS is sparse (8:4): use MMA.SP"),
    ("MMA.SP C, A, W", "MMA.SP needs w declared sparsity=8:4 (w W is dense)"),
    ("MMA C, W, A", "a W is tai4; expected float8_e4m3fn, float8_e5m2, bfloat16"),
    ("MMA C, B, W", "a is bfloat16 and w is tai4"),
    ("MMA C, A, A", "w A is (64,128): expected acc (M,N), a (M,K), w (N,K)"),
    ("VADD F, F, A", "b A is float8_e4m3fn; expected any wide float"),
    ("VADD F, ROW, COL", ""),
    ("VMUL F, F, B", "b B is (64, 128), not broadcastable to (64,32)"),
    ("VRSUM COL, F", "dst is (1,32), expected (64,1)"),
    ("VTRANS F, F", "dst is (64, 32), expected (32,64)"),
    ("VQUANT Q, F", ""),
    ("VQUANT WS, F", "dst WS must be dense"),
    ("ACC.ST Q, C", "dst Q is float8_e4m3fn"),
    ("DIVI r1, r2, 0", "division by zero"),
    ("LOOP r1, 4, 1\n ADDI r1, r1, 1\n ENDLOOP", "writes r1, the counter of the LOOP"),
    ("LOOP r1, 4, 1\nin:\n ENDLOOP\n JMP in", "branch to in leaves or enters a LOOP body"),
    ("LOOP r1, 4, 1\n BNE r1, r2, out\n ENDLOOP\nout:", "branch to out leaves or enters"),
])
def test_instruction_rules(body: str, text: str):
    program = assemble(HEAD + body + "\n")
    if not text:
        validate(program)
        return
    with pytest.raises(ProgramError) as info:
        validate(program)
    assert text in str(info.value)
    assert re.search(r"line 1\d \(", str(info.value))


def test_continue_to_endloop_is_allowed():
    validate(assemble(HEAD + "LOOP r1, 4, 1\n BNE r1, r2, next\n NOP\nnext:\n ENDLOOP\n"))


def test_capacity_accumulators_and_loop_depth():
    tight = IsaParams(onchip_bytes=16384, n_accumulators=1, acc_max_rows=32, max_loop_depth=1)
    text = _problems(".acc D shape=(8,8)\n LOOP r1, 2, 1\n LOOP r2, 2, 1\n ENDLOOP\n ENDLOOP\n",
                     tight)
    assert "ends beyond the 16384 bytes of on-chip memory" in text
    assert "accumulator C (64, 32) exceeds the largest accumulator (32,64)" in text
    assert "loops nest 2 deep; the hardware loop stack holds 1" in text


def test_dma_rules():
    src = """\
.tensor X shape=(64,256) fmt=float8_e4m3fn
.tensor Y shape=(16,16) fmt=float8_e4m3fn block=16
.tile A shape=(64,128) fmt=float8_e4m3fn
    DMA.LD A, Y, 0, 0
"""
    with pytest.raises(ProgramError) as info:
        validate(assemble(src))
    assert ("are stored differently (float8_e4m3fn/32 e8m0 vs float8_e4m3fn/16 e8m0)"
            in str(info.value))
    assert "tile A (64, 128) is larger than tensor Y (16, 16)" in str(info.value)


def test_layout_first_fit_and_aliasing():
    src = """\
.tensor X shape=(4,1024) fmt=float32
.tensor Y shape=(4,16) fmt=float32 ddr=0x2000
.tensor Z shape=(4,16) fmt=float32
.tile P shape=(1,16) fmt=float32 spm=0
.tile Q shape=(1,16) fmt=float32 spm=0
.tile R shape=(1,16) fmt=float32
"""
    lay = validate(assemble(src))
    assert {k: v.base for k, v in lay.tensors.items()} == {"X": 0x3000, "Y": 0x2000, "Z": 0}
    assert {k: v.base for k, v in lay.tiles.items()} == {"P": 0, "Q": 0, "R": 64}


def test_builder_matches_assembler():
    b = ProgramBuilder()
    x = b.tensor("X", (64, 256), "float8_e4m3fn")
    w = b.tensor("W", (64, 256), "tai4")
    y = b.tensor("Y", (64, 64), "float32")
    a = b.tile("A", (64, 128), "float8_e4m3fn")
    wt = b.tile("WT", (64, 128), "tai4")
    yt = b.tile("YT", (64, 64), "float32")
    c = b.acc("C", (64, 64))
    b.acc_zero(c)
    with b.loop(Reg(1), 2, step=128) as k:
        b.dma_ld(a, x, 0, k)
        b.dma_ld(wt, "W", 0, k + 0)
        b.mma(c, a, wt)
    b.acc_st(yt, c)
    b.vmuli(yt, yt, 0.5)
    b.dma_st(y, CID - 0, NCORES + (-1), yt)
    b.halt()
    program = b.build()
    assert program.tensor["W"] == w
    text = disassemble(program)
    assert "      DMA.LD A, X, 0, r1\n" in text
    assert "    DMA.ST Y, cid, ncores-1, YT\n" in text
    assert "    VMULI YT, YT, 0.5\n" in text
    assert encode(assemble(text)) == encode(program)
    validate(program)


def test_builder_refuses_bad_operands():
    b = ProgramBuilder()
    b.tile("T", (1, 1), "float32")
    b.dma_ld("T", "T", 0, 0)
    with pytest.raises(ProgramError, match="expected a tensor name but 'T' is a tile"):
        b.build()
    b = ProgramBuilder()
    b.li(Reg(1), 1 << 60)
    with pytest.raises(ProgramError, match="51-bit signed range"):
        b.build()
    with pytest.raises(ProgramError, match="MMA takes 3 operands"):
        ProgramBuilder().emit("MMA", "C", "A")


def test_operand_accessors_read_the_kind_or_refuse():
    ins = Instruction("DMA.LD", ("A", "X", Expr(1, 64), Expr(None, 0)))
    assert (ins.name(0), ins.name(1), ins.expr(2)) == ("A", "X", Expr(1, 64))
    assert Instruction("LI", (3, 7)).integer(1) == 7
    with pytest.raises(ProgramError, match=r"DMA.LD operand 3: expected a name but found "
                                           r"Expr\(reg=1, offset=64\)"):
        ins.name(2)
    with pytest.raises(ProgramError, match="DMA.LD operand 1: expected an integer but found 'A'"):
        ins.integer(0)
    with pytest.raises(ProgramError, match="LI operand 2: expected an expression"):
        Instruction("LI", (3, 7)).expr(1)
