"""DDR5 memory-system model: configuration, a Numba cycle-level controller model, trace replay.

- :mod:`prodigy_sim.dram.config` - frozen pydantic configuration and JEDEC presets
  (:class:`MemorySystemConfig` is what the chip configuration nests).
- :mod:`prodigy_sim.dram.mapping` - byte address -> channel / bank group / bank / row / column.
- :mod:`prodigy_sim.dram.model` - :func:`simulate_requests`: a batch of requests through the
  Numba controller model (Ramulator 2 GenericDDR semantics), per-request cycles and statistics;
  :func:`simulate_controllers`: several independent controllers (own frontends) in one call.
- :mod:`prodigy_sim.dram.trace` - DRAM-only trace mode (:func:`run_trace`).

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so
reading a configuration does not load Numba; the kernels load with the first simulation.
"""

from prodigy_sim._lazy import lazy_exports

_EXPORTS = {
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
    "compile_kernels": "model",
    "kernels_compiled": "model",
    "simulate_requests": "model",
    "ParsedTrace": "trace",
    "TraceRunResult": "trace",
    "parse_trace": "trace",
    "run_trace": "trace",
}
"""Public name -> the module of this package that defines it."""

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
