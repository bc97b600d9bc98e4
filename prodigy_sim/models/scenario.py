"""Scenarios: how a model is run - phase, batch, sequence or context length, number formats,
sparsity and hardware preset.

A :class:`Scenario` is plain data (YAML in ``workloads/scenarios/``, or built from CLI flags). It
names its model card; :func:`check_scenario` checks the pair (context within the model's positions,
decode only on a model that has a decoder, sparsity groups dividing the reduction axes).

Number formats are chosen per tensor class (see ``prodigy_sim.models.card.TENSOR_CLASSES``). The
defaults, documented in ``docs/models.md``:

========================  ==========================================================
linear layers (weights)   ``tai4``, block 32 along K, E8M0 scales (OCP MX rule)
embeddings, positions     ``float8_e4m3fn``, block 32, E8M0 (MXFP8)
LM head, BERT pooler      ``float8_e4m3fn``, block 32, E8M0 (MXFP8)
MoE router                ``float32`` (the Switch paper keeps the router in float32)
norms, biases             ``float32``
activations               ``float8_e4m3fn`` (unscaled)
KV cache                  ``float8_e4m3fn`` (unscaled)
========================  ==========================================================

Every class of weights is a :class:`~prodigy_sim.numerics.Storage` (format, block, scale kind);
in YAML a bare string (``tai4``) means the format with its defaults. Formats are numerics formats
(``prodigy-sim formats``: the built-ins, bfloat16/float16/float32 included, or a format file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware import DEFAULT_PRESET, preset_names
from prodigy_sim.models._files import looks_like_path, named_files, read_mapping
from prodigy_sim.models._files import scenario_names as scenario_names
from prodigy_sim.models.card import ModelCard, load_card
from prodigy_sim.models.routing import Routing
from prodigy_sim.numerics import FormatField, FormatSpec, Sparsity, Storage, parse_sparsity

__all__ = ["Formats", "Scenario", "normalize_sparsity", "scenario_names", "load_scenario",
           "parse_scenario", "check_scenario"]


def normalize_sparsity(text: str | Sparsity | None) -> str:
    """``'none'`` or ``'group:kept'`` (``'2:4'`` and ``'4:2'`` -> ``'4:2'``)."""
    sp = parse_sparsity(text)
    return "none" if sp is None else str(sp)


def _fp8_mx() -> Storage:
    return Storage.of("float8_e4m3fn")


def _fp32() -> Storage:
    return Storage.of("float32")


class Formats(BaseModel):
    """Number format of each tensor class, of activations and of the KV cache."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: Storage = Field(default_factory=lambda: Storage.of("tai4"),
                             description="linear layers of the blocks (attention, MLP, "
                                         "experts) unless overridden below")
    attention: Storage | None = Field(None, description="override for attention weights")
    mlp: Storage | None = Field(None, description="override for dense MLP weights")
    expert: Storage | None = Field(None, description="override for MoE expert weights")
    embedding: Storage = Field(default_factory=_fp8_mx,
                               description="token, token-type and position tables")
    head: Storage = Field(default_factory=_fp8_mx, description="LM head, BERT pooler")
    router: Storage = Field(default_factory=_fp32, description="MoE router")
    norm: Storage = Field(default_factory=_fp32, description="norm weights and biases, "
                                                             "linear biases")
    activations: FormatField = Field("float8_e4m3fn", validate_default=True,
                                     description="activations between layers (unscaled)")
    kv_cache: FormatField = Field("float8_e4m3fn", validate_default=True,
                                  description="keys and values kept for decoding (unscaled)")

    @field_validator("weights", "attention", "mlp", "expert", "embedding", "head", "router",
                     "norm")
    @classmethod
    def _dense(cls, v: Storage | None) -> Storage | None:
        if v is not None and v.sparsity is not None:
            raise ValueError("give sparsity with the scenario's 'sparsity' field, not per "
                             "weight class")
        return v

    @classmethod
    def uniform(cls, fmt: Storage | FormatSpec | str, **rest: object) -> Formats:
        """Every weight class in ``fmt`` (e.g. to count bits per weight of a whole model)."""
        w = fmt if isinstance(fmt, Storage) else Storage.of(fmt)
        return cls(weights=w, embedding=w, head=w, router=w, norm=w, **rest)

    def for_class(self, tensor_class: str) -> Storage:
        """The format of weights of ``tensor_class``."""
        if tensor_class in ("attention", "mlp", "expert"):
            return getattr(self, tensor_class) or self.weights
        if tensor_class in ("embedding", "position"):
            return self.embedding
        if tensor_class in ("norm", "bias"):
            return self.norm
        if tensor_class in ("head", "router"):
            return getattr(self, tensor_class)
        raise ConfigError(f"unknown tensor class {tensor_class!r}")


class Scenario(BaseModel):
    """One way to run a model: what is computed, for how many tokens, in which formats, where."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("", description="scenario name (the file stem for built-ins)")
    description: str = Field("", description="one sentence")
    model: str = Field(min_length=1, description="model card name or card file path")
    phase: Literal["prefill", "decode"] = Field(
        description="prefill = process a prompt; decode = generate one token per sequence")
    batch: int = Field(1, ge=1, description="sequences processed together (count)")
    sequence_length: int | None = Field(
        None, ge=1, description="prefill: prompt tokens per sequence (tokens)")
    context_length: int | None = Field(
        None, ge=1, description="decode: tokens in the KV cache per sequence, the new one "
                                "included (tokens)")
    encoder_length: int | None = Field(
        None, ge=1, description="encoder-decoder models: encoder input tokens per sequence "
                                "(default: sequence_length or context_length)")
    formats: Formats = Field(default_factory=Formats, description="number formats")
    sparsity: str = Field("none", description="n:m structured sparsity of the blocks' linear "
                                              "weights: none or e.g. 8:4 (keep 4 of 8)")
    hardware: str = Field(DEFAULT_PRESET, description="hardware preset name")
    routing: Routing = Field(default_factory=Routing,
                             description="mixture-of-experts routing model (MoE models only)")

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, v: str) -> str:
        return normalize_sparsity(v)

    @field_validator("hardware")
    @classmethod
    def _preset(cls, v: str) -> str:
        if v not in preset_names():
            raise ValueError(f"unknown hardware preset {v!r}; presets: "
                             f"{', '.join(preset_names())}")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> Scenario:
        if self.phase == "prefill" and (self.sequence_length is None
                                        or self.context_length is not None):
            raise ValueError("phase 'prefill' needs 'sequence_length' and no 'context_length'")
        if self.phase == "decode" and (self.context_length is None
                                       or self.sequence_length is not None):
            raise ValueError("phase 'decode' needs 'context_length' and no 'sequence_length'")
        return self

    @property
    def sparsity_nm(self) -> Sparsity | None:
        """The blocks' linear weights' :class:`~prodigy_sim.numerics.Sparsity`, or None."""
        return parse_sparsity(self.sparsity)

    @property
    def query_tokens(self) -> int:
        """New tokens per sequence in this pass (prefill: the prompt; decode: 1)."""
        return self.context_tokens if self.phase == "prefill" else 1

    @property
    def context_tokens(self) -> int:
        """Tokens attended to per sequence (= tokens held in the KV cache after the pass)."""
        n = self.sequence_length if self.phase == "prefill" else self.context_length
        assert n is not None  # the validator requires the phase's length
        return n

    def card(self) -> ModelCard:
        """The model card this scenario names."""
        return load_card(self.model)


def check_scenario(scenario: Scenario, card: ModelCard, *, source: str = "scenario") -> None:
    """Refuse a scenario the card cannot run; the message names ``source`` and the field."""
    limit = card.max_position_embeddings
    field = "sequence_length" if scenario.phase == "prefill" else "context_length"
    lengths = [(field, scenario.context_tokens)]
    if scenario.encoder_length is not None:
        if card.family != "switch":
            raise ConfigError(f"{source}: 'encoder_length': only for encoder-decoder models "
                              f"({card.name!r} is {card.family})")
        lengths.append(("encoder_length", scenario.encoder_length))
    for name, value in lengths:
        if limit is not None and value > limit:
            raise ConfigError(f"{source}: '{name}' = {value} exceeds max_position_embeddings = "
                              f"{limit} of model {card.name!r}")
    if scenario.phase == "decode" and not card.is_decoder:
        raise ConfigError(f"{source}: 'phase': model {card.name!r} is encoder-only and has no "
                          "decode phase (use prefill)")
    if scenario.routing != Routing() and not card.num_experts:
        raise ConfigError(f"{source}: 'routing': model {card.name!r} has no experts")
    if card.num_experts:
        scenario.routing.check(card.experts_per_token, card.num_experts,
                               source=f"{source}: 'routing'")
    nm = scenario.sparsity_nm
    if nm is not None:
        ks = sorted({t.shape[-1] for t in card.tensors() if t.is_linear})
        bad = [k for k in ks if k % nm.group]
        if bad:
            raise ConfigError(f"{source}: 'sparsity' {scenario.sparsity}: reduction axes {bad} of "
                              f"model {card.name!r} are not multiples of {nm.group}")


def parse_scenario(data: object, *, source: str = "<scenario>") -> Scenario:
    """Validate a mapping as a :class:`Scenario` and check it against its card."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a scenario must be a mapping of fields "
                          f"(got {type(data).__name__})")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, source=source) from None
    try:
        card = scenario.card()
    except ConfigError as err:
        raise ConfigError(f"{source}: 'model': {err}") from None
    check_scenario(scenario, card, source=source)
    return scenario


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or one from a ``.yaml``/``.json`` file (checked against its
    model card; errors name the file and the field)."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or looks_like_path(text):
        path = Path(text)
    else:
        files = named_files("scenarios")
        if text not in files:
            raise ConfigError(f"unknown scenario {text!r}; known scenarios: "
                              f"{', '.join(sorted(files)) or '(none found)'}")
        path = files[text]
    data = read_mapping(path, what="scenario")
    data.setdefault("name", path.stem)
    return parse_scenario(data, source=str(path))
