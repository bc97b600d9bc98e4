"""Loading all-MiniLM-L6-v2 (a 6-layer BERT) from its ``model.safetensors``.

Checkpoint names (Hugging Face ``BertModel``) map to the card's stable names:

============================================================  ==============================
``embeddings.{word,position,token_type}_embeddings.weight``   ``embeddings.{word,...}``
``embeddings.LayerNorm.{weight,bias}``                         ``embeddings.norm[.bias]``
``encoder.layer.i.attention.self.{query,key,value}.*``         ``layers.i.attn.{q,k,v}_proj*``
``encoder.layer.i.attention.output.dense.*``                   ``layers.i.attn.o_proj*``
``encoder.layer.i.attention.output.LayerNorm.*``               ``layers.i.attn_norm*``
``encoder.layer.i.intermediate.dense.*``                       ``layers.i.mlp.up_proj*``
``encoder.layer.i.output.dense.*``                             ``layers.i.mlp.down_proj*``
``encoder.layer.i.output.LayerNorm.*``                         ``layers.i.mlp_norm*``
``pooler.dense.*``                                             ``pooler.dense*``
============================================================  ==============================

``embeddings.position_ids`` (an index buffer, not a weight) is skipped.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from prodigy_sim._datafile import load_json, read_text
from prodigy_sim.errors import ModelFileError
from prodigy_sim.models import load_card
from prodigy_sim.realmodels._files import checkpoint_errors, minilm_dir, optional_module
from prodigy_sim.realmodels._weights import ModelWeights, check_config, check_tensors, read_only

__all__ = ["load_minilm", "minilm_weights", "MINILM_CARD"]

MINILM_CARD = "all-minilm-l6-v2"
_BUFFERS = {"embeddings.position_ids"}
_FIXED = {
    "embeddings.word_embeddings.weight": "embeddings.word",
    "embeddings.position_embeddings.weight": "embeddings.position",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type",
    "embeddings.LayerNorm.weight": "embeddings.norm",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    "pooler.dense.weight": "pooler.dense",
    "pooler.dense.bias": "pooler.dense.bias",
}
_LAYER = {
    "attention.self.query": "attn.q_proj",
    "attention.self.key": "attn.k_proj",
    "attention.self.value": "attn.v_proj",
    "attention.output.dense": "attn.o_proj",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "mlp.up_proj",
    "output.dense": "mlp.down_proj",
    "output.LayerNorm": "mlp_norm",
}
_LAYER_RE = re.compile(r"^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")


def stable_name(checkpoint_name: str) -> str:
    """The card name of a BERT checkpoint tensor (unknown names are returned unchanged, so the
    card check reports them as unexpected)."""
    if checkpoint_name in _FIXED:
        return _FIXED[checkpoint_name]
    m = _LAYER_RE.match(checkpoint_name)
    if m and m.group(2) in _LAYER:
        base = f"layers.{int(m.group(1))}.{_LAYER[m.group(2)]}"
        return base + (".bias" if m.group(3) == "bias" else "")
    return checkpoint_name


def checkpoint_name(stable: str) -> str:
    """The Hugging Face BERT name of a card tensor (inverse of :func:`stable_name`)."""
    fixed = {v: k for k, v in _FIXED.items()}
    if stable in fixed:
        return fixed[stable]
    parts = stable.split(".")
    if parts[0] == "layers" and len(parts) >= 3:
        bias = parts[-1] == "bias"
        rest = ".".join(parts[2:-1] if bias else parts[2:])
        inverse = {v: k for k, v in _LAYER.items()}
        if rest in inverse:
            return f"encoder.layer.{parts[1]}.{inverse[rest]}." + ("bias" if bias else "weight")
    return stable


def load_minilm(path: str | Path | None = None, card: str = MINILM_CARD) -> ModelWeights:
    """Load and check a BERT checkpoint (default: the installed all-MiniLM-L6-v2).

    Args:
        path: a ``.safetensors`` file; a ``config.json`` beside it, if present, is checked against
            the card too.
        card: model card name or path.

    Raises:
        ModelFileError: unreadable file, missing / unexpected tensor, wrong shape, or a config
            value that contradicts the card.
    """
    safe_open = optional_module("safetensors").safe_open
    file = Path(path) if path is not None else minilm_dir() / "model.safetensors"
    model_card = load_card(card)
    with checkpoint_errors(file, "safetensors file"):
        with safe_open(str(file), framework="numpy") as f:
            raw_names = [k for k in f.keys() if k not in _BUFFERS]
            mapping = {stable_name(k): k for k in raw_names}
            shapes = {s: tuple(f.get_slice(k).get_shape()) for s, k in mapping.items()}
            labels = {t.name: checkpoint_name(t.name) for t in model_card.tensors()}
            check_tensors(shapes, model_card, file, {**labels, **mapping})
            tensors = {s: f.get_tensor(k) for s, k in mapping.items()}
    config = file.parent / "config.json"
    if config.is_file():
        cfg = load_json(read_text(config, what="config.json", error=ModelFileError),
                        source=config, error=ModelFileError)
        if not isinstance(cfg, dict):
            raise ModelFileError(f"{config}: a config.json must be a mapping of fields (got "
                                 f"{type(cfg).__name__})")
        check_config({
            "hidden_size": cfg.get("hidden_size"),
            "intermediate_size": cfg.get("intermediate_size"),
            "num_layers": cfg.get("num_hidden_layers"),
            "num_attention_heads": cfg.get("num_attention_heads"),
            "vocab_size": cfg.get("vocab_size"),
            "norm_eps": cfg.get("layer_norm_eps"),
            "activation": cfg.get("hidden_act"),
        }, model_card, config)
    return ModelWeights(card=model_card, tensors=read_only(tensors), source=file)


@functools.lru_cache(maxsize=1)
def minilm_weights() -> ModelWeights:
    """The installed all-MiniLM-L6-v2, loaded once per process (cached by this function)."""
    return load_minilm()
