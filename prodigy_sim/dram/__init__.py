"""DDR5 memory-system model: configuration, a Numba cycle-level controller model, trace replay.

- :mod:`prodigy_sim.dram.config` - frozen pydantic configuration and JEDEC presets
  (:class:`MemorySystemConfig` is what the chip configuration nests).
- :mod:`prodigy_sim.dram.mapping` - byte address -> channel / bank group / bank / row / column.
- :mod:`prodigy_sim.dram.model` - :func:`simulate_requests`: a batch of requests through the
  Numba controller model (Ramulator 2 GenericDDR semantics), per-request cycles and statistics;
  :func:`simulate_controllers`: several independent controllers (own frontends) in one call.
- :mod:`prodigy_sim.dram.trace` - DRAM-only trace mode (:func:`run_trace`).
"""

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
from prodigy_sim.dram.model import simulate_controllers as simulate_controllers
from prodigy_sim.dram.model import simulate_requests as simulate_requests
from prodigy_sim.dram.trace import ParsedTrace as ParsedTrace
from prodigy_sim.dram.trace import TraceRunResult as TraceRunResult
from prodigy_sim.dram.trace import parse_trace as parse_trace
from prodigy_sim.dram.trace import run_trace as run_trace

__all__ = [
    "CALIBRATION_SPEED_MTS",
    "SPEEDS_MTS",
    "ControllerConfig",
    "DDR5Organization",
    "DDR5Timing",
    "MappingName",
    "MemorySystemConfig",
    "ddr5_org_preset",
    "ddr5_org_preset_names",
    "ddr5_timing_preset",
    "memory_system_preset",
    "MappedAddresses",
    "bit_layout",
    "map_addresses",
    "ControllersResult",
    "DramStats",
    "RequestBatchResult",
    "simulate_requests",
    "simulate_controllers",
    "ParsedTrace",
    "TraceRunResult",
    "parse_trace",
    "run_trace",
]
