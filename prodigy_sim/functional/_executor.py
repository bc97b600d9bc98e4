"""The functional executor: runs a :class:`~prodigy_sim.isa.Program` on numpy state.

Architectural state (:class:`MachineState`): the DDR image (uint8, the program's tensors at the
addresses of :func:`prodigy_sim.isa.layout`), and per core (:class:`CoreState`) the scratchpad
bytes, the accumulator file (float32) and the scalar registers. Each core consumes its
instruction stream from :func:`prodigy_sim.isa.expand` (addresses and DMA byte segments already
resolved). The tile scoreboard of the ISA makes every core behave as if its instructions
completed in program order, so the executor runs them in order. Cores run in lockstep between
barriers: core 0 up to its next BARRIER (or its end), then core 1, ...; then all continue past
the barrier. That order is deterministic; a program whose cores touch the same DDR bytes
between two barriers (a race) gets that order's result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim.errors import ConfigError, ProgramError
from prodigy_sim.functional import _vector as vec
from prodigy_sim.functional._matmul import DEFAULT_CHUNK
from prodigy_sim.functional._mma import MmaStats, mma_operands
from prodigy_sim.functional._operand import operand_from_quantized, operand_from_values
from prodigy_sim.functional._storage import (
    quantize_decl,
    read_float,
    read_quantized,
    write_float,
    write_quantized,
)
from prodigy_sim.isa import (
    IsaParams,
    Layout,
    Program,
    compile_steps,
    expand,
    multicast_group,
    validate,
)
from prodigy_sim.numerics import QuantizedTensor

__all__ = ["CoreState", "MachineState", "run", "ddr_image"]

_MASK64 = (1 << 64) - 1


def _wrap(x: int) -> int:
    return ((x + (1 << 63)) & _MASK64) - (1 << 63)


@dataclass
class CoreState:
    """One core: scratchpad bytes, accumulator registers (n, rows, cols) float32, and the
    scalar registers r0..r15, cid, ncores (int, 64-bit two's complement)."""

    spm: np.ndarray
    acc: np.ndarray
    regs: list[int]


@dataclass
class MachineState:
    """The state after (or during) a run; read values back with the methods."""

    program: Program
    layout: Layout
    ddr: np.ndarray
    cores: list[CoreState]
    chunk: int = DEFAULT_CHUNK
    mma: MmaStats = field(default_factory=MmaStats)
    multicasts: _MulticastCheck = field(default_factory=lambda: _MulticastCheck())

    def tensor(self, name: str) -> np.ndarray | QuantizedTensor:
        """A DDR tensor: float32 values for float32/bfloat16, else a QuantizedTensor."""
        d = self.program.tensor[name]
        p = self.layout.tensors[name]
        return read_float(self.ddr, p, d) if d.is_float else read_quantized(self.ddr, p, d)

    def tile(self, name: str, core: int = 0) -> np.ndarray | QuantizedTensor:
        """A tile of ``core``'s scratchpad (as :meth:`tensor`)."""
        d = self.program.tile[name]
        p = self.layout.tiles[name]
        spm = self.cores[core].spm
        return read_float(spm, p, d) if d.is_float else read_quantized(spm, p, d)

    def accumulator(self, name: str, core: int = 0) -> np.ndarray:
        """An accumulator's float32 (M, N) contents."""
        m, n = self.program.acc[name].shape
        return self.cores[core].acc[self.layout.accs[name], :m, :n].copy()


def ddr_image(program: Program, tensors: Mapping[str, np.ndarray | QuantizedTensor],
              lay: Layout | None = None) -> np.ndarray:
    """A DDR byte image holding ``tensors`` (name -> float array or QuantizedTensor) at the
    program's layout; float arrays for quantized tensors are quantized with the declaration's
    fmt, block, scale and sparsity. Unnamed tensors are zero bytes."""
    lay = lay or validate(program)
    size = max((p.base + p.nbytes for p in lay.tensors.values()), default=0)
    buf = np.zeros(size, dtype=np.uint8)
    for name, value in tensors.items():
        if name not in program.tensor:
            raise ConfigError(f"no tensor named {name!r} in the program (tensors: "
                              f"{', '.join(program.tensor) or 'none'})")
        d = program.tensor[name]
        p = lay.tensors[name]
        if d.is_float:
            if isinstance(value, QuantizedTensor):
                raise ConfigError(f"tensor {name} is {d.fmt.name}; give float values, not a "
                                  "QuantizedTensor")
            write_float(buf, p, d, value)
        else:
            q = value if isinstance(value, QuantizedTensor) else quantize_decl(value, d)
            write_quantized(buf, p, d, q)
    return buf


class _MulticastCheck:
    """DMA.LDM groups: the k-th multicast load of every member of a group must name the same
    tensor and window (the hardware reads it once for all of them)."""

    def __init__(self) -> None:
        self.open: dict[tuple, list] = {}          # (members, k) -> [window, count]
        self.seq: dict[tuple[int, tuple], int] = {}  # (core, members) -> loads so far

    def add(self, core: int, ncores: int, step) -> None:
        ins = step.instruction
        row, col, size, stride = step.args
        members = multicast_group(core, ncores, size, stride)
        k = self.seq.get((core, members), 0)
        self.seq[(core, members)] = k + 1
        window = (ins.operands[1], row, col)
        entry = self.open.setdefault((members, k), [window, 0])
        if entry[0] != window:
            raise ProgramError(
                f"core {core}, {_where(step)}: multicast load {k} of group {list(members)} reads "
                f"{window[0]}[{row}, {col}] but another member reads "
                f"{entry[0][0]}[{entry[0][1]}, {entry[0][2]}]")
        entry[1] += 1
        if entry[1] == len(members):
            del self.open[(members, k)]

    def check_complete(self) -> None:
        """ProgramError if a group's load was not issued by every member (at a BARRIER or the
        end: the members would wait for each other forever)."""
        for (members, k), (window, count) in self.open.items():
            raise ProgramError(f"multicast load {k} of group {list(members)} ({window[0]}) was "
                               f"issued by {count} of its {len(members)} members before a "
                               "BARRIER or the end")


def _where(step) -> str:
    ins = step.instruction
    return f"line {ins.source_line}" if ins.source_line else f"instruction {step.index}"


class _Core:
    """Executes one core's steps against its state."""

    def __init__(self, m: MachineState, cid: int, ncores: int, compiled: list[tuple]) -> None:
        self.m = m
        self.prog = m.program
        self.lay = m.layout
        self.cid = cid
        self.st = m.cores[cid]
        self.ncores = ncores
        self.steps = expand(m.program, cid, ncores, layout=m.layout, compiled=compiled)
        self.loops: list[list[int]] = []
        self.done = False

    # ---------------------------------------------------------------- tiles
    def _get(self, name: str):
        d = self.prog.tile[name]
        p = self.lay.tiles[name]
        return read_float(self.st.spm, p, d) if d.is_float else read_quantized(self.st.spm, p, d)

    def _put(self, name: str, x: np.ndarray) -> None:
        write_float(self.st.spm, self.lay.tiles[name], self.prog.tile[name], x)

    def _acc(self, name: str) -> np.ndarray:
        m, n = self.prog.acc[name].shape
        return self.st.acc[self.lay.accs[name], :m, :n]

    # ---------------------------------------------------------------- run
    def run_to_barrier(self) -> bool:
        """Execute until a BARRIER (True) or the end of the program (False)."""
        for step in self.steps:
            if step.instruction.opcode == "BARRIER":
                return True
            self._exec(step)
        self.done = True
        return False

    def _exec(self, step) -> None:
        ins = step.instruction
        op = ins.opcode
        ops = ins.operands
        unit = step.unit
        if unit == "scalar":
            self._scalar(op, ops)
        elif op == "LOOP":
            if step.args[0] > 0:
                self.st.regs[ops[0]] = 0
                self.loops.append([ops[0], step.args[0], ops[2], 1])
        elif op == "ENDLOOP":
            top = self.loops[-1]
            if top[3] < top[1]:
                top[3] += 1
                self.st.regs[top[0]] = _wrap(self.st.regs[top[0]] + top[2])
            else:
                self.loops.pop()
        elif op in ("DMA.LD", "DMA.ST"):
            self._dma(step)
        elif op == "DMA.LDM":
            self.m.multicasts.add(self.cid, self.ncores, step)
            self._dma(step)
        elif unit == "matrix":
            self._matrix(op, ops)
        elif unit == "vector":
            self._vector(op, ops)

    def _scalar(self, op: str, ops) -> None:
        r = self.st.regs
        if op == "LI":
            v = ops[1]
        elif op in ("ADDI", "MULI", "DIVI"):
            a, b = r[ops[1]], ops[2]
            v = a + b if op == "ADDI" else a * b if op == "MULI" else a // b
        else:
            a, b = r[ops[1]], r[ops[2]]
            v = {"ADD": lambda: a + b, "SUB": lambda: a - b, "MUL": lambda: a * b,
                 "DIV": lambda: a // b, "MIN": lambda: min(a, b)}[op]()
        r[ops[0]] = _wrap(v)

    def _dma(self, step) -> None:
        ins = step.instruction
        load = ins.opcode != "DMA.ST"
        tile = ins.operands[0] if load else ins.operands[3]
        tp = self.lay.tiles[tile]
        h = tp.rows
        rb = tp.row
        dst = [base for base, per_row in ((tp.code_base(), rb.code), (tp.scale_base(), rb.scale),
                                          (tp.meta_base(), rb.meta)) if per_row]
        if rb.per_tensor:
            dst.append(tp.meta_base() + h * rb.meta)
        ddr = self.m.ddr
        spm = self.st.spm
        for seg, base in zip(step.ddr, dst, strict=True):
            n = seg.length * seg.count
            rows = (seg.address + seg.stride * np.arange(seg.count)[:, None]
                    + np.arange(seg.length)[None, :]).reshape(-1)
            if load:
                spm[base:base + n] = ddr[rows]
            else:
                ddr[rows] = spm[base:base + n]

    def _operand(self, name: str):
        d = self.prog.tile[name]
        if d.is_float:
            return operand_from_values(self._get(name), self.m.chunk)
        return operand_from_quantized(self._get(name), self.m.chunk, name)

    def _matrix(self, op: str, ops) -> None:
        if op in ("MMA", "MMA.SP"):
            acc = self._acc(ops[0])
            self.m.mma.add(mma_operands(self._operand(ops[1]), self._operand(ops[2]), acc))
        elif op == "ACC.ZERO":
            self._acc(ops[0])[...] = 0.0
        elif op == "ACC.LD":
            self._acc(ops[0])[...] = self._get(ops[1])
        elif op == "ACC.ST":
            self._put(ops[0], self._acc(ops[1]))

    def _vector(self, op: str, ops) -> None:
        g = self._get
        with np.errstate(all="ignore"):
            if op in ("VADD", "VSUB", "VMUL"):
                a, b = g(ops[1]), g(ops[2])
                r = a + b if op == "VADD" else a - b if op == "VSUB" else a * b
            elif op in ("VADDI", "VMULI", "VMAXI", "VMINI"):
                a, imm = g(ops[1]), np.float32(ops[2].value)
                r = {"VADDI": lambda: a + imm, "VMULI": lambda: a * imm,
                     "VMAXI": lambda: vec.vmax(a, imm), "VMINI": lambda: vec.vmin(a, imm)}[op]()
            elif op == "VMAX":
                r = vec.vmax(g(ops[1]), g(ops[2]))
            elif op == "VMIN":
                r = vec.vmin(g(ops[1]), g(ops[2]))
            elif op == "VFMA":
                r = vec.vfma(g(ops[1]), g(ops[2]), g(ops[3]))
            elif op in ("VEXP", "VRCP", "VRSQRT", "VGELU", "VSILU"):
                fn = {"VEXP": vec.vexp, "VRCP": vec.vrcp, "VRSQRT": vec.vrsqrt,
                      "VGELU": vec.vgelu, "VSILU": vec.vsilu}[op]
                r = fn(g(ops[1]))
            elif op == "VROTH":
                a = g(ops[1])
                half = a.shape[1] // 2
                r = np.concatenate([-a[:, half:], a[:, :half]], axis=1)
                self._put(ops[0], r)
                return
            elif op == "VRSUM":
                r = vec.vrsum(g(ops[1]))
            elif op == "VRMAX":
                r = vec.vrmax(g(ops[1]))
            elif op in ("VCVT", "VTRANS"):
                a = g(ops[1])
                self._put(ops[0], a.T if op == "VTRANS" else a)
                return
            elif op == "VQUANT":
                d = self.prog.tile[ops[0]]
                write_quantized(self.st.spm, self.lay.tiles[ops[0]], d,
                                quantize_decl(g(ops[1]), d))
                return
            elif op == "VDEQUANT":
                r = g(ops[1]).dequantize()
            else:  # pragma: no cover - the opcode table and this dispatch agree
                raise ProgramError(f"the functional executor does not implement {op}")
        shape = self.prog.tile[ops[0]].shape
        self._put(ops[0], vec.canonical(np.broadcast_to(r, shape)))


def run(program: Program, *, ddr: np.ndarray | Mapping[str, np.ndarray | QuantizedTensor],
        cores: int = 1, params: IsaParams | None = None, chunk: int = DEFAULT_CHUNK
        ) -> MachineState:
    """Run ``program`` on ``cores`` cores; returns the final :class:`MachineState`.

    ``ddr``: a byte image (uint8, as :func:`ddr_image` builds; copied) or a dict name -> float
    array / QuantizedTensor placed with :func:`ddr_image`. ``chunk``: the MMA accumulation
    chunk. Raises ProgramError for programs that cannot run (from validate / expand) and when
    cores disagree on BARRIERs (one halts while others wait).
    """
    if cores < 1:
        raise ConfigError(f"'cores' must be >= 1 (got {cores})")
    lay = validate(program, params)
    pr = lay.params
    if isinstance(ddr, dict):
        image = ddr_image(program, ddr, lay)
    else:
        image = np.array(ddr, dtype=np.uint8).reshape(-1)
        need = max((p.base + p.nbytes for p in lay.tensors.values()), default=0)
        if image.size < need:
            raise ConfigError(f"the DDR image has {image.size} bytes; the program's tensors end "
                              f"at byte {need}")
    states = [CoreState(np.zeros(pr.onchip_bytes, dtype=np.uint8),
                        np.zeros((pr.n_accumulators, pr.acc_max_rows, pr.acc_max_cols),
                                 dtype=np.float32),
                        [0] * 16 + [c, cores]) for c in range(cores)]
    m = MachineState(program, lay, image, states, int(chunk))
    compiled = compile_steps(program, layout=lay)
    execs = [_Core(m, c, cores, compiled) for c in range(cores)]
    while True:
        at_barrier = [ex.run_to_barrier() if not ex.done else False for ex in execs]
        m.multicasts.check_complete()
        if not any(at_barrier):
            return m
        if not all(at_barrier):
            waiting = [i for i, b in enumerate(at_barrier) if b]
            ended = [i for i, b in enumerate(at_barrier) if not b]
            raise ProgramError(f"cores {waiting} wait at a BARRIER that cores {ended} never "
                               "reach (they halted)")
