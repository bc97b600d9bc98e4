"""Hardware models: derived peak figures, immutability, validation messages naming the field."""

import pytest
from pydantic import ValidationError

from prodigy_sim.errors import ConfigError, ProgramError
from prodigy_sim.hardware import (
    ChipConfig,
    MatrixUnitConfig,
    MemoryConfig,
    NocConfig,
    VectorUnitConfig,
    check_fits,
    load_preset,
    scaled_ddr5_timing,
)
from prodigy_sim.hardware.noc import mesh_shape_for


@pytest.fixture
def t16128() -> ChipConfig:
    return load_preset("prodigy-t16128")


def test_fp8_peak_matches_the_12_pflops_claim(t16128):
    assert t16128.core.matrix_unit.macs_per_cycle == 4096
    assert t16128.peak_flops("float8_e4m3fn") == 128 * 5.7e9 * 4096 * 2
    sparse = t16128.peak_flops("float8_e4m3fn", sparse=True)
    assert sparse == pytest.approx(11.9537664e15)
    assert sparse == pytest.approx(12e15, rel=0.01)


def test_peak_macs_per_cycle_per_format(t16128):
    assert t16128.peak_macs_per_cycle("float8_e4m3fn") == 128 * 4096
    assert t16128.peak_macs_per_cycle("tai4", sparse=True) == 128 * 4096 * 2
    assert t16128.peak_macs_per_cycle("bfloat16") == 128 * 512
    assert t16128.peak_macs_per_cycle("float64") == 128 * 64


def test_fp64_peak_is_the_faster_unit(t16128):
    assert t16128.peak_vector_flops("float64") == pytest.approx(46.6944e12)
    assert t16128.peak_matrix_flops("float64") == pytest.approx(93.3888e12)
    assert t16128.peak_flops("float64") == t16128.peak_matrix_flops("float64")
    assert t16128.peak_flops("float32") == t16128.peak_vector_flops("float32")
    assert t16128.core.vector_unit.fp32_lanes == 32


def test_unknown_or_unsupported_format_is_refused(t16128):
    with pytest.raises(ConfigError, match="float16.*known: .*bfloat16"):
        t16128.peak_flops("float16")
    with pytest.raises(ConfigError, match="no sparse mode"):
        t16128.peak_flops("bfloat16", sparse=True)
    with pytest.raises(ConfigError, match="matrix unit"):
        t16128.peak_flops("float32", sparse=True)


def test_ddr_bandwidth_and_subchannels(t16128):
    assert t16128.memory.channels == 16
    assert t16128.memory.channel_width_bits == 64
    assert t16128.memory.subchannels == 32
    assert t16128.memory.dram.channels == 2
    assert t16128.peak_ddr_bandwidth_bytes_per_s == pytest.approx(921.6e9)
    assert t16128.memory.timing_model_peak_bandwidth_bytes_per_s == pytest.approx(
        32 * 64 / (8 * 277e-12))
    assert t16128.memory.socket_memory_system().channels == 32


def test_on_chip_totals_and_mesh(t16128):
    assert t16128.total_l2_bytes == 128 * 2**20
    assert t16128.total_on_chip_bytes == 128 * (2**20 + 2 * 64 * 2**10)
    assert t16128.mesh_shape == (8, 16)
    assert mesh_shape_for(192) == (12, 16)
    assert mesh_shape_for(7) == (1, 7)


def test_configs_are_frozen(t16128):
    with pytest.raises(ValidationError):
        t16128.cores = 4
    with pytest.raises(TypeError):
        t16128.core.matrix_unit.relative_throughput["tai4"] = 2.0
    assert load_preset("prodigy-t16128") == t16128
    assert load_preset("prodigy-t16128") is not t16128


@pytest.mark.parametrize(("kwargs", "path"), [
    ({"cores": 0}, "cores"),
    ({"frequency_hz": -1}, "frequency_hz"),
    ({"memory": {"channels": 0}}, "memory.channels"),
    ({"core": {"matrix_unit": {"tile_k": 0}}}, "core.matrix_unit.tile_k"),
    ({"core": {"vector_unit": {"width_bits": 1000}}}, "core.vector_unit.width_bits"),
    ({"bogus": 1}, "bogus"),
])
def test_invalid_values_name_the_field(kwargs, path):
    with pytest.raises(ValidationError) as info:
        ChipConfig(**kwargs)
    assert path in [".".join(map(str, e["loc"])) for e in info.value.errors()]


def test_matrix_throughput_needs_the_fp8_reference():
    with pytest.raises(ValidationError, match="float8_e4m3fn"):
        MatrixUnitConfig(relative_throughput={"tai4": 1.0})
    with pytest.raises(ValidationError, match="factors must be finite"):
        MatrixUnitConfig(relative_throughput={"float8_e4m3fn": 1.0, "tai4": 0.0})
    with pytest.raises(ValidationError, match="sparse_formats"):
        MatrixUnitConfig(sparse_formats=("tai2",))


def test_vector_unit_checks_formats_and_op_classes():
    with pytest.raises(ValidationError, match="unknown formats"):
        VectorUnitConfig(formats=("float7",))
    with pytest.raises(ValidationError, match="operation classes"):
        VectorUnitConfig(op_latency_cycles={"add": 4})
    assert VectorUnitConfig(width_bits=512).lanes("bfloat16") == 32


def test_noc_shape_given_or_derived():
    with pytest.raises(ValidationError, match="both"):
        NocConfig(rows=4)
    with pytest.raises(ValidationError, match="cannot hold"):
        ChipConfig(cores=128, noc={"rows": 8, "cols": 8})
    chip = ChipConfig(cores=120, noc={"rows": 8, "cols": 16})
    assert chip.mesh_shape == (8, 16)
    assert chip.noc.diameter_hops(120) == 22


def test_subchannel_count_is_derived_not_set():
    assert MemoryConfig(channel_width_bits=32).dram.channels == 1
    with pytest.raises(ValidationError, match="derived"):
        MemoryConfig(dram={"channels": 4})


def test_socket_memory_system_with_non_power_of_two_subchannels_is_a_config_error():
    chip = load_preset("prodigy-2nm-ultimate")
    assert chip.memory.subchannels == 48
    with pytest.raises(ConfigError, match="power of two"):
        chip.memory.socket_memory_system()


def test_scaled_timing_keeps_nanoseconds_and_burst_cycles():
    base = scaled_ddr5_timing(7200)
    fast = scaled_ddr5_timing(17600)
    assert fast.tck_ps == 114
    assert fast.nBL == base.nBL == 8
    assert fast.nCCDS == base.nCCDS
    assert fast.nRCD * fast.tck_ps >= base.nRCD * base.tck_ps
    assert (fast.nRCD - 1) * fast.tck_ps < base.nRCD * base.tck_ps


def test_check_fits(t16128):
    check_fits(2**20, t16128)
    with pytest.raises(ProgramError, match=r"tile needs 1048577 bytes.*l2_bytes"):
        check_fits(2**20 + 1, t16128)
    check_fits(128 * 2**20, t16128, scope="chip")
    reserved = ChipConfig(core={"on_chip_memory": {"l2_reserved_bytes": 2**18}})
    assert reserved.usable_tile_bytes_per_core == 3 * 2**18
    with pytest.raises(ProgramError):
        check_fits(2**20, reserved)


def test_configs_are_hashable_values(t16128):
    assert {t16128: 1}[load_preset("prodigy-t16128")] == 1
    assert hash(t16128) != hash(load_preset("prodigy-192"))
