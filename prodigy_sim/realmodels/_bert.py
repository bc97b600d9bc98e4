"""float32 numpy forward of a BERT encoder and the sentence-transformers embedding of MiniLM.

``bert_hidden``: word + position + token-type(0) embeddings, LayerNorm; per layer (post-norm): ``h =
LN(h + O(attn(Q h, K h, V h)))``, ``h = LN(h + Down(GELU(Up h)))``; attention is scaled dot product
per head with padded keys masked out. Matrix products are :func:`prodigy_sim.detmath.bmm_f32` (fixed
summation order, no BLAS: the same bits on every host). ``sentence_embeddings``: mean over the
non-padding tokens of the last hidden state, then L2 normalization (all-MiniLM-L6-v2's ``1_Pooling``
+ ``Normalize`` modules). The pooler is not used by sentence-transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from prodigy_sim.detmath import bmm_f32
from prodigy_sim.realmodels._layers import Fp32Linears, Linears
from prodigy_sim.realmodels._ops import gelu, layer_norm, softmax
from prodigy_sim.realmodels._weights import ModelWeights

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["BertState", "bert_embed", "bert_layer", "bert_hidden", "encode_batch",
           "sentence_embeddings"]


def encode_batch(tokenizer: Tokenizer, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``(B, T)`` int64 (padded with 0) and mask ``(B, T)`` bool of ``sentences``."""
    encs = [tokenizer.encode(s) for s in sentences]
    t = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), t), dtype=np.int64)
    mask = np.zeros((len(encs), t), dtype=bool)
    for b, e in enumerate(encs):
        ids[b, : len(e.ids)] = e.ids
        mask[b, : len(e.ids)] = True
    return ids, mask


@dataclass(frozen=True, eq=False)
class BertState:
    """A batch between two encoder layers: hidden ``h (B, T, H)`` float32 and the additive key
    mask ``key_bias (B, 1, 1, T)`` (0, or the most negative float32 at padded keys)."""

    h: np.ndarray
    key_bias: np.ndarray


def bert_embed(weights: ModelWeights, ids: np.ndarray, mask: np.ndarray) -> BertState:
    """Word + position + token-type(0) embeddings and their LayerNorm, for ids ``(B, T)``."""
    w = weights
    t = ids.shape[1]
    h = w["embeddings.word"][ids] + w["embeddings.position"][:t] + w["embeddings.token_type"][0]
    h = layer_norm(h, w["embeddings.norm"], w["embeddings.norm.bias"], weights.card.norm_eps)
    # Padded keys get the most negative float32 added (as Hugging Face's extended mask does).
    key_bias = np.where(mask, 0.0, np.finfo(np.float32).min).astype(np.float32)[:, None, None, :]
    return BertState(h, key_bias)


def bert_layer(weights: ModelWeights, i: int, state: BertState, lin: Linears) -> BertState:
    """Encoder layer ``i`` (post-norm): ``h = LN(h + O(attn(Q h, K h, V h)))``, then
    ``h = LN(h + Down(GELU(Up h)))``; linear layers called in the order q, k, v, o, up, down."""
    card, w = weights.card, weights
    h = state.h
    b, t, _ = h.shape
    heads, d = card.num_attention_heads, card.head_size
    eps = card.norm_eps
    scale = np.float32(1.0 / np.sqrt(d))
    p = f"layers.{i}."

    def split(y: np.ndarray) -> np.ndarray:
        # (B, heads, T, d)
        return np.ascontiguousarray(y.reshape(b, t, heads, d).transpose(0, 2, 1, 3))

    q = split(lin(p + "attn.q_proj", h))
    k = split(lin(p + "attn.k_proj", h))
    v = split(lin(p + "attn.v_proj", h))
    probs = softmax(bmm_f32(q, k.transpose(0, 1, 3, 2)) * scale + state.key_bias)
    ctx = bmm_f32(probs, v).transpose(0, 2, 1, 3).reshape(b, t, heads * d)
    h = layer_norm(h + lin(p + "attn.o_proj", ctx), w[p + "attn_norm"],
                   w[p + "attn_norm.bias"], eps)
    ff = lin(p + "mlp.down_proj", gelu(lin(p + "mlp.up_proj", h)))
    h = layer_norm(h + ff, w[p + "mlp_norm"], w[p + "mlp_norm.bias"], eps)
    return BertState(h, state.key_bias)


def bert_hidden(weights: ModelWeights, ids: np.ndarray, mask: np.ndarray,
                linears: Linears | None = None) -> np.ndarray:
    """Last hidden state ``(B, T, H)`` float32 of token ids ``(B, T)`` with mask ``(B, T)``."""
    lin = linears or Fp32Linears(weights)
    state = bert_embed(weights, ids, mask)
    for i in range(weights.card.num_layers):
        state = bert_layer(weights, i, state, lin)
    return state.h


def sentence_embeddings(weights: ModelWeights, tokenizer: Tokenizer, sentences: list[str],
                        linears: Linears | None = None) -> np.ndarray:
    """Unit-length sentence embeddings ``(len(sentences), H)`` float32 (mean pooling + L2)."""
    ids, mask = encode_batch(tokenizer, sentences)
    h = bert_hidden(weights, ids, mask, linears)
    m = mask[..., None].astype(np.float32)
    pooled = (h * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
    norm = np.linalg.norm(pooled, axis=-1, keepdims=True)
    return (pooled / np.maximum(norm, np.float32(1e-12))).astype(np.float32)
