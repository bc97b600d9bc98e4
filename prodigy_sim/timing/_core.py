"""One core: a SimPy process issuing the core's dynamic instruction stream in order.

The core keeps a local clock ``t`` (its next free issue slot) and meets SimPy time only where
cores interact: it advances the environment to ``t`` before it issues a DMA, before it needs the
completion of a DMA still in the pending memory batch, and at a BARRIER. A run of compute
instructions therefore costs no SimPy event (coarse-grained events: a DMA, a barrier, a wait).

Issue rule: an instruction issues at the first cycle >= ``t`` at which its operands are ready
and its unit is free; it then takes one issue slot (LOOP / ENDLOOP take none). Scoreboard on
tiles and accumulators, from the opcode table's operand access (``r``, ``w``, ``rw``):

- RAW: a read waits for the last writer's result (DMA.LD: its completion);
- WAW: a write waits for the last writer's result;
- WAR: a write waits until every earlier reader has finished reading (an MMA or vector op at the
  end of its occupancy, a DMA.ST once its bytes have left the scratchpad through the core's
  link - before they reach DDR).

Scalar registers need no scoreboard: the expander resolves their values, they have one-cycle
latency and the core issues one instruction per cycle in order. Units: the DMA engine holds up
to ``dma_outstanding`` transfers; the matrix unit and the vector units (working together on one
tile operation) are busy for the closed-form occupancy of :mod:`prodigy_sim.timing._costs`;
scalar instructions take one cycle. A stall (issue later than ``t``) is charged to the latest of
its causes: ``dma_wait`` (a DMA-produced operand, DMA.WAIT), ``operand_wait`` (a compute
result), ``unit_busy`` (unit or DMA slots), ``barrier``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter

from prodigy_sim.errors import ProgramError
from prodigy_sim.isa import Layout, Program, expand, multicast_group, opcode_table
from prodigy_sim.timing._costs import matrix_cost, vector_cost
from prodigy_sim.timing._memory import DmaHandle, MemorySystem

__all__ = ["CoreStats", "Barrier", "Core", "StepBudget", "compile_program", "STALL_REASONS",
           "UNITS"]

STALL_REASONS = ("operand_wait", "unit_busy", "dma_wait", "barrier")
UNITS = ("dma", "matrix", "vector0", "vector1", "scalar")

# descriptor kinds
_FREE, _SLOT, _MATRIX, _VECTOR, _LD, _ST, _WAIT, _BARRIER, _LDM = range(9)


@dataclass(frozen=True, slots=True)
class _Desc:
    kind: int
    unit: str
    occ: int
    lat: int
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    mma: bool


def compile_program(program: Program, config) -> tuple[list[_Desc], int]:
    """Per static instruction: kind, closed-form cost and scoreboard keys; and the key count.

    Keys number tiles ``0..T-1`` and accumulators ``T..T+A-1``.
    """
    table = opcode_table()
    keys = {("tile", t.name): i for i, t in enumerate(program.tiles)}
    keys.update({("acc", a.name): len(program.tiles) + i for i, a in enumerate(program.accs)})
    out = []
    for ins in program.instructions:
        spec = table.by_mnemonic[ins.opcode]
        reads, writes = [], []
        for j, o in enumerate(spec.operands):
            if o.kind in ("tile", "acc"):
                k = keys[(o.kind, ins.name(j))]
                if "r" in o.access:
                    reads.append(k)
                if "w" in o.access:
                    writes.append(k)
        op, unit = ins.opcode, spec.unit
        occ = lat = 0
        if op in ("LOOP", "ENDLOOP"):
            kind = _FREE
        elif op == "DMA.LD":
            kind = _LD
        elif op == "DMA.LDM":
            kind = _LDM
        elif op == "DMA.ST":
            kind = _ST
        elif op == "DMA.WAIT":
            kind = _WAIT
        elif op == "BARRIER":
            kind = _BARRIER
        elif unit == "matrix":
            kind = _MATRIX
            occ, lat = matrix_cost(ins, program, config)
        elif unit == "vector":
            kind = _VECTOR
            occ, lat = vector_cost(ins, program, config)
        else:
            kind = _SLOT
        out.append(_Desc(kind, unit, occ, lat, tuple(reads), tuple(writes),
                         op in ("MMA", "MMA.SP")))
    return out, len(keys)


@dataclass
class CoreStats:
    """Counters of one core (cycles of the core clock)."""

    end_cycle: int = 0
    busy: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    stalls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STALL_REASONS, 0))
    instructions: Counter = field(default_factory=Counter)
    dma_bytes: int = 0


class Barrier:
    """A reusable barrier for ``n`` cores: the last arrival succeeds the shared event."""

    def __init__(self, env, n: int) -> None:
        self.env, self.n, self.count = env, n, 0
        self.event = env.event()
        self.waiting: dict[int, int] = {}

    def arrive(self, core: int, index: int):
        self.count += 1
        self.waiting[core] = index
        ev = self.event
        if self.count == self.n:
            ev.succeed()
            self.event = self.env.event()
            self.count = 0
            self.waiting = {}
        return ev


class StepBudget:
    """Instructions all cores of one simulation may still execute together (None: no bound)."""

    def __init__(self, max_steps: int | None) -> None:
        if max_steps is not None and max_steps < 0:
            raise ProgramError(f"'max_steps' must be >= 0 or None (got {max_steps})")
        self.max_steps = max_steps
        self.left = 1 << 62 if max_steps is None else max_steps

    def exhausted(self, step, cid: int, ncores: int) -> ProgramError:
        ins = step.instruction
        at = f"line {ins.source_line}" if ins.source_line else f"instruction {step.index}"
        return ProgramError(f"core {cid}, {at} ({ins.opcode}): the program executed more than "
                            f"{self.max_steps} instructions on its {ncores} core(s) (the step "
                            "budget 'max_steps'): a loop that never ends? Give a larger "
                            "max_steps, or None for no bound")


_DONE = attrgetter("done")


def _unknown(handles: list[DmaHandle]) -> bool:
    """True if some handle's completion is not known yet (its batch is not flushed)."""
    for h in handles:
        if h.done is None:
            return True
    return False


class Core:
    """The state and the SimPy process of one core."""

    def __init__(self, env, cid: int, ncores: int, program: Program, layout: Layout,
                 descs: list[_Desc], nkeys: int, memory: MemorySystem, barrier: Barrier,
                 dma_outstanding: int, recorder=None, budget: StepBudget | None = None,
                 compiled: list[tuple] | None = None) -> None:
        self.env, self.cid, self.ncores = env, cid, ncores
        self.compiled = compiled        # isa.compile_steps of the program, shared by the cores
        self.program, self.layout, self.descs = program, layout, descs
        self.memory, self.barrier = memory, barrier
        self.max_dma = dma_outstanding
        self.rec = recorder
        self.t = 0
        self.ready: list[int | DmaHandle] = [0] * nkeys       # last writer's result
        self.chain = [-1] * nkeys                             # MMA forwarding point (accs)
        self.read_done = [0] * nkeys                          # compute readers finished
        self.matrix_free = 0
        self.vector_free = 0
        self.horizon = 0                                      # latest compute result
        self.outstanding: list[DmaHandle] = []
        self.dmas: list[DmaHandle] = []
        self.mc_seq: dict[tuple[int, ...], int] = {}          # multicast loads per group
        self.stats = CoreStats()
        self.finished = False
        self.budget = budget or StepBudget(None)

    # -- helpers -------------------------------------------------------------------------------
    def _sync(self):
        if self.t > self.env.now:
            yield self.env.timeout(self.t - self.env.now)

    def _resolve(self, handles, confirm: bool = True):
        """Make sure every handle's completion is known: wait for the other members of an
        incomplete multicast group, then flush the memory batch if needed; with the persistent
        DDR (and ``confirm``) wait until each speculated completion is confirmed."""
        if _unknown(handles):
            yield from self._sync()
            for h in handles:
                while h.waiting is not None:
                    yield h.waiting
            if _unknown(handles):
                self.memory.flush(self.env.now)
        if confirm and self.memory.stream is not None:
            for h in handles:
                if h.ddr_ids is not None and not h.is_write:    # (else nothing to confirm)
                    yield from self._confirm(handles)
                    break

    def _confirm(self, handles):
        """Persistent DDR: the loads' ``done`` confirmed against the DDR5 runs' real
        completions (:meth:`MemorySystem.confirm`), asked no earlier than the first speculated
        completion still open (or the core's cycle) and again while some are not known. A
        store keeps its speculated ``done`` (when its DMA slot frees) until the run ends
        (:meth:`MemorySystem.settle`: the core's end waits for its stores' real completion):
        a controller that serves reads first may leave writes queued as long as reads come,
        and a core would poll them for as long."""
        env = self.env
        again = None
        ready = self.t                  # the core could not use them before its own cycle
        while True:
            todo = [h for h in handles if h.ddr_ids is not None and not h.is_write]
            if not todo:
                return
            t = max(self.t, min(h.done for h in todo))
            if again is not None and again > t:
                t = again
            if t > env.now:
                yield env.timeout(t - env.now)
            again = self.memory.confirm(todo, env.now, ready)

    def _stall(self, issue: int, times: tuple[int, int, int]) -> None:
        stall = issue - self.t
        if stall > 0:
            t_dma, t_op, t_unit = times
            reason = ("dma_wait" if t_dma >= max(t_op, t_unit)
                      else "operand_wait" if t_op >= t_unit else "unit_busy")
            self.stats.stalls[reason] += stall

    def _deps(self, d: _Desc, mma_chain: bool):
        """Handles and compute times the instruction waits for: (handles, t_compute)."""
        handles, t_op = [], 0
        ready, chain = self.ready, self.chain
        for k in d.reads:
            r = chain[k] if mma_chain and chain[k] >= 0 else ready[k]
            if isinstance(r, DmaHandle):
                handles.append(r)
            elif r > t_op:
                t_op = r
        for k in d.writes:
            r = chain[k] if mma_chain and chain[k] >= 0 else ready[k]
            if isinstance(r, DmaHandle):
                handles.append(r)
            elif r > t_op:
                t_op = r
            if self.read_done[k] > t_op:
                t_op = self.read_done[k]
        return handles, t_op

    def _slot_time(self):
        """Cycle at which a DMA slot is free (flushes if needed); drops finished transfers."""
        out = self.outstanding
        if len(out) < self.max_dma:
            return self.t
        yield from self._resolve(out, confirm=False)
        k = len(out) - self.max_dma           # a slot frees when the k+1 first are done
        while True:
            out.sort(key=_DONE)
            open_ = [h for h in out[:k + 1] if h.ddr_ids is not None and not h.is_write]
            if not open_:
                break
            yield from self._confirm(open_)
        t_free = out[k].done
        return max(self.t, t_free)

    def _prune(self, now: int) -> None:
        self.outstanding = [h for h in self.outstanding
                            if h.done is None or h.done > now
                            or (h.ddr_ids is not None and not h.is_write)]

    # -- the process ---------------------------------------------------------------------------
    def run(self):
        stats = self.stats
        counts = stats.instructions
        busy = stats.busy
        descs = self.descs
        rec = self.rec
        executed = [0] * len(descs)                           # per static instruction
        budget = self.budget
        ready, chains, read_done = self.ready, self.chain, self.read_done   # never rebound
        groups: dict[tuple[int, int], tuple[int, ...]] = {}   # DMA.LDM (size, stride) -> cores
        for step in expand(self.program, self.cid, self.ncores, layout=self.layout,
                           max_steps=budget.max_steps, compiled=self.compiled):
            d = descs[step.index]
            kind = d.kind
            executed[step.index] += 1
            budget.left -= 1
            if budget.left < 0:
                raise budget.exhausted(step, self.cid, self.ncores)
            if kind == _FREE:
                continue
            if kind == _SLOT:
                if d.unit == "scalar":
                    busy["scalar"] += 1
                self.t += 1
                continue
            if kind == _MATRIX or kind == _VECTOR:
                mat = kind == _MATRIX
                chain = mat and d.mma
                # the operands (:meth:`_deps`, inlined: this is the hot loop)
                handles = None
                t_op = 0
                for k in d.reads:
                    r = chains[k] if chain and chains[k] >= 0 else ready[k]
                    if isinstance(r, DmaHandle):
                        if handles is None:
                            handles = [r]
                        else:
                            handles.append(r)
                    elif r > t_op:
                        t_op = r
                for k in d.writes:
                    r = chains[k] if chain and chains[k] >= 0 else ready[k]
                    if isinstance(r, DmaHandle):
                        if handles is None:
                            handles = [r]
                        else:
                            handles.append(r)
                    elif r > t_op:
                        t_op = r
                    if read_done[k] > t_op:
                        t_op = read_done[k]
                if handles:
                    yield from self._resolve(handles)
                    t_dma = max([h.done for h in handles])
                else:
                    t_dma = 0
                t_unit = self.matrix_free if mat else self.vector_free
                issue = max(self.t, t_op, t_dma, t_unit)
                if issue > self.t:
                    self._stall(issue, (t_dma, t_op, t_unit))
                end = issue + d.occ
                result = end + d.lat
                if mat:
                    self.matrix_free = end
                    busy["matrix"] += d.occ
                else:
                    self.vector_free = end
                    busy["vector0"] += d.occ
                    busy["vector1"] += d.occ
                for k in d.reads:
                    if end > read_done[k]:
                        read_done[k] = end
                for k in d.writes:
                    ready[k] = result
                    chains[k] = end if chain else -1
                if result > self.horizon:
                    self.horizon = result
                if rec is not None:
                    rec.op(self.cid, "matrix" if mat else "vector", step.instruction.opcode,
                           issue, end)
                self.t = issue + 1
                continue
            if kind == _LD or kind == _ST or kind == _LDM:
                handles, t_op = self._deps(d, False)
                if handles:
                    yield from self._resolve(handles)
                    t_dma = max([h.done for h in handles])
                else:
                    t_dma = 0
                if len(self.outstanding) < self.max_dma:    # (:meth:`_slot_time`'s fast path)
                    t_unit = self.t
                else:
                    t_unit = yield from self._slot_time()
                issue = max(self.t, t_op, t_dma, t_unit)
                if issue > self.t:
                    self._stall(issue, (t_dma, t_op, t_unit))
                self.t = issue
                if issue > self.env.now:                    # (:meth:`_sync`, inlined)
                    yield self.env.timeout(issue - self.env.now)
                if kind == _LDM:
                    shape = (step.args[2], step.args[3])
                    members = groups.get(shape)
                    if members is None:
                        members = groups[shape] = multicast_group(self.cid, self.ncores, *shape)
                    seq = self.mc_seq.get(members, 0)
                    self.mc_seq[members] = seq + 1
                    h = self.memory.join_multicast(self.env, self.cid, issue, step, members, seq)
                else:
                    h = self.memory.issue(self.cid, issue, step.ddr, kind == _ST, step.index)
                stats.dma_bytes += h.nbytes
                self._prune(issue)
                self.outstanding.append(h)
                self.dmas.append(h)
                if kind != _ST:
                    for k in d.writes:
                        self.ready[k] = h
                        self.chain[k] = -1
                else:
                    for k in d.reads:
                        if h.released > self.read_done[k]:
                            self.read_done[k] = h.released
                self.t = issue + 1
                continue
            # DMA.WAIT and BARRIER: every outstanding DMA of this core completes first
            yield from self._resolve(self.outstanding)
            t_dma = max((h.done for h in self.outstanding), default=0)
            issue = max(self.t, t_dma)
            self._stall(issue, (t_dma, 0, 0))
            self.outstanding = []
            self.t = issue
            if kind == _BARRIER:
                yield from self._sync()
                yield self.barrier.arrive(self.cid, step.index)
                stats.stalls["barrier"] += self.env.now - self.t
                self.t = self.env.now
            self.t += 1
        instructions = self.program.instructions
        for i, c in enumerate(executed):
            if c:
                counts[instructions[i].opcode] += c
        # the core is done when its units and its DMAs are
        # (with the persistent DDR the stores are confirmed once the runs end: _run)
        yield from self._resolve(self.outstanding, confirm=False)
        end = max([self.t, self.horizon, self.matrix_free, self.vector_free]
                  + [h.done for h in self.outstanding])
        self.t = end
        yield from self._sync()
        busy["dma"] = _union([(h.issue, h.done) for h in self.dmas])
        stats.end_cycle = end
        self.finished = True


def _union(intervals: list[tuple[int, int]]) -> int:
    """Cycles covered by intervals given in non-decreasing start order."""
    total, until = 0, 0
    for s, e in intervals:
        if e > until:
            total += e - max(s, until)
            until = e
    return total
