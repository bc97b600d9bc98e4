"""Hardware configuration: frozen models of the Prodigy blocks, the named presets, YAML overrides.

The model tree follows the hardware::

    ChipConfig                   cores, clock
    |- core: CoreConfig
    |  |- vector_unit: VectorUnitConfig
    |  |- matrix_unit: MatrixUnitConfig
    |  '- on_chip_memory: OnChipMemoryConfig
    |- noc: NocConfig            the mesh
    '- memory: MemoryConfig      64-bit DDR5 channels, capacity
       '- dram: prodigy_sim.dram.MemorySystemConfig   DDR5 timing model of one channel

A :class:`SystemConfig` joins sockets into nodes and nodes into a system (``system.py``: link
bandwidths and latencies; presets ``1s-t16128`` ... ``256pb-t16128``; see ``docs/systems.md``).

Peak figures are derived properties of :class:`ChipConfig`. :func:`resolve_hardware` turns a
preset or file plus ``path=value`` overrides into a configuration and a record of what changed
(:class:`HardwareChanges`). Presets (``prodigy-t16128``, the
default, ``prodigy-192``, ``prodigy-2nm-ultimate``) cite a source for every field; see
``docs/hardware.md``.
"""

from prodigy_sim.hardware.chip import ChipConfig as ChipConfig
from prodigy_sim.hardware.chip import check_fits as check_fits
from prodigy_sim.hardware.core import CoreConfig as CoreConfig
from prodigy_sim.hardware.core import MatrixUnitConfig as MatrixUnitConfig
from prodigy_sim.hardware.core import OnChipMemoryConfig as OnChipMemoryConfig
from prodigy_sim.hardware.core import VectorUnitConfig as VectorUnitConfig
from prodigy_sim.hardware.loading import load_config as load_config
from prodigy_sim.hardware.loading import load_config_with_sources as load_config_with_sources
from prodigy_sim.hardware.memory import MemoryConfig as MemoryConfig
from prodigy_sim.hardware.memory import scaled_ddr5_timing as scaled_ddr5_timing
from prodigy_sim.hardware.noc import NocConfig as NocConfig
from prodigy_sim.hardware.overrides import FieldChange as FieldChange
from prodigy_sim.hardware.overrides import HardwareChanges as HardwareChanges
from prodigy_sim.hardware.overrides import base_preset as base_preset
from prodigy_sim.hardware.overrides import changes_from_preset as changes_from_preset
from prodigy_sim.hardware.overrides import check_override_path as check_override_path
from prodigy_sim.hardware.overrides import parse_override as parse_override
from prodigy_sim.hardware.overrides import resolve_hardware as resolve_hardware
from prodigy_sim.hardware.overrides import (
    resolve_hardware_with_sources as resolve_hardware_with_sources,
)
from prodigy_sim.hardware.presets import DEFAULT_PRESET as DEFAULT_PRESET
from prodigy_sim.hardware.presets import load_preset as load_preset
from prodigy_sim.hardware.presets import preset_description as preset_description
from prodigy_sim.hardware.presets import preset_names as preset_names
from prodigy_sim.hardware.presets import preset_sources as preset_sources
from prodigy_sim.hardware.presets import source_of as source_of
from prodigy_sim.hardware.system import DEFAULT_SYSTEM as DEFAULT_SYSTEM
from prodigy_sim.hardware.system import SystemConfig as SystemConfig
from prodigy_sim.hardware.system import load_system as load_system
from prodigy_sim.hardware.system import system_preset_description as system_preset_description
from prodigy_sim.hardware.system import system_preset_names as system_preset_names
from prodigy_sim.hardware.system import system_preset_sources as system_preset_sources
from prodigy_sim.hardware.units import unit_of as unit_of

__all__ = [
    "base_preset",
    "changes_from_preset",
    "ChipConfig",
    "CoreConfig",
    "MatrixUnitConfig",
    "VectorUnitConfig",
    "OnChipMemoryConfig",
    "NocConfig",
    "MemoryConfig",
    "DEFAULT_PRESET",
    "FieldChange",
    "HardwareChanges",
    "check_fits",
    "check_override_path",
    "load_config",
    "load_config_with_sources",
    "load_preset",
    "parse_override",
    "preset_description",
    "preset_names",
    "preset_sources",
    "resolve_hardware",
    "resolve_hardware_with_sources",
    "scaled_ddr5_timing",
    "source_of",
    "unit_of",
    "DEFAULT_SYSTEM",
    "SystemConfig",
    "load_system",
    "system_preset_description",
    "system_preset_names",
    "system_preset_sources",
]
