"""Round trips text -> Program -> binary -> Program -> text, on the examples and on random
programs (`prodigy_sim.testing.programs`: well-formed programs from the opcode table), and fuzzing:
mutated text and binaries only ever raise located AssemblyErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import AssemblyError
from prodigy_sim.isa import Program, assemble, decode, disassemble, encode
from prodigy_sim.testing import programs

EXAMPLES = sorted((Path(__file__).parent.parent / "isa" / "examples").glob("*.s"))


def test_examples_exist():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trip(path: Path):
    program = assemble(path.read_text(), file=path)
    text = disassemble(program)
    blob = encode(program)
    back = decode(blob)
    assert back == program
    assert disassemble(back) == text
    assert encode(assemble(text)) == blob
    assert assemble(text) == program


# ---------------------------------------------------------------- random programs
@given(programs())
def test_random_program_round_trip(program: Program):
    blob = encode(program)
    assert decode(blob) == program
    text = disassemble(program)
    assert assemble(text) == program
    assert encode(assemble(disassemble(decode(blob)))) == blob
    assert disassemble(assemble(text)) == text


# ---------------------------------------------------------------- fuzzing
_SNIPPETS = ["r1", "r16", "cid", ",", "(", ")", "+", "-", "=", ":", "0x", "1e99", "nan", "fbits(",
             "LOOP", "ENDLOOP", "DMA.LD", "MMA.SP", ".tile", ".tensor", ".acc", "shape=(", "fmt=",
             "sparsity=8:", "A0", "X", "C", "#", ";", "\n", " ", "99999999999999999999", "1.5",
             "é", "\t", "'", "r1+", "block=", "scale=none", "label:", "-0x8000"]


@st.composite
def mutated_text(draw) -> str:
    text = draw(st.sampled_from(EXAMPLES)).read_text()
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        end = pos + draw(st.integers(0, 12))
        insert = draw(st.sampled_from(_SNIPPETS) | st.text(max_size=4))
        text = text[:pos] + insert + text[end:]
    return text


def _assemble_or_located_error(text: str) -> None:
    try:
        assemble(text, file="fuzz.s")
    except AssemblyError as exc:
        assert exc.file == "fuzz.s"
        assert exc.line >= 1 and exc.column >= 1, str(exc)
        assert str(exc).startswith(f"fuzz.s:{exc.line}:{exc.column}: ")


@given(mutated_text())
def test_fuzzed_examples_raise_only_located_assembly_errors(text: str):
    _assemble_or_located_error(text)


@given(st.lists(st.sampled_from(_SNIPPETS) | st.text(max_size=6), max_size=30))
def test_random_tokens_raise_only_located_assembly_errors(tokens: list[str]):
    _assemble_or_located_error(" ".join(tokens))


@given(st.data())
def test_fuzzed_binaries_raise_only_assembly_errors_with_offsets(data):
    blob = bytearray(encode(assemble(data.draw(st.sampled_from(EXAMPLES)).read_text())))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        if data.draw(st.booleans()):
            blob[pos] = data.draw(st.integers(0, 255))
        else:
            del blob[pos: pos + data.draw(st.integers(1, 9))]
            if not blob:
                break
    try:
        program = decode(bytes(blob))
    except AssemblyError as exc:
        assert 0 <= exc.offset <= len(blob)
        assert f"byte offset {exc.offset}" in str(exc)
        return
    encode(program)  # whatever decodes is well formed
