"""Reports of simulated models: per-op and total time, FLOPs, bytes, utilization, footprint and
roofline bounds, as a table, JSON, CSV and plots (see docs/lowering.md).

- :func:`simulate_scenario`: scenario -> :class:`ModelReport` (lower, simulate, footprint);
  :func:`report_lowered` the same from kernels already lowered.
- :func:`build_report`: a :class:`~prodigy_sim.lowering.ModelSimulation` + footprint -> report.
- :func:`write_plots` (:func:`plot_roofline`, :func:`plot_breakdown`): PNG and SVG;
  :func:`plot_compare` puts several reports side by side (:func:`plot_compare_bars` draws it
  from plain numbers, e.g. a sweep's rows; :func:`op_seconds` is a report's time by op).
"""

from prodigy_sim.reports._api import report_lowered as report_lowered
from prodigy_sim.reports._api import report_simulation as report_simulation
from prodigy_sim.reports._api import simulate_scenario as simulate_scenario
from prodigy_sim.reports._plots import op_seconds as op_seconds
from prodigy_sim.reports._plots import place_labels as place_labels
from prodigy_sim.reports._plots import plot_breakdown as plot_breakdown
from prodigy_sim.reports._plots import plot_compare as plot_compare
from prodigy_sim.reports._plots import plot_compare_bars as plot_compare_bars
from prodigy_sim.reports._plots import plot_roofline as plot_roofline
from prodigy_sim.reports._plots import roofline_points as roofline_points
from prodigy_sim.reports._plots import write_plots as write_plots
from prodigy_sim.reports._report import OP_COLUMNS as OP_COLUMNS
from prodigy_sim.reports._report import ModelReport as ModelReport
from prodigy_sim.reports._report import build_report as build_report

__all__ = ["OP_COLUMNS", "ModelReport", "build_report", "op_seconds", "place_labels",
           "plot_breakdown", "plot_compare", "plot_compare_bars", "plot_roofline",
           "report_lowered", "report_simulation", "roofline_points", "simulate_scenario",
           "write_plots"]
