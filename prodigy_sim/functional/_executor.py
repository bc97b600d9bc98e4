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

How it runs fast (``_plan``): the instruction streams depend on nothing but ``cid`` and
``ncores``, so they are expanded once per (program, parameters, cores) into a plan - kept with
the program for later runs - and cores that run the same instructions between two barriers
execute each one together: one DMA kernel call, one stacked MMA (``_mma.mma_batch``), one numpy
expression per vector instruction for all of them. Epochs with a race run core by core in the
order above, so every program gets the same bits either way.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from prodigy_sim._jit import blas_single_thread
from prodigy_sim.errors import ConfigError, ProgramError
from prodigy_sim.functional import _vector as vec
from prodigy_sim.functional._f32 import ADecoded, a_decode
from prodigy_sim.functional._matmul import DEFAULT_CHUNK
from prodigy_sim.functional._mma import MmaStats, mma_batch
from prodigy_sim.functional._operand import Stored
from prodigy_sim.functional._plan import DEFAULT_MAX_STEPS, Group, Plan, build_plan
from prodigy_sim.functional._storage import (
    quantize_decl,
    read_float,
    read_quantized,
    write_float,
    write_quantized,
)
from prodigy_sim.functional._tiles import (
    dma_copy,
    read_floats,
    read_rows,
    write_floats,
    write_rows,
)
from prodigy_sim.isa import IsaParams, Layout, Program, validate
from prodigy_sim.numerics import QuantizedTensor, ScaleKind, quantize

__all__ = ["CoreState", "MachineState", "run", "ddr_image", "DEFAULT_MAX_STEPS"]


@dataclass
class CoreState:
    """One core: scratchpad bytes (up to the end of the program's last tile: no instruction
    touches the rest), accumulator registers (n, rows, cols) float32, and the scalar
    registers r0..r15, cid, ncores (int, 64-bit two's complement)."""

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


# ------------------------------------------------------------------ instructions

_Op = Callable[[object, int, "np.ndarray | None", np.ndarray], None]


class _Machine:
    """The state arrays of a run and one compiled function per static instruction.

    ``spm``: uint8 (cores, on-chip bytes); ``acc``: float32 (cores, registers, rows, cols).
    An instruction function takes (core selector, number of cores, the DMA segments of those
    cores or None, their ids) and performs the instruction on all of them."""

    def __init__(self, m: MachineState, spm: np.ndarray, acc: np.ndarray):
        self.m = m
        self.prog = m.program
        self.lay = m.layout
        self.spm = spm
        self.acc = acc
        self.ops: dict[int, _Op] = {}
        # decoded MMA A operands: tile -> {cores: ADecoded}, dropped when the tile's bytes (or
        # an aliasing tile's) are written
        self.decoded: dict[str, dict[bytes, ADecoded]] = {}
        spans = {n: (p.base, p.base + p.nbytes) for n, p in self.lay.tiles.items()}
        self.overlap = {n: tuple(o for o, (b, e) in spans.items() if b < hi and lo < e)
                        for n, (lo, hi) in spans.items()}

    def _dirty(self, name: str) -> None:
        for t in self.overlap[name]:
            self.decoded.pop(t, None)

    def run_group(self, group: Group, ncores: int) -> None:
        cores = group.cores
        g = cores.size
        cs = slice(None) if g == ncores else cores
        ops = self.ops
        for pos, index in enumerate(group.steps):
            fn = ops.get(index)
            if fn is None:
                fn = ops[index] = self._compile(index)
            fn(cs, g, group.dma.get(pos), cores)

    # ---------------------------------------------------------------- tiles
    def _floats(self, name: str, cs) -> np.ndarray:
        return read_floats(self.spm, cs, self.lay.tiles[name], self.prog.tile[name])

    def _put(self, name: str, cs, x: np.ndarray) -> None:
        self._dirty(name)
        write_floats(self.spm, cs, self.lay.tiles[name], self.prog.tile[name], x)

    def _operand(self, name: str, cs, g: int):
        """An MMA operand of ``g`` cores stacked along rows: float values or a Stored."""
        d = self.prog.tile[name]
        if d.is_float:
            return self._floats(name, cs).reshape(g * d.shape[0], d.shape[1])
        return Stored.of(read_rows(self.spm, cs, self.lay.tiles[name], d, g))

    def _compile(self, index: int) -> _Op:
        ins = self.prog.instructions[index]
        op = ins.opcode
        if op in ("DMA.LD", "DMA.LDM", "DMA.ST"):
            return self._dma(ins)
        if op in ("MMA", "MMA.SP", "ACC.ZERO", "ACC.LD", "ACC.ST"):
            return self._matrix(ins)
        if op in ("VGATHER", "VSCATADD"):
            return self._indexed(ins, index)
        return self._vector(ins)

    def _dma(self, ins) -> _Op:
        load = ins.opcode != "DMA.ST"  # DMA.LD, DMA.LDM (a multicast load)
        base = self.lay.tiles[ins.operands[0] if load else ins.operands[3]].base
        ddr, spm = self.m.ddr, self.spm
        tile = ins.operands[0]

        def run_dma(cs, g, segs, cores):
            if load:
                self._dirty(tile)
            dma_copy(ddr, spm, cores, segs, base, load)
        return run_dma

    def _matrix(self, ins) -> _Op:
        op, ops = ins.opcode, ins.operands
        reg = self.lay.accs[ops[0] if op != "ACC.ST" else ops[1]]
        m, n = self.prog.acc[ops[0] if op != "ACC.ST" else ops[1]].shape
        acc = self.acc
        if op in ("MMA", "MMA.SP"):
            chunk, stats = self.m.chunk, self.m.mma

            def run_mma(cs, g, _segs, cores):
                w = self._operand(ops[2], cs, g)
                kept = self.decoded.setdefault(ops[1], {})
                key = cores.tobytes()
                dec = kept.get(key)
                if dec is None:
                    a = self._operand(ops[1], cs, g)
                    dec = kept[key] = a_decode(a, chunk)
                else:
                    def a():
                        return self._operand(ops[1], cs, g)
                if isinstance(cs, slice):
                    stats.add(mma_batch(a, w, acc[:, reg, :m, :n], chunk, dec))
                else:
                    part = acc[cs, reg, :m, :n]
                    stats.add(mma_batch(a, w, part, chunk, dec))
                    acc[cs, reg, :m, :n] = part
            return run_mma
        if op == "ACC.ZERO":
            def run_zero(cs, g, _segs, _cores):
                acc[cs, reg, :m, :n] = 0.0
            return run_zero
        if op == "ACC.LD":
            def run_ld(cs, g, _segs, _cores):
                acc[cs, reg, :m, :n] = self._floats(ops[1], cs)
            return run_ld

        def run_st(cs, g, _segs, _cores):
            self._put(ops[0], cs, acc[cs, reg, :m, :n])
        return run_st

    def _vector(self, ins) -> _Op:
        op, ops = ins.opcode, ins.operands
        get = self._floats
        shape = self.prog.tile[ops[0]].shape
        f: Callable[..., np.ndarray]
        if op == "VQUANT":
            return self._vquant(ins)
        if op == "VHBF":
            stride = ins.integer(2)

            def run_butterfly(cs, g, _segs, _cores):
                a = get(ops[1], cs)
                v = a.reshape(*a.shape[:2], -1, 2, stride)
                lo, hi = v[..., 0, :], v[..., 1, :]
                out = np.stack([lo + hi, lo - hi], axis=-2).reshape(a.shape)
                self._put(ops[0], cs, vec.canonical(out))
            return run_butterfly
        if op in ("VROTH", "VCVT", "VTRANS"):
            def run_move(cs, g, _segs, _cores):
                a = get(ops[1], cs)
                if op == "VROTH":
                    half = a.shape[2] // 2
                    a = np.concatenate([-a[:, :, half:], a[:, :, :half]], axis=2)
                elif op == "VTRANS":
                    a = a.transpose(0, 2, 1)
                self._put(ops[0], cs, a)
            return run_move
        if op == "VDEQUANT":
            src = self.prog.tile[ops[1]]

            def value(cs, g):
                q = read_rows(self.spm, cs, self.lay.tiles[ops[1]], src, g)
                return q.dequantize().reshape(g, *src.shape)
        elif op in ("VADD", "VSUB", "VMUL"):
            f = {"VADD": np.add, "VSUB": np.subtract, "VMUL": np.multiply}[op]

            def value(cs, g):
                return f(get(ops[1], cs), get(ops[2], cs))
        elif op in ("VADDI", "VMULI", "VMAXI", "VMINI"):
            imm = np.float32(ops[2].value)
            binary: dict[str, Callable[..., np.ndarray]] = {
                "VADDI": np.add, "VMULI": np.multiply, "VMAXI": vec.vmax, "VMINI": vec.vmin}
            f = binary[op]

            def value(cs, g):
                return f(get(ops[1], cs), imm)
        elif op in ("VMAX", "VMIN"):
            f = vec.vmax if op == "VMAX" else vec.vmin

            def value(cs, g):
                return f(get(ops[1], cs), get(ops[2], cs))
        elif op == "VFMA":
            def value(cs, g):
                return vec.vfma(get(ops[1], cs), get(ops[2], cs), get(ops[3], cs))
        elif op in ("VEXP", "VRCP", "VRSQRT", "VGELU", "VSILU"):
            f = {"VEXP": vec.vexp, "VRCP": vec.vrcp, "VRSQRT": vec.vrsqrt, "VGELU": vec.vgelu,
                 "VSILU": vec.vsilu}[op]

            def value(cs, g):
                return f(get(ops[1], cs))
        elif op in ("VRSUM", "VRMAX"):
            f = vec.vrsum if op == "VRSUM" else vec.vrmax

            def value(cs, g):
                a = get(ops[1], cs)
                return f(a.reshape(-1, a.shape[2])).reshape(g, a.shape[1], 1)
        else:  # pragma: no cover - the opcode table and this dispatch agree
            raise ProgramError(f"the functional executor does not implement {op}")

        def run_vector(cs, g, _segs, _cores):
            with np.errstate(all="ignore"):
                r = value(cs, g)
            self._put(ops[0], cs, vec.canonical(np.broadcast_to(r, (g, *shape))))
        return run_vector

    def _indexed(self, ins, index: int) -> _Op:
        """VGATHER / VSCATADD: the index tile's values must be integers in [0, C) of the
        indexed tile (checked on every core at run time)."""
        op, ops = ins.opcode, ins.operands
        indexed = ops[1] if op == "VGATHER" else ops[0]
        width = self.prog.tile[indexed].shape[1]
        at = f"line {ins.source_line}" if ins.source_line else f"instruction {index}"

        def indices(cs, cores) -> np.ndarray:
            idx = self._floats(ops[2], cs)[:, 0, :]
            with np.errstate(invalid="ignore"):
                bad = ~((idx >= 0) & (idx < width) & (idx == np.floor(idx)))
            if bad.any():
                c, j = (int(v) for v in np.argwhere(bad)[0])
                raise ProgramError(f"{at} ({op}): core {int(cores[c])}: index {float(idx[c, j])!r} "
                                   f"in column {j} of {ops[2]} is not an integer in "
                                   f"[0, {width}) (the columns of {indexed})")
            return idx.astype(np.int64)

        if op == "VGATHER":
            def run_gather(cs, g, _segs, cores):
                ii = indices(cs, cores)
                self._put(ops[0], cs, vec.vgather(self._floats(ops[1], cs), ii))
            return run_gather

        def run_scatter(cs, g, _segs, cores):
            ii = indices(cs, cores)
            self._put(ops[0], cs, vec.vscatadd(self._floats(ops[0], cs),
                                               self._floats(ops[1], cs), ii))
        return run_scatter

    def _vquant(self, ins) -> _Op:
        dst, src = ins.operands[0], ins.operands[1]
        d = self.prog.tile[dst]
        p = self.lay.tiles[dst]

        def run_vquant(cs, g, _segs, cores):
            self._dirty(dst)
            x = self._floats(src, cs)
            if d.block == 0 and d.scale != ScaleKind.NONE:  # one scale per tile: each core alone
                for i, c in enumerate(cores):
                    write_quantized(self.spm[c], p, d, quantize_decl(x[i], d))
                return
            q = quantize(x.reshape(-1, d.shape[1]), d.storage)
            write_rows(self.spm, cs, p, d, g, q)
        return run_vquant


# ------------------------------------------------------------------ plans

#: Plans kept with their program (weakly): program -> {(params, cores, max_steps): (layout,
#: plan)}. Only plans of at most _CACHE_STEPS steps (all cores) are kept.
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_STEPS = 1 << 21
_CACHE_PER_PROGRAM = 4


def _plan(program: Program, params: IsaParams | None, cores: int, max_steps: int,
          name: str) -> tuple[Layout, Plan]:
    key = (params, cores, max_steps)
    try:
        kept = _PLANS.get(program)
    except TypeError:  # an unhashable program (not a frozen Program): no caching
        kept = None
    if kept is not None and key in kept:
        return kept[key]
    lay = validate(program, params)
    plan = build_plan(program, lay, cores, max_steps, name)
    if sum(plan.steps) <= _CACHE_STEPS:
        try:
            kept = _PLANS.setdefault(program, {})
        except TypeError:
            return lay, plan
        if len(kept) >= _CACHE_PER_PROGRAM:
            kept.pop(next(iter(kept)))
        kept[key] = (lay, plan)
    return lay, plan


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"'{name}' must be an integer >= {low} (got {value!r})")
    if value < low:
        raise ConfigError(f"'{name}' must be >= {low} (got {value})")
    return int(value)


def run(program: Program, *, ddr: np.ndarray | Mapping[str, np.ndarray | QuantizedTensor],
        cores: int = 1, params: IsaParams | None = None, chunk: int = DEFAULT_CHUNK,
        max_steps: int = DEFAULT_MAX_STEPS, name: str | None = None) -> MachineState:
    """Run ``program`` on ``cores`` cores; returns the final :class:`MachineState`.

    ``ddr``: a byte image (uint8, as :func:`ddr_image` builds; copied) or a dict name -> float
    array / QuantizedTensor placed with :func:`ddr_image`. ``chunk``: the MMA accumulation
    chunk. ``max_steps``: the most instructions one core may execute (the step budget; a
    program that loops forever fails within seconds). ``name``: what error messages call the
    program. Raises ProgramError for programs that cannot run (from validate / expand), when a
    core exceeds the step budget, when the members of a DMA.LDM group disagree on a multicast
    load (another window, or not issued by every member before a BARRIER or the end), and when
    cores disagree on BARRIERs (one halts while others wait); ConfigError for bad arguments.
    """
    if not isinstance(program, Program):
        raise ConfigError(f"'program' must be a prodigy_sim.isa.Program (got "
                          f"{type(program).__name__}); assemble text with isa.assemble")
    cores = _check_int("cores", cores, 1)
    chunk = _check_int("chunk", chunk, 1)
    max_steps = _check_int("max_steps", max_steps, 1)
    if params is not None and not isinstance(params, IsaParams):
        raise ConfigError(f"'params' must be an IsaParams or None (got {type(params).__name__})")
    label = f"program {name!r}" if name else "the program"
    lay, plan = _plan(program, params, cores, max_steps, label)
    pr = lay.params
    if isinstance(ddr, Mapping):
        image = ddr_image(program, ddr, lay)
    elif isinstance(ddr, np.ndarray):
        image = np.array(ddr, dtype=np.uint8).reshape(-1)
        need = max((p.base + p.nbytes for p in lay.tensors.values()), default=0)
        if image.size < need:
            raise ConfigError(f"the DDR image has {image.size} bytes; the program's tensors end "
                              f"at byte {need}")
    else:
        raise ConfigError(f"'ddr' must be a uint8 byte image or a dict of tensors (got "
                          f"{type(ddr).__name__})")
    # the bytes up to the end of the last tile (no instruction touches the rest)
    used = max((p.base + p.nbytes for p in lay.tiles.values()), default=0)
    spm = np.zeros((cores, used), dtype=np.uint8)
    acc = np.zeros((cores, pr.n_accumulators, pr.acc_max_rows, pr.acc_max_cols),
                   dtype=np.float32)
    states = [CoreState(spm[c], acc[c], list(plan.regs[c])) for c in range(cores)]
    m = MachineState(program, lay, image, states, chunk)
    machine = _Machine(m, spm, acc)
    with blas_single_thread():  # many small GEMMs: BLAS threads cost more than they give
        for epoch in plan.epochs:
            for group in epoch.groups:
                machine.run_group(group, cores)
    if plan.waiting is not None:
        waiting, ended = plan.waiting
        raise ProgramError(f"{label}: cores {waiting} wait at a BARRIER that cores {ended} "
                           "never reach (they halted)")
    return m
