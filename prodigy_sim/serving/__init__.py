"""Serving simulation: a request trace through continuous batching on one Prodigy socket.

- Traces: :func:`load_trace` (CSV / JSON), :func:`poisson_trace` (Poisson arrivals, lengths from
  :class:`LengthDist`: fixed, uniform, lognormal), :func:`write_trace`.
- Step times: the :class:`StepTimeModel` protocol (``step_seconds(StepShape)``);
  :class:`SimulatedStepTimes` (from :func:`prodigy_sim.reports.simulate_scenario`, cached on a
  grid: every batch size, contexts interpolated; :func:`check_interpolation` against direct
  simulation); :class:`AnalyticStepTimes` (closed form, for tests and what-ifs).
- Engine: :func:`simulate_serving` (iteration-level scheduling, paged KV cache of
  :func:`kv_cache_blocks` blocks, preemption by recompute, optional chunked prefill) with an
  :class:`EngineConfig` -> :class:`ServingResult` (TTFT, TPOT, end-to-end latency percentiles,
  throughput, KV occupancy per step).
- :func:`serve`, :func:`sweep_rates`, :func:`saturation_requests_per_s`; plots
  :func:`plot_latency_vs_load`, :func:`plot_timeline`, :func:`write_serving_plots`.

See ``docs/serving.md``.
"""

from prodigy_sim.serving._api import engine_kv_budget as engine_kv_budget
from prodigy_sim.serving._api import serve as serve
from prodigy_sim.serving._api import sweep_rates as sweep_rates
from prodigy_sim.serving._engine import EngineConfig as EngineConfig
from prodigy_sim.serving._engine import simulate_serving as simulate_serving
from prodigy_sim.serving._kvcache import BlockPool as BlockPool
from prodigy_sim.serving._kvcache import KvBudget as KvBudget
from prodigy_sim.serving._kvcache import kv_cache_blocks as kv_cache_blocks
from prodigy_sim.serving._plots import plot_latency_vs_load as plot_latency_vs_load
from prodigy_sim.serving._plots import plot_timeline as plot_timeline
from prodigy_sim.serving._plots import write_serving_plots as write_serving_plots
from prodigy_sim.serving._predict import saturation_requests_per_s as saturation_requests_per_s
from prodigy_sim.serving._result import PERCENTILES as PERCENTILES
from prodigy_sim.serving._result import TIMELINE_COLUMNS as TIMELINE_COLUMNS
from prodigy_sim.serving._result import ServingResult as ServingResult
from prodigy_sim.serving._simulated import ALIGNED_MIN_KV_TOKENS as ALIGNED_MIN_KV_TOKENS
from prodigy_sim.serving._simulated import DEFAULT_CONTEXT_GRID as DEFAULT_CONTEXT_GRID
from prodigy_sim.serving._simulated import InterpolationCheck as InterpolationCheck
from prodigy_sim.serving._simulated import SimulatedStepTimes as SimulatedStepTimes
from prodigy_sim.serving._simulated import aligned as aligned
from prodigy_sim.serving._simulated import check_interpolation as check_interpolation
from prodigy_sim.serving._simulated import default_decode_buckets as default_decode_buckets
from prodigy_sim.serving._simulated import vllm_decode_buckets as vllm_decode_buckets
from prodigy_sim.serving._steptime import AnalyticStepTimes as AnalyticStepTimes
from prodigy_sim.serving._steptime import StepShape as StepShape
from prodigy_sim.serving._steptime import StepTimeModel as StepTimeModel
from prodigy_sim.serving._trace import MAX_REQUESTS as MAX_REQUESTS
from prodigy_sim.serving._trace import LengthDist as LengthDist
from prodigy_sim.serving._trace import Request as Request
from prodigy_sim.serving._trace import load_trace as load_trace
from prodigy_sim.serving._trace import parse_length_dist as parse_length_dist
from prodigy_sim.serving._trace import poisson_trace as poisson_trace
from prodigy_sim.serving._trace import write_trace as write_trace

__all__ = [
    "ALIGNED_MIN_KV_TOKENS", "DEFAULT_CONTEXT_GRID", "MAX_REQUESTS", "PERCENTILES",
    "TIMELINE_COLUMNS",
    "AnalyticStepTimes", "BlockPool", "aligned",
    "EngineConfig", "InterpolationCheck", "KvBudget", "LengthDist", "Request", "ServingResult",
    "SimulatedStepTimes", "StepShape", "StepTimeModel", "check_interpolation",
    "default_decode_buckets", "engine_kv_budget", "kv_cache_blocks", "load_trace",
    "parse_length_dist", "plot_latency_vs_load", "plot_timeline", "poisson_trace",
    "saturation_requests_per_s", "serve", "simulate_serving", "sweep_rates",
    "vllm_decode_buckets", "write_serving_plots", "write_trace",
]
