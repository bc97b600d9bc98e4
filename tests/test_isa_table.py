"""The opcode table is consistent, and the README, the builder and the encoder follow it."""

from __future__ import annotations

from prodigy_sim.isa import ProgramBuilder, opcode_table
from prodigy_sim.isa.doc import BEGIN, END, readme_path, render, replace_generated


def test_readme_instruction_reference_matches_the_yaml():
    readme = readme_path().read_text(encoding="utf-8")
    assert replace_generated(readme, render()) == readme, \
        "isa/README.md is stale: run python -m prodigy_sim.isa.doc --write"
    generated = readme.split(BEGIN)[1].split(END)[0]
    for spec in opcode_table().instructions:
        assert f"| `{spec.opcode:#04x}` | `{spec.mnemonic}` |" in generated
        assert f"#### {spec.mnemonic}\n" in generated


def test_readme_has_the_numeric_specification():
    readme = readme_path().read_text(encoding="utf-8")
    section = readme.split("## Numeric specification\n", 1)[1].split("\n## ", 1)[0]
    for fact in ("Kc = 128", "RNE", "exact"):
        assert fact in section, fact


def test_operand_fields_tile_the_word_without_overlap():
    table = opcode_table()
    for spec in table.instructions:
        top = table.word_bits - table.opcode_bits
        for o in spec.operands:
            assert o.lsb + o.bits == top, spec.mnemonic
            top = o.lsb
        assert top >= 0


def test_units_and_required_instructions():
    table = opcode_table()
    required = {"DMA.LD", "DMA.ST", "MMA", "MMA.SP", "ACC.ZERO", "ACC.ST", "ACC.LD", "VADD",
                "VSUB", "VMUL", "VFMA", "VMAX", "VEXP", "VRCP", "VRSQRT", "VRSUM", "VRMAX",
                "VGELU", "VSILU", "VMULI", "VCVT", "VQUANT", "VTRANS", "BARRIER", "LI", "ADDI",
                "ADD", "MULI", "LOOP", "ENDLOOP", "HALT"}
    assert required <= set(table.by_mnemonic)
    assert {s.unit for s in table.instructions} == {"dma", "matrix", "vector", "scalar", "sync",
                                                     "control"}
    assert table.by_mnemonic["MMA"].unit == "matrix"
    assert [o.access for o in table.by_mnemonic["MMA"].operands] == ["rw", "r", "r"]


def test_builder_has_a_method_per_instruction():
    missing = [s.mnemonic for s in opcode_table().instructions
               if not callable(getattr(ProgramBuilder, s.method_name, None))]
    assert missing == []
