"""One call from a scenario to a report: the simulation driver, then the footprint and the
report."""

from __future__ import annotations

from collections.abc import Callable

from prodigy_sim.hardware import ChipConfig, load_preset, preset_names
from prodigy_sim.lowering import LoweredModel
from prodigy_sim.models import Scenario, footprint_report
from prodigy_sim.reports._report import ModelReport, build_report
from prodigy_sim.simulation import DEFAULT_STEADY_UNITS, ModelSimulation, RunCache, simulate

__all__ = ["simulate_scenario", "report_lowered", "report_simulation"]


def simulate_scenario(scenario: Scenario, *, config: ChipConfig | None = None,
                      cores: int | None = None,
                      steady_units: int | None = DEFAULT_STEADY_UNITS, reuse: bool = True,
                      l3: bool = True, mapping_candidates: int = 1,
                      progress: Callable[[int], None] | None = None,
                      total: Callable[[int], None] | None = None,
                      cache: RunCache | None = None,
                      check_batching: bool = False, ddr: str = "batched") -> ModelReport:
    """Lower ``scenario``, simulate it (:func:`prodigy_sim.simulation.simulate`, whose arguments
    these are) and report."""
    config = config or load_preset(scenario.hardware)
    sim = simulate(scenario, config, cores=cores, steady_units=steady_units, reuse=reuse,
                   l3=l3, mapping_candidates=mapping_candidates, progress=progress,
                   total=total, cache=cache, check_batching=check_batching, ddr=ddr)
    return report_simulation(sim, config)


def report_lowered(lowered: LoweredModel, config: ChipConfig, *,
                   steady_units: int | None = DEFAULT_STEADY_UNITS, reuse: bool = True,
                   l3: bool = True, mapping_candidates: int = 1,
                   progress: Callable[[int], None] | None = None,
                   total: Callable[[int], None] | None = None) -> ModelReport:
    """Simulate already lowered kernels (``lowered.scenario`` on ``config``) and report."""
    sim = simulate(lowered, config, steady_units=steady_units, reuse=reuse, l3=l3,
                   mapping_candidates=mapping_candidates, progress=progress, total=total)
    return report_simulation(sim, config)


def report_simulation(sim: ModelSimulation, config: ChipConfig) -> ModelReport:
    """The report of a simulation, with its footprint on ``config``'s DDR."""
    scenario = sim.lowered.scenario
    fp = footprint_report(scenario.card(), scenario,
                          hardware=config.name if config.name in preset_names() else None,
                          capacity_bytes=config.memory.capacity_bytes)
    return build_report(sim, config, fp)
