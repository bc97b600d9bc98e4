"""Reproducers of the fuzz campaign (fuzz_findings/): inputs that crashed with a traceback, ran
out of memory or printed an enormous message. Each is now a one-line ProdigySimError (CLI: exit 2,
no traceback)."""

import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import AssemblyError, ConfigError, ProgramError, TraceError

SERVE = ["serve", "--model", "smollm2-135m", "--max-batch", "2", "--quiet", "--requests", "3",
         "--prompt", "fixed:16", "--output", "fixed:4"]
SWEEP_HEAD = ("name: fz\ncompute: [footprint]\n"
              "fixed: {model: smollm2-135m, phase: decode, context: 64}\n")




def test_override_value_of_5000_digits(cli_error):
    from prodigy_sim.hardware.overrides import parse_override

    with pytest.raises(ConfigError, match="integer of 5000 characters"):
        parse_override("cores=" + "9" * 5000)
    cli_error(["presets", "--set", "cores=" + "9" * 5000], "integer of 5000 characters")


def test_register_of_5000_digits_and_long_tokens_are_clipped():
    from prodigy_sim.isa import assemble

    with pytest.raises(AssemblyError, match=r"r0\.\.r15 .*\(5001 characters\)") as info:
        assemble("LI r" + "1" * 5000 + ", 1\n", file="p.s")
    assert len(str(info.value)) < 300
    with pytest.raises(AssemblyError) as info:
        assemble("NOP " + "x" * 100_000 + "\n", file="p.s")
    assert len(str(info.value)) < 300 and "100000 characters" in str(info.value)


def test_name_longer_than_the_string_table_allows(tmp_path, cli_error):
    from prodigy_sim.isa import assemble

    with pytest.raises(AssemblyError, match="p.s:1:1: name 'aaaa.*70000 characters"):
        assemble("a" * 70_000 + ": NOP\n", file="p.s")
    path = tmp_path / "long.s"
    path.write_text("a" * 70_000 + ": NOP\n")
    cli_error(["asm", str(path), "-o", str(tmp_path / "o.bin")], "at most 65535")


def test_deeply_nested_loops_give_a_short_message_quickly():
    """5000 nested LOOPs: 75 KB of text gave a 919 MB message (12.5 M problems) in 15 s."""
    from prodigy_sim.isa import assemble, validate

    program = assemble("LOOP r1, 1, 1\n" * 5000 + "NOP\n" + "ENDLOOP\n" * 5000)
    with pytest.raises(ProgramError) as info:
        validate(program)
    text = str(info.value)
    assert len(text) < 4000 and text.count("loops nest") == 1
    assert text.endswith("more problems not listed")


@pytest.mark.parametrize("row, needle", [
    ("1e308,16,4", r"t.csv:2: 'arrival_s' must be <= 1e\+15"), ("1e15,16,4", None)])
def test_trace_arrival_beyond_the_engine_clock(tmp_path, row, needle):
    from prodigy_sim.serving import load_trace

    path = tmp_path / "t.csv"
    path.write_text(f"arrival_s,prompt_tokens,output_tokens\n{row}\n")
    if needle is None:
        assert load_trace(path)[0].arrival_s == 1e15
    else:
        with pytest.raises(TraceError, match=needle):
            load_trace(path)


def test_json_trace_with_a_huge_integer(tmp_path):
    from prodigy_sim.serving import load_trace

    path = tmp_path / "t.json"
    path.write_text('[{"arrival_s": 0, "prompt_tokens": ' + "9" * 5000 + ', "output_tokens": 4}]')
    with pytest.raises(TraceError, match=r"t.json: not valid JSON: integer of 5000"):
        load_trace(path)


def test_poisson_rate_that_overflows_the_clock():
    from prodigy_sim.serving import poisson_trace

    with pytest.raises(ConfigError, match="beyond 1e\\+15 s"):
        poisson_trace(3, 1e-300, "fixed:16", "fixed:4")


@pytest.mark.parametrize("extra, needle", [
    (["--seed", "-1"], "'--seed' must be >= 0"),
    (["--hw", "nope"], "'hardware': unknown hardware preset 'nope'"),
    (["--kv-blocks", "1"], "no request can be served"),
    (["--rate", "1e-300"], "beyond 1e+15 s"),
])
def test_serve_arguments(cli_error, extra, needle):
    cli_error(SERVE + extra, needle)


def test_serve_step_table_that_is_not_text(tmp_path, cli_error):
    path = tmp_path / "steps.json"
    path.write_bytes(b"\x00\xff\xfe")
    cli_error(SERVE + ["--step-table", str(path)], "not a step-time table")


def test_sweep_grid_too_large_is_refused_before_expanding(tmp_path, cli_error):
    spec = tmp_path / "bomb.yaml"
    spec.write_text(SWEEP_HEAD + "grid: {" + ", ".join(
        f"accuracy.k{i}: [1,2,3,4,5,6,7,8,9,10]" for i in range(8)) + "}\n")
    cli_error(["sweep", str(spec), "--serial", "--quiet", "--no-plots", "--out",
               str(tmp_path / "out")], "= 100000000 points; at most 100000")


def test_sweep_results_store_with_damaged_lines(tmp_path, capsys):
    spec = tmp_path / "ok.yaml"
    spec.write_text(SWEEP_HEAD + "grid: {batch: [1, 2]}\n")
    argv = ["sweep", str(spec), "--serial", "--quiet", "--no-plots", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    store = tmp_path / "o" / "results.jsonl"
    with open(store, "ab") as f:
        f.write(b"\xff\xfe garbage\n" + b'{"a": ' + b"9" * 5000 + b"}\n")
    capsys.readouterr()
    assert main(argv) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert sum(1 for line in store.read_bytes().splitlines()
               if b'"point_id"' in line and "point_id" in json.loads(line)) == 2
