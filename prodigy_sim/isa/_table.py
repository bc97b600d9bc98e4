"""The opcode table: ``isa/opcodes.yaml`` loaded into frozen objects.

The YAML file is the single source of truth of the instruction set: mnemonics, opcode numbers,
operand kinds and field widths (the binary encoding), unit classes, semantics and error cases. It is
read once per process by :func:`opcode_table` (cached), never at import time.

Bit layout of an instruction word (``word_bits`` = 64)::

    63      56 55                                              0
    +---------+-------------------------------------------------+
    | opcode  | operand 0 | operand 1 | ... | reserved (zero)   |
    +---------+-------------------------------------------------+

Operands are packed from bit 55 downwards in the order the table lists them, each ``bits`` wide.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodigy_sim._datafile import read_mapping
from prodigy_sim.errors import ConfigError
from prodigy_sim.isa._formats import FormatGroup

__all__ = ["Kind", "OperandSpec", "OpcodeSpec", "OpcodeTable", "opcode_table", "table_path"]

OPERAND_KINDS = ("tile", "tensor", "acc", "reg", "sreg", "expr", "simm", "fimm", "label")
UNITS = ("dma", "matrix", "vector", "scalar", "sync", "control")
REG_FIELD_BITS = 5


@dataclass(frozen=True)
class Kind:
    """An operand kind: its default field width in bits and a one-line description."""

    name: str
    bits: int
    doc: str


@dataclass(frozen=True)
class OperandSpec:
    """One operand of an instruction.

    ``bits`` is the width of its field in the instruction word; ``lsb`` the position of the field's
    least significant bit; ``access`` is ``"r"``, ``"w"``, ``"rw"`` or ``""`` (not a storage
    operand); ``formats`` names a format group or is ``None``.
    """

    name: str
    kind: str
    bits: int
    lsb: int
    access: str
    formats: str | None

    @property
    def imm_bits(self) -> int:
        """Width of the signed immediate part (``expr``: the field minus the register; else all)."""
        return self.bits - REG_FIELD_BITS if self.kind == "expr" else self.bits


@dataclass(frozen=True)
class OpcodeSpec:
    """One instruction of the table."""

    mnemonic: str
    opcode: int
    unit: str
    operands: tuple[OperandSpec, ...]
    shape: str
    semantics: str
    errors: tuple[str, ...]

    @property
    def method_name(self) -> str:
        """Name of the ProgramBuilder method (``DMA.LD`` -> ``dma_ld``)."""
        return self.mnemonic.lower().replace(".", "_")


@dataclass(frozen=True)
class OpcodeTable:
    """The whole table: instructions by mnemonic and by opcode number, kinds, registers, groups."""

    version: int
    word_bits: int
    opcode_bits: int
    kinds: dict[str, Kind]
    instructions: tuple[OpcodeSpec, ...]
    by_mnemonic: dict[str, OpcodeSpec]
    by_opcode: dict[int, OpcodeSpec]
    format_groups: dict[str, FormatGroup]
    shape_rules: dict[str, str]
    n_general_regs: int
    special_regs: dict[str, int]
    reg_none: int

    def register_name(self, index: int) -> str:
        """Text name of a register index: ``r3``, ``cid``, ``ncores``."""
        if index < self.n_general_regs:
            return f"r{index}"
        for name, idx in self.special_regs.items():
            if idx == index:
                return name
        raise KeyError(index)


@functools.lru_cache(maxsize=1)
def table_path() -> Path:
    """Where the opcode table is: package data if installed so, else the repository's isa/."""
    here = Path(__file__).resolve().parent
    packaged = here / "opcodes.yaml"
    if packaged.is_file():
        return packaged
    return here.parent.parent / "isa" / "opcodes.yaml"


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"opcode table: {where}: missing '{key}'")
    return d[key]


def _build(raw: dict[str, Any], source: str) -> OpcodeTable:
    word_bits = int(_need(raw, "word_bits", source))
    opcode_bits = int(_need(raw, "opcode_bits", source))
    kinds = {
        name: Kind(name, int(_need(k, "bits", f"kind {name}")), str(k.get("doc", "")))
        for name, k in _need(raw, "kinds", source).items()
    }
    if set(kinds) != set(OPERAND_KINDS):
        raise ConfigError(f"opcode table: kinds must be {OPERAND_KINDS} (got {tuple(kinds)})")
    groups = {k: FormatGroup.from_yaml(k, v)
              for k, v in _need(raw, "format_groups", source).items()}
    rules = dict(_need(raw, "shape_rules", source))
    regs = _need(raw, "registers", source)
    specs = []
    for entry in _need(raw, "instructions", source):
        mnem = str(_need(entry, "mnemonic", source))
        code = int(_need(entry, "opcode", mnem))
        unit = str(_need(entry, "unit", mnem))
        if unit not in UNITS:
            raise ConfigError(f"opcode table: {mnem}: unit must be one of {UNITS} (got {unit!r})")
        if not 0 <= code < 1 << opcode_bits:
            raise ConfigError(f"opcode table: {mnem}: opcode {code} does not fit "
                              f"{opcode_bits} bits")
        pos = word_bits - opcode_bits
        ops = []
        for o in entry.get("operands") or []:
            kind = str(_need(o, "kind", mnem))
            if kind not in kinds:
                raise ConfigError(f"opcode table: {mnem}: unknown operand kind {kind!r}")
            bits = int(o.get("bits", kinds[kind].bits))
            pos -= bits
            fmts = o.get("formats")
            if fmts is not None and fmts not in groups:
                raise ConfigError(f"opcode table: {mnem}: unknown format group {fmts!r}")
            ops.append(OperandSpec(str(_need(o, "name", mnem)), kind, bits, pos,
                                   str(o.get("access", "")), fmts))
        if pos < 0:
            raise ConfigError(f"opcode table: {mnem}: operands need {word_bits - pos} bits "
                              f"(the word has {word_bits})")
        shape = str(entry.get("shape", "none"))
        if shape not in rules:
            raise ConfigError(f"opcode table: {mnem}: unknown shape rule {shape!r}")
        specs.append(OpcodeSpec(mnem, code, unit, tuple(ops), shape,
                                str(entry.get("semantics", "")),
                                tuple(str(e) for e in entry.get("errors") or ())))
    by_m = {s.mnemonic: s for s in specs}
    by_c = {s.opcode: s for s in specs}
    if len(by_m) != len(specs) or len(by_c) != len(specs):
        raise ConfigError("opcode table: mnemonics and opcode numbers must be unique")
    return OpcodeTable(
        version=int(_need(raw, "version", source)), word_bits=word_bits, opcode_bits=opcode_bits,
        kinds=kinds, instructions=tuple(specs), by_mnemonic=by_m, by_opcode=by_c,
        format_groups=groups, shape_rules=rules, n_general_regs=int(regs["general"]),
        special_regs={str(k): int(v) for k, v in regs["special"].items()},
        reg_none=int(regs["none"]),
    )


@functools.lru_cache(maxsize=4)
def _load(path: str) -> OpcodeTable:
    return _build(read_mapping(path, what="opcode table"), path)


def opcode_table(path: str | Path | None = None) -> OpcodeTable:
    """The opcode table (parsed once per path and cached).

    Raises :class:`~prodigy_sim.errors.ConfigError` if the file is inconsistent (duplicate opcode,
    operands wider than the word, unknown kind...).
    """
    return _load(str(Path(path) if path is not None else table_path()))
