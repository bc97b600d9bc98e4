"""Issue 14 reproducers: input files that are not UTF-8, hold huge integers, are nested too deeply,
alias themselves or explode through aliases. Each gives one line naming the file (and line) from
the CLI with exit status 2, and a ProdigySimError from the API."""

from pathlib import Path

import pytest

from prodigy_sim._datafile import MAX_DEPTH, MAX_NODES, load_json, load_yaml
from prodigy_sim.errors import AssemblyError, ConfigError, FormatError, ProdigySimError
from prodigy_sim.hardware import load_config
from prodigy_sim.isa import assemble, assemble_file
from prodigy_sim.models import load_card, load_scenario
from prodigy_sim.numerics import load_format

NOT_UTF8 = b"name: x\n\xff\n"
PROGRAM = str(Path(__file__).resolve().parents[1] / "isa" / "examples" / "gemm_fp8_tai4.s")




@pytest.mark.parametrize("command, suffix", [
    (["asm"], ".s"), (["run"], ".s"), (["formats", "--file"], ".yaml"),
    (["simulate", "--model"], ".yaml"), (["footprint", "--model"], ".yaml"),
    (["simulate", "--scenario"], ".yaml"), (["presets", "--config"], ".yaml"),
    (["run", "--config"], ".yaml"),
])
def test_not_utf8_is_one_line_naming_file_and_line(tmp_path, cli_error, command, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(NOT_UTF8)
    argv = [*command, str(bad)]
    if command == ["run", "--config"]:
        argv.append(PROGRAM)
    cli_error(argv, f"{bad}:2:1:", "not UTF-8")


@pytest.mark.parametrize("reader, error", [
    (assemble_file, AssemblyError), (load_format, FormatError), (load_card, ConfigError),
    (load_scenario, ConfigError), (lambda p: load_config(file=p), ConfigError),
])
def test_not_utf8_api_raises_our_error(tmp_path, reader, error):
    bad = tmp_path / ("bad.s" if reader is assemble_file else "bad.yaml")
    bad.write_bytes(NOT_UTF8)
    with pytest.raises(error, match="not UTF-8"):
        reader(bad)


def test_integer_of_4400_digits_in_yaml(tmp_path, cli_error):
    path = tmp_path / "chip.yaml"
    path.write_text("cores: " + "9" * 4400 + "\n")
    cli_error(["presets", "--config", str(path)], f"{path}:1:8:",
                     "integer of 4400 characters")
    with pytest.raises(ConfigError, match="integer of 4400"):
        load_config(file=path)


def test_integer_of_4400_digits_in_json():
    with pytest.raises(ConfigError, match="x.json: .*integer of 4400"):
        load_json('{"cores": ' + "9" * 4400 + "}", source="x.json")


def test_integer_of_4400_digits_in_assembly(tmp_path, cli_error):
    path = tmp_path / "big.s"
    path.write_text("LI r1, " + "9" * 4400 + "\n")
    cli_error(["asm", str(path)], f"{path}:1:8:", "4400 digits")
    with pytest.raises(AssemblyError, match="4400 digits"):
        assemble("LI r1, 0x" + "f" * 4400)


def test_yaml_nested_1200_deep(tmp_path, cli_error):
    path = tmp_path / "deep.yaml"
    path.write_text("core: " + "{a: " * 1200 + "1" + "}" * 1200 + "\n")
    cli_error(["presets", "--config", str(path)], f"{path}:1:",
                     f"nested more than {MAX_DEPTH} levels")
    block = "".join("  " * i + f"k{i}:\n" for i in range(1200)) + "  " * 1200 + "v\n"
    with pytest.raises(ConfigError, match="nested more than"):
        load_yaml(block, source="block.yaml")
    with pytest.raises(ConfigError, match="nested more than"):
        load_json("[" * 1200 + "]" * 1200, source="deep.json")


def test_recursive_alias_in_hardware_config(tmp_path, cli_error):
    path = tmp_path / "rec.yaml"
    path.write_text("core: &a\n  matrix_unit: *a\n")
    cli_error(["run", "--config", str(path), PROGRAM],
                     f"{path}:2:16:", "recursive alias *a")


def test_alias_bomb_is_refused_without_expanding_it(tmp_path, cli_error):
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nnoc: *a9\n")  # 9**10 values once expanded
    cli_error(["presets", "--config", str(path)], f"more than {MAX_NODES}")
    with pytest.raises(ConfigError, match="alias bomb"):
        load_card(path)


def test_shared_aliases_within_bounds_still_load():
    data, node = load_yaml("a: &x {k: 1}\nb: *x\nc: [*x, *x]\n", source="ok.yaml")
    assert data == {"a": {"k": 1}, "b": {"k": 1}, "c": [{"k": 1}, {"k": 1}]}
    assert node.start_mark.line == 0


def test_unreadable_paths_are_one_line(tmp_path, cli_error):
    cli_error(["disasm", str(tmp_path)], str(tmp_path))
    with pytest.raises(ProdigySimError):
        assemble_file(tmp_path / "missing.s")
