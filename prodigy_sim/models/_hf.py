"""Model cards from Hugging Face ``config.json`` files of LLaMA-family and BERT-family models.

The fields map onto :class:`~prodigy_sim.models.card.ModelCard` as follows (HF defaults of
``LlamaConfig`` / ``MistralConfig`` / ``BertConfig`` where a field is absent):

==========================  ===========================  ===================================
card                        llama, mistral, mixtral      bert
==========================  ===========================  ===================================
family                      llama                        bert
hidden_size                 hidden_size                  hidden_size
intermediate_size           intermediate_size            intermediate_size
num_layers                  num_hidden_layers            num_hidden_layers
num_attention_heads         num_attention_heads          num_attention_heads
num_key_value_heads         num_key_value_heads (= heads)  -
head_dim                    head_dim (if given)          -
vocab_size                  vocab_size                   vocab_size
max_position_embeddings     max_position_embeddings      max_position_embeddings
norm, norm_eps              rmsnorm, rms_norm_eps        layernorm, layer_norm_eps (1e-12)
activation                  hidden_act (silu)            hidden_act (gelu)
mlp                         gated                        plain
position_embedding          rope, rope_theta (1e4)       learned (type "absolute" only)
tie_word_embeddings         tie_word_embeddings (false)  -
type_vocab_size, pooler     -                            type_vocab_size (2), pooler (true:
                                                         the released checkpoints carry it)
attention_bias, mlp_bias    attention_bias, mlp_bias     true, true
num_experts                 num_local_experts (mixtral)  -
experts_per_token           num_experts_per_tok (2)      -
==========================  ===========================  ===================================

Fields that do not change the weights or the work the simulator models are ignored: dropout,
``rope_scaling`` (how positions are stretched), ``sliding_window`` (Mistral attends to at most that
many tokens; the simulator attends to the whole context, an upper bound), token ids, dtypes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prodigy_sim.errors import ConfigError

__all__ = ["HF_MODEL_TYPES", "is_hf_config", "card_data_from_hf"]

HF_MODEL_TYPES = ("llama", "mistral", "mixtral", "bert")
"""``model_type`` values of the configs that can be read."""

_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_new": "gelu",
                "gelu_fast": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu"}


def is_hf_config(path: Path, data: dict) -> bool:
    """True if ``data`` (read from ``path``) is a Hugging Face model config, not a card: it has a
    ``model_type``, or the file is named ``config.json`` and has no card ``family``."""
    return "model_type" in data or (path.name == "config.json" and "family" not in data)


def _card_name(path: Path, data: dict) -> str:
    """A card name from ``_name_or_path`` (``meta-llama/Llama-2-7b-hf`` -> ``llama-2-7b-hf``),
    else the folder of a ``config.json``, else the file stem; lowercased, other characters
    replaced by ``-``."""
    raw = str(data.get("_name_or_path") or "").rstrip("/").split("/")[-1]
    if not raw:
        raw = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    name = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._")
    return name or "hf-model"


def card_data_from_hf(data: dict, *, source: Path) -> dict[str, Any]:
    """The fields of a model card for the Hugging Face config ``data`` read from ``source``.

    Raises :class:`ConfigError` naming the file and the field on an unsupported ``model_type``,
    a missing or mistyped size, an unknown activation or position embedding.
    """
    mtype = data.get("model_type")
    if mtype is None:
        raise ConfigError(f"{source}: 'model_type': missing (not a Hugging Face model config; "
                          f"supported model types: {', '.join(HF_MODEL_TYPES)})")
    if mtype not in HF_MODEL_TYPES:
        raise ConfigError(f"{source}: 'model_type': {mtype!r} is not supported (supported: "
                          f"{', '.join(HF_MODEL_TYPES)})")

    def need(key: str) -> Any:
        if key not in data:
            raise ConfigError(f"{source}: '{key}': missing (required for model_type {mtype!r})")
        return data[key]

    def opt(key: str, default: Any) -> Any:
        value = data.get(key)
        return default if value is None else value

    act_name = opt("hidden_act", "gelu" if mtype == "bert" else "silu")
    if act_name not in _ACTIVATIONS:
        raise ConfigError(f"{source}: 'hidden_act': {act_name!r} is not supported (known: "
                          f"{', '.join(_ACTIVATIONS)})")
    card: dict[str, Any] = {
        "name": _card_name(source, data),
        "source": f"Hugging Face config.json ({mtype}): {source}",
        "hidden_size": need("hidden_size"),
        "intermediate_size": need("intermediate_size"),
        "num_layers": need("num_hidden_layers"),
        "num_attention_heads": need("num_attention_heads"),
        "vocab_size": need("vocab_size"),
        "max_position_embeddings": need("max_position_embeddings"),
        "activation": _ACTIVATIONS[act_name],
    }
    if mtype == "bert":
        kind = opt("position_embedding_type", "absolute")
        if kind != "absolute":
            raise ConfigError(f"{source}: 'position_embedding_type': {kind!r} is not supported "
                              "(only 'absolute', learned positions)")
        card.update(family="bert", norm="layernorm", norm_eps=opt("layer_norm_eps", 1e-12),
                    mlp="plain", position_embedding="learned",
                    type_vocab_size=opt("type_vocab_size", 2), pooler=True,
                    attention_bias=True, mlp_bias=True)
        return card
    card.update(family="llama", norm="rmsnorm", norm_eps=opt("rms_norm_eps", 1e-6),
                mlp="gated", position_embedding="rope", rope_theta=float(opt("rope_theta", 1e4)),
                num_key_value_heads=opt("num_key_value_heads", card["num_attention_heads"]),
                tie_word_embeddings=opt("tie_word_embeddings", False),
                attention_bias=opt("attention_bias", False), mlp_bias=opt("mlp_bias", False))
    if data.get("head_dim") is not None:
        card["head_dim"] = data["head_dim"]
    if mtype == "mixtral":
        card.update(num_experts=need("num_local_experts"),
                    experts_per_token=opt("num_experts_per_tok", 2))
    return card
