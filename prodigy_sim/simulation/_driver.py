"""The simulation driver: a scenario (or an already lowered model) through the timing model, and
the three ways to make it cheap. The CLI, the reports and the real models' throughput all call
:func:`simulate`.

1. **Reuse of identical layers** (``reuse=True``): a stage's kernels are simulated once and the
   result counted ``repeat`` times. The programs of identical layers are the same objects, and
   the timing model is deterministic, so this is exact (tests compare it with simulating every
   layer).
2. **Representative subset of cores** (``core_subset=s``): kernels split their units round robin
   over ``P`` logical cores, so every core does the same work (up to one unit). The kernel then
   runs on the first ``s`` cores of a chip scaled down by ``s / P`` - ``s`` cores and
   ``channels * s / P`` DDR controllers, so each controller serves as many cores as on the full
   chip. Time and utilization are taken as they are. Needs ``channels * s / P`` to be a whole
   number, and is used only for kernels where every core has work in every unit loop
   (:attr:`Kernel.symmetric`); others run on the full chip. Checked against the full chip on
   small cases: the scaled chip is optimistic for DDR-bound kernels (see docs/lowering.md).
3. **Steady-state extrapolation** (``steady_units=u``): a kernel whose busiest core runs
   ``n > 2u`` identical units is simulated with its unit loop capped at ``u`` and at ``2u``; the
   time is extrapolated linearly, ``t(n) = t(2u) + (n - 2u) (t(2u) - t(u)) / u``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig, load_preset
from prodigy_sim.lowering import LoweredModel, LoweredOp, lower_model
from prodigy_sim.models import Scenario
from prodigy_sim.timing import simulate as simulate_program

__all__ = ["OpResult", "StageResult", "ModelSimulation", "simulate", "simulate_lowered",
           "scaled_config", "sim_kernel_count", "auto_subset", "DEFAULT_STEADY_UNITS"]

DEFAULT_STEADY_UNITS = 2
"""Units per core simulated before extrapolating a longer unit loop (``steady_units``)."""


@dataclass(frozen=True)
class OpResult:
    """One kernel: simulated time, work, utilization, roofline bound and how it was obtained."""

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

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


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
    """All stages of a lowered model, simulated."""

    lowered: LoweredModel
    stages: tuple[StageResult, ...]
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Time of one pass (a decode step or a prefill) (s)."""
        return sum(s.seconds * s.repeat for s in self.stages)


def scaled_config(config: ChipConfig, cores: int, subset: int) -> ChipConfig:
    """``config`` scaled to ``subset`` of ``cores`` cores: cores and DDR channels times
    ``subset / cores`` (ConfigError if the channels do not scale to a whole number)."""
    ch = config.memory.channels * subset
    if ch % cores:
        raise ConfigError(f"'core_subset' {subset}: {config.memory.channels} channels x {subset} / "
                          f"{cores} cores is not a whole number of channels")
    data = config.model_dump()
    data["cores"] = subset
    data["name"] = f"{config.name}[{subset}/{cores}]"
    data["memory"]["channels"] = ch // cores
    data["noc"]["rows"] = None
    data["noc"]["cols"] = None
    return ChipConfig.model_validate(data)


def _simulate_op(op: LoweredOp, stage: str, config: ChipConfig, cores: int, sub: ChipConfig | None,
                 subset: int, steady_units: int | None) -> OpResult:
    k = op.kernel
    if sub is not None and not k.symmetric:
        sub = None                  # idle cores: a subset would not see the full chip's load
    cfg, ncores = (sub, subset) if sub is not None else (config, cores)

    def run(cap: int | None):
        kern = k if cap is None else op.rebuild(cap)
        return simulate_program(kern.program, cfg, cores=ncores)

    n = k.per_core_units
    method = "full" if sub is None else f"{subset} of {cores} cores"
    if steady_units and k.uniform_units and n > 2 * steady_units:
        u = steady_units
        r1, r2 = run(u), run(2 * u)
        cycles = r2.cycles + (n - 2 * u) * (r2.cycles - r1.cycles) / u
        res = r2                                    # utilization of the steady state
        method += f", steady state from {u} and {2 * u} of {n} units"
    else:
        res = run(None)
        cycles = float(res.cycles)
    util = res.utilization
    vec = [v for key, v in util.items() if key.startswith("vector")]
    seconds = cycles / config.frequency_hz
    t_mat = (k.mma_flops / config.peak_matrix_flops(k.weight_format, k.sparse)
             if k.mma_flops else 0.0)
    t_mem = k.dma_bytes / config.peak_ddr_bandwidth_bytes_per_s
    return OpResult(stage=stage, name=op.name, kind=k.kind, seconds=seconds, flops=op.flops,
                    mma_flops=k.mma_flops, dma_bytes=k.dma_bytes, weight_bytes=op.weight_bytes,
                    matrix_utilization=util.get("matrix", 0.0),
                    vector_utilization=sum(vec) / len(vec) if vec else 0.0,
                    dma_utilization=util.get("dma", 0.0),
                    roofline_seconds=max(t_mat, t_mem), method=method,
                    vector_flops=op.vector_flops)


def auto_subset(config: ChipConfig, cores: int) -> int:
    """The smallest representative subset of ``cores`` with whole DDR channels and >= 16 cores
    (all cores if none)."""
    for s in range(16, cores):
        if cores % s == 0 and (config.memory.channels * s) % cores == 0:
            return s
    return cores


def simulate(what: Scenario | LoweredModel, config: ChipConfig | None = None, *,
             cores: int | None = None, core_subset: int | str | None = "auto",
             steady_units: int | None = DEFAULT_STEADY_UNITS, reuse: bool = True,
             progress: Callable[[int], None] | None = None,
             total: Callable[[int], None] | None = None) -> ModelSimulation:
    """Simulate a scenario (lowered first, on ``cores`` logical cores, default all) or an
    already lowered model on ``config`` (default: the scenario's preset).

    ``core_subset``: ``"auto"`` (:func:`auto_subset`), an int, or None (every core).
    ``steady_units``: None simulates every unit. ``total(n)`` is called once with the number
    of kernels to simulate, ``progress(1)`` after each.
    """
    scenario = what.scenario if isinstance(what, LoweredModel) else what
    config = config or load_preset(scenario.hardware)
    lowered = (what if isinstance(what, LoweredModel)
               else lower_model(scenario.card(), scenario, config, cores=cores))
    subset: int | None
    if core_subset == "auto":
        subset = auto_subset(config, lowered.cores)
    elif core_subset is None or (isinstance(core_subset, int)
                                 and not isinstance(core_subset, bool)):
        subset = core_subset
    else:
        raise ConfigError(f"'core_subset' must be 'auto', an int or None (got {core_subset!r})")
    if total is not None:
        total(sim_kernel_count(lowered, reuse))
    return simulate_lowered(lowered, config, reuse=reuse, core_subset=subset,
                            steady_units=steady_units, progress=progress)


def simulate_lowered(lowered: LoweredModel, config: ChipConfig, *, reuse: bool = True,
                     core_subset: int | None = None, steady_units: int | None = None,
                     progress: Callable[[int], None] | None = None) -> ModelSimulation:
    """Simulate every stage of ``lowered`` on ``config`` (see the module docstring).

    ``progress(n)`` is called after each simulated kernel with ``n = 1``.
    """
    if lowered.config_name != config.name:
        raise ConfigError(f"the model was lowered for {lowered.config_name!r}, not "
                          f"{config.name!r}")
    p = lowered.cores
    sub = None
    if core_subset is not None and core_subset < p:
        if core_subset < 1 or p % core_subset:
            raise ConfigError(f"'core_subset' must divide the {p} cores (got {core_subset})")
        sub = scaled_config(config, p, core_subset)
    stages = []
    for st in lowered.stages:
        runs = 1 if reuse else st.repeat
        results = None
        for _ in range(runs):
            ops = []
            for op in st.ops:
                ops.append(_simulate_op(op, st.name, config, p, sub, core_subset or p,
                                        steady_units))
                if progress is not None:
                    progress(1)
            if results is None:
                results = [list(ops)]
            else:
                results.append(ops)
        assert results is not None
        if reuse:
            chosen = tuple(results[0])
        else:
            # every layer simulated: the stage's ops are the sum over the layers / layer count
            chosen = tuple(_mean(col) for col in zip(*results, strict=True))
        stages.append(StageResult(st.name, st.layers, st.repeat, chosen, runs))
    return ModelSimulation(lowered, tuple(stages),
                           {"reuse": reuse, "core_subset": core_subset or p,
                            "steady_units": steady_units})


def _mean(ops: tuple[OpResult, ...]) -> OpResult:
    first = ops[0]
    if all(o == first for o in ops):
        return first
    n = len(ops)
    return OpResult(**{**first.__dict__, "seconds": math.fsum(o.seconds for o in ops) / n})


def sim_kernel_count(lowered: LoweredModel, reuse: bool = True) -> int:
    """Kernels :func:`simulate_model` simulates (for a progress bar)."""
    return sum(len(s.ops) * (1 if reuse else s.repeat) for s in lowered.stages)
