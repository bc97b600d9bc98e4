"""The validator: can a well-formed program run on a core with the given parameters?

Checks, per instruction: operand formats (the ``formats`` groups of the opcode table), the
opcode's shape rule (``shape_rules``), sparsity only where MMA.SP allows it, K a multiple of the
block sizes; per program: tiles fit the scratchpad, accumulators fit the register file, loops nest
within the loop stack and do not write their counters, branches stay in their loop body.
DMA windows at constant offsets lie inside their tensors; windows that registers move are
checked at run time by the expander.
"""

from __future__ import annotations

from pathlib import Path

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa._check import loop_ends
from prodigy_sim.isa._check import problems as well_formed
from prodigy_sim.isa._layout import Layout, layout
from prodigy_sim.isa._params import IsaParams
from prodigy_sim.isa._program import Expr, Instruction, Program
from prodigy_sim.isa._table import OpcodeSpec, OpcodeTable, opcode_table
from prodigy_sim.numerics import Sparsity

__all__ = ["validate", "MMA_SP_SPARSITY"]

MMA_SP_SPARSITY = Sparsity(group=8, kept=4)
"""The structured sparsity MMA.SP multiplies (8:4 weights)."""


def _where(i: int, ins: Instruction) -> str:
    at = f"line {ins.source_line}" if ins.source_line else f"instruction {i}"
    return f"{at} ({ins.opcode})"


def _shape_problems(spec: OpcodeSpec, ins: Instruction, program: Program) -> list[str]:
    def shape(j: int) -> tuple[int, int]:
        kind, name = spec.operands[j].kind, ins.name(j)
        return program.acc[name].shape if kind == "acc" else program.tile[name].shape

    rule = spec.shape
    if rule == "mma":
        (m, n), (am, k), (wn, wk) = shape(0), shape(1), shape(2)
        a, w = program.tile[ins.name(1)], program.tile[ins.name(2)]
        out = []
        if (am, wn, wk) != (m, n, k):
            out.append(f"acc {ins.operands[0]} is ({m},{n}), a {a.name} is ({am},{k}) and w "
                       f"{w.name} is ({wn},{wk}): expected acc (M,N), a (M,K), w (N,K)")
        for t in (a, w):
            if t.block and k % t.block:
                out.append(f"K = {k} is not a multiple of the block size {t.block} of {t.name}")
        if a.sparsity is not None:
            out.append(f"a {a.name} is sparse; only w may be (with MMA.SP)")
        if a.fmt.wide != w.fmt.wide:
            out.append(f"a is {a.fmt.name} and w is {w.fmt.name}: a wide float multiplies only "
                       "a wide float")
        if spec.mnemonic == "MMA" and w.sparsity is not None:
            out.append(f"w {w.name} is sparse ({w.sparsity}): use MMA.SP")
        if spec.mnemonic == "MMA.SP" and w.sparsity != MMA_SP_SPARSITY:
            out.append(f"MMA.SP needs w declared sparsity={MMA_SP_SPARSITY} (w {w.name} is "
                       f"{w.sparsity or 'dense'})")
        return out
    if rule == "broadcast":
        r, c = shape(0)
        ok = {(r, c), (r, 1), (1, c), (1, 1)}
        return [f"{spec.operands[j].name} {ins.operands[j]} is {shape(j)}, not broadcastable to "
                f"({r},{c}): expected ({r},{c}), ({r},1), (1,{c}) or (1,1)"
                for j, o in enumerate(spec.operands) if j and o.kind == "tile"
                and shape(j) not in ok]
    if rule in ("same", "rotate_half", "butterfly"):
        out = [] if shape(0) == shape(1) else [f"shapes differ: {shape(0)} and {shape(1)}"]
        if rule == "rotate_half" and shape(1)[1] % 2:
            out.append(f"rotate-half needs an even number of columns (got {shape(1)[1]})")
        if rule == "butterfly":
            s = ins.integer(2)
            if s < 1 or s & (s - 1) or shape(1)[1] % (2 * s):
                out.append(f"butterfly stride {s} must be a power of two >= 1 dividing half of "
                           f"the {shape(1)[1]} columns")
        return out
    if rule == "rowreduce":
        (r, c), (ar, _) = shape(0), shape(1)
        return [] if (r, c) == (ar, 1) else [f"dst is ({r},{c}), expected ({ar},1) for a "
                                             f"{shape(1)} source"]
    if rule in ("gather", "scatter"):
        # the (R,J) operand: dst of a gather, src of a scatter; the indexed (R,C) one: the other
        (r, j), (sr, _) = (shape(0), shape(1)) if rule == "gather" else (shape(1), shape(0))
        ix = shape(2)
        what = "dst" if rule == "gather" else "src"
        out = [] if r == sr else [f"dst is {shape(0)} and src {shape(1)}: the rows differ"]
        if ix != (1, j):
            out.append(f"idx {ins.operands[2]} is {ix}, expected (1,{j}) for a {what} of "
                       f"{(r, j)}")
        return out
    if rule == "transpose":
        ar, ac = shape(1)
        return [] if shape(0) == (ac, ar) else [f"dst is {shape(0)}, expected ({ac},{ar})"]
    return []


def _operand_problems(spec: OpcodeSpec, ins: Instruction, program: Program,
                      table: OpcodeTable) -> list[str]:
    out = []
    for j, (o, v) in enumerate(zip(spec.operands, ins.operands, strict=True)):
        if o.kind == "tile" and o.formats:
            t = program.tile[ins.name(j)]
            group = table.format_groups[o.formats]
            if not group.admits(t.fmt):
                out.append(f"{o.name} {v} is {t.fmt.ref}; expected {group.describe()}")
    if spec.mnemonic == "VQUANT":
        d = program.tile[ins.name(0)]
        if d.sparsity is not None or d.scale == "none":
            out.append(f"dst {d.name} must be dense with a scale format (VQUANT does not prune)")
    if spec.mnemonic == "VDEQUANT" and program.tile[ins.name(1)].sparsity is not None:
        out.append(f"a {ins.operands[1]} is sparse")
    if spec.mnemonic == "DIVI" and ins.operands[2] == 0:
        out.append("division by zero")
    if spec.mnemonic == "DMA.LDM" and (ins.integer(4) < 1 or ins.integer(5) < 1):
        out.append(f"multicast group size {ins.integer(4)} and stride {ins.integer(5)} must "
                   "be >= 1")
    if spec.shape == "dma":
        store = spec.mnemonic == "DMA.ST"
        tile = program.tile[ins.name(3 if store else 0)]
        ten = program.tensor[ins.name(0 if store else 1)]
        if tile.storage != ten.storage:
            out.append(f"tile {tile.name} and tensor {ten.name} are stored differently "
                       f"({tile.storage} vs {ten.storage}); DMA does not convert")
        if tile.shape[0] > ten.shape[0] or tile.shape[1] > ten.shape[1]:
            out.append(f"tile {tile.name} {tile.shape} is larger than tensor {ten.name} "
                       f"{ten.shape}")
        elif ten.tile is not None and tile.shape != ten.tile:
            out.append(f"tensor {ten.name} is stored in tiles of {ten.tile[0]}x{ten.tile[1]}; "
                       f"the window of tile {tile.name} is {tile.shape[0]}x{tile.shape[1]} "
                       "(a DMA of a tiled tensor moves exactly one tile)")
        else:
            row, col = ins.operands[1:3] if store else ins.operands[2:4]
            if isinstance(row, Expr) and isinstance(col, Expr) and row.reg is None \
                    and col.reg is None:  # a constant window: checked here, not at run time
                (h, w), (R, C) = tile.shape, ten.shape  # noqa: N806
                r, c = row.offset, col.offset
                if r < 0 or c < 0 or r + h > R or c + w > C:
                    out.append(f"window rows {r}..{r + h - 1}, cols {c}..{c + w - 1} is outside "
                               f"tensor {ten.name} of shape ({R},{C})")
    return out


MAX_PROBLEMS = 20
"""Most problems a ProgramError of :func:`validate` lists (then "more problems not listed")."""


def _loop_problems(program: Program, params: IsaParams, table: OpcodeTable) -> list[str]:
    out = []
    ends = loop_ends(program)
    instrs = program.instructions
    region = [-1] * (len(instrs) + 1)  # innermost LOOP index enclosing each instruction
    stack: list[int] = []
    for i, ins in enumerate(instrs):
        region[i] = stack[-1] if stack else -1  # ENDLOOP belongs to its body, LOOP does not
        if ins.opcode == "ENDLOOP" and stack:
            stack.pop()
        if ins.opcode == "LOOP":
            if len(stack) == params.max_loop_depth:  # once per nest: deeper LOOPs say no more
                out.append(f"{_where(i, ins)}: loops nest {len(stack) + 1} deep; the hardware "
                           f"loop stack holds {params.max_loop_depth}")
            stack.append(i)
    region[len(instrs)] = -1
    for start, end in ends.items():
        if len(out) > MAX_PROBLEMS:
            break
        counter = instrs[start].operands[0]
        for i in range(start + 1, end):
            spec = table.by_mnemonic[instrs[i].opcode]
            if spec.operands and spec.operands[0].kind == "reg" \
                    and instrs[i].operands[0] == counter:
                out.append(f"{_where(i, instrs[i])}: writes r{counter}, the counter of the "
                           f"LOOP at {_where(start, instrs[start])}")
                if len(out) > MAX_PROBLEMS:
                    break
    for i, ins in enumerate(instrs):
        if ins.opcode in ("JMP", "BNE", "BLT"):
            target = program.label[ins.name(len(ins.operands) - 1)]
            if region[target] != region[i]:
                out.append(f"{_where(i, ins)}: branch to {ins.operands[-1]} leaves or enters a "
                           "LOOP body")
    return out


def validate(program: Program, params: IsaParams | None = None, *,
             source: str | Path | None = None) -> Layout:
    """Check that ``program`` can run; return its :class:`Layout`.

    Raises :class:`~prodigy_sim.errors.ProgramError` listing every problem found, each with its
    source line; ``source`` (the program's file) heads the message.
    """
    params = params or IsaParams()
    table = opcode_table()
    head = f"{source}: " if source is not None else ""
    issues = well_formed(program, table)
    if issues:
        raise ProgramError(f"{head}program is not well formed: {issues[0].where} "
                           f"{issues[0].index}: {issues[0].message}")
    problems: list[str] = []
    lay = None
    try:
        lay = layout(program, params)
    except ProgramError as exc:
        problems.append(str(exc))
    for a in program.accs:
        if a.shape[0] > params.acc_max_rows or a.shape[1] > params.acc_max_cols:
            problems.append(f"accumulator {a.name} {a.shape} exceeds the largest accumulator "
                            f"({params.acc_max_rows},{params.acc_max_cols})")
    for i, ins in enumerate(program.instructions):
        spec = table.by_mnemonic[ins.opcode]
        for msg in _operand_problems(spec, ins, program, table) + \
                _shape_problems(spec, ins, program):
            problems.append(f"{_where(i, ins)}: {msg}")
    problems += _loop_problems(program, params, table)
    if problems:
        shown = problems[:MAX_PROBLEMS] + (["more problems not listed"]
                                           if len(problems) > MAX_PROBLEMS else [])
        raise ProgramError(f"{head}program cannot run: " + "; ".join(shown))
    assert lay is not None
    return lay
