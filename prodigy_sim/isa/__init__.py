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

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.isa._assembler import assemble as assemble
    from prodigy_sim.isa._assembler import assemble_file as assemble_file
    from prodigy_sim.isa._binary import decode as decode
    from prodigy_sim.isa._binary import decode_file as decode_file
    from prodigy_sim.isa._binary import encode as encode
    from prodigy_sim.isa._builder import ProgramBuilder as ProgramBuilder
    from prodigy_sim.isa._disasm import disassemble as disassemble
    from prodigy_sim.isa._disasm import format_instruction as format_instruction
    from prodigy_sim.isa._expand import Step as Step
    from prodigy_sim.isa._expand import compile_steps as compile_steps
    from prodigy_sim.isa._expand import expand as expand
    from prodigy_sim.isa._expand import multicast_group as multicast_group
    from prodigy_sim.isa._formats import FormatGroup as FormatGroup
    from prodigy_sim.isa._formats import isa_storage as isa_storage
    from prodigy_sim.isa._layout import Layout as Layout
    from prodigy_sim.isa._layout import Placement as Placement
    from prodigy_sim.isa._layout import Segment as Segment
    from prodigy_sim.isa._layout import layout as layout
    from prodigy_sim.isa._params import DEFAULT_MAX_STEPS as DEFAULT_MAX_STEPS
    from prodigy_sim.isa._params import IsaParams as IsaParams
    from prodigy_sim.isa._program import CID as CID
    from prodigy_sim.isa._program import NCORES as NCORES
    from prodigy_sim.isa._program import AccDecl as AccDecl
    from prodigy_sim.isa._program import Expr as Expr
    from prodigy_sim.isa._program import FImm as FImm
    from prodigy_sim.isa._program import Instruction as Instruction
    from prodigy_sim.isa._program import Program as Program
    from prodigy_sim.isa._program import Reg as Reg
    from prodigy_sim.isa._program import TensorDecl as TensorDecl
    from prodigy_sim.isa._program import TileDecl as TileDecl
    from prodigy_sim.isa._table import OpcodeSpec as OpcodeSpec
    from prodigy_sim.isa._table import OpcodeTable as OpcodeTable
    from prodigy_sim.isa._table import OperandSpec as OperandSpec
    from prodigy_sim.isa._table import opcode_table as opcode_table
    from prodigy_sim.isa._validate import MMA_SP_SPARSITY as MMA_SP_SPARSITY
    from prodigy_sim.isa._validate import validate as validate

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
    "multicast_group": "_expand",
    "FormatGroup": "_formats",
    "isa_storage": "_formats",
    "MMA_SP_SPARSITY": "_validate",
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
    "NCORES", "opcode_table", "OpcodeTable", "OpcodeSpec", "OperandSpec", "FormatGroup",
    "isa_storage", "MMA_SP_SPARSITY", "multicast_group",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
