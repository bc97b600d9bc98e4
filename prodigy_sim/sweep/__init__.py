"""Parameter sweeps: many points (hardware fields x scenario fields), run on Dask, one table.

- :class:`SweepSpec` (:func:`load_spec`, :func:`spec_names`): the points (``fixed`` + ``grid``
  and/or ``points``), what to compute (:data:`EVALUATORS`: ``footprint``, ``simulate``; more via
  :class:`Evaluator`), the output, plots and execution. Example specs: ``workloads/sweeps/``.
- :func:`sweep`: run it -> :class:`SweepResult` (rows, CSV and Parquet, plots). Results are
  appended to ``results.jsonl`` as points finish; a rerun computes only the missing points.
- :func:`expand`: the :class:`Point` list of a spec (ids, scenarios, chips) without running it.
- :func:`plot_line`, :func:`plot_heatmap`, :func:`plot_pareto` (:func:`pareto_front`),
  :func:`plot_compare` (time per pass stacked by op, one bar per point).

See ``docs/sweeps.md``. Each public name is imported from its module on first use
(:mod:`prodigy_sim._lazy`).
"""

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.sweep._evaluate import EVALUATORS as EVALUATORS
    from prodigy_sim.sweep._evaluate import Evaluator as Evaluator
    from prodigy_sim.sweep._evaluate import PointContext as PointContext
    from prodigy_sim.sweep._execute import dask_client as dask_client
    from prodigy_sim.sweep._names import spec_names as spec_names
    from prodigy_sim.sweep._plots import axis_label as axis_label
    from prodigy_sim.sweep._plots import pareto_front as pareto_front
    from prodigy_sim.sweep._plots import plot_compare as plot_compare
    from prodigy_sim.sweep._plots import plot_heatmap as plot_heatmap
    from prodigy_sim.sweep._plots import plot_line as plot_line
    from prodigy_sim.sweep._plots import plot_pareto as plot_pareto
    from prodigy_sim.sweep._plots import plot_spec as plot_spec
    from prodigy_sim.sweep._points import DEFAULTS as DEFAULTS
    from prodigy_sim.sweep._points import Point as Point
    from prodigy_sim.sweep._points import batches as batches
    from prodigy_sim.sweep._points import expand as expand
    from prodigy_sim.sweep._points import lowering_key as lowering_key
    from prodigy_sim.sweep._run import STATUSES as STATUSES
    from prodigy_sim.sweep._run import SweepResult as SweepResult
    from prodigy_sim.sweep._run import sweep as sweep
    from prodigy_sim.sweep._spec import PASSTHROUGH_KEYS as PASSTHROUGH_KEYS
    from prodigy_sim.sweep._spec import SCENARIO_KEYS as SCENARIO_KEYS
    from prodigy_sim.sweep._spec import ExecutionSpec as ExecutionSpec
    from prodigy_sim.sweep._spec import OutputSpec as OutputSpec
    from prodigy_sim.sweep._spec import PlotSpec as PlotSpec
    from prodigy_sim.sweep._spec import SimulateSettings as SimulateSettings
    from prodigy_sim.sweep._spec import SweepSpec as SweepSpec
    from prodigy_sim.sweep._spec import load_spec as load_spec
    from prodigy_sim.sweep._spec import parse_spec as parse_spec

_EXPORTS = {
    "EVALUATORS": "_evaluate",
    "Evaluator": "_evaluate",
    "PointContext": "_evaluate",
    "dask_client": "_execute",
    "axis_label": "_plots",
    "pareto_front": "_plots",
    "plot_compare": "_plots",
    "plot_heatmap": "_plots",
    "plot_line": "_plots",
    "plot_pareto": "_plots",
    "plot_spec": "_plots",
    "DEFAULTS": "_points",
    "Point": "_points",
    "batches": "_points",
    "expand": "_points",
    "lowering_key": "_points",
    "STATUSES": "_run",
    "SweepResult": "_run",
    "sweep": "_run",
    "PASSTHROUGH_KEYS": "_spec",
    "SCENARIO_KEYS": "_spec",
    "ExecutionSpec": "_spec",
    "OutputSpec": "_spec",
    "PlotSpec": "_spec",
    "SimulateSettings": "_spec",
    "SweepSpec": "_spec",
    "load_spec": "_spec",
    "parse_spec": "_spec",
    "spec_names": "_names",
}
"""Public name -> the module of this package that defines it."""

__all__ = [
    "DEFAULTS", "EVALUATORS", "PASSTHROUGH_KEYS", "SCENARIO_KEYS", "STATUSES", "Evaluator",
    "ExecutionSpec", "OutputSpec", "PlotSpec", "Point", "PointContext", "SimulateSettings",
    "SweepResult", "SweepSpec", "axis_label", "batches", "dask_client", "expand", "load_spec",
    "lowering_key", "pareto_front", "parse_spec", "plot_compare", "plot_heatmap", "plot_line",
    "plot_pareto", "plot_spec", "spec_names", "sweep",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
