"""Issue 14 reproducers: corrupted checkpoint files (built inside the tests) and a missing
``models`` extra. Every failure is a one-line ModelFileError naming the file (and the field), or a
MissingDependencyError saying what to install - never a third-party exception."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prodigy_sim.errors import MissingDependencyError, ModelFileError
from prodigy_sim.realmodels import load_minilm, load_smollm2, load_smollm2_tokenizer

gguf = pytest.importorskip("gguf")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

TINY_BERT = """\
name: tiny-bert
family: bert
source: a test card
hidden_size: 8
intermediate_size: 16
num_layers: 1
num_attention_heads: 2
vocab_size: 16
max_position_embeddings: 8
type_vocab_size: 2
norm: layernorm
norm_eps: 1.0e-12
activation: gelu
mlp: plain
position_embedding: learned
attention_bias: true
mlp_bias: true
pooler: true
"""


def write_gguf(path, tokens=("a", "b", "ab", "<|endoftext|>"), merges=("a b",), model="gpt2"):
    """A small GGUF file: llama metadata, a byte-level BPE tokenizer and one F32 tensor."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_string("tokenizer.ggml.model", model)
    w.add_array("tokenizer.ggml.tokens", list(tokens))
    w.add_array("tokenizer.ggml.merges", list(merges))
    w.add_array("tokenizer.ggml.token_type", [1] * (len(tokens) - 1) + [3])
    w.add_tensor("output_norm.weight", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def tiny_bert(tmp_path):
    """A safetensors checkpoint matching a tiny BERT card (so the loader reaches config.json)."""
    from prodigy_sim.models import load_card
    from prodigy_sim.realmodels._minilm import checkpoint_name

    card = tmp_path / "tiny-bert.yaml"
    card.write_text(TINY_BERT)
    tensors = {checkpoint_name(t.name): np.zeros(t.shape, np.float32)
               for t in load_card(card).tensors()}
    path = tmp_path / "model.safetensors"
    safetensors_numpy.save_file(tensors, str(path))
    return path, card


def test_tiny_checkpoints_load(tmp_path, tiny_bert):
    """The files the other tests corrupt are valid to start with."""
    path, card = tiny_bert
    assert load_minilm(path, card=str(card)).card.name == "tiny-bert"
    tok = load_smollm2_tokenizer(write_gguf(tmp_path / "ok.gguf"))
    assert tok.encode("ab").tokens == ["ab"]


def test_gguf_truncated_to_24_bytes(tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(write_gguf(tmp_path / "full.gguf").read_bytes()[:24])
    with pytest.raises(ModelFileError, match=rf"^{path}: not a readable GGUF file"):
        load_smollm2(path)
    with pytest.raises(ModelFileError, match=rf"^{path}: not a readable GGUF file"):
        load_smollm2_tokenizer(path)


def test_gguf_corrupted_metadata_string(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", model="gpt2")
    data = path.read_bytes()
    at = data.index(b"gpt2")
    path.write_bytes(data[:at] + b"\xff" + data[at + 1:])
    with pytest.raises(ModelFileError) as info:
        load_smollm2_tokenizer(path)
    assert str(info.value).startswith(f"{path}: not a readable GGUF file (metadata "
                                      "'tokenizer.ggml.model'): UnicodeDecodeError")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("merges", [("a z",), ("b b",)])
def test_tokenizer_merges_naming_unknown_tokens(tmp_path, capfd, merges):
    path = write_gguf(tmp_path / "t.gguf", merges=merges)
    with pytest.raises(ModelFileError, match=r"tokenizer.ggml.merges\[0\] = .*not in "
                                             r"tokenizer.ggml.tokens"):
        load_smollm2_tokenizer(path)
    assert "panicked" not in capfd.readouterr().err  # the tokenizers library was never asked


@pytest.mark.parametrize("config, needle", [
    (b"{not json", "config.json:1:2: not valid JSON"),
    (b'{"hidden_size": 8, "layer_norm_eps": "\xff"}', "config.json:1:39: config.json file is "
                                                      "not UTF-8"),
    (b"[1, 2, 3]", "config.json: a config.json must be a mapping of fields (got list)"),
    (b'{"layer_norm_eps": "tiny"}', "checkpoint says norm_eps = 'tiny', not a number"),
    (b'{"hidden_size": "8"}', "checkpoint says hidden_size = '8', model card 'tiny-bert' says 8"),
    (b'{"num_hidden_layers": 1' + b"0" * 5000 + b"}", "integer of 5001 characters"),
])
def test_bad_config_json(tiny_bert, config, needle):
    path, card = tiny_bert
    (path.parent / "config.json").write_bytes(config)
    with pytest.raises(ModelFileError) as info:
        load_minilm(path, card=str(card))
    assert needle in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(path.parent / "config.json"))


def test_corrupted_safetensors_names_the_file(tiny_bert):
    path, card = tiny_bert
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelFileError, match=rf"^{path}: not a readable safetensors file"):
        load_minilm(path, card=str(card))


def test_missing_models_extra_says_what_to_install(monkeypatch, tmp_path):
    for module in ("safetensors", "gguf", "gguf.quants", "tokenizers"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'prodigy-sim\[models\]'"):
        load_minilm(tmp_path / "model.safetensors")
    with pytest.raises(MissingDependencyError, match="optional package 'gguf'"):
        load_smollm2(tmp_path / "model.gguf")


def test_accuracy_without_the_models_extra_is_one_line():
    """In a new process (this one may hold the models already loaded)."""
    code = ("import sys\nfor m in ('safetensors', 'gguf', 'gguf.quants', 'tokenizers'):\n"
            "    sys.modules[m] = None\nfrom prodigy_sim.cli import main\n"
            "sys.exit(main(['accuracy', '--models', 'smollm2', '--formats', 'fp32', "
            "'--no-throughput', '--quiet']))\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "optional package 'gguf'" in done.stderr
    assert "pip install 'prodigy-sim[models]'" in done.stderr


def test_config_json_values_are_checked_as_json(tiny_bert):
    path, card = tiny_bert
    (path.parent / "config.json").write_text(json.dumps({"hidden_size": 8, "vocab_size": 16}))
    assert load_minilm(path, card=str(card)).card.hidden_size == 8
