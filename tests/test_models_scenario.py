"""Scenarios: validation of fields, of the scenario against its card, and built-in files."""

import pytest

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import (
    Formats,
    Scenario,
    check_scenario,
    load_card,
    load_scenario,
    scenario_names,
)
from prodigy_sim.numerics import Storage


def _write(tmp_path, text):
    path = tmp_path / "scn.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_scenarios_load():
    names = scenario_names()
    assert "switch-1.6t-decode-tai4" in names and len(names) == 5
    for name in names:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.card().name == scenario.model


def test_context_beyond_max_positions_names_file_and_field(tmp_path):
    path = _write(tmp_path, "model: llama-2-7b\nphase: decode\ncontext_length: 5000\n")
    with pytest.raises(ConfigError, match=rf"{path}: 'context_length' = 5000 exceeds "
                                          r"max_position_embeddings = 4096"):
        load_scenario(path)


def test_unknown_format_gives_numerics_error_with_field(tmp_path):
    path = _write(tmp_path, "model: llama-2-7b\nphase: decode\ncontext_length: 8\n"
                            "formats:\n  weights: tai3\n")
    with pytest.raises(ConfigError, match=rf"{path}: 'formats.weights.format': .*unknown format "
                                          r"'tai3'; built-in formats: .*tai4"):
        load_scenario(path)


def test_unknown_kv_format_and_preset(tmp_path):
    path = _write(tmp_path, "model: llama-2-7b\nphase: decode\ncontext_length: 8\n"
                            "hardware: h100\nformats:\n  kv_cache: fp7\n")
    with pytest.raises(ConfigError, match=r"'formats.kv_cache'.*'hardware'.*unknown hardware "
                                          r"preset 'h100'"):
        load_scenario(path)


def test_phase_needs_its_length():
    with pytest.raises(ValueError, match="prefill' needs 'sequence_length'"):
        Scenario(model="llama-2-7b", phase="prefill", context_length=8)
    with pytest.raises(ValueError, match="decode' needs 'context_length'"):
        Scenario(model="llama-2-7b", phase="decode")


def test_decode_on_encoder_only_model_refused():
    scenario = Scenario(model="bert-base-uncased", phase="decode", context_length=16)
    with pytest.raises(ConfigError, match=r"x.yaml: 'phase': model 'bert-base-uncased' is "
                                          "encoder-only"):
        check_scenario(scenario, load_card("bert-base-uncased"), source="x.yaml")


def test_unknown_model_in_scenario_file(tmp_path):
    path = _write(tmp_path, "model: gpt-5\nphase: decode\ncontext_length: 8\n")
    with pytest.raises(ConfigError, match=rf"{path}: 'model': unknown model card 'gpt-5'"):
        load_scenario(path)


def test_unknown_scenario_lists_known():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*llama-2-7b-decode-tai4"):
        load_scenario("nope")


def test_sparsity_normalized_and_checked():
    assert Scenario(model="x", phase="decode", context_length=1, sparsity="4:8").sparsity == "8:4"
    assert Scenario(model="x", phase="decode", context_length=1, sparsity="2:4").sparsity == "4:2"
    with pytest.raises(ValueError, match="'sparsity' must be 'none' or look like '8:4'"):
        Scenario(model="x", phase="decode", context_length=1, sparsity="half")


def test_weight_format_defaults_and_wide_formats():
    assert Storage.model_validate("tai4").label() == "tai4/32 e8m0"
    assert Storage.model_validate({"format": "bfloat16"}).scale == "none"
    with pytest.raises(ValueError, match="bfloat16 is stored unscaled"):
        Storage.model_validate({"format": "bfloat16", "scale": "e8m0"})
    f = Formats()
    assert f.for_class("expert").fmt.name == "tai4"
    assert f.for_class("norm").fmt.name == "float32"
    assert f.for_class("position").fmt.name == "float8_e4m3fn"
    assert Formats(mlp="int4").for_class("mlp").fmt.name == "int4"
    assert Formats(mlp="int4").for_class("attention").fmt.name == "tai4"


def test_encoder_length_only_for_encoder_decoder():
    scenario = Scenario(model="llama-2-7b", phase="decode", context_length=8, encoder_length=8)
    with pytest.raises(ConfigError, match="'encoder_length': only for encoder-decoder"):
        check_scenario(scenario, load_card("llama-2-7b"))
