"""What one socket holds under tensor, pipeline and expert parallelism.

Tensor parallelism (Megatron-LM, Shoeybi et al. arXiv:1909.08053): the QKV and gate/up
projections are split by columns (heads, KV heads and MLP width divided by ``tp``), the output
and down projections by rows, the embedding and the LM head by vocabulary rows. One socket then
runs exactly the model whose ``num_attention_heads``, ``num_key_value_heads``,
``intermediate_size`` and ``vocab_size`` are divided by ``tp`` (the hidden size and the head size
unchanged): :func:`shard_card`. Norm weights are replicated.

Pipeline parallelism splits the layers into ``pp`` consecutive stages, the first ``L mod pp``
stages one layer longer; stage 0 holds the embeddings, the last stage the final norm and the head
(:func:`stage_layers`). Expert parallelism divides each MoE layer's experts by ``ep``; the other
weights are replicated over the ``ep`` sockets.
"""

from __future__ import annotations

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import ModelCard, load_card

__all__ = ["shard_card", "stage_layers"]


def shard_card(card: ModelCard | str, tp: int = 1, ep: int = 1) -> ModelCard:
    """The model one socket runs under tensor parallelism ``tp`` and expert parallelism ``ep``.

    Raises :class:`ConfigError` naming the field when ``tp`` does not divide the heads, the KV
    heads, the MLP width or the vocabulary, or ``ep`` the experts.
    """
    card = load_card(card)
    if tp < 1 or ep < 1:
        raise ConfigError(f"'tp' and 'ep' must be >= 1 (got tp={tp}, ep={ep})")
    if ep > 1 and not card.num_experts:
        raise ConfigError(f"'ep' = {ep}: model {card.name!r} has no experts (expert "
                          "parallelism needs a mixture-of-experts model)")
    checks = {"num_attention_heads": card.num_attention_heads,
              "num_key_value_heads": card.kv_heads, "intermediate_size": card.intermediate_size,
              "vocab_size": card.vocab_size}
    for field, value in checks.items():
        if value % tp:
            raise ConfigError(f"tensor parallelism tp={tp} needs {field!r} of {card.name!r} "
                              f"divisible by {tp} (got {value})")
    if card.num_experts % ep:
        raise ConfigError(f"expert parallelism ep={ep} needs 'num_experts' of {card.name!r} "
                          f"divisible by {ep} (got {card.num_experts})")
    if card.num_experts and card.num_experts // ep < card.experts_per_token:
        raise ConfigError(f"expert parallelism ep={ep} leaves {card.num_experts // ep} experts "
                          f"per socket, fewer than the {card.experts_per_token} each token uses "
                          f"(experts_per_token of {card.name!r})")
    if tp == 1 and ep == 1:
        return card
    data = card.model_dump()
    suffix = (f"-tp{tp}" if tp > 1 else "") + (f"-ep{ep}" if ep > 1 else "")
    data.update(name=card.name + suffix, head_dim=card.head_size,
                num_attention_heads=card.num_attention_heads // tp,
                num_key_value_heads=card.kv_heads // tp,
                intermediate_size=card.intermediate_size // tp,
                vocab_size=card.vocab_size // tp, num_experts=card.num_experts // ep,
                published_parameters=None, published_parameters_note="",
                source=f"{card.source} - one socket's shard (tp={tp}, ep={ep})")
    return ModelCard.model_validate(data)


def stage_layers(num_layers: int, pp: int) -> tuple[tuple[int, ...], ...]:
    """The global layers of each of ``pp`` pipeline stages (consecutive, the first
    ``num_layers % pp`` stages one layer longer)."""
    if not 1 <= pp <= num_layers:
        raise ConfigError(f"pipeline parallelism pp={pp} needs 1 <= pp <= the model's "
                          f"{num_layers} layers")
    base, extra = divmod(num_layers, pp)
    out, start = [], 0
    for k in range(pp):
        n = base + (1 if k < extra else 0)
        out.append(tuple(range(start, start + n)))
        start += n
    return tuple(out)
