"""Loading SmolLM2-135M-Instruct (a LLaMA-style decoder) from its Q4_1 GGUF file.

The file (llama.cpp format, read with the ``gguf`` package's ``GGUFReader``) stores the linear
weights of the blocks as Q4_1 (blocks of 32 along the input axis: ``w = d * q + m`` with a 4-bit
``q`` and float16 ``d``, ``m``), the token embedding as Q8_0 and the norms as F32. Everything is
dequantized to float32 with ``gguf.quants.dequantize``; this float32 model *is* the reference (the
original bfloat16 weights are not in the package).

GGUF names map to the card's stable names::

    token_embd.weight            -> embed_tokens        (also the tied LM head)
    blk.i.attn_norm.weight       -> layers.i.attn_norm
    blk.i.attn_{q,k,v}.weight    -> layers.i.attn.{q,k,v}_proj
    blk.i.attn_output.weight     -> layers.i.attn.o_proj
    blk.i.ffn_norm.weight        -> layers.i.mlp_norm
    blk.i.ffn_{gate,up,down}.weight -> layers.i.mlp.{gate,up,down}_proj
    output_norm.weight           -> final_norm
    output.weight                -> lm_head             (absent when tied)

GGUF shapes are listed innermost-first (``ne0, ne1``); the numpy shape is the reverse, which is
the card's ``(N, K)``.

**RoPE permutation.** llama.cpp's converter reorders the rows of ``q_proj`` and ``k_proj`` inside
each head from Hugging Face's "rotate half" layout (row ``r`` pairs with ``r + d/2``) to the
interleaved layout llama.cpp rotates (row ``2i`` pairs with ``2i + 1``)::

    gguf = hf.reshape(heads, 2, d // 2, K).swapaxes(1, 2).reshape(N, K)

The loader undoes it (:func:`unpermute_rope`) so the weights are Hugging Face's and the forward
pass uses rotate-half RoPE (``_llama.py``). Getting this wrong leaves the model runnable but its
perplexity far higher, which the tests check.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from prodigy_sim.errors import ModelFileError
from prodigy_sim.models import ModelCard, load_card
from prodigy_sim.realmodels._files import checkpoint_errors, optional_module, smollm2_gguf_path
from prodigy_sim.realmodels._weights import ModelWeights, check_config, check_tensors, read_only

__all__ = ["load_smollm2", "smollm2_weights", "unpermute_rope", "gguf_metadata", "gguf_reader",
           "SMOLLM2_CARD"]

SMOLLM2_CARD = "smollm2-135m"
_FIXED = {"token_embd.weight": "embed_tokens", "output_norm.weight": "final_norm",
          "output.weight": "lm_head"}
_LAYER = {
    "attn_norm": "attn_norm", "attn_q": "attn.q_proj", "attn_k": "attn.k_proj",
    "attn_v": "attn.v_proj", "attn_output": "attn.o_proj", "ffn_norm": "mlp_norm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_LAYER_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.weight$")


def stable_name(gguf_name: str) -> str:
    """The card name of a GGUF tensor (unknown names come back unchanged)."""
    if gguf_name in _FIXED:
        return _FIXED[gguf_name]
    m = _LAYER_RE.match(gguf_name)
    if m and m.group(2) in _LAYER:
        return f"layers.{int(m.group(1))}.{_LAYER[m.group(2)]}"
    return gguf_name


def checkpoint_name(stable: str) -> str:
    """The GGUF name of a card tensor (inverse of :func:`stable_name`)."""
    fixed = {v: k for k, v in _FIXED.items()}
    if stable in fixed:
        return fixed[stable]
    parts = stable.split(".", 2)
    inverse = {v: k for k, v in _LAYER.items()}
    if parts[0] == "layers" and len(parts) == 3 and parts[2] in inverse:
        return f"blk.{parts[1]}.{inverse[parts[2]]}.weight"
    return stable


def unpermute_rope(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's RoPE row permutation of a q/k weight ``(heads * d, K)``.

    Row ``2i + j`` of a GGUF head becomes row ``j * d/2 + i`` (``j`` in {0, 1}).
    """
    n, k = w.shape
    d = n // heads
    return w.reshape(heads, d // 2, 2, k).swapaxes(1, 2).reshape(n, k)


@functools.lru_cache(maxsize=2)
def gguf_reader(file: Path):
    """A ``GGUFReader`` of ``file`` (memory-mapped), cached: parsing the metadata of the 49152-token
    vocabulary takes seconds, and the weights and the tokenizer both need it."""
    reader = optional_module("gguf").GGUFReader
    with checkpoint_errors(file, "GGUF file"):
        return reader(file)


def gguf_metadata(reader, key: str, file: Path, required: bool = True):
    """The decoded value of GGUF metadata ``key`` (None if absent and not required)."""
    field = reader.fields.get(key)
    if field is None:
        if required:
            raise ModelFileError(f"{file}: GGUF metadata key {key!r} is missing")
        return None
    with checkpoint_errors(file, "GGUF file", f"metadata {key!r}"):
        return field.contents()


def _check_metadata(reader, card: ModelCard, file: Path) -> None:
    arch = gguf_metadata(reader, "general.architecture", file)
    if arch != "llama":
        raise ModelFileError(f"{file}: general.architecture is {arch!r}, expected 'llama'")

    def meta(key: str):
        return gguf_metadata(reader, f"llama.{key}", file, required=False)

    check_config({
        "num_layers": meta("block_count"),
        "hidden_size": meta("embedding_length"),
        "intermediate_size": meta("feed_forward_length"),
        "num_attention_heads": meta("attention.head_count"),
        "num_key_value_heads": meta("attention.head_count_kv"),
        "rope_theta": meta("rope.freq_base"),
        "norm_eps": meta("attention.layer_norm_rms_epsilon"),
        "vocab_size": meta("vocab_size"),
    }, card, file)
    rope_dims = meta("rope.dimension_count")
    if rope_dims is not None and rope_dims != card.head_size:
        raise ModelFileError(f"{file}: llama.rope.dimension_count = {rope_dims}, but the card's "
                             f"head size is {card.head_size} (partial RoPE is not supported)")


def load_smollm2(path: str | Path | None = None, card: str = SMOLLM2_CARD) -> ModelWeights:
    """Load, dequantize, un-permute and check a LLaMA GGUF file (default: SmolLM2-135M-Instruct).

    Raises:
        ModelFileError: unreadable file, wrong architecture or hyperparameters, missing /
            unexpected tensor, or a wrong shape.
    """
    dequantize = optional_module("gguf.quants").dequantize
    file = Path(path).resolve() if path is not None else smollm2_gguf_path()
    model_card = load_card(card)
    reader = gguf_reader(file)
    _check_metadata(reader, model_card, file)
    by_name = {stable_name(t.name): t for t in reader.tensors}
    shapes = {s: tuple(int(d) for d in reversed(t.shape)) for s, t in by_name.items()}
    labels = {t.name: checkpoint_name(t.name) for t in model_card.tensors()}
    check_tensors(shapes, model_card, file, {**labels, **{s: t.name for s, t in by_name.items()}})
    tensors = {}
    for name, t in by_name.items():
        with checkpoint_errors(file, "GGUF file", f"tensor {t.name!r}"):
            w = np.asarray(dequantize(t.data, t.tensor_type),
                           dtype=np.float32).reshape(shapes[name])
        if name.endswith("attn.q_proj"):
            w = unpermute_rope(w, model_card.num_attention_heads)
        elif name.endswith("attn.k_proj"):
            w = unpermute_rope(w, model_card.kv_heads)
        tensors[name] = w
    return ModelWeights(card=model_card, tensors=read_only(tensors), source=file)


@functools.lru_cache(maxsize=1)
def smollm2_weights() -> ModelWeights:
    """The installed SmolLM2-135M-Instruct, loaded once per process (cached by this function)."""
    return load_smollm2()
