"""``prodigy-sim serve`` and ``prodigy-sim parallel``: output, files, errors (exit 2)."""

import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.serving import SimulatedStepTimes, default_decode_buckets


def fake(scenario, config):
    if scenario.phase == "decode":
        return 2e-3 + 1e-4 * scenario.batch + 1e-8 * scenario.batch * scenario.context_length
    return 3e-3 + 1e-5 * scenario.batch * scenario.sequence_length


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A complete step-time table for max batch 8 from a stand-in simulator, so the command
    simulates nothing."""
    st = SimulatedStepTimes("llama-2-7b", max_batch=8, simulate=fake, core_subset="auto")
    for b in default_decode_buckets(8):
        for c in st.context_grid:
            st.decode_point(b, c)
    for n in (64, 128, 256, 512, 1024, 2048, 4096):
        st.prefill_point(n)
    return st.save(tmp_path_factory.mktemp("steps") / "steps.json"), st.simulations


SMALL = ["--requests", "40", "--rate", "20", "--prompt", "uniform:20,300", "--output",
         "fixed:6", "--max-batch", "8", "--quiet"]


def test_serve_prints_the_table(table, capsys):
    path, points = table
    assert main(["serve", *SMALL, "--step-table", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{points} step-time points simulated or loaded" in out
    assert "time to first token ms" in out and "40 finished" in out


def test_serve_json_csv_plots_and_sweep(table, tmp_path, capsys):
    path, _ = table
    args = ["serve", *SMALL, "--step-table", str(path), "--rates", "5,50", "--json",
            "--csv", str(tmp_path / "r.csv"), "--plot", str(tmp_path / "plots"),
            "--save-trace", str(tmp_path / "trace.csv"), "--chunk-tokens", "256"]
    assert main(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["rate_per_s"] for row in data["sweep"]] == [5.0, 50.0]
    assert data["summary"]["requests"] == 40 and data["config"]["chunk_tokens"] == 256
    assert (tmp_path / "r.csv").read_text().count("\n") == 41
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["latency_vs_load.png", "latency_vs_load.svg", "timeline.png",
                     "timeline.svg"]
    assert main(["serve", "--trace", str(tmp_path / "trace.csv"), "--max-batch", "8",
                 "--step-table", str(path), "--quiet", "--kv-blocks", "64"]) == 0
    assert "64 blocks of 16 tokens" in capsys.readouterr().out


def test_serve_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "t.csv"
    bad.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,2\n1,ten,2\n")
    assert main(["serve", "--trace", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"prodigy-sim serve: error: {bad}:3: 'prompt_tokens' must be a "
                           "number (got 'ten')")
    assert main(["serve", "--prompt", "gauss:3", "--quiet"]) == 2
    assert "prompt distribution 'gauss:3'" in capsys.readouterr().err
    assert main(["serve", "--max-batch", "64", "--chunk-tokens", "32", "--quiet"]) == 2
    assert "'chunk_tokens' (32) must exceed 'max_batch'" in capsys.readouterr().err


def test_parallel_reports(capsys):
    assert main(["parallel", "--systems"]) == 0
    assert "256pb-t16128" in capsys.readouterr().out
    assert main(["parallel", "--show", "2s-t16128"]) == 0
    assert "assumption" in capsys.readouterr().out
    assert main(["parallel", "--brain-scale", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert [c["weights"] for c in cases] == ["bfloat16", "float8_e4m3fn", "tai4", "tai2"]
    assert main(["parallel", "--model", "llama-2-70b", "--tp", "16"]) == 2
    assert "needs tp x pp x ep = 16 sockets" in capsys.readouterr().err
    assert main(["parallel", "--system", "nope"]) == 2


@pytest.mark.slow
def test_parallel_speedup_table(capsys):
    assert main(["parallel", "--model", "bert-base", "--phase", "prefill", "--context", "128",
                 "--tp", "1,2", "--system", "2s-t16128"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out and "25 all-reduces of 196,608 bytes" in out
