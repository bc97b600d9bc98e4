"""Execution plans: every core's data steps, compiled once per (program, layout, cores) and
grouped so that one operation serves the same instruction on many cores.

Control flow depends only on ``cid``, ``ncores`` and immediates (``isa.expand``), so before any
data moves the plan knows each core's stream of *data steps* (DMA, matrix and vector
instructions, with DMA byte ranges resolved) and its final scalar registers. The streams are cut
at BARRIERs into *epochs*. Within an epoch, cores whose streams are the same instruction sequence
form a *group*; the executor runs each instruction of a group once for all its cores (a batched
numpy / Numba operation). That is only equivalent to the executor's order - core 0 up to its
BARRIER, then core 1, ... - when no core writes DDR bytes that another core reads or writes in
the same epoch; the plan checks every epoch for such a race (a sweep over the byte ranges of
all DMAs) and, where it finds one, runs that epoch core by core in core order instead.

Step budget: a core that executes more than ``max_steps`` instructions (a branch loop that never
ends, a LOOP count of 2^50) stops the plan with a :class:`~prodigy_sim.errors.ProgramError`
naming the program, the core and the instruction.

Multicast loads (DMA.LDM): the k-th multicast load of every member of a group must read the same
tensor window, and every member must issue it before the next BARRIER (or the end); the plan
checks both, epoch by epoch in core order, before any data moves. Data-wise a DMA.LDM is a load
like DMA.LD (the hardware reads the window once for all members; the bytes are the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa import (
    DEFAULT_MAX_STEPS,
    Layout,
    Program,
    compile_steps,
    expand,
    multicast_group,
)

__all__ = ["Plan", "Epoch", "Group", "build_plan", "DEFAULT_MAX_STEPS"]

_MASK64 = (1 << 64) - 1
_DATA_UNITS = ("dma", "matrix", "vector")


def _wrap(x: int) -> int:
    return ((x + (1 << 63)) & _MASK64) - (1 << 63)


@dataclass
class Group:
    """Cores running the same instruction sequence in one epoch.

    ``cores``: int64 core ids in increasing order; ``steps``: instruction indices in order;
    ``dma``: for the position of every DMA in ``steps``, an int64 (cores, segments, 4) array of
    the DDR segments (address, length, stride, count) per core."""

    cores: np.ndarray
    steps: list[int]
    dma: dict[int, np.ndarray]


@dataclass
class Epoch:
    """The groups of one epoch (between two BARRIERs), to run one after another."""

    groups: list[Group]
    racy: bool


@dataclass
class Plan:
    """A program's epochs, each core's final scalar registers and its executed instructions."""

    epochs: list[Epoch]
    regs: list[list[int]]
    steps: list[int]
    waiting: tuple[list[int], list[int]] | None = None


def _where(name: str, step, core: int) -> str:
    ins = step.instruction
    at = f"line {ins.source_line}" if ins.source_line else f"instruction {step.index}"
    return f"{name}, core {core}, {at} ({ins.opcode})"


def _core_stream(program: Program, layout: Layout, core: int, ncores: int, compiled,
                 max_steps: int, name: str):
    """Core ``core``'s epochs - each a list of (instruction index, segments or None) - its
    final registers and its executed instruction count."""
    regs = [0] * 16 + [core, ncores]
    loops: list[list[int]] = []
    epochs: list[list[tuple]] = [[]]
    cur = epochs[0]
    multicasts: list[list] = [[]]  # per epoch: the DMA.LDM steps
    n = 0
    for step in expand(program, core, ncores, layout=layout, compiled=compiled):
        n += 1
        if n > max_steps:
            raise ProgramError(f"{_where(name, step, core)}: more than {max_steps:,} "
                               "instructions executed on one core (the step budget; raise it "
                               "with max_steps= if the program is meant to run that long)")
        ins = step.instruction
        op = ins.opcode
        unit = step.unit
        if unit in _DATA_UNITS:
            if op in ("DMA.LD", "DMA.LDM", "DMA.ST"):
                cur.append((step.index, tuple((s.address, s.length, s.stride, s.count)
                                              for s in step.ddr), op == "DMA.ST"))
                if op == "DMA.LDM":
                    multicasts[-1].append(step)
            elif op != "DMA.WAIT":
                cur.append((step.index, None, False))
        elif op == "BARRIER":
            cur = []
            epochs.append(cur)
            multicasts.append([])
        elif unit == "scalar":
            arg = ins.integer
            v: int | None
            if op == "LI":
                v = arg(1)
            elif op in ("ADDI", "MULI", "DIVI"):
                a, b = regs[arg(1)], arg(2)
                v = a + b if op == "ADDI" else a * b if op == "MULI" else a // b
            else:
                a, b = regs[arg(1)], regs[arg(2)]
                v = {"ADD": a + b, "SUB": a - b, "MUL": a * b, "MIN": min(a, b)}.get(op)
                if v is None:
                    v = a // b
            regs[arg(0)] = _wrap(v)
        elif op == "LOOP":
            if step.args[0] > 0:
                regs[ins.integer(0)] = 0
                loops.append([ins.integer(0), step.args[0], ins.integer(2), 1])
        elif op == "ENDLOOP":
            top = loops[-1]
            if top[3] < top[1]:
                top[3] += 1
                regs[top[0]] = _wrap(regs[top[0]] + top[2])
            else:
                loops.pop()
    return epochs, regs, n, multicasts


class _MulticastCheck:
    """DMA.LDM groups: the k-th multicast load of every member of a group must name the same
    tensor and window (the hardware reads it once for all of them)."""

    def __init__(self, ncores: int, name: str) -> None:
        self.ncores, self.name = ncores, name
        self.open: dict[tuple, list] = {}          # (members, k) -> [window, count]
        self.seq: dict[tuple[int, tuple], int] = {}  # (core, members) -> loads so far

    def add(self, core: int, step) -> None:
        ins = step.instruction
        row, col, size, stride = step.args
        members = multicast_group(core, self.ncores, size, stride)
        k = self.seq.get((core, members), 0)
        self.seq[(core, members)] = k + 1
        window = (ins.operands[1], row, col)
        entry = self.open.setdefault((members, k), [window, 0])
        if entry[0] != window:
            raise ProgramError(
                f"{_where(self.name, step, core)}: multicast load {k} of group {list(members)} "
                f"reads {window[0]}[{row}, {col}] but another member reads "
                f"{entry[0][0]}[{entry[0][1]}, {entry[0][2]}]")
        entry[1] += 1
        if entry[1] == len(members):
            del self.open[(members, k)]

    def check_complete(self) -> None:
        """ProgramError if a group's load was not issued by every member (at a BARRIER or the
        end: the members would wait for each other forever)."""
        for (members, k), (window, count) in self.open.items():
            raise ProgramError(f"{self.name}: multicast load {k} of group {list(members)} "
                               f"({window[0]}) was issued by {count} of its {len(members)} "
                               "members before a BARRIER or the end")


def build_plan(program: Program, layout: Layout, ncores: int, max_steps: int,
               name: str) -> Plan:
    """The :class:`Plan` of ``program`` on ``ncores`` cores (see the module docstring)."""
    compiled = compile_steps(program, layout=layout)
    streams, regs, steps, loads = [], [], [], []
    for c in range(ncores):
        e, r, n, mc = _core_stream(program, layout, c, ncores, compiled, max_steps, name)
        streams.append(e)
        regs.append(r)
        steps.append(n)
        loads.append(mc)
    n_epochs = max(len(s) for s in streams)
    waiting = None
    if any(len(s) != n_epochs for s in streams):
        # cores that halted leave the others waiting at a BARRIER: run what all reach, then fail
        short = min(len(s) for s in streams)
        waiting = ([c for c, s in enumerate(streams) if len(s) > short],
                   [c for c, s in enumerate(streams) if len(s) == short])
        n_epochs = short
    check = _MulticastCheck(ncores, name)
    for e in range(n_epochs):    # the executor's order: core 0 to its BARRIER, then core 1, ...
        for c in range(ncores):
            for step in loads[c][e]:
                check.add(c, step)
        check.check_complete()
    epochs = []
    for e in range(n_epochs):
        per_core = [s[e] for s in streams]
        racy = _racy(per_core)
        epochs.append(Epoch(_groups(per_core, racy), racy))
    return Plan(epochs, regs, steps, waiting)


def _groups(per_core: list[list[tuple]], racy: bool) -> list[Group]:
    """Cores with the same instruction sequence, in order of their first core (one group per
    core, in core order, for a racy epoch)."""
    keys: dict[tuple, list[int]] = {}
    for c, stream in enumerate(per_core):
        if not stream:
            continue
        key = (c,) if racy else tuple(i for i, _, _ in stream)
        keys.setdefault(key, []).append(c)
    out = []
    for cores in keys.values():
        first = per_core[cores[0]]
        dma = {}
        for pos, (_, segs, _) in enumerate(first):
            if segs is not None:
                dma[pos] = np.array([per_core[c][pos][1] for c in cores], dtype=np.int64
                                    ).reshape(len(cores), len(segs), 4)
        out.append(Group(np.array(cores, dtype=np.int64), [i for i, _, _ in first], dma))
    return out


def _racy(per_core: list[list[tuple]]) -> bool:
    """True if some core writes DDR bytes that another core reads or writes in this epoch."""
    if sum(1 for s in per_core if s) < 2:
        return False
    rows = [(addr, length, stride, count, c, store)
            for c, stream in enumerate(per_core) for _, segs, store in stream if segs is not None
            for addr, length, stride, count in segs]
    if not rows:
        return False
    r = np.array(rows, dtype=np.int64)
    addr, length, stride, count = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
    solid = (stride == length) | (count == 1)
    # a segment whose runs touch is one interval; the others are one interval per run
    start = [addr[solid]]
    end = [addr[solid] + length[solid] * count[solid]]
    core = [r[solid, 4]]
    store = [r[solid, 5]]
    holes = ~solid
    if holes.any():
        reps = count[holes]
        run = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        base = np.repeat(addr[holes], reps) + run * np.repeat(stride[holes], reps)
        start.append(base)
        end.append(base + np.repeat(length[holes], reps))
        core.append(np.repeat(r[holes, 4], reps))
        store.append(np.repeat(r[holes, 5], reps))
    lo, hi = np.concatenate(start), np.concatenate(end)
    keep = hi > lo
    return bool(_sweep(lo[keep], hi[keep], np.concatenate(core)[keep],
                       np.concatenate(store)[keep]))


@numba.njit(cache=True)
def _sweep(start, end, core, store):
    """Does an interval of a store overlap an interval of another core? ``[start, end)``
    byte ranges with their core and store flag; a sweep over sorted starts and ends (ends at a
    point come before starts there, so touching ranges do not overlap)."""
    n = start.size
    if n == 0:
        return False
    order = np.argsort(start, kind="mergesort")
    ends = np.argsort(end, kind="mergesort")
    ncores = core.max() + 1
    active = np.zeros(ncores, dtype=np.int64)
    active_st = np.zeros(ncores, dtype=np.int64)
    total = 0
    total_st = 0
    j = 0
    for ii in range(n):
        i = order[ii]
        s = start[i]
        while j < n and end[ends[j]] <= s:
            k = ends[j]
            active[core[k]] -= 1
            total -= 1
            if store[k]:
                active_st[core[k]] -= 1
                total_st -= 1
            j += 1
        c = core[i]
        if store[i]:
            if total - active[c] > 0:
                return True
        elif total_st - active_st[c] > 0:
            return True
        active[c] += 1
        total += 1
        if store[i]:
            active_st[c] += 1
            total_st += 1
    return False
