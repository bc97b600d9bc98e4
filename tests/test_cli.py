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
