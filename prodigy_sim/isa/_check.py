"""Well-formedness of a :class:`Program`: what every front end (text, binary, builder) enforces.

A well-formed program can be encoded and disassembled: names are valid and unique, every operand has
the value type of its kind and fits its field, names refer to declarations of the right kind,
labels exist, and LOOP / ENDLOOP nest. Whether it can *run* (shapes, formats, capacity) is
:func:`prodigy_sim.isa.validate`'s job.

:func:`problems` returns :class:`Issue` objects; each front end turns the first into its own error
type with its own location (file:line:column, byte offset, or builder call).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prodigy_sim.isa._formats import SPARSITY_GROUPS
from prodigy_sim.isa._layout import column_bytes
from prodigy_sim.isa._program import AccDecl, Expr, FImm, Program, TensorDecl, TileDecl
from prodigy_sim.isa._table import OpcodeTable, opcode_table
from prodigy_sim.numerics import RowBytes, Storage

__all__ = ["Issue", "problems", "NAME_RE", "reserved_names", "loop_ends", "SPARSITY_GROUPS"]

_Decl = TensorDecl | TileDecl | AccDecl | tuple[str, int]

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_U32 = 1 << 32
_U64 = 1 << 64


@dataclass(frozen=True)
class Issue:
    """A problem found in a program.

    ``where`` is ``"tensor"``, ``"tile"``, ``"acc"``, ``"label"`` or ``"instr"``; ``index`` the
    position in that table; ``part`` an operand index (instructions), an attribute name
    (declarations) or None.
    """

    where: str
    index: int
    part: int | str | None
    message: str


def reserved_names(table: OpcodeTable) -> frozenset[str]:
    """Lower-cased words that cannot name a symbol: registers, mnemonics, literal keywords."""
    regs = {f"r{i}" for i in range(table.n_general_regs)} | set(table.special_regs)
    return frozenset(regs | {m.lower() for m in table.by_mnemonic} | {"inf", "nan", "fbits"})


MAX_NAME_CHARS = 65535
"""Longest symbol name (the binary's string table stores a u16 length)."""


def _name_issue(name: object, reserved: frozenset[str]) -> str | None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"expected a name (letter or '_' then letters, digits, '_') but found {name!r}"
    if len(name) > MAX_NAME_CHARS:
        return (f"name {name[:20]!r}... has {len(name)} characters (at most {MAX_NAME_CHARS}: "
                "the binary stores its length in 16 bits)")
    if name.lower() in reserved:
        return f"{name!r} is a reserved word (register or mnemonic) and cannot name a symbol"
    return None


def _storage_issues(d: TensorDecl | TileDecl, kind: str, i: int, addr_attr: str) -> Iterator[Issue]:
    shape = d.shape
    if (not isinstance(shape, tuple) or len(shape) != 2
            or not all(isinstance(x, int) and 1 <= x < _U32 for x in shape)):
        yield Issue(kind, i, "shape", f"shape must be two integers in 1..{_U32 - 1} "
                                      f"(got {shape!r})")
        return
    st = d.storage
    if not isinstance(st, Storage):
        yield Issue(kind, i, "fmt", f"storage must be a numerics Storage (got {st!r})")
        return
    found = []
    if st.block and st.scaled and shape[1] % st.block:
        found.append(Issue(kind, i, "block", f"cols ({shape[1]}) must be a multiple of block "
                                             f"({st.block})"))
    sp = st.sparsity
    if sp is not None:
        if sp.group not in SPARSITY_GROUPS or not sp.kept < sp.group:
            found.append(Issue(kind, i, "sparsity", "sparsity must be GROUP:KEPT with GROUP in "
                                                    f"{SPARSITY_GROUPS} and 1 <= KEPT < GROUP "
                                                    f"(got {sp})"))
        elif st.fmt.wide:
            found.append(Issue(kind, i, "sparsity", f"{st.fmt.name} storage cannot be sparse"))
        elif shape[1] % sp.group:
            found.append(Issue(kind, i, "sparsity", f"cols ({shape[1]}) must be a multiple of "
                                                    f"the sparsity group ({sp.group})"))
    if isinstance(d, TensorDecl) and d.tile is not None and not found:
        msg = _tile_issue(d)
        if msg:
            found.append(Issue(kind, i, "tile", msg))
    yield from found
    addr = getattr(d, addr_attr)
    if addr is not None and not (isinstance(addr, int) and 0 <= addr < _U64):
        yield Issue(kind, i, addr_attr, f"{addr_attr} must be an integer in 0..2**64-1 "
                                        f"(got {addr!r})")


def _tile_issue(d: TensorDecl) -> str | None:
    """What is wrong with a tensor's ``tile=HxW`` (None if nothing)."""
    tile, (r, c), st = d.tile, d.shape, d.storage
    if (not isinstance(tile, tuple) or len(tile) != 2
            or not all(isinstance(x, int) and 1 <= x < 1 << 16 for x in tile)):
        return f"tile must be two integers in 1..65535 (got {tile!r})"
    h, w = tile
    if r % h or c % w:
        return f"tile {h}x{w} must divide the shape ({r},{c})"
    for size, what in ((st.block if st.scaled else 0, "block size"),
                       (st.sparsity.group if st.sparsity else 0, "sparsity group")):
        if size and w % size:
            return f"tile width {w} must be a multiple of the {what} {size}"
    part = st.row_bytes(w)
    if (st.kept(w) * st.bits % 8
            or column_bytes(st.row_bytes(c), c, w) != RowBytes(part.code, part.scale, part.meta)):
        return (f"tile width {w} must hold whole bytes of codes, scales and metadata per row "
                f"({st.kept(w) * st.bits} bits of {st.fmt.name} codes)")
    return None


def _fits(value: int, bits: int) -> bool:
    return -(1 << (bits - 1)) <= value < (1 << (bits - 1))


def _operand_issue(table: OpcodeTable, program: Program, kind: str, bits: int, imm_bits: int,
                   value: object) -> str | None:
    if kind in ("tile", "tensor", "acc", "label"):
        by_kind: dict[str, Mapping[str, object]] = {
            "tile": program.tile, "tensor": program.tensor, "acc": program.acc,
            "label": program.label}
        names = by_kind[kind]
        if not isinstance(value, str):
            return f"expected a {kind} name but found {value!r}"
        if value not in names:
            other = [k for k, d in (("tile", program.tile), ("tensor", program.tensor),
                                    ("accumulator", program.acc)) if value in d]
            if other:
                return f"expected a {kind} name but {value!r} is a {other[0]}"
            return f"undefined {kind} {value!r}"
        return None
    if kind in ("reg", "sreg"):
        limit = table.n_general_regs if kind == "reg" else max(table.special_regs.values()) + 1
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
            what = "r0..r15" if kind == "reg" else "r0..r15, cid or ncores"
            return f"expected a register {what} but found {value!r}"
        return None
    if kind == "expr":
        if not isinstance(value, Expr):
            return f"expected an expression reg+imm but found {value!r}"
        limit = max(table.special_regs.values()) + 1
        if value.reg is not None and not (isinstance(value.reg, int) and 0 <= value.reg < limit):
            return f"expression register {value.reg!r} is not r0..r15, cid or ncores"
        if not isinstance(value.offset, int) or not _fits(value.offset, imm_bits):
            return (f"immediate {value.offset!r} does not fit the {imm_bits}-bit signed field "
                    f"({-(1 << (imm_bits - 1))}..{(1 << (imm_bits - 1)) - 1}); "
                    "load it into a register")
        return None
    if kind == "simm":
        if isinstance(value, bool) or not isinstance(value, int) or not _fits(value, bits):
            return (f"expected an integer in the {bits}-bit signed range "
                    f"({-(1 << (bits - 1))}..{(1 << (bits - 1)) - 1}) but found {value!r}")
        return None
    if kind == "fimm":
        if not isinstance(value, FImm) or not 0 <= value.bits < _U32:
            return f"expected an FP32 immediate but found {value!r}"
        return None
    return f"unknown operand kind {kind!r}"


def loop_ends(program: Program, table: OpcodeTable | None = None) -> dict[int, int]:
    """LOOP index -> matching ENDLOOP index. Assumes a well-formed program."""
    stack: list[int] = []
    ends = {}
    for i, ins in enumerate(program.instructions):
        if ins.opcode == "LOOP":
            stack.append(i)
        elif ins.opcode == "ENDLOOP" and stack:
            ends[stack.pop()] = i
    return ends


def problems(program: Program, table: OpcodeTable | None = None) -> list[Issue]:
    """Every well-formedness issue of ``program`` (empty list if it is well formed)."""
    table = table or opcode_table()
    reserved = reserved_names(table)
    out: list[Issue] = []
    seen: dict[str, str] = {}
    limits = {k: 1 << table.kinds[k].bits for k in ("tensor", "tile", "acc")}
    tables: tuple[tuple[str, Sequence[_Decl]], ...] = (
        ("tensor", program.tensors), ("tile", program.tiles), ("acc", program.accs),
        ("label", program.labels))
    for kind, decls in tables:
        if kind in limits and len(decls) > limits[kind]:
            out.append(Issue(kind, limits[kind], None, f"more than {limits[kind]} {kind}s "
                                                       "(the operand field's limit)"))
        for i, d in enumerate(decls):
            name = d[0] if isinstance(d, tuple) else d.name
            msg = _name_issue(name, reserved)
            if msg is None and name in seen:
                msg = f"{name!r} is already declared as a {seen[name]}"
            if msg:
                out.append(Issue(kind, i, "name", msg))
                continue
            seen[name] = kind
            if isinstance(d, (TensorDecl, TileDecl)):
                addr = "ddr" if isinstance(d, TensorDecl) else "spm"
                out.extend(_storage_issues(d, kind, i, addr))
            elif isinstance(d, AccDecl):
                if (not isinstance(d.shape, tuple) or len(d.shape) != 2
                        or not all(isinstance(x, int) and 1 <= x < 1 << 16 for x in d.shape)):
                    out.append(Issue(kind, i, "shape", "shape must be two integers in 1..65535 "
                                                       f"(got {d.shape!r})"))
                if d.reg is not None and not (isinstance(d.reg, int)
                                              and 0 <= d.reg < limits["acc"]):
                    out.append(Issue(kind, i, "reg", f"reg must be in 0..{limits['acc'] - 1} "
                                                     f"(got {d.reg!r})"))
            elif not isinstance(d[1], int) or not 0 <= d[1] <= len(program.instructions):
                out.append(Issue(kind, i, None, f"label {name!r} points outside the program"))
    label_limit = 1 << table.kinds["label"].bits
    if len(program.instructions) > label_limit:
        out.append(Issue("instr", label_limit, None,
                         f"more than {label_limit} instructions (the label field's limit)"))
    depth: list[int] = []
    for i, ins in enumerate(program.instructions):
        spec = table.by_mnemonic.get(ins.opcode)
        if spec is None:
            out.append(Issue("instr", i, None, f"unknown mnemonic {ins.opcode!r}"))
            continue
        if len(ins.operands) != len(spec.operands):
            out.append(Issue("instr", i, None, f"{spec.mnemonic} takes {len(spec.operands)} "
                                               f"operands (got {len(ins.operands)})"))
            continue
        for j, (o, v) in enumerate(zip(spec.operands, ins.operands, strict=True)):
            msg = _operand_issue(table, program, o.kind, o.bits, o.imm_bits, v)
            if msg:
                out.append(Issue("instr", i, j, f"{spec.mnemonic} operand {j + 1} ({o.name}): "
                                                f"{msg}"))
        if ins.opcode == "LOOP":
            depth.append(i)
        elif ins.opcode == "ENDLOOP":
            if not depth:
                out.append(Issue("instr", i, None, "ENDLOOP without a matching LOOP"))
            else:
                depth.pop()
    for i in depth:
        out.append(Issue("instr", i, None, "LOOP without a matching ENDLOOP"))
    return out
