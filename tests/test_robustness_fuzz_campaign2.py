"""Reproducers of the second fuzz campaign's findings: inputs that were accepted silently, ran
unbounded, or failed late with a message naming no field. Each is now a one-line
ProdigySimError (CLI: exit 2, no traceback) raised where the fact lives."""

import pytest

from prodigy_sim.errors import ConfigError, ProdigySimError, TraceError

SERVE = ["serve", "--model", "smollm2-135m", "--max-batch", "2", "--quiet", "--requests", "3",
         "--prompt", "fixed:16", "--output", "fixed:4"]


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path):
    from prodigy_sim._datafile import load_yaml, read_mapping

    path = tmp_path / "hw.yaml"
    path.write_text("name: a\ncores: 4\nname: b\n")
    with pytest.raises(ConfigError, match=r"hw.yaml:3:1: .*duplicate key 'name' \(first at "
                                          r"line 1\)"):
        read_mapping(path, what="hardware")
    # keys merged in by << may still be overridden
    data, _ = load_yaml("base: &b {x: 1}\nuse:\n  <<: *b\n  x: 2\n", source="m.yaml")
    assert data["use"] == {"x": 2}


def test_asm_validation_error_names_the_file_and_line(tmp_path, cli_error):
    path = tmp_path / "bad.s"
    path.write_text(".tile A shape=(64,128) fmt=float8_e4m3fn\n.tile W shape=(64,96) fmt=tai4\n"
                    ".acc C shape=(64,64)\nMMA C, A, W\n")
    cli_error(["asm", str(path), "-o", str(tmp_path / "o.bin")],
              f"{path}: program cannot run: line 4 (MMA)")


@pytest.mark.parametrize("extra, needle", [
    (["--chunk-tokens", "0"], "command line: '--chunk-tokens': Input should be greater than or "
                              "equal to 1 (got 0)"),
    (["--kv-blocks", "0"], "'--kv-blocks': Input should be greater than or equal to 1 (got 0)"),
    (["--weights", "nope"], "'--weights': unknown format 'nope'"),
    (["--kv-cache", "nope"], "'--kv-cache': unknown format 'nope'"),
    (["--capacity-gb", "nan"], "argument --capacity-gb: must be a finite number > 0"),
    (["--rates", "1,inf"], "argument --rates: must be a finite number > 0 (got 'inf')"),
])
def test_serve_arguments_refused_in_one_line_naming_the_flag(cli_error, extra, needle):
    err = cli_error(SERVE + extra, needle)
    assert "validation error" not in err and "pydantic" not in err


def test_serve_requests_are_bounded_before_the_trace_is_built(tmp_path, cli_error):
    """--requests 100000000 built a 10^8-request trace (GBs) and ran for days."""
    from prodigy_sim.serving import MAX_REQUESTS, load_trace, poisson_trace

    cli_error([a if a != "3" else "100000000" for a in SERVE],
              "a trace needs 1..100000 requests (got 100000000)")
    assert len(poisson_trace(MAX_REQUESTS, 1.0, "fixed:1", "fixed:1")) == MAX_REQUESTS
    path = tmp_path / "big.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n" + "0,1,1\n" * (MAX_REQUESTS + 1))
    with pytest.raises(TraceError, match=r"big.csv: 100001 requests; a trace holds at most "
                                          r"100000"):
        load_trace(path)


def test_ddr_rate_and_clock_period_must_agree(cli_error):
    """--set ...rate_mts=1 changed the reported peak bandwidth, not the DDR timing."""
    from prodigy_sim.dram import ddr5_timing_preset
    from prodigy_sim.hardware.memory import scaled_ddr5_timing

    cli_error(["presets", "--show", "prodigy-t16128", "--set", "memory.dram.timing.rate_mts=1"],
              "'tck_ps' must be 2e6 / rate_mts = 2e6 / 1 ps rounded down or up (2000000) "
              "(got 277)")
    for rate in (4800, 5600, 6400, 7200):  # the bins' truncated periods (416, 357, 312, 277)
        ddr5_timing_preset(rate)
    assert scaled_ddr5_timing(8800).tck_ps == 227
    with pytest.raises(ValueError, match="'tck_ps' must be .* \\(416 or 417\\) \\(got 418\\)"):
        ddr5_timing_preset(4800).model_validate({**ddr5_timing_preset(4800).model_dump(),
                                                 "tck_ps": 418})


def test_ddr_capacity_below_one_interleave_run_per_subchannel(cli_error):
    cli_error(["presets", "--show", "prodigy-t16128", "--set", "memory.capacity_bytes=1"],
              "'capacity_bytes' must be >= 2048 bytes: one 'interleave_bytes' (64) run on each "
              "of the 32 32-bit subchannels (got 1)")


@pytest.mark.parametrize("argv, needle", [
    (SERVE + ["--rates", ""], "argument --rates: expected numbers separated by commas, none "
                              "empty (got '')"),
    (SERVE + ["--rates", "1,,2"], "argument --rates: expected numbers"),
    (["parallel", "--tp", ""], "argument --tp: expected integers separated by commas"),
    (["parallel", "--tp", ","], "argument --tp: expected integers separated by commas"),
    (["parallel", "--tp", "1,0"], "argument --tp: must be >= 1 (got '0')"),
    (SERVE + ["--workers", "1000"], "'workers' must be in 1.."),
])
def test_empty_lists_and_too_many_workers_are_refused(cli_error, argv, needle):
    cli_error(argv, needle)


def test_sweep_workers_are_bounded(tmp_path, cli_error):
    from prodigy_sim.simulation import RunCache

    spec = tmp_path / "ok.yaml"
    spec.write_text("name: fz\ncompute: [footprint]\n"
                    "fixed: {model: smollm2-135m, phase: decode, context: 64}\n"
                    "grid: {batch: [1, 2]}\n")
    cli_error(["sweep", str(spec), "--workers", "1000", "--quiet", "--no-plots", "--out",
               str(tmp_path / "o")], "'workers' must be in 1..", "(got 1000)")
    with pytest.raises(ConfigError, match="'workers' must be in 1.."):
        RunCache(workers=1000)


@pytest.mark.parametrize("value", ["true", "'576'", "576.0"])
def test_card_integers_are_not_coerced(tmp_path, value):
    """hidden_size: true (-> 1) or '576' (-> 576) loaded; a card's integers are strict."""
    from prodigy_sim.models import load_card
    from prodigy_sim.models.card import named_files

    card = named_files("cards")["smollm2-135m"].read_text()
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(f"hidden_size: {value}" if line.startswith("hidden_size:")
                              else line for line in card.splitlines()) + "\n")
    with pytest.raises(ProdigySimError, match=r"c.yaml.*'hidden_size': Input should be a valid "
                                              r"integer"):
        load_card(path)


@pytest.mark.parametrize("fields, needle", [
    ({"head_dim": 27}, "'head_dim': the head size 27 must be a multiple of 32, at most 256"),
    ({"hidden_size": 1, "num_attention_heads": 1, "num_key_value_heads": 1},
     "'hidden_size': 1 is not a multiple of the 32-element scale block of the tai4 weights"),
    ({"vocab_size": 1}, "'vocab_size': 1 is not a multiple of 16"),
])
def test_cards_the_kernels_cannot_tile_name_the_field(tmp_path, cli_error, fields, needle):
    """These failed in the lowering with messages about 'tensor 2' or a mapping."""
    from prodigy_sim.models.card import named_files

    lines = named_files("cards")["smollm2-135m"].read_text().splitlines()
    lines = [line for line in lines if line.split(":")[0] not in fields]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines + [f"{k}: {v}" for k, v in fields.items()]) + "\n")
    cli_error(["simulate", "--model", str(path), "--context", "64", "--quiet"],
              "cannot be lowered", needle)


def test_experts_beyond_the_routers_row_name_the_field(tmp_path, cli_error):
    """A million experts failed with 'tile LT (2000000 bytes) ends beyond ...'."""
    from prodigy_sim.models.card import named_files

    lines = named_files("cards")["mixtral-8x7b"].read_text().splitlines()
    lines = [line for line in lines if not line.startswith("num_experts:")]
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(lines + ["num_experts: 1000000"]) + "\n")
    cli_error(["simulate", "--model", str(path), "--context", "64", "--quiet"],
              "cannot be lowered", "'num_experts': the router's top-k takes a row of 10000000 "
                                   "bytes for 1000000 experts")


def test_batch_beyond_the_kv_cache_rows_names_the_fields(cli_error):
    cli_error(["simulate", "--model", "smollm2-135m", "--context", "64", "--batch", "100000000",
               "--quiet"], "'batch' x 'context_length': 100000000 sequences x 3 KV heads x 64 "
                           "tokens = 19200000000 KV-cache rows")


def test_constant_dma_window_outside_its_tensor_is_refused_before_simulating(tmp_path,
                                                                            cli_error):
    """128 cores x 256 DMAs then one out-of-bounds window: reported after 58 s of DDR
    simulation; a constant window is now checked by validate."""
    path = tmp_path / "oob.s"
    path.write_text(".tensor X shape=(64,1024) fmt=float8_e4m3fn\n"
                    ".tile A shape=(64,128) fmt=float8_e4m3fn\n"
                    "LOOP r1, 256, 1\n  DMA.LD A, X, 0, 0\nENDLOOP\nDMA.LD A, X, 0, 1000\n")
    err = cli_error(["run", str(path)], "program cannot run: line 6 (DMA.LD): window rows "
                                        "0..63, cols 1000..1127 is outside tensor X of shape "
                                        "(64,1024)")
    assert "core " not in err  # found by validate, not by a core at run time
