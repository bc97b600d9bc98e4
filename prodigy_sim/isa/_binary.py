"""The binary program format: a header with the declaration tables, then 64-bit instruction words.

All integers are little-endian. Layout (byte offsets)::

    0   magic "PRDGISA\\0"           8 bytes
    8   u16 table version, u16 word bits (64)
    12  u32 counts: strings, tensors, tiles, accumulators, labels, instructions; u32 reserved (0)
    40  string table: per string u16 length + UTF-8 bytes; zero padding to a multiple of 8
        tensor records, 40 bytes each:
            u32 name, u32 rows, u32 cols, u32 fmt, u32 block, u32 scale   (name/fmt/scale: string
            u8 sparsity group (0 = dense), u8 kept, u8 flags (bit 0: address given), u8 0,
            u16 tile width W, u16 tile height H (``tile=HxW``; both 0: row-major), u64 ddr
            address
        tile records, 40 bytes each, same layout (the address is the scratchpad offset; H and W
            are 0)
        accumulator records, 16 bytes: u32 name, u32 rows, u32 cols, i32 register (-1 = auto)
        label records, 8 bytes: u32 name, u32 instruction index
        instruction words, 8 bytes each (layout: isa/opcodes.yaml, isa/README.md)

The file ends right after the last word. A label operand holds the absolute instruction index; the
decoder names it after the first label at that index (``L<index>`` if there is none), so text
round-trips exactly when no two labels share an index.
"""

from __future__ import annotations

import struct
from pathlib import Path

from prodigy_sim._datafile import read_binary
from prodigy_sim.errors import AssemblyError, ConfigError, ProgramError
from prodigy_sim.isa._check import problems
from prodigy_sim.isa._formats import isa_storage
from prodigy_sim.isa._program import (
    AccDecl,
    Expr,
    FImm,
    Instruction,
    Program,
    TensorDecl,
    TileDecl,
)
from prodigy_sim.isa._table import opcode_table

__all__ = ["encode", "decode", "decode_file", "MAGIC"]

MAGIC = b"PRDGISA\x00"
_HEAD = struct.Struct("<8sHH7I")
_STORAGE = struct.Struct("<6I4BIQ")
_ACC = struct.Struct("<3Ii")
_LABEL = struct.Struct("<2I")
_WORD = struct.Struct("<Q")


def _issue_error(issue, where_offset: dict, file: str | None, cls=AssemblyError):
    off = where_offset.get(issue.where, lambda i: 0)(issue.index)
    err = cls(f"byte offset {off} (0x{off:X}): {issue.message}", file=file)
    err.offset = off
    return err


def encode(program: Program) -> bytes:
    """The binary image of a well-formed program (raises ProgramError if it is not)."""
    table = opcode_table()
    issues = problems(program, table)
    if issues:
        i = issues[0]
        raise ProgramError(f"cannot encode: {i.where} {i.index}: {i.message}")
    strings: dict[str, int] = {}

    def sid(s: str) -> int:
        return strings.setdefault(s, len(strings))

    records = []
    for d in program.tensors + program.tiles:
        addr = d.ddr if isinstance(d, TensorDecl) else d.spm
        sp = d.sparsity
        group, kept = (0, 0) if sp is None else (sp.group, sp.kept)
        th, tw = d.tile if isinstance(d, TensorDecl) and d.tile is not None else (0, 0)
        records.append(_STORAGE.pack(sid(d.name), d.shape[0], d.shape[1], sid(d.fmt.ref),
                                     d.block, sid(str(d.scale)), group, kept,
                                     int(addr is not None), 0, th << 16 | tw, addr or 0))
    records += [_ACC.pack(sid(a.name), a.shape[0], a.shape[1], -1 if a.reg is None else a.reg)
                for a in program.accs]
    records += [_LABEL.pack(sid(name), idx) for name, idx in program.labels]
    index = {**{t.name: i for i, t in enumerate(program.tensors)},
             **{t.name: i for i, t in enumerate(program.tiles)},
             **{a.name: i for i, a in enumerate(program.accs)},
             **program.label}
    words = []
    top = table.word_bits - table.opcode_bits
    for ins in program.instructions:
        spec = table.by_mnemonic[ins.opcode]
        word = spec.opcode << top
        for o, v in zip(spec.operands, ins.operands, strict=True):
            if isinstance(v, Expr):  # the kind is expr (well formed)
                reg = table.reg_none if v.reg is None else v.reg
                field = (reg << o.imm_bits) | (v.offset & ((1 << o.imm_bits) - 1))
            elif isinstance(v, FImm):  # the kind is fimm
                field = v.bits
            elif isinstance(v, str):
                field = index[v]
            else:
                field = v & ((1 << o.bits) - 1)
            word |= field << o.lsb
        words.append(_WORD.pack(word))
    blob = b"".join(struct.pack("<H", len(b)) + b for b in (s.encode() for s in strings))
    blob += b"\x00" * (-(len(blob) + _HEAD.size) % 8)
    head = _HEAD.pack(MAGIC, table.version, table.word_bits, len(strings), len(program.tensors),
                      len(program.tiles), len(program.accs), len(program.labels),
                      len(program.instructions), 0)
    return head + blob + b"".join(records) + b"".join(words)


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def decode(data: bytes, file: str | Path | None = None) -> Program:
    """Decode a binary image. Raises AssemblyError (message and ``.offset`` = byte offset)."""
    table = opcode_table()
    fname = str(file) if file is not None else None

    def fail(off: int, msg: str) -> AssemblyError:
        err = AssemblyError(f"byte offset {off} (0x{off:X}): {msg}", file=fname)
        err.offset = off
        return err

    data = bytes(data)
    if len(data) < _HEAD.size:
        raise fail(len(data), f"truncated header ({len(data)} of {_HEAD.size} bytes)")
    magic, version, word_bits, n_str, n_ten, n_til, n_acc, n_lab, n_ins, rsv = _HEAD.unpack_from(
        data)
    if magic != MAGIC:
        raise fail(0, f"expected the magic {MAGIC!r} but found {magic!r}")
    if version != table.version or word_bits != table.word_bits:
        raise fail(8, f"expected ISA version {table.version} with {table.word_bits}-bit words "
                      f"but found version {version}, {word_bits}-bit words")
    if rsv:
        raise fail(36, "reserved header field is not zero")
    pos = _HEAD.size
    strings = []
    for _ in range(n_str):
        if pos + 2 > len(data):
            raise fail(pos, "truncated string table")
        (n,) = struct.unpack_from("<H", data, pos)
        if pos + 2 + n > len(data):
            raise fail(pos, f"string of {n} bytes runs past the end of the data")
        try:
            strings.append(data[pos + 2: pos + 2 + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise fail(pos, "string is not valid UTF-8") from None
        pos += 2 + n
    pad = -pos % 8
    if data[pos: pos + pad] != b"\x00" * pad:
        raise fail(pos, "string table padding is not zero")
    pos += pad
    need = (n_ten + n_til) * _STORAGE.size + n_acc * _ACC.size + n_lab * _LABEL.size \
        + n_ins * _WORD.size
    if len(data) - pos != need:
        raise fail(min(pos + need, len(data)), f"expected {need} bytes of tables and "
                                               f"instructions but found {len(data) - pos}")

    def string(i: int, off: int) -> str:
        if i >= len(strings):
            raise fail(off, f"string index {i} outside the string table ({len(strings)} strings)")
        return strings[i]

    offsets = {}
    decls: list[list] = [[], []]
    for k, (cls, count) in enumerate(((TensorDecl, n_ten), (TileDecl, n_til))):
        offsets["tensor" if k == 0 else "tile"] = (lambda base: lambda i: base + i
                                                   * _STORAGE.size)(pos)
        for _ in range(count):
            name, r, c, fmt, block, scale, g, kept, flags, z, hw, addr = _STORAGE.unpack_from(
                data, pos)
            th, tw = hw >> 16, hw & 0xFFFF
            if flags > 1 or z or (g == 0 and kept) or (not flags and addr):
                raise fail(pos, "malformed declaration record (reserved bits set)")
            if (th == 0) != (tw == 0) or (th and cls is TileDecl):
                raise fail(pos, f"malformed declaration record (tile shape {th}x{tw}: both 0, or "
                                "both set on a tensor)")
            sp = (g, kept) if g else None
            kw: dict = {"ddr" if cls is TensorDecl else "spm": addr if flags else None}
            if th:
                kw["tile"] = (th, tw)
            folder = Path(fname).parent if fname else None
            try:
                storage = isa_storage(string(fmt, pos), block, string(scale, pos), sp,
                                      base=folder)
            except ConfigError as err:
                raise fail(pos, f"declaration {string(name, pos)}: {err}") from None
            decls[k].append(cls(string(name, pos), (r, c), storage, **kw))
            pos += _STORAGE.size
    offsets["acc"] = (lambda base: lambda i: base + i * _ACC.size)(pos)
    accs = []
    for _ in range(n_acc):
        name, r, c, reg = _ACC.unpack_from(data, pos)
        if reg < -1:
            raise fail(pos, f"accumulator register {reg} is negative")
        accs.append(AccDecl(string(name, pos), (r, c), None if reg == -1 else reg))
        pos += _ACC.size
    offsets["label"] = (lambda base: lambda i: base + i * _LABEL.size)(pos)
    labels = []
    for _ in range(n_lab):
        name, idx = _LABEL.unpack_from(data, pos)
        labels.append((string(name, pos), idx))
        pos += _LABEL.size
    offsets["instr"] = (lambda base: lambda i: base + i * _WORD.size)(pos)
    names = {"tensor": [d.name for d in decls[0]], "tile": [d.name for d in decls[1]],
             "acc": [a.name for a in accs]}
    by_index: dict[int, str] = {}
    for name, idx in labels:
        by_index.setdefault(idx, name)
    taken = {n for v in names.values() for n in v} | {n for n, _ in labels}
    top = table.word_bits - table.opcode_bits
    n_sreg = max(table.special_regs.values()) + 1
    instrs = []
    for _ in range(n_ins):
        (word,) = _WORD.unpack_from(data, pos)
        spec = table.by_opcode.get(word >> top)
        if spec is None:
            raise fail(pos, f"unknown opcode 0x{word >> top:02X}")
        low = spec.operands[-1].lsb if spec.operands else top
        if word & ((1 << low) - 1):
            raise fail(pos, f"{spec.mnemonic}: reserved bits {low - 1}..0 are not zero")
        values = []
        for j, o in enumerate(spec.operands):
            field = (word >> o.lsb) & ((1 << o.bits) - 1)
            where = f"{spec.mnemonic} operand {j + 1} ({o.name})"
            if o.kind in names:
                if field >= len(names[o.kind]):
                    raise fail(pos, f"{where}: {o.kind} index {field} outside the table "
                                    f"({len(names[o.kind])} entries)")
                values.append(names[o.kind][field])
            elif o.kind == "label":
                if field > n_ins:
                    raise fail(pos, f"{where}: branch target {field} outside the program")
                if field not in by_index:
                    name = f"L{field}"
                    while name in taken:
                        name = "_" + name
                    taken.add(name)
                    by_index[field] = name
                    labels.append((name, field))
                values.append(by_index[field])
            elif o.kind in ("reg", "sreg"):
                if field >= (table.n_general_regs if o.kind == "reg" else n_sreg):
                    raise fail(pos, f"{where}: register field {field} is not a valid register")
                values.append(field)
            elif o.kind == "expr":
                reg = field >> o.imm_bits
                if reg != table.reg_none and reg >= n_sreg:
                    raise fail(pos, f"{where}: register field {reg} is not a valid register")
                values.append(Expr(None if reg == table.reg_none else reg,
                                   _signed(field & ((1 << o.imm_bits) - 1), o.imm_bits)))
            elif o.kind == "fimm":
                values.append(FImm(field))
            else:
                values.append(_signed(field, o.bits))
        instrs.append(Instruction(spec.mnemonic, tuple(values)))
        pos += _WORD.size
    program = Program(tuple(decls[0]), tuple(decls[1]), tuple(accs), tuple(instrs),
                      tuple(labels))
    issues = problems(program, table)
    if issues:
        raise _issue_error(issues[0], offsets, fname)
    return program


def decode_file(path: str | Path) -> Program:
    """Decode the binary program in file ``path`` (:func:`decode`); a file that cannot be read
    raises :class:`~prodigy_sim.errors.AssemblyError` naming it."""
    return decode(read_binary(path, what="binary program", error=AssemblyError), file=path)
