"""The ``footprint`` subcommand (driven through its own parser until it is registered)."""

import argparse
import json

import pytest

from prodigy_sim.cli import _footprint
from prodigy_sim.errors import ConfigError


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="prodigy-sim")
    sub = parser.add_subparsers(dest="command")
    _footprint.add_parser(sub)
    rc = _footprint.run(parser.parse_args(["footprint", *argv]))
    return rc, capsys.readouterr().out


def test_switch_tai4_fits_2tb_socket(capsys):
    rc, out = _run(["--model", "switch-1.6t", "--weights", "tai4", "--capacity-gb", "2000"],
                   capsys)
    assert rc == 0
    assert "# fits prodigy-t16128 DDR: 2,000.0 GB" in out


def test_switch_bf16_does_not_fit_exit_1(capsys):
    wide = ["--weights", "bfloat16", "--embeddings", "bfloat16", "--head", "bfloat16"]
    rc, out = _run(["--model", "switch-1.6t", *wide, "--capacity-gb", "2000", "--json"], capsys)
    data = json.loads(out)
    assert rc == 1 and data["fits"] is False
    assert data["weights"][0]["format"] == "bfloat16"


def test_flags_build_the_scenario(capsys):
    rc, out = _run(["--model", "llama-2-70b", "--sparsity", "8:4", "--kv-cache", "bfloat16",
                    "--batch", "4", "--context", "1024", "--phase", "prefill", "--csv"], capsys)
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("item,format")
    assert any(line.startswith("attention,tai4/32 e8m0 8:4,") for line in lines)
    assert f"kv_cache,bfloat16,,,,,{2 * 80 * 8 * 128 * 1024 * 4 * 2}," in lines


def test_scenario_file_and_errors(capsys):
    rc, out = _run(["--scenario", "llama-2-7b-decode-tai4"], capsys)
    assert rc == 0 and "llama-2-7b: decode" in out
    with pytest.raises(ConfigError, match="command line: 'context_length' = 9000 exceeds"):
        _run(["--model", "llama-2-7b", "--context", "9000"], capsys)
    with pytest.raises(ConfigError, match="'formats.weights.format'.*unknown format 'tai3'"):
        _run(["--model", "llama-2-7b", "--weights", "tai3"], capsys)
    rc, out = _run([], capsys)                       # the default model, as simulate's
    assert rc == 0 and "llama-2-7b: decode" in out
    rc, out = _run(["--model", "bert-base-uncased"], capsys)  # an encoder's own defaults
    assert rc == 0 and "bert-base-uncased: prefill" in out
    with pytest.raises(SystemExit):                  # refused by the flag's type: one line
        _run(["--model", "llama-2-7b", "--context", "0"], capsys)
    assert "argument --context: must be >= 1 (got '0')" in capsys.readouterr().err


def test_help_names_units(capsys):
    from prodigy_sim.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser(["footprint"]).parse_args(["footprint", "--help"])
    out = capsys.readouterr().out
    assert "GB = 1e9 bytes" in out and "ELEMENTS" in out and "TOKENS" in out
