"""The paged KV cache: fixed blocks of tokens, as many as fit the socket's DDR.

A sequence holding ``n`` tokens of keys and values uses ``ceil(n / block_tokens)`` blocks (vLLM's
PagedAttention, 16 tokens per block by default). The number of blocks (:func:`kv_cache_blocks`)
is what the DDR capacity leaves after the weights and the peak activations, counted by the
footprint functions of :mod:`prodigy_sim.models`::

    blocks = (capacity - weight bytes - activation bytes) // (block_tokens * KV bytes per token)

with KV bytes per token = ``2 x decoder layers x KV heads x head size x bits / 8`` and the
activations the larger of a prefill of ``max_prefill_tokens`` tokens and a decode of
``max_batch`` sequences at the longest context.
"""

from __future__ import annotations

from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.models import (
    Formats,
    Scenario,
    activation_bytes,
    footprint_report,
    kv_cache_bytes,
    load_card,
)

__all__ = ["KvBudget", "kv_cache_blocks", "BlockPool"]


@dataclass(frozen=True)
class KvBudget:
    """How the DDR capacity is split (bytes) and how many KV blocks remain."""

    capacity_bytes: int
    weight_bytes: int
    activation_bytes: int
    kv_bytes_per_token: int
    block_tokens: int
    blocks: int

    @property
    def kv_bytes(self) -> int:
        return self.blocks * self.block_tokens * self.kv_bytes_per_token


def kv_cache_blocks(model: str, *, capacity_bytes: int, formats: Formats | None = None,
                    sparsity: str = "none", block_tokens: int = 16, max_batch: int = 64,
                    max_prefill_tokens: int = 2048, max_context: int | None = None) -> KvBudget:
    """The KV blocks that fit ``capacity_bytes`` beside ``model``'s weights and activations."""
    card = load_card(model)
    formats = formats or Formats()
    longest = max_context or card.max_position_embeddings or max_prefill_tokens
    prefill = Scenario(model=model, phase="prefill", batch=1,
                       sequence_length=min(max_prefill_tokens, longest), formats=formats,
                       sparsity=sparsity)
    decode = Scenario(model=model, phase="decode", batch=max_batch, context_length=longest,
                      formats=formats, sparsity=sparsity)
    weights = footprint_report(card, formats, sparsity=sparsity).weight_bytes
    act = max(activation_bytes(card, prefill), activation_bytes(card, decode))
    per_token = kv_cache_bytes(card, 1, 1, formats.kv_cache.bits)
    free = capacity_bytes - weights - act
    if free < block_tokens * per_token:
        raise ConfigError(f"{card.name}: capacity {capacity_bytes / 1e9:.3f} GB leaves no room "
                          f"for a KV block after weights ({weights / 1e9:.3f} GB) and activations "
                          f"({act / 1e9:.3f} GB)")
    return KvBudget(capacity_bytes, weights, act, per_token, block_tokens,
                    free // (block_tokens * per_token))


class BlockPool:
    """Counts free KV blocks; sequences hold whole blocks."""

    def __init__(self, blocks: int, block_tokens: int = 16) -> None:
        if blocks < 1 or block_tokens < 1:
            raise ConfigError(f"a KV cache needs >= 1 block of >= 1 token (got {blocks} blocks "
                              f"of {block_tokens})")
        self.total = blocks
        self.block_tokens = block_tokens
        self.free = blocks

    @property
    def used(self) -> int:
        return self.total - self.free

    def blocks_for(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens."""
        return -(-tokens // self.block_tokens)

    def take(self, n: int) -> bool:
        """Take ``n`` blocks if free; False (and nothing taken) otherwise."""
        if n > self.free:
            return False
        self.free -= n
        return True

    def give(self, n: int) -> None:
        self.free += n
        if self.free > self.total:
            raise AssertionError("more KV blocks returned than taken")
