"""Entry points: :func:`simulate` (the SimPy chip model) and :func:`roofline_bound`."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import simpy

from prodigy_sim.errors import ConfigError, ProgramError, SimulationError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import (
    DEFAULT_MAX_STEPS,
    IsaParams,
    Layout,
    Program,
    compile_steps,
    expand,
    validate,
)
from prodigy_sim.timing._core import Barrier, Core, StepBudget, compile_program
from prodigy_sim.timing._costs import (
    DEFAULT_DMA_OUTSTANDING,
    VECTOR_OP_CLASS,
    mma_macs,
    vector_elements,
)
from prodigy_sim.timing._memory import LineMap, MemorySystem, check_batching
from prodigy_sim.timing._noc import Mesh
from prodigy_sim.timing._result import CoreResult, SimulationResult

__all__ = ["simulate", "roofline_bound", "batching_error", "isa_params", "default_l3_bytes",
           "resident_ranges", "DEFAULT_DMA_OUTSTANDING"]



def isa_params(config: ChipConfig) -> IsaParams:
    """The ISA limits of a core of ``config`` (scratchpad = usable L2)."""
    return IsaParams(onchip_bytes=config.usable_tile_bytes_per_core)


def _prepare(program: Program, config: ChipConfig, cores: int | None) -> tuple[int, Layout]:
    ncores = config.cores if cores is None else cores
    if not 1 <= ncores <= config.cores:
        raise ConfigError(f"'cores' must be in 1..{config.cores} ('cores' of config "
                          f"{config.name!r}) (got {ncores})")
    try:
        lay = validate(program, isa_params(config))
    except ProgramError as exc:
        raise ProgramError(f"{exc} (on-chip memory per core: 'core.on_chip_memory.l2_bytes' - "
                           f"'l2_reserved_bytes' = {config.usable_tile_bytes_per_core} bytes in "
                           f"config {config.name!r})") from None
    return ncores, lay


def default_l3_bytes(config: ChipConfig, ncores: int, lay: Layout) -> int:
    """The "virtual L3": every core's L2 (less ``l2_reserved_bytes``) minus the scratchpad the
    program's tiles occupy on each of the ``ncores`` running cores."""
    spm = max((p.base + p.nbytes for p in lay.tiles.values()), default=0)
    return max(0, config.cores * config.usable_tile_bytes_per_core - ncores * spm)


def resident_ranges(program: Program, lay: Layout, resident: Collection[str]
                    ) -> tuple[tuple[int, int], ...]:
    """DDR byte ranges ``[lo, hi)`` of the ``resident`` tensors of ``program``."""
    unknown = sorted(set(resident) - set(lay.tensors))
    if unknown:
        raise ConfigError(f"'resident': no tensor {', '.join(map(repr, unknown))} in the program "
                          f"(tensors: {', '.join(sorted(lay.tensors))})")
    return tuple((lay.tensors[t].base, lay.tensors[t].base + lay.tensors[t].nbytes)
                 for t in sorted(set(resident)))


def _run(program: Program, config: ChipConfig, cores: int | None, recorder,
         dma_outstanding: int, log: bool, l3_bytes: int | None = None,
         resident: Collection[str] = (), held_bytes: int = 0,
         max_steps: int | None = DEFAULT_MAX_STEPS, aliased: Collection[str] = (),
         ddr: str = "batched") -> tuple[SimulationResult, MemorySystem]:
    if dma_outstanding < 1:
        raise ConfigError(f"'dma_outstanding' must be >= 1 (got {dma_outstanding})")
    if l3_bytes is not None and l3_bytes < 0:
        raise ConfigError(f"'l3_bytes' must be >= 0 (got {l3_bytes})")
    if held_bytes < 0:
        raise ConfigError(f"'held_bytes' must be >= 0 (got {held_bytes})")
    budget = StepBudget(max_steps)
    ncores, lay = _prepare(program, config, cores)
    ranges = resident_ranges(program, lay, resident)
    stray = sorted(set(aliased) - set(resident))
    if stray:
        raise ConfigError(f"'aliased': {', '.join(map(repr, stray))} not in 'resident' (an "
                          "aliased tensor is a resident one stored in place of another)")
    if l3_bytes is None:
        onchip = default_l3_bytes(config, ncores, lay)
        held = (sum(hi - lo for lo, hi in ranges) + held_bytes
                - sum(lay.tensors[t].nbytes for t in set(aliased)))
        if held > onchip:
            raise ConfigError(f"'resident', 'held_bytes': resident data takes {held} bytes, the "
                              f"on-chip memory beside the scratchpads holds {onchip}")
        l3_bytes = onchip - held
    if recorder is not None:
        recorder.start(config.frequency_hz, ncores)
    descs, nkeys = compile_program(program, config)
    env = simpy.Environment()
    mesh = Mesh(config, ncores)
    memory = MemorySystem(config, mesh, ncores, log=log, recorder=recorder,
                          l3_bytes=l3_bytes, resident=ranges, ddr=ddr)
    barrier = Barrier(env, ncores)
    compiled = compile_steps(program, layout=lay)               # once for every core
    procs = []
    for cid in range(ncores):
        core = Core(env, cid, ncores, program, lay, descs, nkeys, memory, barrier,
                    dma_outstanding, recorder, budget, compiled)
        procs.append(core)
        env.process(core.run())
    env.run()
    stuck = [c.cid for c in procs if not c.finished]
    if stuck:
        where = sorted(set(barrier.waiting.values()))
        raise SimulationError(f"deadlock: cores {stuck} wait at BARRIER (instruction "
                              f"{', '.join(map(str, where))}) that cores "
                              f"{[c.cid for c in procs if c.finished]} never reach")
    end = max(c.stats.end_cycle for c in procs)
    drained = memory.write_back_partials(end)
    memory.finish()
    if memory.stream is not None:
        # the persistent DDR: each core's DMAs not confirmed yet (its stores, loads it never
        # waited for) confirmed now that the runs ended: a core ends when its DMAs are done
        for c in procs:
            c.stats.end_cycle = max(c.stats.end_cycle, memory.settle(
                [h for h in c.dmas if h.ddr_ids is not None]))
        end = max(c.stats.end_cycle for c in procs)
    results = tuple(CoreResult(c.cid, c.stats.end_cycle, dict(c.stats.busy),
                               dict(c.stats.stalls), dict(sorted(c.stats.instructions.items())),
                               c.stats.dma_bytes) for c in procs)
    res = SimulationResult(
        config_name=config.name, ncores=ncores, frequency_hz=config.frequency_hz,
        cycles=max(end, drained or 0), cores=results,
        channel_bytes=tuple(int(b) for b in memory.bytes_per_ctrl),
        dram_requests=memory.requests, memory_batches=memory.flushes,
        l3_hit_bytes=memory.l3_hit_lines * memory.line, multicasts=memory.multicast_transfers,
        onchip_write_bytes=memory.onchip_write_lines * memory.line, ddr_method=ddr,
        ddr_speculation=memory.speculation())
    return res, memory


def simulate(program: Program, config: ChipConfig, *, cores: int | None = None, recorder=None,
             dma_outstanding: int = DEFAULT_DMA_OUTSTANDING, l3_bytes: int | None = None,
             resident: Collection[str] = (), held_bytes: int = 0,
             max_steps: int | None = DEFAULT_MAX_STEPS,
             aliased: Collection[str] = (), ddr: str = "batched") -> SimulationResult:
    """Simulate ``program`` on the first ``cores`` cores (default all) of ``config``.

    The program is validated against a core's usable on-chip memory first (ProgramError naming
    the tile and the config field). ``recorder`` (e.g. :class:`ChromeTraceRecorder`) receives
    the timeline; ``dma_outstanding`` is the number of transfers a core's DMA engine keeps in
    flight. ``l3_bytes`` is the capacity of the shared "virtual L3" that DMA loads look up
    before DDR: None (the default) sizes it with :func:`default_l3_bytes` (the chip's L2 less
    the program's scratchpad use), 0 turns it off. ``resident``: names of DDR tensors that live
    in the on-chip memory for this program (e.g. activations an earlier kernel left there): their
    loads are served by the lines' home L2 slices from the start and their stores go to those
    slices, never to DDR; by default they take their bytes from the L3's capacity, as do
    ``held_bytes`` of other data kept on chip meanwhile (other kernels' activations), but for
    the ``aliased`` ones (resident tensors the program writes in place of another resident
    one, e.g. a linear layer's output over its residual input: one buffer).
    ``max_steps`` bounds the instructions all cores execute together (default
    :data:`~prodigy_sim.isa.DEFAULT_MAX_STEPS`, None = no bound): beyond it a ProgramError names
    the core, the line and the opcode. ``ddr``: how DMA requests reach the DDR5 model,
    ``"batched"`` (default) or ``"persistent"`` (:data:`~prodigy_sim.timing.DDR_METHODS`; the
    result's ``ddr_speculation`` says how far the persistent method's speculated completions
    were from the real ones, which loads are confirmed against). Raises SimulationError on
    deadlock (a BARRIER some cores never reach).
    """
    return _run(program, config, cores, recorder, dma_outstanding, log=False,
                l3_bytes=l3_bytes, resident=resident, held_bytes=held_bytes,
                max_steps=max_steps, aliased=aliased, ddr=ddr)[0]


def batching_error(program: Program, config: ChipConfig, *, cores: int | None = None,
                   dma_outstanding: int = DEFAULT_DMA_OUTSTANDING, l3_bytes: int | None = None,
                   resident: Collection[str] = (), held_bytes: int = 0,
                   max_steps: int | None = DEFAULT_MAX_STEPS,
                   aliased: Collection[str] = ()) -> dict[str, float]:
    """Simulate (arguments as :func:`simulate`), then replay every DDR request of the run in
    one DDR5 batch per controller.

    Returns the relative difference of the per-controller drain time (batched vs one batch),
    the mean per-request completion difference in DRAM cycles, the waits at the batch seam and
    the share of the NoC ports' elements started late at their calendar's horizon; see
    :func:`prodigy_sim.timing._memory.check_batching`.
    """
    _, memory = _run(program, config, cores, None, dma_outstanding, log=True,
                     l3_bytes=l3_bytes, resident=resident, held_bytes=held_bytes,
                     max_steps=max_steps, aliased=aliased)
    return check_batching(memory)


def roofline_bound(program: Program, config: ChipConfig, *, cores: int | None = None,
                   max_steps: int | None = DEFAULT_MAX_STEPS) -> tuple[float, float, int]:
    """Lower bound on the run time: ``(seconds, flops, bytes)``.

    ``seconds = max(matrix time, vector time, unique bytes / peak DDR bandwidth)``: the matrix
    time is
    the sum over executed MMAs of ``2 M N K / (cores x per-core peak FLOPS of the weight format,
    sparse or not)``; the vector time ``elements x issue interval / (cores x lanes x units)``
    cycles; ``bytes`` is every DMA's DDR bytes (codes, scales, metadata) and ``unique bytes``
    the distinct cache lines they touch (what DDR must move at least once, whatever the shared
    L3 keeps). ``flops`` counts a MAC as 2 and 8:4-sparse MACs as the dense ones they replace.
    ``max_steps`` bounds the instructions of each core (see :func:`~prodigy_sim.isa.expand`).
    """
    ncores, lay = _prepare(program, config, cores)
    mu, vu = config.core.matrix_unit, config.core.vector_unit
    f = config.frequency_hz
    flops = 0.0
    t_matrix = 0.0
    t_vector_cycles = 0
    nbytes = 0
    per_vec = vu.fp32_lanes * vu.count
    lines = LineMap(config.core.on_chip_memory.line_bytes)
    touched = []
    compiled = compile_steps(program, layout=lay)
    for cid in range(ncores):
        for step in expand(program, cid, ncores, layout=lay, max_steps=max_steps,
                           compiled=compiled):
            ins = step.instruction
            if step.unit == "dma" and step.ddr:
                nbytes += sum(s.nbytes for s in step.ddr)
                touched.append(lines.of(step.ddr))
            elif ins.opcode in ("MMA", "MMA.SP"):
                macs = mma_macs(ins, program)
                w = program.tile[ins.name(2)].fmt
                rate = mu.peak_macs_per_cycle(w, sparse=ins.opcode == "MMA.SP") * f
                flops += 2 * macs
                t_matrix += macs / (rate * ncores)
            elif ins.opcode in VECTOR_OP_CLASS:
                el = vector_elements(ins, program)
                flops += el * (2 if ins.opcode == "VFMA" else 1)
                t_vector_cycles += el * vu.op_interval_cycles[VECTOR_OP_CLASS[ins.opcode]]
    t_vector = t_vector_cycles / (per_vec * ncores * f)
    unique = np.unique(np.concatenate(touched)).size * lines.line if touched else 0
    t_mem = min(nbytes, unique) / config.peak_ddr_bandwidth_bytes_per_s
    return max(t_matrix, t_vector, t_mem), flops, nbytes
