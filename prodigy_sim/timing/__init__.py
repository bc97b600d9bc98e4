"""The discrete-event timing model of a Prodigy chip (SimPy).

One SimPy process per core issues the core's dynamic instruction stream (from
:func:`prodigy_sim.isa.expand`) in order, with a tile / accumulator scoreboard, closed-form unit
occupancies (:mod:`._costs`), a DMA engine with several transfers in flight, DDR traffic over a
mesh (:mod:`._noc`) and the DDR5 controller model run in batches (:mod:`._memory`). Events are
per DMA, wait or barrier - never per cycle, byte or DRAM request. See ``docs/timing.md``.

- :func:`simulate` -> :class:`SimulationResult` (cycles, utilization, stalls, DDR traffic).
- :func:`roofline_bound`: ``(seconds, flops, bytes)`` lower bound of a program.
- :class:`ChromeTraceRecorder`: a bounded Chrome trace-event timeline (Perfetto);
  :class:`BusyRecorder`: busy intervals and DDR bytes per channel, for model-step timelines.
- :func:`batching_error`: the DDR batching approximation against one batch per controller.

Each public name is imported from its module on first use (:mod:`prodigy_sim._lazy`).
"""

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.timing._costs import DEFAULT_DMA_OUTSTANDING as DEFAULT_DMA_OUTSTANDING
    from prodigy_sim.timing._costs import mma_cycles as mma_cycles
    from prodigy_sim.timing._costs import vector_elements as vector_elements
    from prodigy_sim.timing._kernels import compile_kernels as compile_kernels
    from prodigy_sim.timing._kernels import kernels_compiled as kernels_compiled
    from prodigy_sim.timing._methods import DDR_METHODS as DDR_METHODS
    from prodigy_sim.timing._result import CoreResult as CoreResult
    from prodigy_sim.timing._result import SimulationResult as SimulationResult
    from prodigy_sim.timing._simulate import batching_error as batching_error
    from prodigy_sim.timing._simulate import default_l3_bytes as default_l3_bytes
    from prodigy_sim.timing._simulate import isa_params as isa_params
    from prodigy_sim.timing._simulate import roofline_bound as roofline_bound
    from prodigy_sim.timing._simulate import simulate as simulate
    from prodigy_sim.timing._trace import BusyRecorder as BusyRecorder
    from prodigy_sim.timing._trace import ChromeTraceRecorder as ChromeTraceRecorder

_EXPORTS = {
    "mma_cycles": "_costs",
    "vector_elements": "_costs",
    "CoreResult": "_result",
    "SimulationResult": "_result",
    "DEFAULT_DMA_OUTSTANDING": "_costs",
    "batching_error": "_simulate",
    "default_l3_bytes": "_simulate",
    "isa_params": "_simulate",
    "roofline_bound": "_simulate",
    "simulate": "_simulate",
    "BusyRecorder": "_trace",
    "ChromeTraceRecorder": "_trace",
    "kernels_compiled": "_kernels",
    "compile_kernels": "_kernels",
    "DDR_METHODS": "_methods",
}
"""Public name -> the module of this package that defines it."""

__all__ = [
    "simulate",
    "roofline_bound",
    "batching_error",
    "isa_params",
    "default_l3_bytes",
    "mma_cycles",
    "vector_elements",
    "SimulationResult",
    "CoreResult",
    "BusyRecorder",
    "ChromeTraceRecorder",
    "DEFAULT_DMA_OUTSTANDING",
    "kernels_compiled",
    "compile_kernels",
    "DDR_METHODS",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
