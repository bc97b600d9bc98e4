"""DDR5 configuration: presets against the reference tables, derived figures, validation."""

import pytest
from pydantic import ValidationError

from prodigy_sim.dram import (
    ControllerConfig,
    DDR5Organization,
    DDR5Timing,
    MemorySystemConfig,
    ddr5_org_preset,
    ddr5_org_preset_names,
    ddr5_timing_preset,
    memory_system_preset,
)
from prodigy_sim.errors import ConfigError

# tests/data/calibration/ddr5_memory_system.md section 5 (Ramulator-resolved values)
REFERENCE = {
    4800: dict(nCL=34, nRCD=34, nRP=34, nRAS=77, nRC=111, nWR=72, nRTP=18, nCWL=32, nPPD=2,
               nCCDS=8, nCCDL=12, nCCDS_WR=8, nCCDL_WR=48, nRRDS=8, nRRDL=12, nWTRS=6, nWTRL=24,
               nFAW=48, nRFC=710, nREFI=9375, tck_ps=416),
    5600: dict(nCL=40, nRCD=40, nRP=40, nRAS=90, nRC=130, nWR=84, nRTP=20, nCWL=38, nPPD=2,
               nCCDS=8, nCCDL=12, nCCDS_WR=8, nCCDL_WR=56, nRRDS=14, nRRDL=14, nWTRS=5, nWTRL=28,
               nFAW=56, nRFC=827, nREFI=10925, tck_ps=357),
    6400: dict(nCL=46, nRCD=46, nRP=46, nRAS=103, nRC=149, nWR=96, nRTP=24, nCWL=44, nPPD=2,
               nCCDS=8, nCCDL=16, nCCDS_WR=8, nCCDL_WR=64, nRRDS=16, nRRDL=16, nWTRS=5, nWTRL=32,
               nFAW=64, nRFC=946, nREFI=12500, tck_ps=312),
}
# effective constraints of section 5 (rows 6, 7, 11, 25): RD->WR, WR->RD (S), WR->PRE, WR->RD (L)
TURNAROUNDS = {4800: (14, 46, 113, 64), 5600: (14, 51, 131, 74), 6400: (14, 57, 149, 84)}


@pytest.mark.parametrize("rate", sorted(REFERENCE))
def test_presets_match_ramulator_resolved_timings(rate):
    t = ddr5_timing_preset(rate)
    assert {k: getattr(t, k) for k in REFERENCE[rate]} == REFERENCE[rate]
    assert (t.read_to_write, t.write_to_read_s, t.write_to_precharge + 1,
            t.write_to_read_l) == TURNAROUNDS[rate]


def test_7200_preset_follows_prodigy_table():
    t = ddr5_timing_preset(7200)
    assert (t.tck_ps, t.nCL, t.nRCD, t.nRP, t.nRAS, t.nRC, t.nWR, t.nRTP, t.nCCDL) == (
        277, 52, 52, 52, 116, 168, 108, 27, 18)


def test_peak_bandwidth_is_derived():
    cfg = memory_system_preset(speed=6400, channels=2)
    assert cfg.peak_bandwidth_per_channel_bytes_per_s == pytest.approx(64 / (8 * 312e-12))
    assert cfg.peak_bandwidth_bytes_per_s == pytest.approx(2 * 25.641e9, rel=1e-4)
    assert "peak_bandwidth_bytes_per_s" not in MemorySystemConfig.model_fields


def test_org_presets_are_consistent():
    org = ddr5_org_preset("DDR5_16Gb_x8")
    assert (org.banks, org.tx_bytes, org.lines_per_row, org.row_bytes, org.capacity_bytes) == (
        32, 64, 64, 4096, 8 << 30)
    for name in ddr5_org_preset_names():
        assert ddr5_org_preset(name).name == name


def test_names_resolve_to_presets():
    cfg = MemorySystemConfig(timing="DDR5_5600AN", org="DDR5_16Gb_x8", channels=4)
    assert cfg.timing == ddr5_timing_preset(5600)
    assert MemorySystemConfig(timing=6400).timing.nCL == 46


def test_contradictory_timing_names_the_field():
    base = ddr5_timing_preset(4800).model_dump()
    with pytest.raises(ValidationError, match="'nRC' must be >= nRAS \\+ nRP = 111"):
        DDR5Timing(**{**base, "nRC": 100})
    with pytest.raises(ValidationError, match="'nREFI' must be > nRFC"):
        DDR5Timing(**{**base, "nREFI": 500})


@pytest.mark.parametrize("kwargs, field", [
    (dict(channels=0), "'channels'"),
    (dict(channels=3), "'channels': .*power of two"),
    (dict(speed=4000), "'timing'"),
    (dict(mapping="RoRoRo"), "'mapping'"),
    (dict(org="DDR5_64Gb_x8"), "'org'"),
])
def test_bad_system_settings_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        memory_system_preset(**kwargs)


def test_controller_and_org_validation():
    with pytest.raises(ValidationError, match="write_low_watermark"):
        ControllerConfig(write_low_watermark=0.9, write_high_watermark=0.8)
    with pytest.raises(ValidationError, match="density_mbit"):
        DDR5Organization(name="x", density_mbit=8192, dq_bits=8, bank_groups=8,
                         banks_per_group=4, rows=65536, columns=1024)
    with pytest.raises(ValidationError, match="extra"):
        ControllerConfig(queue=3)


def test_write_watermarks_give_ramulator_thresholds():
    ctrl = ControllerConfig()
    assert (ctrl.write_enter_threshold, ctrl.write_leave_threshold) == (26, 6)


def test_config_is_frozen():
    cfg = memory_system_preset()
    with pytest.raises(ValidationError):
        cfg.channels = 2
