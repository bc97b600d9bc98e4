"""``--hw NAME|FILE --set PATH=VALUE``: resolve_hardware, the record of changes, derived names,
and the commands that take them (presets, run, dram)."""

import json
from pathlib import Path

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_config, load_preset, parse_override, resolve_hardware

EXAMPLES = Path(__file__).resolve().parents[1] / "isa" / "examples"


def test_overrides_change_fields_and_the_name():
    chip, changes = resolve_hardware("prodigy-t16128",
                                     ["memory.channels=32", "memory.dram.timing=6400"])
    assert chip.memory.channels == 32 and chip.memory.transfer_rate_mts == 6400
    assert chip.name == "prodigy-t16128+memory.channels=32+memory.dram.timing=6400"
    assert changes.preset == "prodigy-t16128" and changes.file is None
    first, second = changes.changes
    assert (first.path, first.old, first.new) == ("memory.channels", 16, 32)
    assert second.path == "memory.dram.timing"
    assert (second.old["rate_mts"], second.new["rate_mts"]) == (7200, 6400)
    assert changes.describe() == ("prodigy-t16128 with memory.channels 16 -> 32, "
                                  "memory.dram.timing DDR5_7200AN -> DDR5_6400AN (implies 19 "
                                  "timing fields)")
    # the same configuration as the YAML override mechanism builds, apart from the name
    same = load_config(overrides={"memory.channels": 32, "memory.dram.timing": 6400})
    assert chip.model_copy(update={"name": same.name}) == same


def test_a_speed_change_is_one_change_from_the_configuration_alone():
    """changes_from_preset (a report has only the configuration) lists the one override a DDR5
    speed change is, with the count of the timing fields it implies, not each of them."""
    from prodigy_sim.hardware import changes_from_preset

    chip, given = resolve_hardware("prodigy-t16128", ["memory.dram.timing=6400"])
    found = changes_from_preset(chip)
    assert [c.path for c in found.changes] == [c.path for c in given.changes] == [
        "memory.dram.timing"]
    (change,) = found.changes
    preset_timing = load_preset("prodigy-t16128").memory.dram.timing.model_dump()
    differ = [k for k, v in chip.memory.dram.timing.model_dump().items()
              if k != "name" and v != preset_timing[k]]
    assert change.implied == len(differ) > 1
    assert found.describe() == given.describe() == (
        f"prodigy-t16128 with memory.dram.timing DDR5_7200AN -> DDR5_6400AN (implies "
        f"{len(differ)} timing fields)")
    # the section's name has no unit; its timings are DRAM cycles
    from prodigy_sim.hardware import unit_of

    assert (unit_of("memory.dram.timing.name"), unit_of("memory.dram.timing.nCL")) == (
        "", "cycles (nCK)")
    # one timing field alone is still that field
    chip, _ = resolve_hardware("prodigy-t16128", ["memory.dram.timing.nCL=60"])
    assert [c.describe() for c in changes_from_preset(chip).changes] == [
        "memory.dram.timing.nCL 52 -> 60"]


def test_mapping_fields_merge_key_by_key():
    chip, changes = resolve_hardware(None, ["core.matrix_unit.relative_throughput.tai4=2"])
    rel = chip.core.matrix_unit.relative_throughput
    assert rel["tai4"] == 2.0 and rel["tai2"] == 1.0 and rel["float8_e4m3fn"] == 1.0
    chip2, changes2 = resolve_hardware(None, ["core.matrix_unit.relative_throughput={tai4: 2}"])
    assert chip2.core.matrix_unit.relative_throughput == rel
    assert [c.path for c in changes2.changes] == ["core.matrix_unit.relative_throughput.tai4"]


@pytest.mark.parametrize(("text", "value"), [
    ("cores=64", 64), ("frequency_hz=6e9", 6e9), ("frequency_hz=6.5E+9", 6.5e9),
    ("noc.topology=mesh", "mesh"), ("core.matrix_unit.sparse_formats=[tai4]", ["tai4"]),
    ("x.y= 2.5 ", 2.5), ("flag=true", True),
])
def test_values_are_yaml_scalars(text, value):
    assert parse_override(text)[1] == value


def test_value_equal_to_the_preset_is_no_change_and_a_name_can_be_given():
    chip, changes = resolve_hardware("prodigy-192", {"memory.channels": 16})
    assert chip == load_preset("prodigy-192") and not changes.changed
    assert changes.describe() == "prodigy-192"
    chip, changes = resolve_hardware(None, ["cores=64", "name=half"])
    assert chip.name == "half" and chip.cores == 64


def test_file_base_with_lines_then_overrides(tmp_path):
    path = tmp_path / "chip.yaml"
    path.write_text("preset: prodigy-192\ncore.matrix_unit.latency_cycles: 12\n")
    chip, changes = resolve_hardware(path, ["memory.channels=8"])
    assert chip.cores == 192 and chip.core.matrix_unit.latency_cycles == 12
    assert chip.name == "prodigy-192+chip.yaml+memory.channels=8"
    assert [(c.path, c.old, c.new, c.origin) for c in changes.changes] == [
        ("core.matrix_unit.latency_cycles", 8, 12, f"{path}:2"),
        ("memory.channels", 16, 8, "override")]
    assert resolve_hardware(str(path))[0].name == "prodigy-192+chip.yaml"


@pytest.mark.parametrize(("sets", "message"), [
    (["memory.channels=0"],
     "override 'memory.channels=0': 'memory.channels': Input should be greater than or equal "
     "to 1 (got 0)"),
    (["memory.chanels=32"], "override 'memory.chanels=32': unknown field 'memory.chanels' "
                            "(fields of memory: channels,"),
    (["memory.dram.timing=5000"], "override 'memory.dram.timing=5000': 'memory.dram.timing': "
                                  "unsupported DDR5 data rate 5000; expected one of"),
    (["cores=64", "cores.x=1"], "override 'cores.x=1': 'cores' is a value, not a section"),
    (["memory.channels"], "override 'memory.channels': expected PATH=VALUE"),
    (["memory.channels="], "override 'memory.channels=': missing value for 'memory.channels'"),
    (["cores=[1"], "override 'cores=[1': value '[1' is not a YAML value"),
])
def test_bad_overrides_are_one_line_naming_the_field(sets, message):
    with pytest.raises(ConfigError) as err:
        resolve_hardware(None, sets)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_unknown_hardware_name():
    with pytest.raises(ConfigError, match="unknown hardware 'prodigy-9'.*prodigy-t16128"):
        resolve_hardware("prodigy-9")


def test_presets_show_marks_the_changed_fields(capsys):
    assert main(["presets", "--show", "prodigy-t16128", "--set", "memory.channels=32"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# prodigy-t16128+memory.channels=32"
    assert out[1].startswith("# prodigy-t16128 with memory.channels 16 -> 32")
    marked = [line for line in out if line.startswith("*")]
    assert len(marked) == 1 and marked[0].split()[:2] == ["*memory.channels", "32"]
    assert marked[0].endswith("# override (preset: 16)")
    assert main(["presets", "--set", "cores=64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "prodigy-t16128+cores=64" and data["config"]["cores"] == 64
    assert data["changes"] == [{"path": "cores", "old": 128, "new": 64, "origin": "override"}]


def test_run_takes_hw_and_set(capsys):
    prog = str(EXAMPLES / "gemm_fp8_tai4.s")
    assert main(["run", prog, "--cores", "4", "--set", "memory.channels=4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"] == "prodigy-t16128+memory.channels=4"
    assert data["hardware"]["changes"][0]["new"] == 4
    assert main(["run", prog, "--cores", "4", "--hw", "prodigy-192"]) == 0
    assert "of prodigy-192:" in capsys.readouterr().out


def test_dram_takes_the_chips_memory(tmp_path, capsys):
    trace = tmp_path / "t.trace"
    trace.write_text("".join(f"LD {64 * i:#x}\n" for i in range(256)))
    assert main(["dram", "--trace", str(trace), "--set", "memory.channels=2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["channels"] == 4          # 2 channels x 2 subchannels
    assert data["hardware"]["name"] == "prodigy-t16128+memory.channels=2"
    assert main(["dram", "--trace", str(trace), "--hw", "prodigy-t16128", "--speed", "6400"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--speed: with --hw/--set" in err


def test_dram_preset_is_the_chips_memory_system(tmp_path, capsys):
    """``dram --preset NAME`` = ``--hw NAME``: the chip's channels, speed and controller, not the
    calibration system the flags default to (and --help says so)."""
    trace = tmp_path / "t.trace"
    trace.write_text("".join(f"LD {64 * i:#x}\n" for i in range(256)))
    assert main(["dram", "--trace", str(trace), "--preset", "prodigy-t16128", "--json"]) == 0
    by_preset = json.loads(capsys.readouterr().out)
    assert main(["dram", "--trace", str(trace), "--hw", "prodigy-t16128", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_preset
    assert by_preset["config"]["channels"] == 32              # 16 channels x 2 subchannels
    assert by_preset["hardware"]["name"] == "prodigy-t16128"
    assert main(["dram", "--trace", str(trace), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["channels"] == 1
    assert main(["dram", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "calibration system's" in text and "--preset NAME" in text


@pytest.mark.parametrize("command", [["presets", "--show", "prodigy-t16128"],
                                     ["run", str(EXAMPLES / "gemm_fp8_tai4.s")]])
def test_cli_bad_set_is_one_line_exit_2(command, capsys):
    assert main([*command, "--set", "memory.channels=zero"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "override 'memory.channels=zero': 'memory.channels'" in err


def test_footprint_takes_hw_and_set(tmp_path, capsys):
    """footprint --set: the capacity is the changed chip's (a 4 GB socket does not hold
    LLaMA-2-7B decode: exit 1), the table names the preset and the changed field, and --hw takes
    a file."""
    argv = ["footprint", "--model", "llama-2-7b"]
    assert main([*argv, "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert base["hardware"] == "prodigy-t16128" and base["hardware_changes"] == []
    assert main([*argv, "--set", "memory.capacity_bytes=4e9", "--json"]) == 1
    small = json.loads(capsys.readouterr().out)
    assert small["capacity_bytes"] == 4_000_000_000 and not small["fits"]
    assert small["total_bytes"] == base["total_bytes"] > 4e9
    assert small["preset"] == "prodigy-t16128"
    assert small["hardware_changes"] == ["memory.capacity_bytes 8796093022208 -> 4000000000"]
    assert main([*argv, "--set", "memory.capacity_bytes=4e9"]) == 1
    table = capsys.readouterr().out
    assert "does NOT fit prodigy-t16128+memory.capacity_bytes=4e9 DDR: 4.0 GB" in table
    assert ("# hardware: prodigy-t16128 with 1 field(s) overridden: memory.capacity_bytes "
            "8796093022208 -> 4000000000") in table
    chip = tmp_path / "chip.yaml"
    chip.write_text("preset: prodigy-192\nmemory:\n  capacity_bytes: 4000000000\n")
    assert main([*argv, "--hw", str(chip), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["preset"] == "prodigy-192" and data["capacity_bytes"] == 4_000_000_000


@pytest.mark.parametrize("command", [["footprint"], ["accuracy"], ["simulate", "--quiet"]])
def test_misspelt_field_is_one_line_naming_it(command, capsys):
    assert main([*command, "--set", "memory.capacty_bytes=4e9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown field 'memory.capacty_bytes'" in err
    assert "did you mean 'capacity_bytes'" in err
    assert "override 'memory.capacty_bytes=4e9'" in err          # the value as typed
