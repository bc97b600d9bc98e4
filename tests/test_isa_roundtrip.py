"""Round trips text -> Program -> binary -> Program -> text, on the examples and on random
programs (a Hypothesis strategy drawing well-formed programs from the opcode table), and fuzzing:
mutated text and binaries only ever raise located AssemblyErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodigy_sim.errors import AssemblyError
from prodigy_sim.isa import (
    AccDecl,
    Expr,
    FImm,
    Instruction,
    Program,
    TensorDecl,
    TileDecl,
    assemble,
    decode,
    disassemble,
    encode,
    isa_storage,
    opcode_table,
)

EXAMPLES = sorted((Path(__file__).parent.parent / "isa" / "examples").glob("*.s"))
_NAMES = [f"{p}{i}" for p in ("T", "buf", "Acc", "w_", "L") for i in range(8)]
_FORMATS = ["float32", "bfloat16", "float8_e4m3fn", "float8_e5m2", "tai4", "tai2",
            "float4_e2m1fn", "int8"]


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


# ---------------------------------------------------------------- strategies
@st.composite
def storage(draw, cls, name: str):
    fmt = draw(st.sampled_from(_FORMATS))
    if fmt in ("float32", "bfloat16"):
        block, scale, sparsity = 0, "none", None
    else:
        scale = draw(st.sampled_from(["e8m0", "e4m3", "fp32", "none"]))
        block = 0 if scale == "none" else draw(st.sampled_from([0, 16, 32, 64]))
        sparsity = draw(st.sampled_from([None, (8, 4), (4, 2), (16, 4)]))
    unit = max(block, 1) * (sparsity[0] if sparsity else 1)
    rows = draw(st.integers(1, 2**32 - 1))
    cols = unit * draw(st.integers(1, (2**32 - 1) // unit))
    addr = draw(st.none() | st.integers(0, 2**64 - 1))
    return cls(name, (rows, cols), isa_storage(fmt, block, scale, sparsity), addr)


def _operand(draw, kind: str, bits: int, imm_bits: int, names: dict[str, list[str]]):
    if kind in names:
        return draw(st.sampled_from(names[kind]))
    if kind == "reg":
        return draw(st.integers(0, 15))
    if kind == "sreg":
        return draw(st.integers(0, 17))
    if kind == "expr":
        lim = 1 << (imm_bits - 1)
        return Expr(draw(st.none() | st.integers(0, 17)), draw(st.integers(-lim, lim - 1)))
    if kind == "simm":
        lim = 1 << (bits - 1)
        return draw(st.integers(-lim, lim - 1))
    assert kind == "fimm"
    return FImm(draw(st.integers(0, 2**32 - 1)))


@st.composite
def programs(draw) -> Program:
    """Random well-formed programs: every opcode, every operand kind over its full field range."""
    table = opcode_table()
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=4, max_size=14, unique=True))
    n_ten = draw(st.integers(1, len(names) - 3))
    n_til = draw(st.integers(1, len(names) - n_ten - 2))
    n_acc = draw(st.integers(1, min(16, len(names) - n_ten - n_til - 1)))
    ten_names = names[:n_ten]
    til_names = names[n_ten: n_ten + n_til]
    acc_names = names[n_ten + n_til: n_ten + n_til + n_acc]
    lab_names = names[n_ten + n_til + n_acc:]
    tensors = tuple(draw(storage(TensorDecl, n)) for n in ten_names)
    tiles = tuple(draw(storage(TileDecl, n)) for n in til_names)
    accs = tuple(AccDecl(n, (draw(st.integers(1, 65535)), draw(st.integers(1, 65535))),
                         draw(st.none() | st.integers(0, 15))) for n in acc_names)
    n_ins = draw(st.integers(0, 25))
    lab_names = lab_names[: n_ins + 1]
    label_at = draw(st.lists(st.integers(0, n_ins), min_size=len(lab_names),
                             max_size=len(lab_names), unique=True))
    labels = tuple(sorted(zip(lab_names, label_at, strict=True), key=lambda x: x[1]))
    pool = {"tile": til_names, "tensor": ten_names, "acc": acc_names, "label": lab_names}
    choices = [s for s in table.instructions if s.mnemonic != "ENDLOOP"
               and (lab_names or all(o.kind != "label" for o in s.operands))]
    instrs, depth = [], 0
    for _ in range(n_ins):
        spec = draw(st.sampled_from(choices))
        if depth and draw(st.booleans()) and draw(st.booleans()):
            spec = table.by_mnemonic["ENDLOOP"]
        depth += {"LOOP": 1, "ENDLOOP": -1}.get(spec.mnemonic, 0)
        ops = tuple(_operand(draw, o.kind, o.bits, o.imm_bits, pool) for o in spec.operands)
        instrs.append(Instruction(spec.mnemonic, ops))
    # close open loops: turn the last instructions into ENDLOOPs (labels keep their indices)
    for i in range(len(instrs) - 1, -1, -1):
        if depth == 0:
            break
        if instrs[i].opcode == "LOOP":
            depth -= 1
            instrs[i] = Instruction("NOP", ())
        elif instrs[i].opcode != "ENDLOOP":
            instrs[i] = Instruction("ENDLOOP", ())
            depth -= 1
    return Program(tensors, tiles, accs, tuple(instrs), labels)


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
