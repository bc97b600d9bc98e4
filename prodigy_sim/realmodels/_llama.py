"""float32 numpy forward of a LLaMA decoder (SmolLM2): logits, perplexity, greedy decoding.

Per layer (pre-norm): ``x += O(attn(RoPE(Q n), RoPE(K n), V n))`` with ``n = RMSNorm(x)``, then
``x += Down(SiLU(Gate n) * Up n)`` with ``n = RMSNorm(x)``; a final RMSNorm and the LM head
(the embedding matrix when tied). Attention is causal, grouped-query (query head ``h`` uses
key/value head ``h // (heads / kv_heads)``), scaled by ``1/sqrt(d)``.

RoPE is Hugging Face's "rotate half" form: with ``inv_freq[i] = theta^(-2i/d)`` (``i < d/2``) and
angles ``pos * inv_freq`` repeated twice, ``q' = q * cos + rotate_half(q) * sin`` where
``rotate_half([a, b]) = [-b, a]`` (halves of the head). The GGUF loader un-permutes q/k for this.

A whole sequence is processed at once (teacher forcing): a 512-token window is one pass of
``(512, K)`` matmuls per layer. Every product is :mod:`prodigy_sim.detmath`'s fixed-order one and
every transcendental function correctly rounded, so logits and perplexities are the same bits on
every host, thread count and BLAS build.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prodigy_sim.detmath import (
    SplitWeight,
    bmm_f32,
    cos_f32,
    decimal_to_f32,
    exp_decimal,
    exp_f32,
    ln_decimal,
    matmul_f32,
    sin_f32,
)
from prodigy_sim.errors import ConfigError
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._ops import rms_norm, silu, softmax
from prodigy_sim.realmodels._weights import ModelWeights

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["rope_tables", "LlamaState", "llama_embed", "llama_embed_many", "llama_layer",
           "llama_hidden", "llama_hidden_many", "lm_head",
           "llama_logits", "logits_nll", "mean_exp", "token_nll", "perplexity", "greedy_generate"]


def rope_tables(positions: np.ndarray, head_dim: int, theta: float) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """``cos, sin`` float32 ``(T, head_dim)`` of the rotate-half RoPE for ``positions (T,)``.

    ``inv_freq[i] = theta^(-2i/d)`` correctly rounded to float32 (computed with ``decimal``),
    angles ``fl32(pos * inv_freq)``, and correctly rounded float32 cos / sin
    (:mod:`prodigy_sim.detmath`): the same bits on every host."""
    inv_freq = _inv_freq(head_dim, float(theta))
    ang = positions.astype(np.float32)[:, None] * inv_freq[None, :]
    ang = np.concatenate([ang, ang], axis=-1)
    return cos_f32(ang), sin_f32(ang)


@functools.lru_cache(maxsize=8)
def _inv_freq(head_dim: int, theta: float) -> np.ndarray:
    ln_theta = ln_decimal(theta)
    return np.array([decimal_to_f32(exp_decimal(-ln_theta * i / head_dim))
                     for i in range(0, head_dim, 2)], dtype=np.float32)


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Apply RoPE to ``x (heads, T, d)``."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


@dataclass(frozen=True, eq=False)
class LlamaState:
    """A sequence between two decoder layers: the residual stream ``x (T, H)`` float32, the RoPE
    tables ``cos, sin (T, d)`` and the causal mask ``(T, T)``.

    Several sequences stacked (:func:`llama_embed_many`): ``segments`` holds their lengths (rows
    of ``x``, ``cos`` and ``sin`` in order, each from position 0) and ``causal`` is the mask of
    the longest; the linear layers see all rows at once, attention runs per sequence. Every
    row's values are those of its sequence run alone (each step is row by row or per
    sequence)."""

    x: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    causal: np.ndarray
    segments: tuple[int, ...] = ()


def _causal_mask(t: int) -> np.ndarray:
    """The additive causal mask ``(t, t)`` float32 (the lowest float32 above the diagonal)."""
    return np.triu(np.full((t, t), np.finfo(np.float32).min, dtype=np.float32), k=1)


def llama_embed(weights: ModelWeights, ids: np.ndarray) -> LlamaState:
    """Token embeddings of ``ids (T,)`` and the tables every layer uses."""
    card = weights.card
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ConfigError(f"ids must be a non-empty 1-D token sequence (got shape {ids.shape})")
    t = ids.size
    cos, sin = rope_tables(np.arange(t), card.head_size, float(card.rope_theta or 0.0))
    return LlamaState(weights["embed_tokens"][ids], cos, sin, _causal_mask(t))


def llama_embed_many(weights: ModelWeights, sequences) -> LlamaState:
    """:func:`llama_embed` of several token sequences stacked (see :class:`LlamaState`)."""
    card = weights.card
    ids = [np.asarray(s, dtype=np.int64) for s in sequences]
    if not ids or any(s.ndim != 1 or s.size == 0 for s in ids):
        raise ConfigError("sequences must be non-empty 1-D token sequences")
    lengths = tuple(int(s.size) for s in ids)
    pos = np.concatenate([np.arange(n) for n in lengths])
    cos, sin = rope_tables(pos, card.head_size, float(card.rope_theta or 0.0))
    return LlamaState(weights["embed_tokens"][np.concatenate(ids)], cos, sin,
                      _causal_mask(max(lengths)), lengths)


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: np.ndarray,
            scale: np.float32) -> np.ndarray:
    """Causal attention of one sequence: q, v ``(heads, T, d)``, k ``(heads, d, T)``."""
    t = q.shape[1]
    probs = softmax(bmm_f32(q, k) * scale + causal[:t, :t])
    return bmm_f32(probs, v)


def llama_layer(weights: ModelWeights, i: int, state: LlamaState, lin: Linears) -> LlamaState:
    """Decoder layer ``i`` (pre-norm); linear layers called in the order q, k, v, o, gate, up,
    down."""
    card, w = weights.card, weights
    x = state.x
    t = x.shape[0]
    heads, kv, d = card.num_attention_heads, card.kv_heads, card.head_size
    eps = card.norm_eps
    scale = np.float32(1.0 / np.sqrt(d))
    p = f"layers.{i}."
    n = rms_norm(x, w[p + "attn_norm"], eps)
    q = lin(p + "attn.q_proj", n).reshape(t, heads, d).transpose(1, 0, 2)
    k = lin(p + "attn.k_proj", n).reshape(t, kv, d).transpose(1, 0, 2)
    v = lin(p + "attn.v_proj", n).reshape(t, kv, d).transpose(1, 0, 2)
    q, k = _rotate(q, state.cos, state.sin), _rotate(k, state.cos, state.sin)
    k = np.repeat(k, heads // kv, axis=0).transpose(0, 2, 1)
    v = np.repeat(v, heads // kv, axis=0)
    if state.segments:
        ends = np.cumsum(state.segments).tolist()
        ctx = np.concatenate([_attend(q[:, a:e], k[:, :, a:e], v[:, a:e], state.causal, scale)
                              for a, e in zip([0] + ends[:-1], ends, strict=True)], axis=1)
    else:
        ctx = _attend(q, k, v, state.causal, scale)
    ctx = ctx.transpose(1, 0, 2).reshape(t, heads * d)
    x = x + lin(p + "attn.o_proj", ctx)
    n = rms_norm(x, w[p + "mlp_norm"], eps)
    gated = silu(lin(p + "mlp.gate_proj", n)) * lin(p + "mlp.up_proj", n)
    x = x + lin(p + "mlp.down_proj", gated)
    return LlamaState(x, state.cos, state.sin, state.causal, state.segments)


def llama_hidden(weights: ModelWeights, ids: np.ndarray,
                 linears: Linears | None = None) -> np.ndarray:
    """Final-normed hidden states ``(T, H)`` float32 of token ids ``(T,)``."""
    return _hidden(weights, llama_embed(weights, ids), linears)


def llama_hidden_many(weights: ModelWeights, sequences,
                      linears: Linears | None = None) -> np.ndarray:
    """:func:`llama_hidden` of several token sequences, each alone (its own positions and causal
    attention), stacked: ``(sum of lengths, H)``, row for row the same bits as one call per
    sequence; the linear layers take every row in one call (larger, faster products)."""
    return _hidden(weights, llama_embed_many(weights, sequences), linears)


def _hidden(weights: ModelWeights, state: LlamaState, linears: Linears | None) -> np.ndarray:
    lin = linears or Fp32Linears(weights)
    for i in range(weights.card.num_layers):
        state = llama_layer(weights, i, state, lin)
    return rms_norm(state.x, weights["final_norm"], weights.card.norm_eps)


def lm_head(weights: ModelWeights) -> np.ndarray:
    """The LM head ``(vocab, H)`` float32: ``lm_head`` if the weights have one, else the tied
    token embedding."""
    return weights.tensors.get("lm_head", weights["embed_tokens"])


def _lm_head_split(weights: ModelWeights) -> SplitWeight:
    """:func:`lm_head` split once per weights object (:meth:`ModelWeights.split`)."""
    return weights.split("lm_head" if "lm_head" in weights.tensors else "embed_tokens")


def llama_logits(weights: ModelWeights, ids: np.ndarray,
                 linears: Linears | None = None) -> np.ndarray:
    """Next-token logits ``(T, vocab)`` float32; the LM head is float32 (not quantized)."""
    return matmul_f32(llama_hidden(weights, ids, linears), _lm_head_split(weights))


def logits_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats, float64) ``logsumexp(l) - l[target]`` per row of float32
    ``logits (T, vocab)``, the same bits on every host: ``top`` = the row maximum, ``S`` = the
    float64 sum of the correctly rounded float32 ``exp(l - top)``, ``ln S`` correctly rounded to
    float64 (``decimal``), ``nll = (top + ln S) - l[target]`` in float64."""
    logits = np.asarray(logits, dtype=np.float32)
    top = logits.max(axis=-1)
    # by blocks of rows (each row's values and sum do not depend on the others; large
    # temporaries cost more than the arithmetic: page faults, cache misses)
    s = np.empty(logits.shape[0])
    for r in range(0, logits.shape[0], _ROWS):
        rows = slice(r, r + _ROWS)
        s[rows] = exp_f32(logits[rows] - top[rows, None]).astype(np.float64).sum(axis=-1)
    ln_s = np.array([float(ln_decimal(float(v))) for v in s])
    picked = logits[np.arange(logits.shape[0]), np.asarray(targets)].astype(np.float64)
    return (top.astype(np.float64) + ln_s) - picked


def mean_exp(nll: np.ndarray) -> float:
    """Perplexity ``exp(mean nll)``: the mean by ``math.fsum`` (exact sum, rounded once), ``exp``
    correctly rounded (``decimal``)."""
    return float(exp_decimal(math.fsum(float(v) for v in nll) / len(nll)))


def token_nll(weights: ModelWeights, ids: np.ndarray,
              linears: Linears | None = None) -> np.ndarray:
    """Negative log-likelihood (nats, float64) of tokens ``ids[1:]`` given their prefixes
    (teacher forcing): shape ``(T - 1,)`` (:func:`logits_nll`)."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size < 2:
        raise ConfigError(f"perplexity needs >= 2 tokens (got {ids.size})")
    hidden = llama_hidden(weights, ids[:-1], linears)
    head = _lm_head_split(weights)
    # the logits of a block of positions at a time (each row of matmul_f32 depends on its own
    # row of ``hidden`` only): the same values as logits_nll(llama_logits(...), ids[1:])
    return np.concatenate([logits_nll(matmul_f32(hidden[r:r + _HEAD_ROWS], head),
                                      ids[1 + r:1 + r + _HEAD_ROWS])
                           for r in range(0, hidden.shape[0], _HEAD_ROWS)])


_ROWS = 32
"""Positions per block of :func:`logits_nll`'s exponentials (32 x 49,152 values)."""

_HEAD_ROWS = 256
"""Positions per LM-head product of :func:`token_nll` (256 x 49,152 logits, 50 MB): the
head's weight slices (2 x 226 MB of float64) stream once per block, so larger blocks are
faster (512 tokens: 4.6 s with 32 rows, 2.4 s with 256, the same bits)."""


def perplexity(weights: ModelWeights, ids: np.ndarray, linears: Linears | None = None) -> float:
    """``exp(mean NLL)`` of ``ids[1:]`` (the first token is context only; :func:`mean_exp`)."""
    return mean_exp(token_nll(weights, ids, linears))


def greedy_generate(weights: ModelWeights, tokenizer: Tokenizer, prompt: str, n_tokens: int,
                    linears: Linears | None = None) -> str:
    """``prompt`` continued by ``n_tokens`` greedy (argmax) tokens; returns the continuation only.

    Each step reruns the whole sequence (no KV cache): meant for short prompts.
    """
    ids = list(tokenizer.encode(prompt).ids)
    start = len(ids)
    for _ in range(n_tokens):
        hidden = llama_hidden(weights, np.asarray(ids), linears)[-1]
        ids.append(int(np.argmax(matmul_f32(hidden[None], _lm_head_split(weights))[0])))
    return tokenizer.decode(ids[start:])
