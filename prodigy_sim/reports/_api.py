"""One call from a scenario to a report: lower, simulate with the cheap-but-checked tools, count
the footprint."""

from __future__ import annotations

from collections.abc import Callable

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig, load_preset
from prodigy_sim.lowering import LoweredModel, lower_model, sim_kernel_count, simulate_model
from prodigy_sim.models import Scenario, footprint_report
from prodigy_sim.reports._report import ModelReport, build_report

__all__ = ["simulate_scenario", "report_lowered", "auto_subset", "DEFAULT_STEADY_UNITS"]

DEFAULT_STEADY_UNITS = 2
"""Units per core simulated before extrapolating a longer unit loop (``steady_units``)."""


def auto_subset(config: ChipConfig, cores: int) -> int:
    """The smallest representative subset of ``cores`` with whole DDR channels and >= 16 cores
    (all cores if none)."""
    for s in range(16, cores):
        if cores % s == 0 and (config.memory.channels * s) % cores == 0:
            return s
    return cores


def simulate_scenario(scenario: Scenario, *, config: ChipConfig | None = None,
                      cores: int | None = None, core_subset: int | str | None = "auto",
                      steady_units: int | None = DEFAULT_STEADY_UNITS, reuse: bool = True,
                      progress: Callable[[int], None] | None = None,
                      total: Callable[[int], None] | None = None) -> ModelReport:
    """Lower ``scenario``, simulate it and report.

    ``config``: default the scenario's preset. ``core_subset``: ``"auto"``
    (:func:`auto_subset`), an int, or None (every core). ``steady_units``: None simulates every
    unit. ``total(n)`` is called once with the number of kernels to simulate, ``progress(1)``
    after each.
    """
    config = config or load_preset(scenario.hardware)
    lowered = lower_model(scenario.card(), scenario, config, cores=cores)
    return report_lowered(lowered, config, core_subset=core_subset, steady_units=steady_units,
                          reuse=reuse, progress=progress, total=total)


def report_lowered(lowered: LoweredModel, config: ChipConfig, *,
                   core_subset: int | str | None = "auto",
                   steady_units: int | None = DEFAULT_STEADY_UNITS, reuse: bool = True,
                   progress: Callable[[int], None] | None = None,
                   total: Callable[[int], None] | None = None) -> ModelReport:
    """Simulate already lowered kernels (``lowered.scenario`` on ``config``) and report; the
    arguments as :func:`simulate_scenario`'s."""
    scenario = lowered.scenario
    card = scenario.card()
    if core_subset == "auto":
        subset = auto_subset(config, lowered.cores)
    elif core_subset is None or isinstance(core_subset, int):
        subset = core_subset
    else:
        raise ConfigError(f"'core_subset' must be 'auto', an int or None (got {core_subset!r})")
    if total is not None:
        total(sim_kernel_count(lowered, reuse))
    sim = simulate_model(lowered, config, reuse=reuse, core_subset=subset,
                         steady_units=steady_units, progress=progress)
    fp = footprint_report(card, scenario, hardware=config.name
                          if config.name in _presets() else None,
                          capacity_bytes=config.memory.capacity_bytes)
    return build_report(sim, config, fp)


def _presets() -> tuple[str, ...]:
    from prodigy_sim.hardware import preset_names

    return tuple(preset_names())
