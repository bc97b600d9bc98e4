"""DDR5 memory-system model: configuration, a Numba cycle-level controller model, trace replay.

- :mod:`prodigy_sim.dram.config` - frozen pydantic configuration and JEDEC presets
  (:class:`MemorySystemConfig` is what the chip configuration nests).
- :mod:`prodigy_sim.dram.mapping` - byte address -> channel / bank group / bank / row / column.
- :mod:`prodigy_sim.dram.model` - :func:`simulate_requests`: a batch of requests through the
  Numba controller model (Ramulator 2 GenericDDR semantics), per-request cycles and statistics;
  :func:`simulate_controllers`: several independent controllers (own frontends) in one call.
- :mod:`prodigy_sim.dram.stream` - :class:`DramStream`: the same model fed and advanced in
  pieces (requests added as they are made), exactly the run of one call.
- :mod:`prodigy_sim.dram.streams` - :class:`DramStreams`: many independent runs fed in pieces,
  each run for real as far as no later request can change, and speculated completions for
  the requests just added (the timing model's persistent DDR).
- :mod:`prodigy_sim.dram.trace` - DRAM-only trace mode (:func:`run_trace`).

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so
reading a configuration does not load Numba; the kernels load with the first simulation.
"""

from typing import TYPE_CHECKING

from prodigy_sim._lazy import lazy_exports

if TYPE_CHECKING:  # the same names, eagerly, for type checkers
    from prodigy_sim.dram.config import CALIBRATION_SPEED_MTS as CALIBRATION_SPEED_MTS
    from prodigy_sim.dram.config import SPEEDS_MTS as SPEEDS_MTS
    from prodigy_sim.dram.config import ControllerConfig as ControllerConfig
    from prodigy_sim.dram.config import DDR5Organization as DDR5Organization
    from prodigy_sim.dram.config import DDR5Timing as DDR5Timing
    from prodigy_sim.dram.config import MappingName as MappingName
    from prodigy_sim.dram.config import MemorySystemConfig as MemorySystemConfig
    from prodigy_sim.dram.config import ddr5_org_preset as ddr5_org_preset
    from prodigy_sim.dram.config import ddr5_org_preset_names as ddr5_org_preset_names
    from prodigy_sim.dram.config import ddr5_timing_preset as ddr5_timing_preset
    from prodigy_sim.dram.config import memory_system_preset as memory_system_preset
    from prodigy_sim.dram.mapping import MappedAddresses as MappedAddresses
    from prodigy_sim.dram.mapping import bit_layout as bit_layout
    from prodigy_sim.dram.mapping import map_addresses as map_addresses
    from prodigy_sim.dram.model import ControllersResult as ControllersResult
    from prodigy_sim.dram.model import DramStats as DramStats
    from prodigy_sim.dram.model import RequestBatchResult as RequestBatchResult
    from prodigy_sim.dram.model import compile_kernels as compile_kernels
    from prodigy_sim.dram.model import kernels_compiled as kernels_compiled
    from prodigy_sim.dram.model import simulate_controllers as simulate_controllers
    from prodigy_sim.dram.model import simulate_grouped as simulate_grouped
    from prodigy_sim.dram.model import simulate_requests as simulate_requests
    from prodigy_sim.dram.stream import DramStream as DramStream
    from prodigy_sim.dram.streams import DramStreams as DramStreams
    from prodigy_sim.dram.streams import SpeculationStats as SpeculationStats
    from prodigy_sim.dram.trace import ParsedTrace as ParsedTrace
    from prodigy_sim.dram.trace import TraceRunResult as TraceRunResult
    from prodigy_sim.dram.trace import parse_trace as parse_trace
    from prodigy_sim.dram.trace import run_trace as run_trace

_EXPORTS = {
    "CALIBRATION_SPEED_MTS": "config",
    "SPEEDS_MTS": "config",
    "ControllerConfig": "config",
    "DDR5Organization": "config",
    "DDR5Timing": "config",
    "MappingName": "config",
    "MemorySystemConfig": "config",
    "ddr5_org_preset": "config",
    "ddr5_org_preset_names": "config",
    "ddr5_timing_preset": "config",
    "memory_system_preset": "config",
    "MappedAddresses": "mapping",
    "bit_layout": "mapping",
    "map_addresses": "mapping",
    "ControllersResult": "model",
    "DramStats": "model",
    "RequestBatchResult": "model",
    "simulate_controllers": "model",
    "simulate_grouped": "model",
    "compile_kernels": "model",
    "kernels_compiled": "model",
    "simulate_requests": "model",
    "DramStream": "stream",
    "DramStreams": "streams",
    "SpeculationStats": "streams",
    "ParsedTrace": "trace",
    "TraceRunResult": "trace",
    "parse_trace": "trace",
    "run_trace": "trace",
}
"""Public name -> the module of this package that defines it."""

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
