"""The binary format: word layout, and located errors for binaries that do not decode."""

from __future__ import annotations

import struct

import pytest

from prodigy_sim.errors import AssemblyError, ProgramError
from prodigy_sim.isa import Instruction, Program, assemble, decode, encode

SRC = """\
.tensor X shape=(64,256) fmt=float8_e4m3fn
.tile A shape=(64,128) fmt=float8_e4m3fn
top:
    LOOP r1, 2, 128
      DMA.LD A, X, r1-3, 128
    ENDLOOP
    JMP top
"""


def _words(blob: bytes, n: int) -> list[int]:
    return list(struct.unpack(f"<{n}Q", blob[-8 * n:]))


def test_word_layout_follows_the_table():
    blob = encode(assemble(SRC))
    loop, dma, end, jmp = _words(blob, 4)
    # LOOP: opcode 0x02 | counter r1 [55:51] | count expr [50:25] = (none, 2) | step [24:0] = 128
    assert loop == (0x02 << 56) | (1 << 51) | (((31 << 21) | 2) << 25) | 128
    # DMA.LD: 0x20 | tile 0 | tensor 0 | row = (r1, -3) in 5+13 bits | col = (none, 128)
    row = (1 << 13) | (-3 & 0x1FFF)
    col = (31 << 13) | 128
    assert dma == (0x20 << 56) | (0 << 46) | (0 << 36) | (row << 18) | col
    assert end == 0x03 << 56
    assert jmp == (0x04 << 56) | (0 << 36)  # label field [55:36] = instruction index 0
    assert blob[:8] == b"PRDGISA\x00"


def _decode_error(blob: bytes) -> AssemblyError:
    with pytest.raises(AssemblyError) as info:
        decode(blob, file="prog.bin")
    assert info.value.file == "prog.bin"
    assert str(info.value).startswith(f"prog.bin: byte offset {info.value.offset} ")
    return info.value


def test_bad_binaries_name_the_byte_offset():
    blob = encode(assemble(SRC))
    n = len(blob)
    assert _decode_error(b"NOTANISA" + blob[8:]).offset == 0
    assert "truncated header" in _decode_error(blob[:20]).reason
    err = _decode_error(blob[:-1])
    assert "expected 120 bytes of tables and instructions but found 119" in err.reason
    bad_opcode = blob[:n - 1] + b"\xEE"
    err = _decode_error(bad_opcode)
    assert (err.offset, err.reason) == (n - 8, f"byte offset {n - 8} (0x{n - 8:X}): "
                                               "unknown opcode 0xEE")
    reserved = bytearray(blob)
    reserved[n - 8] |= 1  # JMP's low bits are reserved
    assert "reserved bits 35..0 are not zero" in _decode_error(bytes(reserved)).reason
    tile_index = bytearray(blob)
    struct.pack_into("<Q", tile_index, n - 24, _words(blob, 4)[1] | (5 << 46))
    err = _decode_error(bytes(tile_index))
    assert err.offset == n - 24 and "tile index 5 outside the table (1 entries)" in err.reason


def test_structural_errors_of_decoded_programs_are_located_at_the_word():
    blob = bytearray(encode(assemble(SRC)))
    n = len(blob)
    struct.pack_into("<Q", blob, n - 16, 0x00 << 56)  # ENDLOOP -> NOP: unbalanced LOOP
    err = _decode_error(bytes(blob))
    assert err.offset == n - 32 and "LOOP without a matching ENDLOOP" in err.reason


def test_encode_refuses_programs_that_are_not_well_formed():
    with pytest.raises(ProgramError, match="undefined tile 'A'"):
        encode(Program(instructions=(Instruction("ACC.ST", ("A", "C")),)))


def test_branch_to_an_unlabelled_index_gets_a_synthetic_label():
    blob = bytearray(encode(assemble(SRC)))
    n = len(blob)
    struct.pack_into("<Q", blob, n - 8, (0x04 << 56) | (3 << 36))  # JMP 3 (the JMP itself)
    program = decode(bytes(blob))
    assert program.instructions[-1].operands == ("L3",)
    assert program.label["L3"] == 3
