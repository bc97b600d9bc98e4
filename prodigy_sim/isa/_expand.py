"""The expander: one core's dynamic instruction stream, with every address operand resolved.

Both the functional executor and the timing model consume it. It interprets only the scalar and
control instructions (registers, LOOP / ENDLOOP, branches) - which depend on nothing but ``cid``,
``ncores`` and immediates - and yields a :class:`Step` per executed instruction, lazily.

Cost: the program is compiled once per call into tuples of small integers; a step that has no
run-time operands is a prebuilt object yielded again (no allocation), a DMA step is one tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import NamedTuple

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa._check import loop_ends
from prodigy_sim.isa._layout import Layout, Segment, byte_columns
from prodigy_sim.isa._params import DEFAULT_MAX_STEPS
from prodigy_sim.isa._program import Expr, Instruction, Program, TensorDecl, TileDecl
from prodigy_sim.isa._table import opcode_table

__all__ = ["Step", "expand", "compile_steps", "multicast_group", "DEFAULT_MAX_STEPS"]

_MASK = (1 << 64) - 1
_SIGN = 1 << 63


class Step(NamedTuple):
    """One executed instruction.

    ``index``: position in ``program.instructions``; ``unit``: the opcode table's unit class;
    ``args``: the evaluated ``expr`` operands in order (DMA: ``(row, col)`` element offsets;
    DMA.LDM: ``(row, col, size, stride)``; LOOP: ``(count,)``); ``ddr``: for a DMA when a layout
    was given, the DDR byte ranges (codes, scales, metadata) of the window; ``spm``: the tile's
    scratchpad base offset (DMA with a layout).
    """

    index: int  # type: ignore[assignment]  # the field shadows tuple.index; it is the API
    instruction: Instruction
    unit: str
    args: tuple[int, ...] = ()
    ddr: tuple[Segment, ...] = ()
    spm: int | None = None


# compiled operation kinds
_PLAIN, _DMA, _LOOP, _END, _JMP, _BNE, _BLT, _HALT, _SCALAR = range(9)
_ALU: dict[str, Callable[[int, int], int]] = {
    "ADD": lambda a, b: a + b, "SUB": lambda a, b: a - b, "MUL": lambda a, b: a * b,
    "MIN": min, "ADDI": lambda a, b: a + b, "MULI": lambda a, b: a * b,
}


def _wrap(x: int) -> int:
    return ((x + _SIGN) & _MASK) - _SIGN


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError
    return a // b


def _expr(e: Expr) -> tuple[int, int]:
    return (-1 if e.reg is None else e.reg, e.offset)


def multicast_group(core: int, ncores: int, size: int, stride: int) -> tuple[int, ...]:
    """The cores of ``core``'s DMA.LDM group: ``base + k * stride`` for ``k < size`` with
    ``base = core % stride + (core // (size * stride)) * size * stride`` (``isa/README.md``).
    ProgramError if ``size`` or ``stride`` is < 1 or a member is not below ``ncores``."""
    if size < 1 or stride < 1:
        raise ProgramError(f"DMA.LDM group size {size} and stride {stride} must be >= 1")
    base = core % stride + (core // (size * stride)) * size * stride
    members = tuple(base + k * stride for k in range(size))
    if members[-1] >= ncores:
        raise ProgramError(f"core {core}: the DMA.LDM group (size {size}, stride {stride}) "
                           f"reaches core {members[-1]}, beyond the {ncores} cores running")
    return members


def _compile(program: Program, units: Collection[str] | None, layout: Layout | None
             ) -> list[tuple]:
    table = opcode_table()
    ends = loop_ends(program)
    starts = {end: start for start, end in ends.items()}
    code: list[tuple] = []
    for i, ins in enumerate(program.instructions):
        spec = table.by_mnemonic[ins.opcode]
        emit = units is None or spec.unit in units
        step = Step(i, ins, spec.unit)
        ops = ins.operands
        m = ins.opcode
        if m in ("DMA.LD", "DMA.ST", "DMA.LDM"):
            if m == "DMA.ST":
                tile, ten, row, col = ins.name(3), ins.name(0), ins.expr(1), ins.expr(2)
            elif m == "DMA.LD":
                tile, ten, row, col = ins.name(0), ins.name(1), ins.expr(2), ins.expr(3)
            else:                                   # register operands, then the group
                tile, ten = ins.name(0), ins.name(1)
                row, col = Expr(ins.integer(2), 0), Expr(ins.integer(3), 0)
            extra = (ins.integer(4), ins.integer(5)) if m == "DMA.LDM" else ()
            code.append((_DMA, emit, step, *_expr(row), *_expr(col),
                         _dma_plan(program.tile[tile], program.tensor[ten], layout), extra, {}))
        elif m == "LOOP":
            code.append((_LOOP, emit, step, ins.integer(0), *_expr(ins.expr(1)), ins.integer(2),
                         ends[i]))
        elif m == "ENDLOOP":
            code.append((_END, emit, step, starts[i]))
        elif m in ("JMP", "BNE", "BLT"):
            target = program.label[ins.name(len(ops) - 1)]
            kind = {"JMP": _JMP, "BNE": _BNE, "BLT": _BLT}[m]
            regs = (0, 0) if m == "JMP" else (ins.integer(0), ins.integer(1))
            code.append((kind, emit, step, *regs, target))
        elif m == "HALT":
            code.append((_HALT, emit, step))
        elif spec.unit == "scalar":
            fn: Callable[[int, int], int]
            if m == "LI":
                fn, a, b, b_is_reg = (lambda x, y: y), 0, ins.integer(1), False
            elif m in ("DIV", "DIVI"):
                fn, a, b, b_is_reg = _div, ins.integer(1), ins.integer(2), m == "DIV"
            else:
                fn, a, b, b_is_reg = (_ALU[m], ins.integer(1), ins.integer(2),
                                      m in ("ADD", "SUB", "MUL", "MIN"))
            code.append((_SCALAR, emit, step, ins.integer(0), fn, a, b, b_is_reg))
        else:
            code.append((_PLAIN, emit, step))
    return code


def _where(step: Step, core: int) -> str:
    ins = step.instruction
    at = f"line {ins.source_line}" if ins.source_line else f"instruction {step.index}"
    return f"core {core}, {at} ({ins.opcode})"


def _dma_plan(tile: TileDecl, ten: TensorDecl, layout: Layout | None) -> tuple:
    """Constants of one DMA instruction: shapes, alignment, and (with a layout) the layout,
    the column step of whole bytes (:func:`byte_columns`) and the tile's scratchpad offset."""
    h, w = tile.shape
    R, C = ten.shape  # noqa: N806
    group = ten.sparsity.group if ten.sparsity else 0
    if layout is None:
        return (ten, tile, h, w, R, C, group, None, None, None)
    return (ten, tile, h, w, R, C, group, layout,
            byte_columns(layout.tensors[ten.name], ten.storage), layout.tiles[tile.name].base)


def _dma(op: tuple, regs: list[int], core: int) -> Step:
    """The step of a DMA instruction at the window its registers give now. Steps are
    remembered per window (row, col) in the compiled instruction's ``memo`` (the cores of a
    program load the same windows again and again), at most ``_DMA_MEMO`` of them."""
    memo = op[9]
    row = (regs[op[3]] if op[3] >= 0 else 0) + op[4]
    col = (regs[op[5]] if op[5] >= 0 else 0) + op[6]
    step = memo.get((row, col))
    if step is None:
        step = _dma_step(op, row, col, core)
        if len(memo) >= _DMA_MEMO:
            memo.clear()
        memo[(row, col)] = step
    return step


_DMA_MEMO = 4096


def _dma_step(op: tuple, row: int, col: int, core: int) -> Step:
    """:func:`_dma` of window (row, col), checked against its tensor and built."""
    _, _, step, _, _, _, _, plan, extra, _ = op
    ten, tile, h, w, R, C, group, layout, step_cols, spm = plan  # noqa: N806
    if row < 0 or col < 0 or row + h > R or col + w > C:
        raise ProgramError(f"{_where(step, core)}: window rows {row}..{row + h - 1}, cols "
                           f"{col}..{col + w - 1} is outside tensor {ten.name} of shape "
                           f"({R},{C})")
    for size, what in ((ten.block, "block size"), (group, "sparsity group")):
        if size and col % size:
            raise ProgramError(f"{_where(step, core)}: column offset {col} is not a multiple of "
                               f"the {what} {size} of {ten.name}")
    if ten.tile is not None and ((h, w) != ten.tile or row % h or col % w):
        raise ProgramError(f"{_where(step, core)}: the {h}x{w} window at ({row},{col}) of "
                           f"tensor {ten.name} is not one of its {ten.tile[0]}x{ten.tile[1]} "
                           "tiles (tiles start at multiples of the tile shape)")
    if layout is None:
        return step._replace(args=(row, col, *extra))
    if ten.tile is None and w != C and (col % step_cols or w % step_cols):
        raise ProgramError(f"{_where(step, core)}: column window {col}..{col + w - 1} does "
                           f"not start and end on byte boundaries of {ten.name}")
    return Step(step.index, step.instruction, step.unit, (row, col, *extra),
                layout.window(ten, tile, row, col), spm)


def compile_steps(program: Program, *, layout: Layout | None = None,
                  units: Collection[str] | None = None) -> list[tuple]:
    """The core-independent part of :func:`expand` (decoded instructions, DMA plans); pass it
    as ``compiled`` to expand many cores of one program without redoing it."""
    return _compile(program, units, layout)


def expand(program: Program, core: int = 0, ncores: int = 1, *, layout: Layout | None = None,
           units: Collection[str] | None = None, max_steps: int | None = DEFAULT_MAX_STEPS,
           compiled: list[tuple] | None = None) -> Iterator[Step]:
    """Yield the dynamic instruction stream of ``core`` (of ``ncores``) lazily.

    ``layout`` (from :func:`~prodigy_sim.isa.validate` or :func:`~prodigy_sim.isa.layout`) adds
    DDR byte ranges to DMA steps; ``units`` restricts the yielded steps to those unit classes
    (all instructions still execute); ``max_steps`` bounds the instructions executed (a
    ProgramError naming the core, line and opcode beyond it - for loops that never end;
    default :data:`DEFAULT_MAX_STEPS`, None = no bound). Raises ProgramError on a DMA window
    outside its tensor or misaligned, and on division by zero. Assumes a validated program.
    ``compiled``: :func:`compile_steps` of the same program, layout and units.
    """
    if not 0 <= core < ncores:
        raise ProgramError(f"core {core} is not in 0..{ncores - 1}")
    if max_steps is not None and max_steps < 0:
        raise ProgramError(f"'max_steps' must be >= 0 or None (got {max_steps})")
    code = _compile(program, units, layout) if compiled is None else compiled
    regs = [0] * 18
    regs[16], regs[17] = core, ncores
    loops: list[list[int]] = []  # [counter reg, count, step, iterations done]
    n = len(code)
    pc = 0
    executed = 0
    limit = max_steps if max_steps is not None else -1
    while pc < n:
        op = code[pc]
        kind = op[0]
        executed += 1
        if executed == limit + 1:
            raise ProgramError(f"{_where(op[2], core)}: more than {max_steps} instructions "
                               "executed (the step budget 'max_steps'): a loop that never ends? "
                               "Give a larger max_steps, or None for no bound")
        if kind == _PLAIN:
            if op[1]:
                yield op[2]
            pc += 1
        elif kind == _DMA:
            step = _dma(op, regs, core)
            if op[1]:
                yield step
            pc += 1
        elif kind == _SCALAR:
            _, emit, step, dst, fn, a, b, b_is_reg = op
            try:
                regs[dst] = _wrap(fn(regs[a], regs[b] if b_is_reg else b))
            except ZeroDivisionError:
                raise ProgramError(f"{_where(step, core)}: division by zero") from None
            if emit:
                yield step
            pc += 1
        elif kind == _LOOP:
            _, emit, step, counter, cr, ci, stride, end = op
            count = (regs[cr] if cr >= 0 else 0) + ci
            if emit:
                yield step._replace(args=(count,))
            if count <= 0:
                pc = end + 1
            else:
                regs[counter] = 0
                loops.append([counter, count, stride, 1])
                pc += 1
        elif kind == _END:
            if op[1]:
                yield op[2]
            top = loops[-1]
            if top[3] < top[1]:
                top[3] += 1
                regs[top[0]] = _wrap(regs[top[0]] + top[2])
                pc = op[3] + 1
            else:
                loops.pop()
                pc += 1
        elif kind == _HALT:
            if op[1]:
                yield op[2]
            return
        else:
            _, emit, step, a, b, target = op
            if emit:
                yield step
            if kind == _JMP or (kind == _BNE and regs[a] != regs[b]) or \
                    (kind == _BLT and regs[a] < regs[b]):
                pc = target
            else:
                pc += 1
