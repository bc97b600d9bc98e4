"""The off-chip memory of a socket: DDR5 channels of 64 bits, each two 32-bit subchannels.

Prodigy counts channels the way DIMM vendors do: one 64-bit DDR5 channel per memory controller
("16 DDR5-7200 controllers, 64-bit each"). The DDR5 timing model (:mod:`prodigy_sim.dram`) counts
independent 32-bit subchannels, so each controller's DDR5 system has
``channel_width_bits / 32`` of them (2), and the socket ``channels * channel_width_bits / 32``.
That count is derived, never written.

The DDR5 model's device organization describes banks and rows for timing only (it models one rank);
the installed capacity is its own field, from the vendor's figure.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from prodigy_sim.dram import DDR5Timing, MemorySystemConfig, ddr5_timing_preset
from prodigy_sim.errors import config_error_from_validation
from prodigy_sim.hardware._base import MAX_BYTES, TIB, Block

__all__ = ["MemoryConfig", "SUBCHANNEL_WIDTH_BITS", "scaled_ddr5_timing"]

SUBCHANNEL_WIDTH_BITS = 32
"""Data width of one independent DDR5 subchannel (JESD79-5)."""

DEFAULT_DDR5_MTS = 7200
"""Data rate of a chip's DDR5 when a configuration does not say (the Prodigy T16128's
DDR5-7200); the stand-alone DRAM model's default is the calibration system's
(:data:`prodigy_sim.dram.CALIBRATION_SPEED_MTS`)."""

_FIXED_NCK = ("nBL", "nCCDS", "nCCDS_WR", "nPPD", "nCS")
"""Timings defined in clock cycles (burst and command-bus slots): kept when the clock changes."""


def scaled_ddr5_timing(rate_mts: int, base_rate_mts: int = DEFAULT_DDR5_MTS,
                       org: str = "DDR5_16Gb_x8") -> DDR5Timing:
    """A DDR5 timing set for a data rate beyond the JEDEC bins, scaled from a known bin.

    Every timing keeps its duration in nanoseconds (cycles scaled by ``rate / base rate``, rounded
    up), except those defined in clock cycles (``nBL``, ``nCCDS``, ``nCCDS_WR``, ``nPPD``, ``nCS``),
    and ``nRRDS`` stays >= 8. So the data bus gets faster and the DRAM core does not. The clock
    period is ``round(2e6 / rate)`` ps. This is an assumption, not a JEDEC table.
    """
    base = ddr5_timing_preset(base_rate_mts, org)
    tck_ps = round(2_000_000 / rate_mts)
    values: dict[str, Any] = {"name": f"DDR5_{rate_mts}_scaled_from_{base_rate_mts}",
                              "rate_mts": rate_mts, "tck_ps": tck_ps}
    for name, value in base.model_dump().items():
        if name in values:
            continue
        if name in _FIXED_NCK:
            values[name] = value
        else:
            values[name] = -(-value * base.tck_ps // tck_ps)
    values["nRRDS"] = max(8, values["nRRDS"])
    return DDR5Timing(**values)


class MemoryConfig(Block):
    """DDR5 main memory: how many 64-bit channels, how fast (``dram.timing``), how large."""

    channels: int = Field(16, ge=1, le=1024,
                          description="DDR5 channels, one memory controller each.")
    channel_width_bits: int = Field(64, ge=SUBCHANNEL_WIDTH_BITS, le=1024,
                                    multiple_of=SUBCHANNEL_WIDTH_BITS,
                                    description="Data width of one channel (bits).")
    capacity_bytes: int = Field(8 * TIB, ge=1, le=MAX_BYTES,
                                description="Installed DDR capacity (bytes); at least one "
                                            "interleave run per 32-bit subchannel.")
    interleave_bytes: int = Field(64, ge=1, le=1 << 20,
                                  description="Socket address interleave over the 32-bit "
                                              "subchannels: consecutive runs of this many bytes "
                                              "go to consecutive subchannels (bytes; a multiple "
                                              "of the cache line).")
    dram: MemorySystemConfig = Field(
        default_factory=lambda: MemorySystemConfig(channels=2, timing=DEFAULT_DDR5_MTS),
        description="DDR5 timing model of one channel (speed bin, device organization, "
                    "controller, address mapping); its 'channels' (32-bit subchannels per "
                    "channel) is derived from 'channel_width_bits'.")

    @model_validator(mode="before")
    @classmethod
    def _derive_subchannels(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        width = data.get("channel_width_bits", cls.model_fields["channel_width_bits"].default)
        dram = data.get("dram", {"timing": DEFAULT_DDR5_MTS})
        if isinstance(dram, dict) and "channels" not in dram and isinstance(width, int):
            data = {**data, "dram": {**dram, "channels": max(1, width // SUBCHANNEL_WIDTH_BITS)}}
        return data

    @model_validator(mode="after")
    def _check_subchannels(self):
        per_channel = self.channel_width_bits // SUBCHANNEL_WIDTH_BITS
        if self.dram.channels != per_channel:
            raise ValueError(f"'dram.channels' (32-bit subchannels per channel) is derived: "
                             f"'channel_width_bits' / 32 = {per_channel}; leave it out "
                             f"(got {self.dram.channels})")
        least = self.subchannels * self.interleave_bytes
        if self.capacity_bytes < least:
            raise ValueError(f"'capacity_bytes' must be >= {least} bytes: one 'interleave_bytes' "
                             f"({self.interleave_bytes}) run on each of the {self.subchannels} "
                             f"32-bit subchannels (got {self.capacity_bytes})")
        return self

    @property
    def transfer_rate_mts(self) -> int:
        """Data rate of the speed bin (MT/s)."""
        return self.dram.timing.rate_mts

    @property
    def subchannels(self) -> int:
        """Independent 32-bit subchannels of the socket: ``channels * channel_width_bits / 32``."""
        return self.channels * self.channel_width_bits // SUBCHANNEL_WIDTH_BITS

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        """Nominal peak: ``channels * transfer_rate * channel_width / 8`` (bytes/s)."""
        return self.channels * self.transfer_rate_mts * 1e6 * self.channel_width_bits / 8

    @property
    def timing_model_peak_bandwidth_bytes_per_s(self) -> float:
        """Peak of the DDR5 timing model, with its integer-picosecond clock (bytes/s); differs
        from the nominal peak by the rounding of ``tck_ps`` (277 ps at 7200 MT/s: +0.3%)."""
        return self.channels * self.dram.peak_bandwidth_bytes_per_s

    def socket_memory_system(self) -> MemorySystemConfig:
        """The DDR5 model of the whole socket: all ``subchannels`` behind one cache-line
        interleave. Raises :class:`ConfigError` when the DDR5 model refuses the count (it needs a
        power of two)."""
        try:
            return MemorySystemConfig(**{**self.dram.model_dump(), "channels": self.subchannels})
        except ValidationError as err:
            raise config_error_from_validation(
                err, source=f"socket memory system of {self.channels} x "
                            f"{self.channel_width_bits}-bit channels") from None


