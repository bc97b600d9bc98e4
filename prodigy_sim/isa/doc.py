"""Render the instruction reference of ``isa/README.md`` from the opcode table.

``python -m prodigy_sim.isa.doc`` prints the generated section; ``--write`` replaces it in the
README (between the BEGIN/END GENERATED markers); ``--check`` exits with status 1 if the README
differs from what the table renders (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prodigy_sim.isa._table import OpcodeSpec, OpcodeTable, opcode_table, table_path

__all__ = ["render", "readme_path", "replace_generated", "BEGIN", "END"]

BEGIN = "<!-- BEGIN GENERATED from isa/opcodes.yaml by `python -m prodigy_sim.isa.doc --write` -->"
END = "<!-- END GENERATED -->"


def readme_path() -> Path:
    """The ISA reference next to the opcode table."""
    return table_path().parent / "README.md"


def _fields(spec: OpcodeSpec, table: OpcodeTable) -> str:
    top = table.word_bits - 1
    parts = [f"`{spec.opcode:#04x}`[{top}:{table.word_bits - table.opcode_bits}]"]
    for o in spec.operands:
        parts.append(f"{o.name}:{o.kind}[{o.lsb + o.bits - 1}:{o.lsb}]")
    low = spec.operands[-1].lsb if spec.operands else table.word_bits - table.opcode_bits
    if low:
        parts.append(f"0[{low - 1}:0]")
    return " ".join(parts)


def _operand_text(spec: OpcodeSpec) -> str:
    return ", ".join(o.name for o in spec.operands) or "-"


def render(table: OpcodeTable | None = None) -> str:
    """The generated part of the README: summary table, encodings, per-instruction reference."""
    table = table or opcode_table()
    out = ["### Instruction table", "",
           "| opcode | mnemonic | operands | unit | semantics |",
           "|---|---|---|---|---|"]
    for s in table.instructions:
        sem = s.semantics.replace("|", "\\|")
        out.append(f"| `{s.opcode:#04x}` | `{s.mnemonic}` | {_operand_text(s)} | {s.unit} "
                   f"| {sem} |")
    out += ["", "### Operand kinds", "", "| kind | default bits | meaning |", "|---|---|---|"]
    out += [f"| `{k.name}` | {k.bits} | {k.doc} |" for k in table.kinds.values()]
    out += ["", "### Format groups", ""]
    out += [f"- `{g}`: {grp.describe()}" for g, grp in table.format_groups.items()]
    out += ["", "### Shape rules", ""]
    out += [f"- `{r}`: {text}" for r, text in table.shape_rules.items()]
    out += ["", "### Encodings", "",
            f"Fields as `name:kind[msb:lsb]` of the {table.word_bits}-bit word; `0[..]` is "
            "reserved and must be zero.", "",
            "| mnemonic | fields |", "|---|---|"]
    out += [f"| `{s.mnemonic}` | {_fields(s, table)} |" for s in table.instructions]
    out += ["", "### Instructions", ""]
    for s in table.instructions:
        out += [f"#### {s.mnemonic}", "",
                f"`{s.mnemonic} {_operand_text(s) if s.operands else ''}`".replace(" `", "`"),
                "", f"{s.semantics} Unit: {s.unit}. Shape rule: `{s.shape}`.", ""]
        for o in s.operands:
            extra = []
            if o.access:
                extra.append({"r": "read", "w": "written", "rw": "read and written"}[o.access])
            if o.formats:
                extra.append(f"formats `{o.formats}`")
            ex = f" ({'; '.join(extra)})" if extra else ""
            out.append(f"- `{o.name}`: {o.kind}, {o.bits} bits{ex}")
        if s.errors:
            out += ["", "Errors:", ""] + [f"- {e}" for e in s.errors]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def replace_generated(readme: str, generated: str) -> str:
    """``readme`` with the text between the markers replaced by ``generated``."""
    head, sep, rest = readme.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError("README lacks the BEGIN/END GENERATED markers")
    return f"{head}{BEGIN}\n\n{generated}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prodigy_sim.isa.doc",
                                     description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update isa/README.md in place")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if isa/README.md differs from the opcode table")
    args = parser.parse_args(argv)
    generated = render()
    if not (args.write or args.check):
        sys.stdout.write(generated)
        return 0
    path = readme_path()
    current = path.read_text(encoding="utf-8")
    wanted = replace_generated(current, generated)
    if args.check:
        if wanted != current:
            print(f"{path} is out of date: run python -m prodigy_sim.isa.doc --write",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
