"""The disassembler: :class:`Program` -> canonical text.

Canonical text is what :func:`assemble` reads back into an equal program: declarations first
(attributes in the order shape, fmt, block, scale, sparsity, ddr/spm, tile; defaults left out),
a blank line, then one instruction per line indented by 4 spaces plus 2 per enclosing LOOP,
labels on their own line at column 1. Comments are not kept.
"""

from __future__ import annotations

import math
import re

from prodigy_sim.isa._program import Expr, FImm, Instruction, Program, TensorDecl, TileDecl
from prodigy_sim.isa._table import opcode_table
from prodigy_sim.numerics import Storage

__all__ = ["disassemble", "format_fimm", "format_instruction"]

_CANONICAL_NAN = 0x7FC00000


def format_fimm(imm: FImm) -> str:
    """Shortest text that reads back to the same FP32 bits (``fbits(0x...)`` for odd NaNs)."""
    import numpy as np

    v = imm.value
    if math.isnan(v) and imm.bits != _CANONICAL_NAN:
        return f"fbits(0x{imm.bits:08X})"
    return str(np.float32(v))


def _storage(d: TensorDecl | TileDecl) -> str:
    ref = d.fmt.ref
    fmt = ref if re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", ref) else f'"{ref}"'
    parts = [f"shape=({d.shape[0]},{d.shape[1]})", f"fmt={fmt}"]
    default = Storage.of(d.fmt)
    if d.block != (0 if d.scale == "none" else 32):
        parts.append(f"block={d.block}")
    if d.scale != default.scale:
        parts.append(f"scale={d.scale}")
    if d.sparsity is not None:
        parts.append(f"sparsity={d.sparsity.group}:{d.sparsity.kept}")
    addr_name, addr = ("ddr", d.ddr) if isinstance(d, TensorDecl) else ("spm", d.spm)
    if addr is not None:
        parts.append(f"{addr_name}=0x{addr:X}")
    if isinstance(d, TensorDecl) and d.tile is not None:
        parts.append(f"tile={d.tile[0]}x{d.tile[1]}")
    return " ".join(parts)


def format_instruction(ins: Instruction) -> str:
    """One instruction in canonical text, without indentation: ``DMA.LD A0, X, r1+64, 0``."""
    spec = opcode_table().by_mnemonic[ins.opcode]
    texts = []
    for j, (o, v) in enumerate(zip(spec.operands, ins.operands, strict=True)):
        if o.kind in ("reg", "sreg"):
            texts.append(opcode_table().register_name(ins.integer(j)))
        elif isinstance(v, FImm):
            texts.append(format_fimm(v))
        elif isinstance(v, Expr):
            texts.append(str(v))
        else:
            texts.append(str(v))
    return f"{ins.opcode} {', '.join(texts)}" if texts else ins.opcode


def disassemble(program: Program) -> str:
    """Canonical text of a well-formed program (ends with a newline)."""
    lines = [f".tensor {t.name} {_storage(t)}" for t in program.tensors]
    lines += [f".tile {t.name} {_storage(t)}" for t in program.tiles]
    for a in program.accs:
        reg = f" reg={a.reg}" if a.reg is not None else ""
        lines.append(f".acc {a.name} shape=({a.shape[0]},{a.shape[1]}){reg}")
    if lines:
        lines.append("")
    labels_at: dict[int, list[str]] = {}
    for name, idx in program.labels:
        labels_at.setdefault(idx, []).append(name)
    depth = 0
    for i, ins in enumerate(program.instructions):
        lines += [f"{name}:" for name in labels_at.get(i, ())]
        if ins.opcode == "ENDLOOP":
            depth = max(depth - 1, 0)
        lines.append("    " + "  " * depth + format_instruction(ins))
        if ins.opcode == "LOOP":
            depth += 1
    lines += [f"{name}:" for name in labels_at.get(len(program.instructions), ())]
    return "\n".join(lines) + "\n"
