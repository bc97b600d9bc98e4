"""The simulation driver: scenarios and lowered models through the timing model.

- :func:`simulate`: a :class:`~prodigy_sim.models.Scenario` (lowered here) or a
  :class:`~prodigy_sim.lowering.LoweredModel` -> :class:`ModelSimulation` (per stage and op:
  time, work, utilization, roofline bound, the method used). The CLI, the reports and the real
  models' throughput all call it.
- The methods that make it cheap (reuse of identical layers, a representative subset of cores,
  steady-state extrapolation) and their settings (:func:`auto_subset`,
  :data:`DEFAULT_STEADY_UNITS`).

See ``docs/lowering.md``.
"""

from prodigy_sim.simulation._driver import DEFAULT_STEADY_UNITS as DEFAULT_STEADY_UNITS
from prodigy_sim.simulation._driver import ModelSimulation as ModelSimulation
from prodigy_sim.simulation._driver import OpResult as OpResult
from prodigy_sim.simulation._driver import StageResult as StageResult
from prodigy_sim.simulation._driver import auto_subset as auto_subset
from prodigy_sim.simulation._driver import scaled_config as scaled_config
from prodigy_sim.simulation._driver import sim_kernel_count as sim_kernel_count
from prodigy_sim.simulation._driver import simulate as simulate
from prodigy_sim.simulation._driver import simulate_lowered as simulate_lowered

__all__ = ["DEFAULT_STEADY_UNITS", "ModelSimulation", "OpResult", "StageResult", "auto_subset",
           "scaled_config", "sim_kernel_count", "simulate", "simulate_lowered"]
