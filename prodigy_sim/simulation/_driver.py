"""The simulation driver: a scenario (or an already lowered model) through the timing model of the
whole chip. The CLI, the reports and the real models' throughput all call :func:`simulate`.

Every kernel runs on all the cores it was lowered for, with the shared L3 on (``l3=False`` turns
it off: every DMA goes to DDR). Two things keep it cheap, and :class:`SimMethod` records which
were used:

1. **Reuse of identical layers** (``reuse=True``): a stage's kernels are simulated once and the
   result counted ``repeat`` times. The programs of identical layers are the same objects and the
   timing model is deterministic, so this is exact (tests compare it with simulating every
   layer).
2. **Steady-state extrapolation** (``steady_units=u``): a kernel whose busiest core runs
   ``n >= 32u`` units of identical work is simulated with its unit loop capped at ``u``, ``2u``,
   ``4u`` and ``8u`` (doubling ``u`` until the three windows agree, see :func:`simulate_op`);
   its time (and DDR bytes) are extrapolated linearly from the last window,
   ``t(n) = t(8u) + (n - 8u) (t(8u) - t(4u)) / 4u``. Its error against simulating every unit is
   checked by tests on every kernel kind and bounded in ``docs/lowering.md``
   (:data:`STEADY_STATE_BOUND`).

The mapper places every linear op by closed-form costs, which can rank mappings wrongly
(docs/lowering.md, *How well the costs rank mappings*). With ``mapping_candidates=N > 1`` each
linear op's ``N`` cheapest distinct mappings by those costs are simulated (the same method) and
the fastest is kept - a search by simulation, ``N`` times the linear ops' simulation time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig, load_preset
from prodigy_sim.lowering import (
    Kernel,
    LoweredModel,
    LoweredOp,
    Residency,
    is_mapped_linear,
    lower_model,
    mapping_candidates,
)
from prodigy_sim.models import Scenario
from prodigy_sim.simulation._cache import RunCache
from prodigy_sim.timing import DDR_METHODS, BusyRecorder, batching_error
from prodigy_sim.timing import simulate as simulate_program

__all__ = ["OpResult", "OpTrace", "StageResult", "ModelSimulation", "SimMethod", "simulate",
           "simulate_op", "simulate_lowered", "sim_kernel_count", "prefetch_runs",
           "fastest_mapping",
           "DEFAULT_STEADY_UNITS",
           "STEADY_STATE_BOUND", "BATCHING_MEASURED", "PERSISTENT_MEASURED", "onchip_share",
           "steady_extrapolation"]

DEFAULT_STEADY_UNITS = 2
"""Units per core simulated before extrapolating a longer unit loop (``steady_units``)."""
STEADY_STATE_TOLERANCE = 0.02
"""Largest relative difference of the per-unit times of three successive windows at which the
unit loop counts as steady."""
STEADY_WINDOW_REFRESHES = 4
"""Refresh intervals (tREFI) the extrapolated window of units must span at least."""
STEADY_STATE_BOUND = 0.03
"""Largest relative error of the steady-state extrapolation against simulating every unit that
the tests allow (``tests/test_simulation.py``)."""
BATCHING_MEASURED = 0.31
"""The largest DDR drain difference (either sign) of the batched DDR5 model against one batch
per controller measured on the ops of ``benchmarks/batching_check.py``'s cases (docs/timing.md,
*Batching approximation*: ``llama-2-70b-decode-tai2-sparse``'s attention, -30.1%: its batches
drain faster than one batch serves the same requests). A measurement the report quotes, not a
bound the model guarantees on other inputs: ``check_batching`` measures a run's own."""

PERSISTENT_MEASURED = (-0.120, 0.028)
"""The batched DDR's simulated time against the persistent DDR's, relative (negative: the
batched method faster), smallest and largest over ``benchmarks/ddr_methods.py``'s cases - the
whole-model benchmarks and the shipped scenarios (docs/timing.md, *DDR methods*:
``llama-2-70b-decode-tai2-sparse`` -12.0%, the LLaMA-2-7B decode +2.8%). A measurement the report
quotes (``--ddr persistent`` gives a run's own), not a bound on other inputs."""


def steady_extrapolation(runs: list[tuple[int, int]], u: int, n: int, window: float,
                         must_move: int) -> tuple[float, float] | None:
    """The steady-state extrapolation of a unit loop of ``n`` units per core from the runs of
    its first ``u``, ``2u``, ``4u`` and ``8u`` units (``(cycles, DDR bytes)`` each), or None if
    they do not show a steady state: the window of units ``u+1 .. 2u`` shorter than ``window``
    cycles, the per-unit times of the windows ``u+1 .. 2u``, ``2u+1 .. 4u`` and ``4u+1 .. 8u``
    more than :data:`STEADY_STATE_TOLERANCE` apart, or the extrapolated DDR bytes below
    ``must_move`` (the op's compulsory bytes off chip: windows that move fewer bytes per unit
    than the whole loop must are not its steady state). Returns ``(cycles, DDR bytes)`` of all
    ``n`` units, the last window's rate continued."""
    (c1, _), (c2, _), (c3, d3), (c4, d4) = runs
    a, b, c = (c2 - c1) / u, (c3 - c2) / (2 * u), (c4 - c3) / (4 * u)
    if (c2 - c1 < window or abs(a - c) > STEADY_STATE_TOLERANCE * c
            or abs(b - c) > STEADY_STATE_TOLERANCE * c):
        return None
    scale = (n - 8 * u) / (4 * u)
    ddr = d4 + scale * (d4 - d3)
    if ddr < must_move:
        return None
    return c4 + scale * (c4 - c3), ddr


@dataclass(frozen=True)
class SimMethod:
    """How a model was simulated: identical layers reused, steady-state extrapolation after
    ``steady_units`` units per core (None: every unit), the shared L3 on or off, and how many
    of each linear op's cheapest mappings by the mapper's costs were simulated to keep the
    fastest (``mapping_candidates``; 1: the mapper's choice), and whether each op's DDR batching
    was checked against one DDR5 batch per controller (``check_batching``: a second run of the
    op with every DDR request logged, :func:`~prodigy_sim.timing.batching_error`), and how DMA
    requests reach the DDR5 model (``ddr``: :data:`~prodigy_sim.timing.DDR_METHODS`)."""

    reuse: bool = True
    steady_units: int | None = DEFAULT_STEADY_UNITS
    l3: bool = True
    mapping_candidates: int = 1
    check_batching: bool = False
    ddr: str = "batched"

    def describe(self) -> str:
        """One line for reports, with each approximation's checked bound."""
        parts = ["full chip"]
        parts.append("shared L3 on" if self.l3 else "shared L3 off")
        if self.reuse:
            parts.append("identical layers simulated once (exact)")
        if self.steady_units:
            parts.append(f"long unit loops extrapolated once three successive windows (from "
                         f"{self.steady_units} units per core, doubling, each at least "
                         f"{STEADY_WINDOW_REFRESHES} refresh intervals) agree within "
                         f"{STEADY_STATE_TOLERANCE:.0%} (checked within "
                         f"{STEADY_STATE_BOUND:.0%} of every unit)")
        if self.mapping_candidates > 1:
            parts.append(f"each linear op's mapping the fastest of its "
                         f"{self.mapping_candidates} cheapest by the mapper's costs, simulated")
        if self.ddr == "persistent":
            parts.append("DDR5 persistent: one run per subchannel for the whole op, no seam; "
                         "each load's completion the real one (confirmed before use), a store's "
                         "DMA slot freed at its speculated completion, the op's end at the real "
                         "one")
        else:
            parts.append("DDR5 in batches between the cores' waits ("
                         + ("each op checked against one batch per controller: 'DDR batching' "
                            "below" if self.check_batching else
                            f"not checked in this run, --check-batching; on the shipped "
                            f"cases' ops within {BATCHING_MEASURED:.0%} of one batch per "
                            f"controller; the shipped cases from {-PERSISTENT_MEASURED[0]:.0%} "
                            f"faster to {PERSISTENT_MEASURED[1]:.0%} slower than the "
                            f"persistent DDR, docs/timing.md; --ddr persistent for no "
                            f"batches")
                         + ")")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {"reuse": self.reuse, "steady_units": self.steady_units, "l3": self.l3,
                "mapping_candidates": self.mapping_candidates,
                "check_batching": self.check_batching, "ddr": self.ddr,
                "description": self.describe()}


def onchip_share(ddr_bytes: float, dma_bytes: float) -> float:
    """The share of the DMAs' bytes (loads and stores) that DDR did not move: served by the
    shared L3, resident tensors or a multicast, or stored on chip. ``1 - ddr / dma``, clamped to
    [0, 1] (DDR moves whole 64-B lines, so a few short DMAs can cost more DDR bytes than they
    move). The report's ``l3_hit_rate`` per op and in total."""
    return min(1.0, max(0.0, 1 - ddr_bytes / dma_bytes)) if dma_bytes else 0.0


@dataclass(frozen=True)
class OpResult:
    """One kernel: simulated time, work, traffic, utilization, roofline bound, how it ran.

    ``dma_bytes``: bytes the cores' DMAs moved; ``ddr_bytes``: bytes DDR moved (the rest came
    from the L3 or multicasts); ``compulsory_bytes``: every input read and output written once;
    ``roofline_seconds``: ``max(MMA FLOPs / peak, compulsory bytes / peak DDR bandwidth)``.
    """

    stage: str
    name: str
    kind: str
    seconds: float
    flops: int
    mma_flops: int
    dma_bytes: int
    weight_bytes: int
    matrix_utilization: float
    vector_utilization: float
    dma_utilization: float
    roofline_seconds: float
    method: str
    vector_flops: int = 0
    ddr_bytes: int = 0
    compulsory_bytes: int = 0
    mapping: str = ""
    ddr_batching_error: float | None = None
    """With ``SimMethod.check_batching``: the DDR drain span of the op's run, batched against
    one DDR5 batch per controller, relative and signed (mean over controllers; negative: the
    batches drained faster than one batch would serve the same requests); None: not checked."""
    ddr_late_share: float | None = None
    """With the persistent DDR (``SimMethod.ddr``): the share of the op's DDR requests (of
    the run the result comes from) that completed later than the completion their waiting core
    was told (speculated); None with the batched DDR."""
    ddr_late_ns: float | None = None
    """Their mean delay past the speculated completion (ns); None with the batched DDR."""

    @property
    def l3_hit_rate(self) -> float:
        """:func:`onchip_share` of this op's DMA bytes."""
        return onchip_share(self.ddr_bytes, self.dma_bytes)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__, l3_hit_rate=self.l3_hit_rate)


@dataclass(frozen=True)
class StageResult:
    """One stage (a layer kind, or the head): its ops for one layer and how often it runs."""

    name: str
    layers: tuple[int, ...]
    repeat: int
    ops: tuple[OpResult, ...]
    simulated_layers: int

    @property
    def seconds(self) -> float:
        """Time of one layer of the stage (s)."""
        return sum(o.seconds for o in self.ops)


@dataclass(frozen=True)
class ModelSimulation:
    """All stages of a lowered model, simulated, and the method used."""

    lowered: LoweredModel
    stages: tuple[StageResult, ...]
    method: SimMethod = field(default_factory=SimMethod)

    @property
    def seconds(self) -> float:
        """Time of one pass (a decode step or a prefill) (s)."""
        return sum(s.seconds * s.repeat for s in self.stages)

    @property
    def settings(self) -> dict[str, object]:
        return self.method.to_dict()


def _refresh_cycles(config: ChipConfig) -> float:
    """tREFI in core cycles."""
    t = config.memory.dram.timing
    return t.nREFI * t.tck_ps * 1e-12 * config.frequency_hz


@dataclass(frozen=True)
class OpTrace:
    """The recorded run of one op behind its result: ``recorder`` (a
    :class:`~prodigy_sim.timing.BusyRecorder`) of the run the result's time comes from (all
    units, or the last steady-state window's run), its ``cycles`` and the ``units`` per core it
    simulated of ``total_units``."""

    stage: str
    name: str
    recorder: BusyRecorder
    cycles: int
    units: int
    total_units: int


def _run_inputs(op: LoweredOp, method: SimMethod) -> tuple[int | None, Residency]:
    """The ``l3_bytes`` and residency every timing-engine run of ``op`` gets."""
    return (None, op.residency) if method.l3 else (0, Residency())


def _steady_candidate(op: LoweredOp, method: SimMethod) -> bool:
    """Whether :func:`simulate_op` tries the steady-state extrapolation on ``op`` (its runs then
    depend on each other's results)."""
    u = method.steady_units
    return bool(u and op.kernel.uniform_units and op.kernel.per_core_units >= 32 * u)


def _offer_runs(op: LoweredOp, config: ChipConfig, method: SimMethod, cache: RunCache) -> None:
    """Submit to ``cache`` the runs :func:`simulate_op` surely makes of ``op``: the full run,
    or for an op tried for the steady-state extrapolation its first three capped runs."""
    l3_bytes, on_chip = _run_inputs(op, method)
    u = method.steady_units
    kernels = ([op.rebuild(c) for c in (u, 2 * u, 4 * u)] if u and _steady_candidate(op, method)
               else [op.kernel])
    for k in kernels:
        cache.submit(k.program, config, cores=op.kernel.cores, l3_bytes=l3_bytes,
                     resident=on_chip.resident, held_bytes=on_chip.held_bytes,
                     aliased=on_chip.aliased, ddr=method.ddr)


def prefetch_runs(lowered: LoweredModel, config: ChipConfig, cache: RunCache, *,
                  method: SimMethod | None = None) -> int:
    """Submit to ``cache`` (:meth:`RunCache.submit`, worker processes) the timing-engine runs
    :func:`simulate_lowered` will surely make, so that they run in parallel before it asks for
    them: every op's full run, or for an op tried for the steady-state extrapolation its first
    three capped runs (the later ones depend on their results). The ops go longest first by
    their rooflines (:func:`_roofline_estimate`), so that a long run does not start last while
    the other workers idle. Returns how many ops were offered."""
    method = method or SimMethod()
    ops = [op for st in lowered.stages for op in st.ops]
    for op in sorted(ops, key=lambda op: -_roofline_estimate(op, config)):
        _offer_runs(op, config, method, cache)
    return len(ops)


def _matrix_seconds(k: Kernel, config: ChipConfig) -> float:
    """Seconds of ``k``'s MMAs at the matrix units' peak for its weight format (sparse or not)."""
    return (k.mma_flops / config.peak_matrix_flops(k.weight_format, k.sparse)
            if k.mma_flops else 0.0)


def _roofline_estimate(op: LoweredOp, config: ChipConfig) -> float:
    """Seconds of ``op`` by its MMA FLOPs and DMA bytes at the chip's peaks: the order of its
    simulation's cost (only used to order the runs given to worker processes)."""
    return max(_matrix_seconds(op.kernel, config),
               op.kernel.dma_bytes / config.peak_ddr_bandwidth_bytes_per_s)


def simulate_op(op: LoweredOp, config: ChipConfig, *, method: SimMethod | None = None,
                stage: str = "", trace: list[OpTrace] | None = None,
                cache: RunCache | None = None) -> OpResult:
    """Simulate one lowered op (its kernel on ``op.kernel.cores`` cores of ``config``), with
    the steady-state extrapolation of ``method`` where it applies and the op's residency when
    the L3 is on. With a ``trace`` list, the run the result comes from is recorded and appended
    to it as an :class:`OpTrace`. With a ``cache`` (:class:`RunCache`), timing-engine runs made
    before with the same inputs are reused (exact; not for a traced op)."""
    method = method or SimMethod()
    k = op.kernel
    cores = k.cores
    l3_bytes, on_chip = _run_inputs(op, method)
    recorders: dict[int | None, BusyRecorder] = {}

    def run(cap: int | None):
        kern: Kernel = k if cap is None else op.rebuild(cap)
        rec = None
        if trace is not None:
            rec = recorders[cap] = BusyRecorder()
        elif cache is not None:
            return cache.run(kern.program, config, cores=cores, l3_bytes=l3_bytes,
                             resident=on_chip.resident, held_bytes=on_chip.held_bytes,
                             aliased=on_chip.aliased, ddr=method.ddr)
        return simulate_program(kern.program, config, cores=cores, l3_bytes=l3_bytes,
                                resident=on_chip.resident, held_bytes=on_chip.held_bytes,
                                aliased=on_chip.aliased, recorder=rec, ddr=method.ddr)

    n = k.per_core_units
    u = method.steady_units
    compulsory = k.compulsory_off_chip(on_chip.resident)
    how = "full"
    res = None
    cap: int | None = None
    if u and _steady_candidate(op, method):
        # (the runs of u .. 8u units cost 15u units of simulation: tried only where that is at
        # most about half of the n units, else every unit is simulated at once)
        # Double the simulated units u (reusing runs) until the window of units u+1 .. 2u
        # spans STEADY_WINDOW_REFRESHES refresh intervals (start-up transients and
        # refresh-aligned patterns average out) and the per-unit times of the three successive
        # windows u+1 .. 2u, 2u+1 .. 4u and 4u+1 .. 8u agree within STEADY_STATE_TOLERANCE of
        # the last; extrapolate from that one. Two windows were not enough: a start-up phase
        # that lasts longer than the first window (the 70B prefill's gate_up: units 3-8 at
        # 142-144k cycles each, 9-28 at 134k) looked steady and was extrapolated 5% high. Nor
        # is a window whose rate of DDR bytes extrapolates below the op's compulsory bytes (a
        # multicast grid of LLaMA-3-8B's gate_up: 298.3 MB for 304.6, and 4% slow).
        # Simulate every unit when the units run out first. The capped runs are prefixes of
        # the full run (the kernels always apply their unit cap).
        window = STEADY_WINDOW_REFRESHES * _refresh_cycles(config)
        r1, r2, r3 = run(u), run(2 * u), run(4 * u)
        while 32 * u <= n:
            r4 = run(8 * u)
            steady = steady_extrapolation(
                [(r.cycles, r.dram_bytes) for r in (r1, r2, r3, r4)], u, n, window, compulsory)
            if steady is not None:
                cycles, ddr = steady
                res = r4                                # utilization of the steady state
                cap = 8 * u
                how = f"steady state from {4 * u} and {8 * u} of {n} units"
                break
            u *= 2
            r1, r2, r3 = r2, r3, r4
    if res is None:
        res = run(None)
        cycles, ddr = float(res.cycles), float(res.dram_bytes)
    if trace is not None:
        trace.append(OpTrace(stage, op.name, recorders[cap], res.cycles,
                             n if cap is None else cap, n))
    batching = None
    if method.check_batching:
        checked = k if cap is None else op.rebuild(cap)
        batching = batching_error(checked.program, config, cores=cores, l3_bytes=l3_bytes,
                                  resident=on_chip.resident, held_bytes=on_chip.held_bytes,
                                  aliased=on_chip.aliased)["drain_rel_diff_mean"]
    util = res.utilization
    vec = [v for key, v in util.items() if key.startswith("vector")]
    seconds = cycles / config.frequency_hz
    t_mat = _matrix_seconds(k, config)
    t_mem = compulsory / config.peak_ddr_bandwidth_bytes_per_s
    return OpResult(stage=stage, name=op.name, kind=k.kind, seconds=seconds, flops=op.flops,
                    mma_flops=k.mma_flops, dma_bytes=k.dma_bytes, weight_bytes=op.weight_bytes,
                    matrix_utilization=util.get("matrix", 0.0),
                    vector_utilization=sum(vec) / len(vec) if vec else 0.0,
                    dma_utilization=util.get("dma", 0.0),
                    roofline_seconds=max(t_mat, t_mem), method=how,
                    vector_flops=op.vector_flops, ddr_bytes=round(ddr),
                    compulsory_bytes=compulsory,
                    mapping=k.mapping, ddr_batching_error=batching,
                    **_speculation(res, config))


def _speculation(res, config: ChipConfig) -> dict[str, float]:
    """:attr:`OpResult.ddr_late_share` and ``ddr_late_ns`` of a run (none if batched)."""
    s = res.ddr_speculation
    if s is None:
        return {}
    tck_ns = config.memory.dram.timing.tck_ps / 1e3
    return {"ddr_late_share": s.late / s.requests if s.requests else 0.0,
            "ddr_late_ns": s.late_cycles * tck_ns / s.late if s.late else 0.0}


def simulate(what: Scenario | LoweredModel, config: ChipConfig | None = None, *,
             cores: int | None = None, steady_units: int | None = DEFAULT_STEADY_UNITS,
             reuse: bool = True, l3: bool = True, mapping_candidates: int = 1,
             progress: Callable[[int], None] | None = None,
             total: Callable[[int], None] | None = None,
             trace: list[OpTrace] | None = None,
             cache: RunCache | None = None, check_batching: bool = False,
             ddr: str = "batched") -> ModelSimulation:
    """Simulate a scenario (lowered first, on ``cores`` logical cores, default all) or an
    already lowered model on ``config`` (default: the scenario's preset).

    ``steady_units``: None simulates every unit; ``l3``: the shared L3 (on by default);
    ``mapping_candidates``: each linear op's that many cheapest mappings by the mapper's costs
    simulated, the fastest kept (1: the mapper's choice); ``check_batching``: each op's DDR
    batching checked against one DDR5 batch per controller (a second run of each op,
    :attr:`OpResult.ddr_batching_error`); ``ddr``: how DMA requests reach the DDR5 model,
    ``"batched"`` or ``"persistent"`` (:data:`~prodigy_sim.timing.DDR_METHODS`). ``total(n)``
    is called once with the
    number of kernels to simulate, ``progress(1)`` after each; ``trace`` and ``cache``: see
    :func:`simulate_lowered` (a scenario lowered here has its runs submitted to a cache's
    workers first, :func:`prefetch_runs`).
    """
    scenario = what.scenario if isinstance(what, LoweredModel) else what
    config = config or load_preset(scenario.hardware)
    method = SimMethod(reuse, steady_units, l3, mapping_candidates, check_batching, ddr)
    if isinstance(what, LoweredModel):
        lowered = what
    else:
        lowered = lower_model(scenario.card(), scenario, config, cores=cores, l3=l3)
        if cache is not None and cache.workers > 1 and trace is None:
            # lowered here, so its runs are offered here (a caller that lowers offers them)
            prefetch_runs(lowered, config, cache, method=method)
    if total is not None:
        total(sim_kernel_count(lowered, reuse, mapping_candidates))
    return simulate_lowered(lowered, config, method=method, progress=progress, trace=trace,
                            cache=cache)


def simulate_lowered(lowered: LoweredModel, config: ChipConfig, *,
                     method: SimMethod | None = None,
                     progress: Callable[[int], None] | None = None,
                     trace: list[OpTrace] | None = None,
                     cache: RunCache | None = None) -> ModelSimulation:
    """Simulate every stage of ``lowered`` on ``config`` (see the module docstring).

    ``progress(n)`` is called after each simulated kernel with ``n = 1``; a ``trace`` list
    receives an :class:`OpTrace` per simulated kernel (:func:`step_timeline` turns them into a
    timeline). A ``cache`` (:class:`RunCache`) shared by several simulations reuses their
    identical timing-engine runs (exact: the same results as without it). With
    ``method.mapping_candidates > 1`` every linear op is first replaced by the fastest of its
    candidate mappings (:func:`fastest_mapping`); the result's ``lowered`` holds the ops kept.
    """
    method = method or SimMethod()
    if lowered.config_name != config.name:
        raise ConfigError(f"the model was lowered for {lowered.config_name!r}, not "
                          f"{config.name!r}")
    if method.steady_units is not None and method.steady_units < 1:
        raise ConfigError(f"'steady_units' must be >= 1 or None (got {method.steady_units})")
    if method.ddr not in DDR_METHODS:
        raise ConfigError(f"'ddr': unknown DDR method {method.ddr!r} (choose from "
                          f"{', '.join(DDR_METHODS)})")
    if method.check_batching and method.ddr != "batched":
        raise ConfigError("'check_batching' checks the batched DDR against one DDR5 batch per "
                          f"controller; with ddr={method.ddr!r} there are no batches")
    if method.mapping_candidates < 1:
        raise ConfigError(f"'mapping_candidates' must be >= 1 (got "
                          f"{method.mapping_candidates})")
    if method.mapping_candidates > 1:
        # the candidates' runs are kept, so the op kept is not simulated again
        cache = RunCache() if cache is None else cache
        lowered = dataclasses.replace(lowered, stages=tuple(
            dataclasses.replace(st, ops=tuple(
                fastest_mapping(op, config, method=method, stage=st.name, cache=cache,
                                progress=progress) for op in st.ops))
            for st in lowered.stages))
    stages = []
    for st in lowered.stages:
        runs = 1 if method.reuse else st.repeat
        results: list[list[OpResult]] = []
        for _ in range(runs):
            ops = []
            for op in st.ops:
                ops.append(simulate_op(op, config, method=method, stage=st.name,
                                       trace=trace, cache=cache))
                if progress is not None:
                    progress(1)
            results.append(ops)
        if method.reuse:
            chosen = tuple(results[0])
        else:
            # every layer simulated: the stage's ops are the sum over the layers / layer count
            chosen = tuple(_mean(col) for col in zip(*results, strict=True))
        stages.append(StageResult(st.name, st.layers, st.repeat, chosen, runs))
    return ModelSimulation(lowered, tuple(stages), method)


def _mean(ops: tuple[OpResult, ...]) -> OpResult:
    first = ops[0]
    if all(o == first for o in ops):
        return first
    n = len(ops)
    return OpResult(**{**first.__dict__, "seconds": math.fsum(o.seconds for o in ops) / n})


def sim_kernel_count(lowered: LoweredModel, reuse: bool = True,
                     mapping_candidates: int = 1) -> int:
    """Kernels :func:`simulate_lowered` simulates (for a progress bar): with
    ``mapping_candidates > 1``, that many more per linear op placed by the mapper (the
    candidates; fewer are counted as done when an op has fewer)."""
    extra = (sum(mapping_candidates for s in lowered.stages for op in s.ops
                 if is_mapped_linear(op)) if mapping_candidates > 1 else 0)
    return extra + sum(len(s.ops) * (1 if reuse else s.repeat) for s in lowered.stages)


def fastest_mapping(op: LoweredOp, config: ChipConfig, *, method: SimMethod, stage: str = "",
                    cache: RunCache | None = None,
                    progress: Callable[[int], None] | None = None) -> LoweredOp:
    """The fastest, by :func:`simulate_op` with ``method``, of ``op`` and its next cheapest
    mappings by the mapper's costs (``method.mapping_candidates`` in all,
    :func:`prodigy_sim.lowering.mapping_candidates`); ties go to the cheaper by the costs (the
    mapper's choice first). ``op`` itself, not simulated, with one candidate or if it is not
    a mapped linear op. ``progress(1)`` after each candidate (and for each of the
    ``mapping_candidates`` an op lacks). With a ``cache`` of several workers
    (``RunCache(workers=n)``) the candidates' runs are made in parallel (the same results)."""
    if method.mapping_candidates == 1 or not is_mapped_linear(op):
        return op
    cands = mapping_candidates(op, config, method.mapping_candidates)
    if cache is not None and cache.workers > 1:
        for c in cands:                  # the candidates' first runs, in parallel
            _offer_runs(c, config, method, cache)
    seconds = []
    # (the op kept is checked when it is simulated for the result, not every candidate)
    pick = dataclasses.replace(method, check_batching=False)
    for c in cands:
        seconds.append(simulate_op(c, config, method=pick, stage=stage, cache=cache).seconds)
        if progress is not None:
            progress(1)
    if progress is not None and len(cands) < method.mapping_candidates:
        progress(method.mapping_candidates - len(cands))
    return cands[min(range(len(cands)), key=lambda i: (seconds[i], i))]
