"""The Prodigy-sim instruction set: program representation, assembler, binary format, builder.

One SPMD program runs on every core; see ``isa/README.md`` for the architecture and the reference
of every instruction, and ``isa/opcodes.yaml`` for the opcode table all of this is generated from.

- :func:`assemble` / :func:`disassemble`: text <-> :class:`Program` (canonical text round-trips);
  :func:`assemble_file` reads the text from a file.
- :func:`encode` / :func:`decode`: :class:`Program` <-> fixed-width 64-bit binary;
  :func:`decode_file` reads it from a file.
- :class:`ProgramBuilder`: programs from Python.
- :func:`validate`: can the program run on a core with :class:`IsaParams`? Returns its
  :class:`Layout` (tensor and tile placement).
- :func:`expand`: one core's dynamic instruction stream (:class:`Step`), addresses resolved.

Each public name is imported from its module on first use (:mod:`prodigy_sim._lazy`).
"""

from prodigy_sim._lazy import lazy_exports

_EXPORTS = {
    "assemble": "_assembler",
    "assemble_file": "_assembler",
    "decode": "_binary",
    "decode_file": "_binary",
    "encode": "_binary",
    "ProgramBuilder": "_builder",
    "disassemble": "_disasm",
    "format_instruction": "_disasm",
    "DEFAULT_MAX_STEPS": "_params",
    "Step": "_expand",
    "compile_steps": "_expand",
    "expand": "_expand",
    "Layout": "_layout",
    "Placement": "_layout",
    "Segment": "_layout",
    "layout": "_layout",
    "IsaParams": "_params",
    "CID": "_program",
    "NCORES": "_program",
    "AccDecl": "_program",
    "Expr": "_program",
    "FImm": "_program",
    "Instruction": "_program",
    "Program": "_program",
    "Reg": "_program",
    "TensorDecl": "_program",
    "TileDecl": "_program",
    "OpcodeSpec": "_table",
    "OpcodeTable": "_table",
    "OperandSpec": "_table",
    "opcode_table": "_table",
    "validate": "_validate",
}
"""Public name -> the module of this package that defines it."""

__all__ = [
    "assemble", "assemble_file", "disassemble", "format_instruction", "encode", "decode",
    "decode_file", "ProgramBuilder",
    "validate", "layout", "Layout", "Placement", "Segment", "IsaParams", "expand",
    "DEFAULT_MAX_STEPS",
    "compile_steps", "Step",
    "Program", "Instruction", "TensorDecl", "TileDecl", "AccDecl", "Reg", "Expr", "FImm", "CID",
    "NCORES", "opcode_table", "OpcodeTable", "OpcodeSpec", "OperandSpec",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
