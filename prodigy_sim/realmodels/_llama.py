"""float32 numpy forward of a LLaMA decoder (SmolLM2): logits, perplexity, greedy decoding.

Per layer (pre-norm): ``x += O(attn(RoPE(Q n), RoPE(K n), V n))`` with ``n = RMSNorm(x)``, then
``x += Down(SiLU(Gate n) * Up n)`` with ``n = RMSNorm(x)``; a final RMSNorm and the LM head
(the embedding matrix when tied). Attention is causal, grouped-query (query head ``h`` uses
key/value head ``h // (heads / kv_heads)``), scaled by ``1/sqrt(d)``.

RoPE is Hugging Face's "rotate half" form: with ``inv_freq[i] = theta^(-2i/d)`` (``i < d/2``) and
angles ``pos * inv_freq`` repeated twice, ``q' = q * cos + rotate_half(q) * sin`` where
``rotate_half([a, b]) = [-b, a]`` (halves of the head). The GGUF loader un-permutes q/k for this.

A whole sequence is processed at once (teacher forcing): a 512-token window is one pass of
``(512, K)`` matmuls per layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from prodigy_sim.errors import ConfigError
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._ops import rms_norm, silu, softmax
from prodigy_sim.realmodels._weights import ModelWeights

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["rope_tables", "llama_hidden", "llama_logits", "token_nll", "perplexity",
           "greedy_generate"]


def rope_tables(positions: np.ndarray, head_dim: int, theta: float) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """``cos, sin`` float32 ``(T, head_dim)`` of the rotate-half RoPE for ``positions (T,)``."""
    inv_freq = (1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32)
                                             / np.float32(head_dim)))).astype(np.float32)
    ang = positions.astype(np.float32)[:, None] * inv_freq[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Apply RoPE to ``x (heads, T, d)``."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def llama_hidden(weights: ModelWeights, ids: np.ndarray,
                 linears: Linears | None = None) -> np.ndarray:
    """Final-normed hidden states ``(T, H)`` float32 of token ids ``(T,)``."""
    card, w = weights.card, weights
    lin = linears or Fp32Linears(weights)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ConfigError(f"ids must be a non-empty 1-D token sequence (got shape {ids.shape})")
    t = ids.size
    heads, kv, d = card.num_attention_heads, card.kv_heads, card.head_size
    eps = card.norm_eps
    cos, sin = rope_tables(np.arange(t), d, float(card.rope_theta or 0.0))
    causal = np.triu(np.full((t, t), np.finfo(np.float32).min, dtype=np.float32), k=1)
    scale = np.float32(1.0 / np.sqrt(d))
    x = w["embed_tokens"][ids]
    for i in range(card.num_layers):
        p = f"layers.{i}."
        n = rms_norm(x, w[p + "attn_norm"], eps)
        q = lin(p + "attn.q_proj", n).reshape(t, heads, d).transpose(1, 0, 2)
        k = lin(p + "attn.k_proj", n).reshape(t, kv, d).transpose(1, 0, 2)
        v = lin(p + "attn.v_proj", n).reshape(t, kv, d).transpose(1, 0, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        # Contiguous (heads, T, d) stacks, so numpy's batched matmul uses BLAS.
        q = np.ascontiguousarray(q)
        k = np.ascontiguousarray(np.repeat(k, heads // kv, axis=0).transpose(0, 2, 1))
        v = np.repeat(v, heads // kv, axis=0)
        probs = softmax(q @ k * scale + causal)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(t, heads * d)
        x = x + lin(p + "attn.o_proj", ctx)
        n = rms_norm(x, w[p + "mlp_norm"], eps)
        gated = silu(lin(p + "mlp.gate_proj", n)) * lin(p + "mlp.up_proj", n)
        x = x + lin(p + "mlp.down_proj", gated)
    return rms_norm(x, w["final_norm"], eps)


def llama_logits(weights: ModelWeights, ids: np.ndarray,
                 linears: Linears | None = None) -> np.ndarray:
    """Next-token logits ``(T, vocab)`` float32; the LM head is float32 (not quantized)."""
    head = weights.tensors.get("lm_head", weights["embed_tokens"])
    return llama_hidden(weights, ids, linears) @ head.T


def token_nll(weights: ModelWeights, ids: np.ndarray,
              linears: Linears | None = None) -> np.ndarray:
    """Negative log-likelihood (nats, float64) of tokens ``ids[1:]`` given their prefixes
    (teacher forcing): shape ``(T - 1,)``."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size < 2:
        raise ConfigError(f"perplexity needs >= 2 tokens (got {ids.size})")
    logits = llama_logits(weights, ids[:-1], linears).astype(np.float64)
    top = logits.max(axis=-1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=-1))
    return lse - logits[np.arange(ids.size - 1), ids[1:]]


def perplexity(weights: ModelWeights, ids: np.ndarray, linears: Linears | None = None) -> float:
    """``exp(mean NLL)`` of ``ids[1:]`` (the first token is context only)."""
    return float(np.exp(token_nll(weights, ids, linears).mean()))


def greedy_generate(weights: ModelWeights, tokenizer: Tokenizer, prompt: str, n_tokens: int,
                    linears: Linears | None = None) -> str:
    """``prompt`` continued by ``n_tokens`` greedy (argmax) tokens; returns the continuation only.

    Each step reruns the whole sequence (no KV cache): meant for short prompts.
    """
    ids = list(tokenizer.encode(prompt).ids)
    start = len(ids)
    for _ in range(n_tokens):
        hidden = llama_hidden(weights, np.asarray(ids), linears)[-1]
        head = weights.tensors.get("lm_head", weights["embed_tokens"])
        ids.append(int(np.argmax(head @ hidden)))
    return tokenizer.decode(ids[start:])
