"""Assembler errors: each says file:line:column and what was expected."""

from __future__ import annotations

import pytest

from prodigy_sim.errors import AssemblyError
from prodigy_sim.isa import FImm, assemble, disassemble

HEADER = """\
.tensor X shape=(64,256) fmt=float8_e4m3fn
.tile A shape=(64,128) fmt=float8_e4m3fn
.tile F shape=(64,64) fmt=float32
.acc C shape=(64,64)
"""


def _error(body: str) -> AssemblyError:
    with pytest.raises(AssemblyError) as info:
        assemble(HEADER + body, file="prog.s")
    return info.value


@pytest.mark.parametrize(("body", "line", "column", "text"), [
    ("    DMA.LD A, 42, 0, 0\n", 5, 15, "expected a tensor name after ',' but found '42'"),
    ("    DMA.LD 42, X, 0, 0\n", 5, 12, "expected a tile name after 'DMA.LD' but found '42'"),
    ("    DMA.LD X, X, 0, 0\n", 5, 12, "expected a tile name but 'X' is a tensor"),
    ("    DMA.LD A, X, 0\n", 5, 19, "expected ',' and operand 4 (col) of DMA.LD after '0' but "
                                   "found the end of the line"),
    ("    DMA.LD A, X, r1+, 0\n", 5, 21, "expected an integer after '+' but found ','"),
    ("    DMA.LD A, X, 0, 5000\n", 5, 21, "does not fit the 13-bit signed field"),
    ("    FROB A\n", 5, 5, "expected a mnemonic"),
    ("    LI cid, 3\n", 5, 8, "cid is read-only"),
    ("    LI r16, 3\n", 5, 8, "expected a register r0..r15 after 'LI' but found 'r16'"),
    ("    ADD r1, r2\n", 5, 15, "expected ',' and operand 3 (b) of ADD"),
    ("    HALT r1\n", 5, 10, "expected the end of the line (HALT takes 0 operands)"),
    ("    VMULI F, F, 1e39\n", 5, 17, "1e39 is outside the FP32 range"),
    ("    VMULI F, F, r1\n", 5, 17, "expected an FP32 immediate"),
    ("    JMP nowhere\n", 5, 9, "undefined label 'nowhere'"),
    ("    LOOP r1, 4, 1\n    NOP\n", 5, 5, "LOOP without a matching ENDLOOP"),
    ("    NOP\n    ENDLOOP\n", 6, 5, "ENDLOOP without a matching LOOP"),
    ("    MMA C, A, A $\n", 5, 17, "unexpected character '$'"),
    ("X:\n    NOP\n", 5, 1, "'X' is already declared as a tensor"),
    ("    NOP\n.tile B shape=(1,1) fmt=float32\n", 6, 1, "declarations must come before"),
])
def test_errors_are_located_and_say_what_was_expected(body, line, column, text):
    err = _error(body)
    assert (err.file, err.line, err.column) == ("prog.s", line, column), str(err)
    assert text in err.reason
    assert str(err).startswith(f"prog.s:{line}:{column}: ")


@pytest.mark.parametrize(("decl", "column", "text"), [
    (".tile B shape=(64,100) fmt=tai4\n", 9, "cols (100) must be a multiple of block (32)"),
    (".tile B shape=(64,128) fmt=tai9\n", 24, "unknown format 'tai9'"),
    (".tile B shape=(64,128) fmt=float32 scale=e8m0\n", 36, "float32 is stored unscaled"),
    (".tile B shape=(64,128) fmt=tai4 sparsity=3:2\n", 33, "sparsity must be GROUP:KEPT"),
    (".tile B fmt=tai4\n", 7, ".tile B needs shape=..."),
    (".tile B shape=(64,128) fmt=tai4 colour=red\n", 33, "expected an attribute of .tile"),
    (".tile B shape=(64,128) fmt=tai4 fmt=tai2\n", 33, "each attribute once"),
    (".tile B shape=(64 128) fmt=tai4\n", 19, "expected ',' between rows and columns"),
    (".tile r3 shape=(1,1) fmt=float32\n", 7, "'r3' is a reserved word"),
    (".tile B shape=(0,1) fmt=float32\n", 9, "shape must be two integers"),
    (".vector B\n", 1, "expected a declaration (.tensor, .tile or .acc)"),
])
def test_declaration_errors(decl, column, text):
    with pytest.raises(AssemblyError) as info:
        assemble(HEADER + decl, file="d.s")
    err = info.value
    assert (err.line, err.column) == (5, column), str(err)
    assert text in err.reason


def test_comments_labels_case_and_numbers():
    program = assemble(HEADER + """
start:  li r1, 0x10            ; hex, lower-case mnemonic
        ADDI R2, r1, -0b11     # binary, upper-case register
        LOOP r3, r2+1, 64
again:    DMA.LD A, X, r3, 1_0_0_0 - 1000 + 0
        ENDLOOP
        VADDI F, F, -inf
        VMULI F, F, fbits(0x7FC00001)
        BNE cid, ncores, start
""".replace("1_0_0_0 - 1000 + 0", "r1 - 16"))
    assert program.label == {"start": 0, "again": 3}
    ins = program.instructions
    assert ins[0].operands == (1, 16)
    assert ins[1].operands == (2, 1, -3)
    assert str(ins[2].operands[1]) == "r2+1"
    assert str(ins[3].operands[2]) == "r3" and str(ins[3].operands[3]) == "r1-16"
    assert ins[5].operands[2] == FImm(0xFF800000)
    assert ins[6].operands[2] == FImm(0x7FC00001)
    assert ins[0].source_line == 6
    text = disassemble(program)
    assert "    VMULI F, F, fbits(0x7FC00001)\n" in text
    assert "      DMA.LD A, X, r3, r1-16\n" in text
    assert "again:\n" in text
    assert assemble(text) == program


def test_defaults_are_omitted_in_canonical_text():
    program = assemble(".tensor W shape=(8,64) fmt=tai4 block=32 scale=e8m0 ddr=4096\n"
                       ".tile B shape=(8,64) fmt=tai4 block=0 scale=fp32\n"
                       ".tile Z shape=(8,64) fmt=int8 scale=none\n")
    assert disassemble(program) == (
        ".tensor W shape=(8,64) fmt=tai4 ddr=0x1000\n"
        ".tile B shape=(8,64) fmt=tai4 block=0 scale=fp32\n"
        ".tile Z shape=(8,64) fmt=int8 scale=none\n\n")
    assert program.tile["Z"].block == 0


def test_fp32_immediates_read_back_to_the_same_bits():
    program = assemble(HEADER + "    VMULI F, F, 0.1\n    VADDI F, F, -0.0\n"
                                "    VADDI F, F, 3.4028235e38\n    VADDI F, F, 1e-45\n")
    bits = [i.operands[2].bits for i in program.instructions]
    assert bits == [0x3DCCCCCD, 0x80000000, 0x7F7FFFFF, 0x00000001]
    assert "VMULI F, F, 0.1\n" in disassemble(program)
