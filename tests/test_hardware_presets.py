"""Presets (figures, sources) and loading with YAML files and overrides."""

import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import (
    DEFAULT_PRESET,
    load_config,
    load_config_with_sources,
    load_preset,
    preset_names,
    preset_sources,
    source_of,
)
from prodigy_sim.hardware.presets import flatten


def test_preset_names_default_first():
    assert preset_names() == ("prodigy-t16128", "prodigy-192", "prodigy-2nm-ultimate")
    assert DEFAULT_PRESET == preset_names()[0]
    assert load_config().name == DEFAULT_PRESET


@pytest.mark.parametrize(("name", "cores", "dense", "ddr"), [
    ("prodigy-t16128", 128, 128 * 5.7e9 * 8192, 921.6e9),
    ("prodigy-192", 192, 192 * 5.7e9 * 8192, 921.6e9),
    ("prodigy-2nm-ultimate", 1024, 1024 * 6.0e9 * 8192, 3379.2e9),
])
def test_preset_key_figures(name, cores, dense, ddr):
    chip = load_preset(name)
    assert chip.name == name
    assert chip.cores == cores
    assert chip.peak_flops("float8_e4m3fn") == pytest.approx(dense)
    assert chip.peak_flops("float8_e4m3fn", sparse=True) == pytest.approx(2 * dense)
    assert chip.peak_ddr_bandwidth_bytes_per_s == pytest.approx(ddr)


def test_2nm_preset_uses_scaled_ddr5_17600():
    chip = load_preset("prodigy-2nm-ultimate")
    assert chip.memory.transfer_rate_mts == 17600
    assert chip.memory.channels == 24
    assert "beyond the JEDEC" in preset_sources(chip.name)["memory.dram.timing"]
    assert chip.total_l2_bytes == 2**30


@pytest.mark.parametrize("name", ["prodigy-t16128", "prodigy-192", "prodigy-2nm-ultimate"])
def test_every_field_has_a_source(name):
    sources = preset_sources(name)
    leaves = flatten(load_preset(name).model_dump())
    own = [p for p in leaves if not p.startswith("memory.dram.")]
    assert all(p in sources for p in own), [p for p in own if p not in sources]
    assert all(source_of(p, sources) for p in leaves)
    assert all(sources.values())


def test_sources_cite_documents_or_say_assumption():
    sources = preset_sources("prodigy-t16128")
    assert "assumption" in sources["core.matrix_unit.latency_cycles"]
    assert "Julia Discourse" in sources["core.matrix_unit.tile_m"]
    assert "DDR5-7200" in sources["memory.dram.timing"]
    assert "derived" in source_of("memory.dram.channels", sources)
    assert "192" in preset_sources("prodigy-192")["core.vector_unit.width_bits"]
    assert preset_sources("prodigy-2nm-ultimate")["core.vector_unit.formats"].startswith(
        "assumption")


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*prodigy-t16128.*prodigy-192"):
        load_preset("nope")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="nope")


def test_overrides_dotted_and_nested():
    chip = load_config(overrides={
        "core.matrix_unit.latency_cycles": 12,
        "core": {"matrix_unit": {"relative_throughput": {"tai4": 2.0}}},
        "memory.dram.timing": 6400,
    })
    assert chip.core.matrix_unit.latency_cycles == 12
    assert chip.core.matrix_unit.relative_throughput["tai4"] == 2.0
    assert chip.core.matrix_unit.relative_throughput["tai2"] == 1.0
    assert chip.peak_flops("tai4") == 2 * chip.peak_flops("float8_e4m3fn")
    assert chip.peak_ddr_bandwidth_bytes_per_s == pytest.approx(16 * 6400e6 * 8)


def test_override_inside_a_section_given_by_preset_name():
    chip = load_config(overrides={"memory.dram.timing.nCL": 60})
    assert chip.memory.dram.timing.nCL == 60
    assert chip.memory.dram.timing.nRCD == 52


@pytest.mark.parametrize(("overrides", "message"), [
    ({"cores": 0}, r"'cores': .*greater than or equal to 1 \(got 0\)"),
    ({"memory.channels": 0}, r"'memory.channels': .*\(got 0\)"),
    ({"frequency_hz": -5.7e9}, r"'frequency_hz': .*greater than or equal to 1000000"),
    ({"core.matrix_unit.latency_cyles": 3},
     r"unknown field 'core.matrix_unit.latency_cyles'.*did you mean 'latency_cycles'"),
    ({"core": {"vectr_unit": {"count": 1}}}, r"unknown field 'core.vectr_unit'"),
    ({"cores.count": 1}, r"'cores' is a value"),
    ({"memory.dram.channels": 4}, r"derived"),
])
def test_bad_overrides_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_yaml_file_with_preset_and_overrides(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("preset: prodigy-192\n"
                    "core.matrix_unit.latency_cycles: 12\n"
                    "noc:\n  hop_latency_cycles: 3\n")
    chip, sources = load_config_with_sources(file=path)
    assert chip.cores == 192
    assert chip.core.matrix_unit.latency_cycles == 12
    assert chip.noc.hop_latency_cycles == 3
    assert sources["core.matrix_unit.latency_cycles"] == f"override: {path}:2"
    assert sources["noc.hop_latency_cycles"] == f"override: {path}:4"
    later = load_config(file=path, overrides={"noc.hop_latency_cycles": 5})
    assert later.noc.hop_latency_cycles == 5


@pytest.mark.parametrize(("text", "message"), [
    ("cores: 0\n", r"chip.yaml \(preset 'prodigy-t16128'\): line 1: 'cores'"),
    ("memory:\n  channels: 0\n", r"chip.yaml .*'memory.channels'"),
    ("frequency_hz: -1\n", r"chip.yaml .*'frequency_hz'"),
    ("core:\n  matrix_unit:\n    latency_cyles: 3\n",
     r"chip.yaml:3: unknown field 'core.matrix_unit.latency_cyles'"),
    ("preset: prodigy-9000\n", r"unknown preset 'prodigy-9000'"),
    ("cores: [\n", r"chip.yaml:2:1: not valid YAML"),
    ("- 1\n", r"must be a mapping"),
])
def test_bad_yaml_names_file_and_field(tmp_path, text, message):
    path = tmp_path / "chip.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(file=path)


def test_file_preset_conflicting_with_argument(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("preset: prodigy-192\n")
    with pytest.raises(ConfigError, match="names preset 'prodigy-192'"):
        load_config(preset="prodigy-t16128", file=path)
    assert load_config(preset="prodigy-192", file=path).cores == 192


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(file=tmp_path / "absent.yaml")
