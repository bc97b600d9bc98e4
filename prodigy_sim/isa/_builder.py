"""The builder API: programs from Python, one method per instruction.

Example - a two-step K loop of an FP8 x TAI4 GEMM tile::

    b = ProgramBuilder()
    x = b.tensor("X", (64, 256), "float8_e4m3fn")
    w = b.tensor("W", (64, 256), "tai4")
    a = b.tile("A", (64, 128), "float8_e4m3fn")
    wt = b.tile("WT", (64, 128), "tai4")
    c = b.acc("C", (64, 64))
    b.acc_zero(c)
    with b.loop(Reg(1), 2, step=128) as k:     # k = r1 = 0, 128
        b.dma_ld(a, x, 0, k)
        b.dma_ld(wt, w, 0, k)
        b.mma(c, a, wt)
    program = b.build()

Operands may be given as declarations or names (tiles, tensors, accumulators), :class:`Reg`
(registers), ``int`` / :class:`Reg` / :class:`Expr` such as ``Reg(1) + 64`` (expressions),
``float`` or :class:`FImm` (FP32 immediates) and ``str`` (labels). :meth:`ProgramBuilder.build`
checks the program is well formed (ProgramError otherwise); :func:`~prodigy_sim.isa.validate`
checks it can run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa._check import problems
from prodigy_sim.isa._formats import isa_storage
from prodigy_sim.isa._program import (
    AccDecl,
    Expr,
    FImm,
    Instruction,
    Operand,
    Program,
    Reg,
    TensorDecl,
    TileDecl,
)
from prodigy_sim.isa._table import opcode_table
from prodigy_sim.numerics import FormatSpec, Sparsity, Storage

__all__ = ["ProgramBuilder"]

Name = str | TensorDecl | TileDecl | AccDecl
ExprLike = int | Reg | Expr
Float = float | FImm


def _convert(kind: str, v: object) -> Operand:
    if kind in ("tile", "tensor", "acc"):
        return v.name if isinstance(v, (TensorDecl, TileDecl, AccDecl)) else v  # type: ignore
    if kind in ("reg", "sreg"):
        return v.index if isinstance(v, Reg) else v  # type: ignore[return-value]
    if kind == "expr":
        if isinstance(v, Reg):
            return Expr(v.index, 0)
        if isinstance(v, int) and not isinstance(v, bool):
            return Expr(None, v)
        return v  # type: ignore[return-value]
    if kind == "fimm" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return FImm.of(v)
    return v  # type: ignore[return-value]


class ProgramBuilder:
    """Accumulates declarations and instructions; :meth:`build` returns the :class:`Program`."""

    def __init__(self) -> None:
        self._tensors: list[TensorDecl] = []
        self._tiles: list[TileDecl] = []
        self._accs: list[AccDecl] = []
        self._instrs: list[Instruction] = []
        self._labels: list[tuple[str, int]] = []

    # ------------------------------------------------------------ declarations
    def tensor(self, name: str, shape: tuple[int, int], fmt: str | FormatSpec | Storage, *,
               block: int | None = None, scale: str | None = None,
               sparsity: tuple[int, int] | Sparsity | None = None,
               ddr: int | None = None, tile: tuple[int, int] | None = None) -> TensorDecl:
        """Declare a DDR tensor of ``shape`` (rows, cols) elements stored as ``fmt`` (a format,
        or a whole :class:`~prodigy_sim.numerics.Storage`); defaults as in the text;
        ``sparsity`` is ``(group, kept)``; ``tile`` (H, W): stored in tiles (``tile=HxW``)."""
        d = TensorDecl(name, tuple(shape), isa_storage(fmt, block, scale, sparsity),  # type: ignore
                       ddr, None if tile is None else tuple(tile))  # type: ignore[arg-type]
        self._tensors.append(d)
        return d

    def tile(self, name: str, shape: tuple[int, int], fmt: str | FormatSpec | Storage, *,
             block: int | None = None, scale: str | None = None,
             sparsity: tuple[int, int] | Sparsity | None = None,
             spm: int | None = None) -> TileDecl:
        """Declare an on-chip tile of ``shape`` (rows, cols) elements (see :meth:`tensor`)."""
        d = TileDecl(name, tuple(shape), isa_storage(fmt, block, scale, sparsity),  # type: ignore
                     spm)
        self._tiles.append(d)
        return d

    def acc(self, name: str, shape: tuple[int, int], *, reg: int | None = None) -> AccDecl:
        """Declare an FP32 accumulator of ``shape`` (M, N)."""
        d = AccDecl(name, tuple(shape), reg)  # type: ignore[arg-type]
        self._accs.append(d)
        return d

    # ------------------------------------------------------------ generic
    def emit(self, mnemonic: str, *operands: object) -> Instruction:
        """Append any instruction of the opcode table (operands converted as the module says)."""
        spec = opcode_table().by_mnemonic.get(mnemonic)
        if spec is None:
            raise ProgramError(f"unknown mnemonic {mnemonic!r}")
        if len(operands) != len(spec.operands):
            raise ProgramError(f"{mnemonic} takes {len(spec.operands)} operands "
                               f"({', '.join(o.name for o in spec.operands)}); got "
                               f"{len(operands)}")
        ins = Instruction(mnemonic, tuple(_convert(o.kind, v)
                                          for o, v in zip(spec.operands, operands, strict=True)))
        self._instrs.append(ins)
        return ins

    def label(self, name: str) -> str:
        """Place a label before the next instruction; returns its name."""
        self._labels.append((name, len(self._instrs)))
        return name

    @contextlib.contextmanager
    def loop(self, counter: Reg, count: ExprLike, step: int = 1) -> Iterator[Reg]:
        """``with b.loop(Reg(1), 16, step=64) as r:`` - LOOP ... ENDLOOP around the block."""
        self.emit("LOOP", counter, count, step)
        yield counter
        self.emit("ENDLOOP")

    def build(self) -> Program:
        """The program. Raises ProgramError if it is not well formed (bad name, operand...)."""
        p = Program(tuple(self._tensors), tuple(self._tiles), tuple(self._accs),
                    tuple(self._instrs), tuple(self._labels))
        issues = problems(p)
        if issues:
            raise ProgramError("; ".join(f"{i.where} {i.index}: {i.message}" for i in issues))
        return p

    # ------------------------------------------------------------ control and sync
    def nop(self) -> Instruction:
        return self.emit("NOP")

    def halt(self) -> Instruction:
        return self.emit("HALT")

    def endloop(self) -> Instruction:
        return self.emit("ENDLOOP")

    def jmp(self, target: str) -> Instruction:
        return self.emit("JMP", target)

    def bne(self, a: Reg, b: Reg, target: str) -> Instruction:
        return self.emit("BNE", a, b, target)

    def blt(self, a: Reg, b: Reg, target: str) -> Instruction:
        return self.emit("BLT", a, b, target)

    def barrier(self) -> Instruction:
        return self.emit("BARRIER")

    # ------------------------------------------------------------ scalar
    def li(self, dst: Reg, imm: int) -> Instruction:
        return self.emit("LI", dst, imm)

    def addi(self, dst: Reg, src: Reg, imm: int) -> Instruction:
        return self.emit("ADDI", dst, src, imm)

    def muli(self, dst: Reg, src: Reg, imm: int) -> Instruction:
        return self.emit("MULI", dst, src, imm)

    def divi(self, dst: Reg, src: Reg, imm: int) -> Instruction:
        return self.emit("DIVI", dst, src, imm)

    def add(self, dst: Reg, a: Reg, b: Reg) -> Instruction:
        return self.emit("ADD", dst, a, b)

    def sub(self, dst: Reg, a: Reg, b: Reg) -> Instruction:
        return self.emit("SUB", dst, a, b)

    def mul(self, dst: Reg, a: Reg, b: Reg) -> Instruction:
        return self.emit("MUL", dst, a, b)

    def div(self, dst: Reg, a: Reg, b: Reg) -> Instruction:
        return self.emit("DIV", dst, a, b)

    def min(self, dst: Reg, a: Reg, b: Reg) -> Instruction:
        return self.emit("MIN", dst, a, b)

    # ------------------------------------------------------------ dma
    def dma_ld(self, dst: Name, src: Name, row: ExprLike, col: ExprLike) -> Instruction:
        return self.emit("DMA.LD", dst, src, row, col)

    def dma_ldm(self, dst: Name, src: Name, row: Reg | int, col: Reg | int, size: int,
                stride: int) -> Instruction:
        """Multicast load to the caller's group of ``size`` cores ``stride`` apart (row and col
        in registers)."""
        return self.emit("DMA.LDM", dst, src, row, col, size, stride)

    def dma_st(self, dst: Name, row: ExprLike, col: ExprLike, src: Name) -> Instruction:
        return self.emit("DMA.ST", dst, row, col, src)

    def dma_wait(self) -> Instruction:
        return self.emit("DMA.WAIT")

    # ------------------------------------------------------------ matrix
    def mma(self, acc: Name, a: Name, w: Name) -> Instruction:
        return self.emit("MMA", acc, a, w)

    def mma_sp(self, acc: Name, a: Name, w: Name) -> Instruction:
        return self.emit("MMA.SP", acc, a, w)

    def acc_zero(self, acc: Name) -> Instruction:
        return self.emit("ACC.ZERO", acc)

    def acc_ld(self, acc: Name, src: Name) -> Instruction:
        return self.emit("ACC.LD", acc, src)

    def acc_st(self, dst: Name, acc: Name) -> Instruction:
        return self.emit("ACC.ST", dst, acc)

    # ------------------------------------------------------------ vector
    def vadd(self, dst: Name, a: Name, b: Name) -> Instruction:
        return self.emit("VADD", dst, a, b)

    def vsub(self, dst: Name, a: Name, b: Name) -> Instruction:
        return self.emit("VSUB", dst, a, b)

    def vmul(self, dst: Name, a: Name, b: Name) -> Instruction:
        return self.emit("VMUL", dst, a, b)

    def vmax(self, dst: Name, a: Name, b: Name) -> Instruction:
        return self.emit("VMAX", dst, a, b)

    def vmin(self, dst: Name, a: Name, b: Name) -> Instruction:
        return self.emit("VMIN", dst, a, b)

    def vfma(self, dst: Name, a: Name, b: Name, c: Name) -> Instruction:
        return self.emit("VFMA", dst, a, b, c)

    def vaddi(self, dst: Name, a: Name, imm: Float) -> Instruction:
        return self.emit("VADDI", dst, a, imm)

    def vmuli(self, dst: Name, a: Name, imm: Float) -> Instruction:
        return self.emit("VMULI", dst, a, imm)

    def vmaxi(self, dst: Name, a: Name, imm: Float) -> Instruction:
        return self.emit("VMAXI", dst, a, imm)

    def vmini(self, dst: Name, a: Name, imm: Float) -> Instruction:
        return self.emit("VMINI", dst, a, imm)

    def vexp(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VEXP", dst, a)

    def vrcp(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VRCP", dst, a)

    def vrsqrt(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VRSQRT", dst, a)

    def vgelu(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VGELU", dst, a)

    def vsilu(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VSILU", dst, a)

    def vroth(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VROTH", dst, a)

    def vhbf(self, dst: Name, a: Name, s: int) -> Instruction:
        return self.emit("VHBF", dst, a, s)

    def vrsum(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VRSUM", dst, a)

    def vrmax(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VRMAX", dst, a)

    def vcvt(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VCVT", dst, a)

    def vquant(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VQUANT", dst, a)

    def vdequant(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VDEQUANT", dst, a)

    def vtrans(self, dst: Name, a: Name) -> Instruction:
        return self.emit("VTRANS", dst, a)

    def vgather(self, dst: Name, src: Name, idx: Name) -> Instruction:
        return self.emit("VGATHER", dst, src, idx)

    def vscatadd(self, dst: Name, src: Name, idx: Name) -> Instruction:
        return self.emit("VSCATADD", dst, src, idx)
