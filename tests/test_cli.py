"""The command line: subcommands, JSON output, one-line errors with exit status 2."""

import json
from pathlib import Path

import pytest

from prodigy_sim.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "isa" / "examples"


def test_formats_lists_value_sets(capsys):
    assert main(["formats", "tai4"]) == 0
    out = capsys.readouterr().out
    assert "tai4: 4-bit log" in out and "0.015625" in out


def test_formats_json_and_user_file(tmp_path, capsys):
    f = tmp_path / "u.yaml"
    f.write_text("name: uint2\nbits: 2\nkind: int\nsigned: false\nzero_codes: [0]\n")
    assert main(["formats", "int4", "--file", str(f), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == ["int4", "uint2"]
    assert data[1]["values"] == ["0", "1", "2", "3"]


def test_asm_disasm_round_trip(tmp_path, capsys):
    src = EXAMPLES / "gemm_fp8_tai4.s"
    out = tmp_path / "g.bin"
    assert main(["asm", str(src), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["disasm", str(out)]) == 0
    text = capsys.readouterr().out
    again = tmp_path / "g2.s"
    again.write_text(text)
    assert main(["asm", str(again), "-o", str(tmp_path / "g2.bin")]) == 0
    assert (tmp_path / "g2.bin").read_bytes() == out.read_bytes()


@pytest.mark.parametrize("argv, where", [
    (["formats", "fp9"], "unknown format 'fp9'"),
    (["asm", "/no/such/file.s"], "/no/such/file.s: No such file"),
    (["presets", "--show", "prodigy-9000"], "prodigy-9000"),
])
def test_bad_input_is_one_line_exit_2(argv, where, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err and where in err and "Traceback" not in err


def test_assembly_error_names_file_line_column(tmp_path, capsys):
    bad = tmp_path / "bad.s"
    bad.write_text("# a comment\nMMA a, b\n")
    assert main(["asm", str(bad)]) == 2
    assert f"{bad}:2:9: expected" in capsys.readouterr().err


def test_format_aliases_and_footprint_default_model(capsys):
    """``fp8`` (any case) is OCP E4M3 wherever a format name goes; ``footprint`` without
    ``--model`` counts the default model, as ``simulate`` does."""
    from prodigy_sim.numerics import FORMAT_ALIASES, get_format

    assert get_format("fp8") is get_format("FP8") is get_format("float8_e4m3fn")
    assert all(get_format(a) is get_format(n) for a, n in FORMAT_ALIASES.items())
    assert main(["footprint", "--model", "smollm2", "--weights", "fp8", "--kv-cache", "fp8",
                 "--json"]) == 0
    by_alias = json.loads(capsys.readouterr().out)
    assert main(["footprint", "--model", "smollm2", "--weights", "float8_e4m3fn",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == by_alias
    assert main(["footprint"]) == 0
    assert "llama-2-7b" in capsys.readouterr().out
    assert main(["footprint", "--weights", "fp9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aliases: " in err and "fp8" in err


def test_run_says_1_core(capsys):
    assert main(["run", str(EXAMPLES / "gemm_fp8_tai4.s"), "--cores", "1"]) == 0
    out = capsys.readouterr().out
    assert " on 1 core of " in out and "1 cores" not in out
