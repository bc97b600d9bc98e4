"""System configurations: presets with a source per field, derived link figures, refusals."""

import math

import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import (
    SystemConfig,
    load_preset,
    load_system,
    system_preset_names,
    system_preset_sources,
)
from prodigy_sim.hardware.system import PCIE5_LANE_BYTES_PER_S


@pytest.mark.parametrize("name", system_preset_names())
def test_every_preset_field_has_a_source(name):
    system = load_system(name)
    sources = system_preset_sources(name)
    assert set(sources) == set(SystemConfig.model_fields)
    assert all(sources.values())
    assumed = [k for k, v in sources.items() if v.startswith("assumption")]
    assert "socket_link_lanes" in assumed and "node_link_latency_s" in assumed
    assert "64 PCIe 5.0 lanes" in sources["pcie_lanes_per_socket"]
    assert system.chip == load_preset("prodigy-t16128")


def test_derived_link_figures():
    s = load_system("4s-t16128")
    assert PCIE5_LANE_BYTES_PER_S == pytest.approx(32e9 * 128 / 130 / 8)
    assert s.socket_link_bandwidth_bytes_per_s == pytest.approx(16 * 3.9384615e9, rel=1e-6)
    assert s.nic_bandwidth_bytes_per_s == 50e9  # 400 Gb/s, below x16 PCIe 5.0 (63 GB/s)
    assert s.socket_network_bandwidth_bytes_per_s == 50e9  # one NIC per socket
    assert s.sockets == 4 and s.capacity_bytes == 4 * 8 * 2**40
    narrow = load_system("4s-t16128", overrides={"nic_lanes": 8})
    assert narrow.nic_bandwidth_bytes_per_s == pytest.approx(8 * PCIE5_LANE_BYTES_PER_S)


def test_presets_of_published_systems():
    assert load_system("2s-t16128").sockets == 2
    assert load_system("rack-t16128").sockets == 352
    brain = load_system("256pb-t16128")
    per_socket = load_preset("prodigy-t16128").memory.capacity_bytes
    assert brain.nodes == math.ceil(256e15 / (4 * per_socket))
    assert brain.capacity_bytes >= 256e15 > brain.capacity_bytes - 4 * per_socket


def test_refusals_name_the_field():
    with pytest.raises(ConfigError, match="112 PCIe lanes but has 'pcie_lanes_per_socket' = 64"):
        load_system("4s-t16128", overrides={"socket_link_lanes": 32})
    with pytest.raises(ConfigError, match="unknown field.*'nic_count'"):
        load_system("4s-t16128", overrides={"nic_count": 2})
    with pytest.raises(ConfigError, match="'socket_link_latency_s'.*greater than 0"):
        load_system("2s-t16128", overrides={"socket_link_latency_s": 0})
    with pytest.raises(ConfigError, match="unknown system preset 'x'"):
        load_system("x")
    with pytest.raises(ConfigError, match="'chip'.*unknown preset 'nope'"):
        load_system("2s-t16128", chip="nope")
    assert load_system("2s-t16128", chip="prodigy-192").chip.cores == 192
