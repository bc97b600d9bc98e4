"""The simulation driver: scenarios and lowered models through the timing model of the chip.

- :func:`simulate`: a :class:`~prodigy_sim.models.Scenario` (lowered here) or a
  :class:`~prodigy_sim.lowering.LoweredModel` -> :class:`ModelSimulation` (per stage and op:
  time, work, DDR and compulsory bytes, L3 hit rate, utilization, roofline bound, mapping).
  The CLI, the reports and the real models' throughput all call it.
- :func:`simulate_op`: one lowered op (e.g. a single GEMM from
  :func:`prodigy_sim.lowering.linear_op`) -> :class:`OpResult`.
- :class:`RunCache`: passed to :func:`simulate`, reuses identical timing-engine runs across
  simulations (exact; e.g. the linear layers of decode steps that differ only in context);
  with ``workers=n`` it runs them in worker processes, submitted ahead by
  :func:`prefetch_runs` (the same results).
- :class:`SimMethod`: how a run was made cheap (reuse of identical layers, steady-state
  extrapolation) and whether the shared L3 was on, with each approximation's checked bound,
  how many candidate mappings per linear op were simulated (``mapping_candidates``;
  :func:`fastest_mapping`), and whether each op's DDR batching was checked against one DDR5
  batch per controller (``check_batching``; :attr:`OpResult.ddr_batching_error`).
- :func:`step_timeline` / :func:`write_step_timeline`: a bounded Perfetto timeline of a model
  step from a run with ``trace=[]`` (``prodigy-sim simulate --trace-out``).

See ``docs/lowering.md``.
"""

from prodigy_sim.simulation._cache import RunCache as RunCache
from prodigy_sim.simulation._cache import check_workers as check_workers
from prodigy_sim.simulation._cache import default_workers as default_workers
from prodigy_sim.simulation._cache import max_workers as max_workers
from prodigy_sim.simulation._driver import BATCHING_MEASURED as BATCHING_MEASURED
from prodigy_sim.simulation._driver import DEFAULT_STEADY_UNITS as DEFAULT_STEADY_UNITS
from prodigy_sim.simulation._driver import PERSISTENT_MEASURED as PERSISTENT_MEASURED
from prodigy_sim.simulation._driver import STEADY_STATE_BOUND as STEADY_STATE_BOUND
from prodigy_sim.simulation._driver import ModelSimulation as ModelSimulation
from prodigy_sim.simulation._driver import OpResult as OpResult
from prodigy_sim.simulation._driver import OpTrace as OpTrace
from prodigy_sim.simulation._driver import SimMethod as SimMethod
from prodigy_sim.simulation._driver import StageResult as StageResult
from prodigy_sim.simulation._driver import fastest_mapping as fastest_mapping
from prodigy_sim.simulation._driver import onchip_share as onchip_share
from prodigy_sim.simulation._driver import prefetch_runs as prefetch_runs
from prodigy_sim.simulation._driver import sim_kernel_count as sim_kernel_count
from prodigy_sim.simulation._driver import simulate as simulate
from prodigy_sim.simulation._driver import simulate_lowered as simulate_lowered
from prodigy_sim.simulation._driver import simulate_op as simulate_op
from prodigy_sim.simulation._timeline import step_timeline as step_timeline
from prodigy_sim.simulation._timeline import write_step_timeline as write_step_timeline

__all__ = ["DEFAULT_STEADY_UNITS", "STEADY_STATE_BOUND", "BATCHING_MEASURED",
           "PERSISTENT_MEASURED", "ModelSimulation",
           "OpResult",
           "OpTrace", "RunCache", "check_workers", "default_workers", "max_workers", "SimMethod",
           "StageResult",
           "sim_kernel_count",
           "simulate",
           "simulate_lowered", "simulate_op", "step_timeline", "write_step_timeline",
           "onchip_share", "prefetch_runs", "fastest_mapping"]
