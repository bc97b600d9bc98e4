"""Configuration of the DDR5 memory system: device organization, timings, controller, mapping.

The hierarchy mirrors the hardware: a :class:`MemorySystemConfig` has ``channels`` independent
channels, each one **32-bit DDR5 subchannel** (a 64-bit DIMM channel is two of them), each driven by
its own controller (:class:`ControllerConfig`) and built from devices described by a
:class:`DDR5Organization` and a :class:`DDR5Timing` speed bin.

Timings are integers in DRAM clock cycles (nCK, one cycle = ``tck_ps`` picoseconds; data moves on
both edges, so a BL16 burst occupies ``nBL = 8`` cycles). The presets reproduce the values that the
Ramulator 2 DDR5 model resolves (JESD79-5 via Ramulator 2, see
``tests/data/calibration/ddr5_memory_system.md`` section 5), including its *integer* ``tck_ps``
(416 / 357 / 312 ps rather than 416.67 / 357.14 / 312.5).

Address mapping names list the fields MSB -> LSB, as in Ramulator (``Ro`` row, ``Ba`` bank and bank
group, ``Bg`` bank group, ``Ra`` rank, ``Co`` column, ``Ch`` channel); the low 6 bits of a byte
address are the offset inside a 64-B transaction and are ignored:

- ``RoBaRaCoCh``: channel = line % C, then column (line inside the row), bank group, bank, row.
  Consecutive lines stay in one row for a whole page, then move to the next bank group.
- ``RoCoBaBgCh`` (bank-group interleave): channel, then bank group, bank, column, row.
  Consecutive lines rotate over the bank groups (then banks), so a stream never pays tCCD_L.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from prodigy_sim.errors import ConfigError, config_error_from_validation

__all__ = [
    "DDR5Organization",
    "DDR5Timing",
    "ControllerConfig",
    "MemorySystemConfig",
    "MappingName",
    "SPEEDS_MTS",
    "ddr5_org_preset",
    "ddr5_org_preset_names",
    "ddr5_timing_preset",
    "memory_system_preset",
]

MappingName = Literal["RoBaRaCoCh", "RoCoBaBgCh"]
SPEEDS_MTS = (4800, 5600, 6400, 7200)
CALIBRATION_SPEED_MTS = 4800
"""The data rate of the calibration system (one DDR5-4800 subchannel, ``../calibration``): the
default of the stand-alone DRAM model (:func:`memory_system_preset`, ``prodigy-sim dram``)."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


class DDR5Organization(BaseModel):
    """One DDR5 rank of x4/x8/x16 devices forming a subchannel of ``channel_width_bits``."""

    model_config = _FROZEN

    name: str = Field(description="Preset name, e.g. 'DDR5_16Gb_x8' (informative).")
    density_mbit: int = Field(gt=0, description="Device density in Mbit (16 Gb = 16384).")
    dq_bits: Literal[4, 8, 16] = Field(description="Device data width in bits (x4 / x8 / x16).")
    ranks: Literal[1] = Field(default=1, description="Ranks per channel (only 1 is modelled).")
    bank_groups: int = Field(gt=0, description="Bank groups per device (power of two).")
    banks_per_group: int = Field(gt=0, description="Banks per bank group (power of two).")
    rows: int = Field(gt=0, description="Rows per bank (power of two).")
    columns: int = Field(gt=0, description="Columns per row, in device words of dq_bits.")
    prefetch: int = Field(default=16, gt=0, description="Burst length / internal prefetch "
                          "(BL16 = 16 beats).")
    channel_width_bits: int = Field(default=32, gt=0, description="Subchannel data width in bits "
                                    "(32 for DDR5).")

    @model_validator(mode="after")
    def _check(self) -> DDR5Organization:
        for f in ("bank_groups", "banks_per_group", "rows", "columns", "prefetch"):
            v = getattr(self, f)
            if not _is_pow2(v):
                raise ValueError(f"'{f}' must be a power of two (got {v})")
        if self.columns < self.prefetch:
            raise ValueError(f"'columns' ({self.columns}) must be >= 'prefetch' ({self.prefetch})")
        if self.channel_width_bits % self.dq_bits:
            raise ValueError(f"'channel_width_bits' ({self.channel_width_bits}) must be a multiple "
                             f"of 'dq_bits' ({self.dq_bits})")
        bits = self.rows * self.columns * self.dq_bits * self.bank_groups * self.banks_per_group
        if bits != self.density_mbit << 20:
            raise ValueError(f"'density_mbit' ({self.density_mbit}) does not match rows x "
                             f"columns x dq_bits x banks = {bits >> 20} Mbit")
        return self

    @property
    def banks(self) -> int:
        """Banks per rank (bank_groups x banks_per_group)."""
        return self.bank_groups * self.banks_per_group

    @property
    def tx_bytes(self) -> int:
        """Bytes moved by one RD/WR burst (prefetch x channel width / 8; 64 for DDR5)."""
        return self.prefetch * self.channel_width_bits // 8

    @property
    def lines_per_row(self) -> int:
        """Bursts (cache lines) per row = columns / prefetch (64 for 16Gb x8)."""
        return self.columns // self.prefetch

    @property
    def row_bytes(self) -> int:
        """Row (page) size across the subchannel in bytes (4 KiB for 16Gb x8)."""
        return self.lines_per_row * self.tx_bytes

    @property
    def capacity_bytes(self) -> int:
        """Capacity of one channel (subchannel) in bytes."""
        return self.rows * self.banks * self.ranks * self.row_bytes


class DDR5Timing(BaseModel):
    """A DDR5 speed bin: clock period and timing parameters in DRAM cycles (nCK)."""

    model_config = _FROZEN

    name: str = Field(description="Preset name, e.g. 'DDR5_4800AN' (informative).")
    rate_mts: int = Field(gt=0, description="Data rate in MT/s (2 transfers per clock).")
    tck_ps: int = Field(gt=0, description="Clock period in integer picoseconds: 2e6 / "
                                          "rate_mts rounded down or up (416 at 4800 MT/s).")
    nBL: int = Field(gt=0, description="Burst duration on the data bus, cycles (BL16 -> 8).")
    nCL: int = Field(gt=0, description="CAS (read) latency, cycles.")
    nCWL: int = Field(gt=0, description="CAS write latency, cycles.")
    nRCD: int = Field(gt=0, description="ACT to RD/WR, same bank, cycles.")
    nRP: int = Field(gt=1, description="PRE to ACT, same bank, cycles.")
    nRAS: int = Field(gt=0, description="ACT to PRE, same bank, cycles.")
    nRC: int = Field(gt=0, description="ACT to ACT, same bank, cycles.")
    nWR: int = Field(gt=0, description="Write recovery (end of write data to PRE), cycles.")
    nRTP: int = Field(gt=0, description="RD to PRE, cycles.")
    nPPD: int = Field(gt=0, description="PRE to PRE, same rank, cycles.")
    nCCDS: int = Field(gt=0, description="RD to RD, different bank group (tCCD_S), cycles.")
    nCCDL: int = Field(gt=0, description="RD to RD, same bank group (tCCD_L), cycles.")
    nCCDS_WR: int = Field(gt=0, description="WR to WR, different bank group, cycles.")
    nCCDL_WR: int = Field(gt=0, description="WR to WR, same bank group (tCCD_L_WR), cycles.")
    nRRDS: int = Field(gt=0, description="ACT to ACT, different bank group (tRRD_S), cycles.")
    nRRDL: int = Field(gt=0, description="ACT to ACT, same bank group (tRRD_L), cycles.")
    nWTRS: int = Field(gt=0, description="End of write data to RD, different bank group, cycles.")
    nWTRL: int = Field(gt=0, description="End of write data to RD, same bank group, cycles.")
    nFAW: int = Field(gt=0, description="Four-activate window per rank, cycles.")
    nRFC: int = Field(gt=1, description="All-bank refresh cycle time (tRFC1), cycles.")
    nREFI: int = Field(gt=0, description="Average refresh interval, cycles.")
    nCS: int = Field(default=2, gt=0, description="Rank-switch gap (unused with one rank), cycles.")

    @model_validator(mode="after")
    def _check(self) -> DDR5Timing:
        def need(ok: bool, field: str, msg: str) -> None:
            if not ok:
                raise ValueError(f"'{field}' {msg}")

        lo, hi = 2_000_000 // self.rate_mts, -(-2_000_000 // self.rate_mts)
        need(lo <= self.tck_ps <= hi, "tck_ps",
             f"must be 2e6 / rate_mts = 2e6 / {self.rate_mts} ps rounded down or up "
             f"({lo}{'' if lo == hi else f' or {hi}'}) (got {self.tck_ps}); to change the "
             "data rate give a whole speed bin (e.g. 'timing: 4800'), whose timings are in "
             "its cycles")
        need(self.nRC >= self.nRAS + self.nRP, "nRC",
             f"must be >= nRAS + nRP = {self.nRAS + self.nRP} (got {self.nRC})")
        need(self.nRAS >= self.nRCD, "nRAS", f"must be >= nRCD = {self.nRCD} (got {self.nRAS})")
        need(self.nCCDL >= self.nCCDS, "nCCDL",
             f"must be >= nCCDS = {self.nCCDS} (got {self.nCCDL})")
        need(self.nCCDL_WR >= self.nCCDS_WR, "nCCDL_WR",
             f"must be >= nCCDS_WR = {self.nCCDS_WR} (got {self.nCCDL_WR})")
        need(self.nRRDL >= self.nRRDS, "nRRDL",
             f"must be >= nRRDS = {self.nRRDS} (got {self.nRRDL})")
        need(self.nWTRL >= self.nWTRS, "nWTRL",
             f"must be >= nWTRS = {self.nWTRS} (got {self.nWTRL})")
        need(self.nCCDS >= self.nBL, "nCCDS",
             f"must be >= nBL = {self.nBL} (the data bus carries one burst at a time) "
             f"(got {self.nCCDS})")
        need(self.nCWL < self.nCL + self.nBL + 4, "nCWL",
             f"must be < nCL + nBL + 4 = {self.nCL + self.nBL + 4} so that the RD->WR turnaround "
             f"is positive (got {self.nCWL})")
        need(self.nREFI > self.nRFC, "nREFI",
             f"must be > nRFC = {self.nRFC} (got {self.nREFI})")
        return self

    @property
    def read_latency(self) -> int:
        """RD command to last data beat returned: nCL + nBL cycles."""
        return self.nCL + self.nBL

    @property
    def read_to_write(self) -> int:
        """RD to WR turnaround, same rank: nCL + nBL + 2 - nCWL + 2 cycles (Ramulator DDR5)."""
        return self.nCL + self.nBL + 2 - self.nCWL + 2

    @property
    def write_to_read_s(self) -> int:
        """WR to RD, different bank group: nCWL + nBL + nWTRS cycles."""
        return self.nCWL + self.nBL + self.nWTRS

    @property
    def write_to_read_l(self) -> int:
        """WR to RD, same bank group: nCWL + nBL + nWTRL cycles."""
        return self.nCWL + self.nBL + self.nWTRL

    @property
    def write_to_precharge(self) -> int:
        """WR to PRE, same bank (nominal, before the 2-cycle adjustment): nCWL + nBL + nWR."""
        return self.nCWL + self.nBL + self.nWR


class ControllerConfig(BaseModel):
    """One channel's memory controller (the Ramulator 2 GenericDDR controller)."""

    model_config = _FROZEN

    read_queue_entries: int = Field(default=32, ge=1, le=4096,
                                    description="Read buffer capacity, requests.")
    write_queue_entries: int = Field(default=32, ge=1, le=4096,
                                     description="Write buffer capacity, requests.")
    write_high_watermark: float = Field(
        default=0.8, gt=0.0, le=1.0,
        description="Enter write mode when writes queued > this fraction of the write buffer.")
    write_low_watermark: float = Field(
        default=0.2, gt=0.0, lt=1.0,
        description="Leave write mode when writes queued < this fraction (and reads are waiting). "
                    "Must be > 0: at 0 the controller never leaves write mode.")
    scheduler: Literal["FRFCFS", "row_hit_first"] = Field(
        default="FRFCFS",
        description="Command scheduler. 'FRFCFS' (Ramulator 2): the oldest timing-ready request, "
                    "whatever its command (no row-hit rule). 'row_hit_first' (classic FR-FCFS): "
                    "the oldest timing-ready row hit, else the oldest timing-ready ACT/PRE; no PRE "
                    "while an older hit to the open row is queued.")
    row_policy: Literal["open"] = Field(
        default="open",
        description="Row-buffer policy: rows stay open until a conflict or refresh.")
    refresh: Literal["all_bank", "none"] = Field(
        default="all_bank", description="Refresh: REFab every nREFI cycles, or none (for studies).")

    @model_validator(mode="after")
    def _check(self) -> ControllerConfig:
        if self.write_low_watermark >= self.write_high_watermark:
            raise ValueError(f"'write_low_watermark' ({self.write_low_watermark}) must be < "
                             f"'write_high_watermark' ({self.write_high_watermark})")
        return self

    @property
    def write_enter_threshold(self) -> int:
        """Smallest write-buffer occupancy that switches read mode to write mode (26 for 32)."""
        return math.floor(self.write_high_watermark * self.write_queue_entries) + 1

    @property
    def write_leave_threshold(self) -> int:
        """Largest write-buffer occupancy that lets write mode return to read mode (6 for 32)."""
        return math.ceil(self.write_low_watermark * self.write_queue_entries) - 1

    @property
    def write_drain_bursts(self) -> int:
        """Writes one drain issues: from the enter threshold down to the leave one (20 for 32,
        40 for 64) - the most a read that finds a drain under way waits for."""
        return self.write_enter_threshold - self.write_leave_threshold


# -- presets ------------------------------------------------------------------------------------

# Ramulator 2 DDR5 organization presets (JESD79-5 via Ramulator 2 DDR5 model):
# name -> (density Mbit, dq, bank groups, banks per group, rows, columns)
_ORGS: dict[str, tuple[int, int, int, int, int, int]] = {
    "DDR5_8Gb_x4": (8192, 4, 8, 2, 1 << 16, 1 << 11),
    "DDR5_8Gb_x8": (8192, 8, 8, 2, 1 << 16, 1 << 10),
    "DDR5_8Gb_x16": (8192, 16, 4, 2, 1 << 16, 1 << 10),
    "DDR5_16Gb_x4": (16384, 4, 8, 4, 1 << 16, 1 << 11),
    "DDR5_16Gb_x8": (16384, 8, 8, 4, 1 << 16, 1 << 10),
    "DDR5_16Gb_x16": (16384, 16, 4, 4, 1 << 16, 1 << 10),
    "DDR5_32Gb_x4": (32768, 4, 8, 4, 1 << 17, 1 << 11),
    "DDR5_32Gb_x8": (32768, 8, 8, 4, 1 << 17, 1 << 10),
    "DDR5_32Gb_x16": (32768, 16, 4, 4, 1 << 17, 1 << 10),
}

# tRFC1 in ps by device density in Mbit (JESD79-5: 195 / 295 / 410 ns for 8 / 16 / 32 Gb).
_TRFC1_PS = {8192: 195_000, 16384: 295_000, 32768: 410_000}
_TREFI_PS = 3_900_000  # tREFI = 3.9 us (JESD79-5, normal temperature range)

# Primary timings per speed bin, in nCK:
# rate -> (tck_ps, nCL, nRCD, nRP, nRAS, nRC, nWR, nRTP, nCWL, nCCDS, nCCDL, nCCDS_WR, nCCDL_WR,
#          nWTRS, nWTRL)
# 4800/5600/6400: Ramulator 2 presets DDR5_4800AN/5600AN/6400AN
#       (JESD79-5 via Ramulator 2 DDR5 model).
# 7200: JESD79-5 7200AN values from a Ramulator 2 fork (shared/design/prodigy.md), less certain;
#       nCWL = nCL - 2, nWTRS = 2.5 ns, nWTRL = 10 ns, nCCDL_WR = 20 ns are assumptions following
#       the pattern of the lower bins.
_SPEEDS: dict[int, tuple[int, ...]] = {
    4800: (416, 34, 34, 34, 77, 111, 72, 18, 32, 8, 12, 8, 48, 6, 24),
    5600: (357, 40, 40, 40, 90, 130, 84, 20, 38, 8, 12, 8, 56, 5, 28),
    6400: (312, 46, 46, 46, 103, 149, 96, 24, 44, 8, 16, 8, 64, 5, 32),
    7200: (277, 52, 52, 52, 116, 168, 108, 27, 50, 8, 18, 8, 72, 9, 36),
}


def ddr5_org_preset_names() -> tuple[str, ...]:
    """Names accepted by :func:`ddr5_org_preset`."""
    return tuple(_ORGS)


def ddr5_org_preset(name: str = "DDR5_16Gb_x8") -> DDR5Organization:
    """A Ramulator 2 DDR5 organization preset (JESD79-5 via Ramulator 2 DDR5 model)."""
    if name not in _ORGS:
        raise ConfigError(f"'org': unknown DDR5 organization {name!r}; expected one of "
                          f"{', '.join(_ORGS)}")
    density, dq, bg, ba, rows, cols = _ORGS[name]
    return DDR5Organization(name=name, density_mbit=density, dq_bits=dq, bank_groups=bg,
                            banks_per_group=ba, rows=rows, columns=cols)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def ddr5_timing_preset(rate_mts: int = 4800, org: DDR5Organization | str = "DDR5_16Gb_x8"
                       ) -> DDR5Timing:
    """A DDR5 speed bin resolved for a device organization, as Ramulator 2 resolves it.

    Secondary timings follow ``DDR5.resolve_secondary_timings`` of Ramulator 2 (tCKr = 2e6/rate ps,
    computed here in exact integer arithmetic): nRRDS = 8 at 3200/4800, else
    max(8, ceil(5 ns/tCKr));
    nRRDL = 12 at 4800, else max(8, ceil(5 ns/tCKr)); nFAW = max(32, ceil(20 ns/tCKr)) for x4/x8
    (max(40, ceil(25 ns/tCKr)) for x16); nRFC = ceil(tRFC1/tck_ps); nREFI = ceil(3.9 us/tck_ps).
    For 7200 MT/s (not in Ramulator's table) nRRDS = 8 nCK (JESD79-5 x4/x8 minimum) is an
    assumption.
    """
    if isinstance(org, str):
        org = ddr5_org_preset(org)
    if rate_mts not in _SPEEDS:
        raise ConfigError(f"'speed': unsupported DDR5 data rate {rate_mts} MT/s; expected one of "
                          f"{', '.join(map(str, _SPEEDS))}")
    (tck, ncl, nrcd, nrp, nras, nrc, nwr, nrtp, ncwl, nccds, nccdl, nccds_wr, nccdl_wr, nwtrs,
     nwtrl) = _SPEEDS[rate_mts]

    def ns_to_nck_r(ns: int) -> int:  # ceil(ns / tCKr) with tCKr = 2e6 / rate ps, exactly
        return _ceil_div(ns * 1000 * rate_mts, 2_000_000)

    if rate_mts == 4800:
        nrrds, nrrdl = 8, 12
    elif rate_mts == 7200:
        nrrds, nrrdl = 8, max(8, ns_to_nck_r(5))
    else:
        nrrds = nrrdl = max(8, ns_to_nck_r(5))
    nfaw = max(40, ns_to_nck_r(25)) if org.dq_bits == 16 else max(32, ns_to_nck_r(20))
    if org.density_mbit not in _TRFC1_PS:
        raise ConfigError(f"'org.density_mbit': no tRFC1 known for {org.density_mbit} Mbit; "
                          f"expected one of {', '.join(map(str, _TRFC1_PS))}")
    nrfc = _ceil_div(_TRFC1_PS[org.density_mbit], tck)
    nrefi = _ceil_div(_TREFI_PS, tck)
    return DDR5Timing(name=f"DDR5_{rate_mts}AN", rate_mts=rate_mts, tck_ps=tck, nBL=8, nCL=ncl,
                      nCWL=ncwl, nRCD=nrcd, nRP=nrp, nRAS=nras, nRC=nrc, nWR=nwr, nRTP=nrtp,
                      nPPD=2, nCCDS=nccds, nCCDL=nccdl, nCCDS_WR=nccds_wr, nCCDL_WR=nccdl_wr,
                      nRRDS=nrrds, nRRDL=nrrdl, nWTRS=nwtrs, nWTRL=nwtrl, nFAW=nfaw, nRFC=nrfc,
                      nREFI=nrefi, nCS=2)


_SPEED_NAME = re.compile(r"(?:DDR5[_-]?)?(\d{1,6})(?:AN)?", re.IGNORECASE)


def _speed_from_name(value: str) -> int:
    """The data rate of a speed preset name: ``DDR5_4800AN``, ``DDR5-4800``, ``4800`` (the
    whole name must match; ``DDR5-48000`` is 48000, not 4800)."""
    m = _SPEED_NAME.fullmatch(value.strip())
    if m is None or int(m.group(1)) not in SPEEDS_MTS:
        raise ValueError(f"unknown DDR5 speed preset {value!r}; expected one of "
                         + ", ".join(f"DDR5_{r}AN" for r in SPEEDS_MTS))
    return int(m.group(1))


class MemorySystemConfig(BaseModel):
    """The whole DDR5 memory system: ``channels`` independent 32-bit subchannels.

    ``org`` and ``timing`` accept a preset name (``"DDR5_16Gb_x8"``, ``"DDR5_4800AN"`` or ``4800``)
    as well as a full model. Prodigy T16128: 16 DDR5-7200 controllers of 64 bit = 32 channels here.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: int = Field(default=1, ge=1, le=1024,
                          description="Number of independent 32-bit subchannels (channels).")
    mapping: MappingName = Field(default="RoBaRaCoCh",
                                 description="Address mapping, fields MSB -> LSB (see module doc).")
    bank_group_xor: bool = Field(
        default=False,
        description="XOR the bank-group index with the low bits of the column (permutation-based "
                    "interleaving): consecutive lines of one row-sized block alternate bank "
                    "groups, so a single sequential stream is paced by tCCD_S, not tCCD_L.")
    org: DDR5Organization = Field(default_factory=ddr5_org_preset,
                                  description="Device organization (or a preset name).")
    timing: DDR5Timing = Field(default_factory=ddr5_timing_preset,
                               description="Speed bin timings in cycles (or a preset name / MT/s).")
    controller: ControllerConfig = Field(default_factory=ControllerConfig,
                                         description="Per-channel controller.")

    @field_validator("org", mode="before")
    @classmethod
    def _org_from_name(cls, v: object) -> object:
        if isinstance(v, str):
            if v not in _ORGS:
                raise ValueError(f"unknown DDR5 organization {v!r}; expected one of "
                                 f"{', '.join(_ORGS)}")
            return ddr5_org_preset(v)
        return v

    @field_validator("timing", mode="before")
    @classmethod
    def _timing_from_name(cls, v: object, info: ValidationInfo) -> object:
        if isinstance(v, int | str) and not isinstance(v, bool):
            rate = v if isinstance(v, int) else _speed_from_name(v)
            if rate not in _SPEEDS:
                raise ValueError(f"unsupported DDR5 data rate {rate}; expected one of "
                                 f"{', '.join(map(str, _SPEEDS))}")
            org = info.data.get("org", ddr5_org_preset())
            return ddr5_timing_preset(rate, org)
        return v

    @field_validator("channels")
    @classmethod
    def _channels_pow2(cls, v: int) -> int:
        # both mappings interleave cache lines over channels with a bit mask (line % C)
        if not _is_pow2(v):
            raise ValueError("must be a power of two: the address mappings interleave cache "
                             "lines over channels by address bits")
        return v

    @property
    def tx_bytes(self) -> int:
        """Bytes per request (one BL16 burst on a 32-bit subchannel: 64)."""
        return self.org.tx_bytes

    @property
    def peak_bandwidth_per_channel_bytes_per_s(self) -> float:
        """Peak data rate of one channel: tx_bytes / (nBL x tCK), bytes/s."""
        return self.org.tx_bytes / (self.timing.nBL * self.timing.tck_ps * 1e-12)

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        """Peak data rate of all channels, bytes/s."""
        return self.channels * self.peak_bandwidth_per_channel_bytes_per_s

    @property
    def capacity_bytes(self) -> int:
        """Total capacity, bytes."""
        return self.channels * self.org.capacity_bytes


def memory_system_preset(speed: int | str = CALIBRATION_SPEED_MTS, org: str = "DDR5_16Gb_x8",
                         channels: int = 1, mapping: str = "RoBaRaCoCh",
                         controller: ControllerConfig | None = None) -> MemorySystemConfig:
    """Build a :class:`MemorySystemConfig` from preset names; bad values raise ``ConfigError``.

    The defaults are the calibration system: one DDR5-4800 subchannel of 16Gb x8 devices,
    RoBaRaCoCh, the Ramulator 2 GenericDDR controller.
    """
    try:
        return MemorySystemConfig(channels=channels, mapping=mapping, org=org, timing=speed,
                                  controller=controller or ControllerConfig())
    except ValidationError as err:
        raise config_error_from_validation(err, source="memory system") from None
