"""The program representation: declarations, operands, instructions and the program itself.

A :class:`Program` is what the assembler, the binary decoder and the builder produce, and what the
disassembler, encoder, validator and expander consume. It is immutable. Operand values by kind:

========  ==========================================================
kind      Python value
========  ==========================================================
tile      ``str`` - name of a :class:`TileDecl`
tensor    ``str`` - name of a :class:`TensorDecl`
acc       ``str`` - name of an :class:`AccDecl`
label     ``str`` - name of a label (``Program.labels``)
reg/sreg  ``int`` - register index (0..15 = r0..r15, 16 = cid, 17 = ncores)
expr      :class:`Expr` - ``reg + offset``, ``reg`` may be ``None``
simm      ``int``
fimm      :class:`FImm` - FP32 raw bits
========  ==========================================================
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import Union

from prodigy_sim.errors import ProgramError
from prodigy_sim.numerics import FormatSpec, ScaleKind, Sparsity, Storage

__all__ = [
    "Reg", "Expr", "FImm", "TensorDecl", "TileDecl", "AccDecl", "Instruction", "Program",
    "Operand", "CID", "NCORES",
]

_REG_NAMES = {16: "cid", 17: "ncores"}


@dataclass(frozen=True, slots=True)
class Reg:
    """A scalar register: 0..15 = r0..r15, 16 = cid, 17 = ncores. ``Reg(1) + 64`` is an Expr."""

    index: int

    def __add__(self, offset: int) -> Expr:
        return Expr(self.index, int(offset))

    def __sub__(self, offset: int) -> Expr:
        return Expr(self.index, -int(offset))

    def __str__(self) -> str:
        return _REG_NAMES.get(self.index, f"r{self.index}")


CID = Reg(16)
NCORES = Reg(17)


@dataclass(frozen=True, slots=True)
class Expr:
    """An address / count expression: ``reg + offset`` (``reg`` None means just ``offset``)."""

    reg: int | None
    offset: int

    def __str__(self) -> str:
        if self.reg is None:
            return str(self.offset)
        name = _REG_NAMES.get(self.reg, f"r{self.reg}")
        if self.offset == 0:
            return name
        return f"{name}{self.offset:+d}"


@dataclass(frozen=True, slots=True)
class FImm:
    """An FP32 immediate kept as its raw IEEE-754 bits, so NaN payloads and -0.0 survive."""

    bits: int

    @classmethod
    def of(cls, value: float) -> FImm:
        """The FP32 nearest to ``value`` (round to nearest even; overflow gives infinity)."""
        import numpy as np

        with np.errstate(over="ignore"):
            f = np.float32(value)
        return cls(int(f.view(np.uint32)))

    @property
    def value(self) -> float:
        """The immediate as a Python float (exact)."""
        return struct.unpack("<f", struct.pack("<I", self.bits & 0xFFFFFFFF))[0]


Operand = Union[str, int, Expr, FImm]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class _Storage:
    """Common part of tensors and tiles: a name, a shape and how the elements are stored.

    ``shape`` is (rows, cols) in elements; cols is the reduction axis of weights. ``storage`` is
    the :class:`~prodigy_sim.numerics.Storage` of each row: format, scale block (the ISA writes
    ``block=0`` for one scale per tensor; a per-row scale is stored as ``block=cols``), scale
    kind, sparsity. The wide formats (float32, bfloat16, float16) are plain little-endian
    row-major arrays.
    """

    name: str
    shape: tuple[int, int]
    storage: Storage

    def __post_init__(self) -> None:
        st = self.storage
        if (isinstance(st, Storage) and st.scaled and st.block is None
                and isinstance(self.shape, tuple) and len(self.shape) == 2):
            object.__setattr__(self, "storage", st.model_copy(update={"block": self.shape[1]}))

    @property
    def fmt(self) -> FormatSpec:
        """The element format."""
        return self.storage.fmt

    @property
    def block(self) -> int:
        """Elements per scale along a row; 0 for one scale per tensor, or no scale."""
        return self.storage.block or 0

    @property
    def scale(self) -> ScaleKind:
        return self.storage.scale

    @property
    def sparsity(self) -> Sparsity | None:
        return self.storage.sparsity

    @property
    def is_float(self) -> bool:
        """True for the wide formats (float32, bfloat16, float16): plain floats, no scales."""
        return self.storage.fmt.wide


@dataclass(frozen=True)
class TensorDecl(_Storage):
    """A DDR-resident 2-D tensor; ``ddr`` is its byte address, None = placed automatically.

    ``tile`` (H, W): the tensor is stored in (R/H) x (C/W) tiles, tile-row-major, each tile's
    bytes those of an (H, W) scratchpad tile of the same storage (pre-packed weights: a DMA of
    one tile is one contiguous DDR run); None = row-major (``isa/README.md``, byte layout)."""

    ddr: int | None = None
    tile: tuple[int, int] | None = None


@dataclass(frozen=True)
class TileDecl(_Storage):
    """An on-chip (scratchpad) buffer; ``spm`` is its byte offset, None = placed automatically."""

    spm: int | None = None


@dataclass(frozen=True)
class AccDecl:
    """An FP32 accumulator register of ``shape`` (M, N); ``reg`` None = allocated automatically."""

    name: str
    shape: tuple[int, int]
    reg: int | None = None


@dataclass(frozen=True)
class Instruction:
    """One static instruction: mnemonic (e.g. ``"DMA.LD"``), operand values, and where it came from.

    ``source_line`` (1-based line of the text, None if built or decoded) does not take part in
    equality. :meth:`name`, :meth:`integer` and :meth:`expr` read an operand as the value type of
    its kind (a ProgramError if it is not; a well-formed program always passes).
    """

    opcode: str
    operands: tuple[Operand, ...]
    source_line: int | None = field(default=None, compare=False)

    def _wrong(self, j: int, what: str) -> ProgramError:
        return ProgramError(f"{self.opcode} operand {j + 1}: expected {what} but found "
                            f"{self.operands[j]!r}")

    def name(self, j: int) -> str:
        """Operand ``j`` of kind tile, tensor, acc or label: the name it refers to."""
        v = self.operands[j]
        if not isinstance(v, str):
            raise self._wrong(j, "a name")
        return v

    def integer(self, j: int) -> int:
        """Operand ``j`` of kind reg, sreg (the register index) or simm (the immediate)."""
        v = self.operands[j]
        if not isinstance(v, int):
            raise self._wrong(j, "an integer")
        return v

    def expr(self, j: int) -> Expr:
        """Operand ``j`` of kind expr."""
        v = self.operands[j]
        if not isinstance(v, Expr):
            raise self._wrong(j, "an expression reg+imm")
        return v


@dataclass(frozen=True)
class Program:
    """A complete program: declaration tables, instructions, and labels ``(name, index)``.

    A label's index is the instruction it precedes (``len(instructions)`` = the end).
    """

    tensors: tuple[TensorDecl, ...] = ()
    tiles: tuple[TileDecl, ...] = ()
    accs: tuple[AccDecl, ...] = ()
    instructions: tuple[Instruction, ...] = ()
    labels: tuple[tuple[str, int], ...] = ()

    @functools.cached_property
    def tensor(self) -> dict[str, TensorDecl]:
        """Tensors by name."""
        return {t.name: t for t in self.tensors}

    @functools.cached_property
    def tile(self) -> dict[str, TileDecl]:
        """Tiles by name."""
        return {t.name: t for t in self.tiles}

    @functools.cached_property
    def acc(self) -> dict[str, AccDecl]:
        """Accumulators by name."""
        return {a.name: a for a in self.accs}

    @functools.cached_property
    def label(self) -> dict[str, int]:
        """Label name -> instruction index."""
        return dict(self.labels)
