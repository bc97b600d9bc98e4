"""Model cards: the architecture of a transformer as data, and the list of its weight tensors.

A :class:`ModelCard` holds the numbers of a model's published configuration (Hugging Face
``config.json`` field names where they exist) and a citation saying where they come from. From
them it derives every weight tensor (:meth:`ModelCard.tensors`) with a stable name, a shape and a
class, so footprint reports and, later, the lowering to instruction programs walk the same list.

Shapes of linear weights are ``(N, K)`` = ``(out_features, in_features)``: ``K`` is the reduction
axis of the matmul ``y = x @ W.T``, the axis along which block scales and n:m sparsity run. Expert
weights of a mixture-of-experts layer are one tensor ``(num_experts, N, K)``.

Three families are described (the family fixes the structure, the fields fix the sizes):

``llama``  decoder-only, pre-norm RMSNorm, rotary positions, SwiGLU MLP, optional GQA.
``bert``   encoder-only, post-norm LayerNorm with biases, learned positions and token types,
           optional pooler.
``switch`` T5-style encoder-decoder (pre-norm RMSNorm without bias, relative position buckets),
           whose MLPs are (every ``expert_layer_interval``-th layer) top-1 Switch mixtures of
           experts with a router.

A ``llama`` card with ``num_experts`` > 0 is a LLaMA-style mixture of experts (Mixtral): every
``expert_layer_interval``-th MLP is replaced by a router and ``num_experts`` gated experts, of
which each token uses ``experts_per_token`` (top-k).

Layers are numbered globally: encoder layers first, then decoder layers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from prodigy_sim.errors import ConfigError, ModelFileError, config_error_from_validation
from prodigy_sim.models._files import card_names as card_names
from prodigy_sim.models._files import looks_like_path, named_files, read_mapping
from prodigy_sim.models._hf import card_data_from_hf, is_hf_config

__all__ = ["TensorClass", "TENSOR_CLASSES", "LINEAR_CLASSES", "TensorSpec", "ModelCard",
           "card_names", "load_card", "parse_card"]

TensorClass = Literal["embedding", "position", "attention", "mlp", "expert", "router", "norm",
                      "head", "bias"]
TENSOR_CLASSES: tuple[str, ...] = ("embedding", "position", "attention", "mlp", "expert",
                                   "router", "norm", "head", "bias")
LINEAR_CLASSES: tuple[str, ...] = ("attention", "mlp", "expert")
"""The linear layers of the transformer blocks: the classes n:m sparsity applies to."""


class TensorSpec(BaseModel):
    """One weight tensor of a model: stable name, shape, class and layer (None outside blocks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="stable dotted name, e.g. 'layers.3.attn.q_proj'")
    shape: tuple[int, ...] = Field(description="elements per axis; linear weights are (N, K) "
                                               "with K the reduction axis, experts (E, N, K)")
    tensor_class: TensorClass = Field(description="what the tensor is (picks its number format)")
    layer: int | None = Field(None, ge=0, description="global layer index, None outside blocks")

    @property
    def numel(self) -> int:
        """Number of elements (parameters)."""
        return math.prod(self.shape)

    @property
    def is_linear(self) -> bool:
        """True for the weights of the blocks' linear layers (sparsity applies to these)."""
        return self.tensor_class in LINEAR_CLASSES


MAX_SIZE = 1 << 24
"""Largest width, vocabulary or sequence length a card may give (elements, tokens): far above
any published model, small enough that every count stays exact in float64."""
MAX_LAYERS = 1 << 15
"""Most transformer blocks a card may give (the card lists every block's tensors): room for the
brain-scale card of :mod:`prodigy_sim.parallel` (9,153 layers at 1e17 parameters) and more, while
a card of a million layers (ten million tensors, 24 GB) is refused."""


def _pos(description: str, most: int = MAX_SIZE) -> Any:  # pydantic's Field() is typed Any
    return Field(ge=1, le=most, strict=True, description=description)


class ModelCard(BaseModel):
    """The architecture of one model, with the source of its numbers.

    Cross-field contradictions (a decoder with no layers, GQA heads that do not divide the heads...)
    raise :class:`~prodigy_sim.errors.ModelFileError` naming the fields. Integer fields are strict:
    ``true``, ``"576"`` or ``576.0`` are refused, not coerced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$",
                      description="card name (lowercase), e.g. 'llama-2-7b'")
    family: Literal["llama", "bert", "switch"] = Field(description="structure of the blocks")
    source: str = Field(min_length=1, description="citation of the published config / paper")
    published_parameters: int | None = Field(
        None, ge=1, strict=True, description="parameter count published by the authors (count)")
    published_parameters_note: str = Field(
        "", description="how exact the published count is (e.g. 'rounded to 1e9 in the paper')")

    hidden_size: int = _pos("model width d_model (elements)")
    intermediate_size: int = _pos("MLP (or expert) hidden width d_ff (elements)")
    num_layers: int = _pos("transformer blocks in total (encoder + decoder)", MAX_LAYERS)
    num_attention_heads: int = _pos("query heads per attention block")
    num_key_value_heads: int | None = Field(
        None, ge=1, strict=True, le=MAX_SIZE, description="key/value heads (GQA); default = "
                                             "num_attention_heads")
    head_dim: int | None = Field(
        None, ge=1, strict=True, le=MAX_SIZE,
        description="elements per head; default hidden_size / num_attention_heads")
    vocab_size: int = _pos("token vocabulary (rows of the embedding)")
    max_position_embeddings: int | None = Field(
        None, ge=1, strict=True, le=MAX_SIZE,
        description="longest sequence the model takes (tokens); may be omitted only with "
                    "relative positions, which have no table and no limit")

    norm: Literal["rmsnorm", "layernorm"] = Field(description="normalization layer")
    norm_eps: float = Field(gt=0, lt=1, allow_inf_nan=False,
                            description="epsilon of the normalization")
    activation: Literal["silu", "gelu", "relu"] = Field(description="MLP nonlinearity")
    mlp: Literal["gated", "plain"] = Field(
        description="gated = gate/up/down (SwiGLU); plain = up/down")
    position_embedding: Literal["rope", "learned", "relative"] = Field(
        description="rotary, learned absolute table, or T5 relative-position buckets")
    rope_theta: float | None = Field(None, gt=0, allow_inf_nan=False,
                                     description="RoPE base (rope only)")
    relative_attention_num_buckets: int | None = Field(
        None, ge=1, strict=True, le=MAX_SIZE,
        description="T5 relative-position buckets (relative only)")
    tie_word_embeddings: bool = Field(False, description="LM head shares the embedding matrix")
    type_vocab_size: int = Field(0, ge=0, strict=True, le=MAX_SIZE,
                                 description="BERT token-type (segment) embeddings")
    pooler: bool = Field(False, description="BERT pooler (dense H x H + bias on [CLS])")
    attention_bias: bool = Field(False, description="q/k/v/o projections have biases")
    mlp_bias: bool = Field(False, description="MLP projections have biases")

    num_experts: int = Field(0, ge=0, strict=True, le=MAX_SIZE,
                             description="experts per MoE layer (0 = dense model)")
    experts_per_token: int = Field(
        1, ge=1, strict=True, le=MAX_SIZE,
        description="experts each token is routed to (top-k; HF 'num_experts_per_tok'; "
                    "switch: 1)")
    expert_layer_interval: int = Field(
        1, ge=1, strict=True, le=MAX_LAYERS,
        description="every n-th layer of a stack is MoE (HF 'sparse_step'; 1 = all; else layers "
                    "with index % n == 1)")
    num_encoder_layers: int | None = Field(None, ge=0, strict=True, le=MAX_LAYERS,
                                           description="encoder blocks (switch)")
    num_decoder_layers: int | None = Field(None, ge=0, strict=True, le=MAX_LAYERS,
                                           description="decoder blocks (switch)")

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        def bad(fields: str, msg: str) -> ModelFileError:
            return ModelFileError(f"model card {self.name!r}: {fields}: {msg}")

        if self.num_attention_heads % self.kv_heads:
            raise bad("'num_key_value_heads'", f"{self.kv_heads} must divide "
                      f"num_attention_heads = {self.num_attention_heads}")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise bad("'head_dim'", f"not given and hidden_size {self.hidden_size} is not a "
                      f"multiple of num_attention_heads {self.num_attention_heads}")
        if (self.position_embedding == "rope") != (self.rope_theta is not None):
            raise bad("'rope_theta'", "required with position_embedding 'rope', refused otherwise")
        if (self.position_embedding == "relative") != (
                self.relative_attention_num_buckets is not None):
            raise bad("'relative_attention_num_buckets'",
                      "required with position_embedding 'relative', refused otherwise")
        if self.max_position_embeddings is None and self.position_embedding != "relative":
            raise bad("'max_position_embeddings'", "required unless position_embedding is "
                      "'relative'")
        stacks = (self.num_encoder_layers, self.num_decoder_layers)
        if self.family == "switch":
            enc, dec = stacks
            if enc is None or dec is None or enc + dec != self.num_layers:
                raise bad("'num_encoder_layers' + 'num_decoder_layers'",
                          f"must be given and add up to num_layers = {self.num_layers} "
                          f"(got {stacks[0]} + {stacks[1]})")
            if self.num_experts < 1:
                raise bad("'num_experts'", "a switch model needs >= 1 expert")
        else:
            if stacks != (None, None):
                raise bad("'num_encoder_layers', 'num_decoder_layers'",
                          f"only for family 'switch' (this card is {self.family!r})")
            if self.num_experts and self.family != "llama":
                raise bad("'num_experts'", f"only for families 'switch' and 'llama' (this card "
                          f"is {self.family!r})")
        if self.experts_per_token > max(1, self.num_experts):
            raise bad("'experts_per_token'", f"{self.experts_per_token} exceeds num_experts = "
                      f"{self.num_experts}")
        if self.family == "bert":
            if self.position_embedding != "learned" or self.norm != "layernorm":
                raise bad("'position_embedding', 'norm'", "bert uses 'learned' and 'layernorm'")
            if self.tie_word_embeddings:
                raise bad("'tie_word_embeddings'", "bert has no LM head to tie")
        elif self.pooler or self.type_vocab_size:
            raise bad("'pooler', 'type_vocab_size'", "only for family 'bert'")
        return self

    # --- derived sizes -------------------------------------------------------------------------

    @property
    def kv_heads(self) -> int:
        """Key/value heads (= query heads without GQA)."""
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        """Elements per attention head (``head_dim`` or hidden / heads)."""
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def encoder_layers(self) -> int:
        """Blocks without a KV cache (bert: all; switch: the encoder; llama: none)."""
        if self.family == "switch":
            return int(self.num_encoder_layers or 0)
        return self.num_layers if self.family == "bert" else 0

    @property
    def decoder_layers(self) -> int:
        """Blocks that attend causally and keep a KV cache."""
        return self.num_layers - self.encoder_layers

    @property
    def is_decoder(self) -> bool:
        """True if the model generates tokens (has decoder layers)."""
        return self.decoder_layers > 0

    def layer_kind(self, i: int) -> Literal["encoder", "decoder"]:
        """Whether global layer ``i`` is an encoder or a decoder block."""
        self._check_layer(i)
        return "encoder" if i < self.encoder_layers else "decoder"

    def is_moe_layer(self, i: int) -> bool:
        """True if global layer ``i`` has a mixture-of-experts MLP (HF SwitchTransformers rule:
        within a stack, layer j is sparse when the interval is 1 or ``j % interval == 1``)."""
        self._check_layer(i)
        if not self.num_experts:
            return False
        j = i if i < self.encoder_layers else i - self.encoder_layers
        n = self.expert_layer_interval
        return n == 1 or j % n == 1

    def _check_layer(self, i: int) -> None:
        if not 0 <= i < self.num_layers:
            raise IndexError(f"layer {i} out of range 0..{self.num_layers - 1} of {self.name!r}")

    # --- tensors -------------------------------------------------------------------------------

    def tensors(self) -> list[TensorSpec]:
        """Every weight tensor, in a fixed order: embeddings, layer 0, layer 1, ..., final norms,
        head. Names are stable (they do not depend on anything but the card)."""
        out = self._embedding_tensors()
        for i in range(self.num_layers):
            out.extend(self.layer_tensors(i))
            if self.family == "switch" and i == self.encoder_layers - 1:
                out.extend(self._norm("encoder.final_norm", None))
        out.extend(self._tail_tensors())
        return out

    def parameter_count(self) -> int:
        """Total number of parameters (tied embeddings counted once)."""
        return sum(t.numel for t in self.tensors())

    def layer_tensors(self, i: int) -> list[TensorSpec]:
        """The weight tensors of global layer ``i`` (0-based)."""
        self._check_layer(i)
        if self.family == "switch":
            kind = self.layer_kind(i)
            j = i if kind == "encoder" else i - self.encoder_layers
            prefix = f"{kind}.layers.{j}."
        else:
            j, prefix = i, f"layers.{i}."
        out: list[TensorSpec] = []
        if self.family == "bert":
            out += self._attention(prefix + "attn.", i)
            out += self._norm(prefix + "attn_norm", i)
            out += self._mlp(prefix, i)
            out += self._norm(prefix + "mlp_norm", i)
            return out
        out += self._norm(prefix + "attn_norm", i)
        out += self._attention(prefix + "attn.", i)
        if self.position_embedding == "relative" and j == 0:
            buckets = int(self.relative_attention_num_buckets or 0)
            out.append(TensorSpec(name=prefix + "attn.relative_bias",
                                  shape=(buckets, self.num_attention_heads),
                                  tensor_class="position", layer=i))
        if self.family == "switch" and self.layer_kind(i) == "decoder":
            out += self._norm(prefix + "cross_attn_norm", i)
            out += self._attention(prefix + "cross_attn.", i)
        out += self._norm(prefix + "mlp_norm", i)
        out += self._mlp(prefix, i)
        return out

    def layer_groups(self) -> list[tuple[int, ...]]:
        """Layers that are structurally identical (same tensor names relative to the layer, same
        shapes and classes), in order of first appearance: simulate one, reuse for the others."""
        groups: dict[tuple, list[int]] = {}
        for i in range(self.num_layers):
            sig = []
            for t in self.layer_tensors(i):
                parts = t.name.split(".")
                sig.append((parts[0] if parts[0] in ("encoder", "decoder") else "",
                            ".".join(parts[3 if parts[0] in ("encoder", "decoder") else 2:]),
                            t.shape, t.tensor_class))
            groups.setdefault(tuple(sig), []).append(i)
        return [tuple(v) for v in groups.values()]

    def _embedding_tensors(self) -> list[TensorSpec]:
        h = self.hidden_size
        if self.family != "bert":
            return [TensorSpec(name="embed_tokens", shape=(self.vocab_size, h),
                               tensor_class="embedding")]
        out = [
            TensorSpec(name="embeddings.word", shape=(self.vocab_size, h),
                       tensor_class="embedding"),
            TensorSpec(name="embeddings.position",
                       shape=(int(self.max_position_embeddings or 0), h), tensor_class="position"),
        ]
        if self.type_vocab_size:
            out.append(TensorSpec(name="embeddings.token_type", shape=(self.type_vocab_size, h),
                                  tensor_class="embedding"))
        return out + self._norm("embeddings.norm", None)

    def _tail_tensors(self) -> list[TensorSpec]:
        h = self.hidden_size
        out: list[TensorSpec] = []
        if self.family == "llama":
            out += self._norm("final_norm", None)
        elif self.family == "switch":
            out += self._norm("decoder.final_norm", None)
        if self.family == "bert":
            if self.pooler:
                out += self._linear("pooler.dense", h, h, "head", None, bias=True)
        elif not self.tie_word_embeddings:
            out.append(TensorSpec(name="lm_head", shape=(self.vocab_size, h), tensor_class="head"))
        return out

    def _norm(self, name: str, layer: int | None) -> list[TensorSpec]:
        h = self.hidden_size
        out = [TensorSpec(name=name, shape=(h,), tensor_class="norm", layer=layer)]
        if self.norm == "layernorm":
            out.append(TensorSpec(name=name + ".bias", shape=(h,), tensor_class="norm",
                                  layer=layer))
        return out

    def _linear(self, name: str, n: int, k: int, cls: str, layer: int | None,
                bias: bool) -> list[TensorSpec]:
        out = [TensorSpec(name=name, shape=(n, k), tensor_class=cls, layer=layer)]
        if bias:
            out.append(TensorSpec(name=name + ".bias", shape=(n,), tensor_class="bias",
                                  layer=layer))
        return out

    def _attention(self, prefix: str, i: int) -> list[TensorSpec]:
        h, d = self.hidden_size, self.head_size
        q, kv = self.num_attention_heads * d, self.kv_heads * d
        b = self.attention_bias
        return (self._linear(prefix + "q_proj", q, h, "attention", i, b)
                + self._linear(prefix + "k_proj", kv, h, "attention", i, b)
                + self._linear(prefix + "v_proj", kv, h, "attention", i, b)
                + self._linear(prefix + "o_proj", h, q, "attention", i, b))

    def _mlp(self, prefix: str, i: int) -> list[TensorSpec]:
        h, f, b = self.hidden_size, self.intermediate_size, self.mlp_bias
        if self.is_moe_layer(i):
            e = self.num_experts
            out = [TensorSpec(name=prefix + "moe.router", shape=(e, h), tensor_class="router",
                              layer=i)]
            if self.mlp == "gated":
                out.append(TensorSpec(name=prefix + "moe.experts.gate_proj", shape=(e, f, h),
                                      tensor_class="expert", layer=i))
            out.append(TensorSpec(name=prefix + "moe.experts.up_proj", shape=(e, f, h),
                                  tensor_class="expert", layer=i))
            out.append(TensorSpec(name=prefix + "moe.experts.down_proj", shape=(e, h, f),
                                  tensor_class="expert", layer=i))
            return out
        out = []
        if self.mlp == "gated":
            out += self._linear(prefix + "mlp.gate_proj", f, h, "mlp", i, b)
        out += self._linear(prefix + "mlp.up_proj", f, h, "mlp", i, b)
        out += self._linear(prefix + "mlp.down_proj", h, f, "mlp", i, b)
        return out


def parse_card(data: object, *, source: str = "<model card>") -> ModelCard:
    """Validate a mapping (parsed YAML/JSON) as a :class:`ModelCard`.

    Field errors raise :class:`ConfigError` naming ``source`` and the field; a card that
    contradicts itself raises :class:`ModelFileError` naming ``source`` and the fields.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a model card must be a mapping of fields "
                          f"(got {type(data).__name__})")
    try:
        return ModelCard.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, source=source) from None
    except ModelFileError as err:
        raise ModelFileError(f"{source}: {err}") from None


def load_card(name_or_path: str | Path | ModelCard) -> ModelCard:
    """A built-in card by name (``'llama-2-7b'``), a card from a ``.yaml``/``.json`` file, or a
    Hugging Face ``config.json`` of a LLaMA/Mistral or BERT model (a file named ``config.json``,
    any ``.json`` with a ``model_type``, or a folder holding a ``config.json``; see
    :mod:`prodigy_sim.models._hf` for the field mapping).

    An unknown name raises :class:`ConfigError` listing the known cards.
    """
    if isinstance(name_or_path, ModelCard):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or looks_like_path(text):
        path = Path(text)
        if path.is_dir():
            path = path / "config.json"
    else:
        files = named_files("cards")
        if text not in files:
            raise ConfigError(f"unknown model card {text!r}; known cards: "
                              f"{', '.join(sorted(files)) or '(none found)'} "
                              "(or give a .yaml/.json card file)")
        path = files[text]
    data = read_mapping(path, what="model card")
    if path.suffix.lower() == ".json" and is_hf_config(path, data):
        data = card_data_from_hf(data, source=path)
    return parse_card(data, source=str(path))
