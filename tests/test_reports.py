"""Reports (table, JSON, CSV, plots) and the ``simulate`` command line."""

import csv
import io
import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.cli._scenario_args import resolve_model
from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import load_preset
from prodigy_sim.models import Scenario
from prodigy_sim.reports import OP_COLUMNS, simulate_scenario, write_plots

CFG = load_preset("prodigy-t16128")
SMALL = ["--model", "smollm2", "--batch", "2", "--context", "256", "--cores", "16",
         "--quiet"]


def _main(argv):
    """The CLI driver (bad arguments and package errors: one line, exit 2)."""
    return main(argv)


@pytest.fixture(scope="module")
def report():
    sc = Scenario(model="smollm2-135m", phase="decode", batch=2, context_length=256)
    return simulate_scenario(sc, config=CFG, cores=16)


def test_report_totals_and_formats(report):
    assert report.seconds == pytest.approx(sum(o["total_seconds"] for o in report.ops))
    assert report.flops == sum(o["flops"] * o["repeat"] for o in report.ops)
    assert report.tokens_per_s == pytest.approx(2 / report.seconds)
    assert report.time_to_first_token_s is None
    d = json.loads(json.dumps(report.to_dict()))
    assert d["bound"] in ("memory", "compute") and len(d["ops"]) == len(report.ops)
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert list(rows[0]) == list(OP_COLUMNS) and rows[-1]["stage"] == "total"
    text = report.table()
    assert "tokens/s" in text and "roofline" in text and "fits" in text


def test_plots_are_written(report, tmp_path):
    paths = write_plots(report, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["breakdown.png", "breakdown.svg", "roofline.png",
                                             "roofline.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_cli_json_csv_and_plots(tmp_path, capsys):
    assert _main(["simulate", *SMALL, "--json", "--csv", str(tmp_path / "o.csv"),
                  "--plot", str(tmp_path / "p")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "smollm2-135m" and d["tokens_per_s"] > 0
    assert (tmp_path / "o.csv").read_text().startswith("stage,")
    assert (tmp_path / "p" / "roofline.svg").exists()


def test_cli_table_and_prefill(capsys):
    assert _main(["simulate", "--model", "all-minilm-l6-v2", "--batch", "2", "--context", "64",
                  "--cores", "16", "--quiet"]) == 0
    out = capsys.readouterr().out
    # an encoder has no first token: its pass is a forward pass
    assert "time per forward pass" in out and "time to first token" not in out


def test_cli_simulate_takes_hardware_overrides(capsys):
    """--set on simulate: the report names the changed field, and a memory-bound decode step
    gets faster with twice the DDR channels."""
    argv = ["simulate", "--model", "smollm2", "--context", "512", "--json", "--quiet"]
    assert _main(argv) == 0
    base = json.loads(capsys.readouterr().out)
    assert _main(argv + ["--set", "memory.channels=32"]) == 0
    wide = json.loads(capsys.readouterr().out)
    assert wide["seconds"] < 0.8 * base["seconds"]
    assert any("memory.channels 16 -> 32" in c for c in wide["hardware_changes"])
    assert _main(argv[:-2] + ["--quiet", "--set", "memory.chanels=32"]) == 2
    assert "memory.chanels" in capsys.readouterr().err


@pytest.mark.parametrize("argv,match", [
    (["--model", "gpt-5"], "unknown model 'gpt-5'"),
    (["--model", "smollm2", "--sparsity", "2:4"], "8:4"),
    (["--model", "smollm2", "--cores", "1000"], "cores"),
    (["--model", "smollm2", "--steady-units", "-1"], "steady-units"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, match, capsys):
    assert _main(["simulate", *argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err


def test_aliases():
    assert resolve_model("llama2-7b") == "llama-2-7b"
    assert resolve_model("LLaMA27B") == "llama-2-7b"
    assert resolve_model("llama-3-8b") == "llama-3-8b"
    with pytest.raises(ConfigError):
        resolve_model("nope")


def test_vector_flops_are_reported(report):
    assert report.vector_flops == sum(o["vector_flops"] * o["repeat"] for o in report.ops) > 0
    assert 0 < report.vector_flop_utilization < 1
    assert "vector FLOPs" in report.table() and "vector_flops" in report.to_csv()


def test_traffic_and_mapping_per_op(report):
    """DDR bytes beside compulsory bytes, the on-chip share and the mapping, per op and total."""
    assert report.ddr_bytes == sum(o["ddr_bytes"] * o["repeat"] for o in report.ops)
    assert report.compulsory_bytes == sum(o["compulsory_bytes"] * o["repeat"] for o in report.ops)
    assert report.ddr_bytes <= report.dma_bytes
    assert 0 <= report.l3_hit_rate < 1
    linears = [o for o in report.ops if o["kind"] == "linear"]
    assert linears and all(o["mapping"] for o in linears)
    for o in report.ops:
        assert 0 <= o["l3_hit_rate"] <= 1
        # the op's roofline counts its compulsory bytes at the peak DDR bandwidth
        assert o["roofline_seconds"] >= o["compulsory_bytes"] / report.peak_bytes_per_s * 0.999
    text = report.table()
    assert "DDR MB" in text and linears[0]["mapping"] in text and "served on chip" in text


def test_table_header_names_every_input(report):
    """The header holds every input that decides the result; the columns have a legend; the
    method line names each approximation with its checked bound."""
    from prodigy_sim.simulation import STEADY_STATE_BOUND

    text = report.table()
    head = "\n".join(report.header())
    for want in ("smollm2-135m", "decode step", "2 sequence(s)", "256 tokens of context",
                 "weights tai4/32 e8m0", "LM head float8_e4m3fn", "activations float8_e4m3fn",
                 "KV cache float8_e4m3fn", "sparsity none", "prodigy-t16128",
                 "no field overridden", "16 of 128 cores at 5.70 GHz",
                 "16 x 64-bit DDR5-7200", "I/O clock 3600 MHz", "64-entry queues"):
        assert want in head, want
    for col in ("x = how many times", "time us =", "vMFLOP =", "vfl% =", "L3% =", "mapping"):
        assert col in text, col
    assert f"checked within {STEADY_STATE_BOUND:.0%}" in text
    assert "{" not in text.splitlines()[-1]          # no raw Python dict
    assert report.formats["KV cache"] == "float8_e4m3fn"


def test_header_lists_overridden_fields():
    from prodigy_sim.hardware import resolve_hardware
    from prodigy_sim.lowering import lower_model
    from prodigy_sim.reports import report_lowered

    cfg, _ = resolve_hardware("prodigy-t16128", ["memory.channels=8"])
    sc = Scenario(model="smollm2-135m", phase="decode", batch=1, context_length=64)
    lowered = lower_model(sc.card(), sc, cfg, cores=8)
    rep = report_lowered(lowered, cfg)
    assert rep.preset == "prodigy-t16128"
    assert rep.hardware_changes == ("memory.channels 16 -> 8",)
    assert "memory.channels 16 -> 8" in rep.table() and "8 x 64-bit DDR5-7200" in rep.table()


def test_header_lists_a_speed_change_as_the_one_override_given():
    """--set memory.dram.timing=6400 is one change in the header (the timing fields it implies
    are counted, not listed one by one)."""
    from prodigy_sim.hardware import resolve_hardware
    from prodigy_sim.lowering import lower_model
    from prodigy_sim.reports import report_lowered

    cfg, given = resolve_hardware("prodigy-t16128", ["memory.dram.timing=6400"])
    sc = Scenario(model="smollm2-135m", phase="decode", batch=1, context_length=64)
    rep = report_lowered(lower_model(sc.card(), sc, cfg, cores=8), cfg)
    (change,) = given.changes
    assert rep.hardware_changes == (change.describe(),)
    assert change.describe().startswith("memory.dram.timing DDR5_7200AN -> DDR5_6400AN (implies ")
    head = rep.table().split("\n\n")[0]
    assert "1 field(s) overridden: memory.dram.timing" in head and "nCL" not in head
    assert "DDR5-6400" in head
