"""Memory footprint of a model in a scenario: weights, KV cache, activations; does it fit?

Weights are counted tensor by tensor with :func:`prodigy_sim.numerics.footprint` (codes, block
scales and n:m sparsity masks, exactly the bytes ``quantize`` would produce), grouped by tensor
class.

KV cache (bytes, after the pass; every decoder layer keeps keys and values)::

    self-attention   2 * decoder_layers * kv_heads * head_dim * context_tokens * batch * bits/8
    cross-attention  2 * decoder_layers * heads * head_dim * encoder_tokens * batch * bits/8
                     (encoder-decoder models only)

Activations (bytes): the peak live set of one layer for the whole batch, layers run one after the
other, weights streamed from DDR. With ``T = batch * new tokens`` and ``C`` = tokens attended to::

    attention  T*H (residual) + T*heads*d (Q) + 2*T*kv_heads*d (new K, V)
               + batch*heads*new*C (scores, all heads materialized: no fused attention)
               + T*heads*d (attention output)
    MLP        T*H (residual) + T*d_ff * (2 if gated else 1)
    MoE MLP    T*H (residual) + R*H (dispatch buffers) + R*d_ff * (2 if gated else 1) (expert
               hidden), R = U*C rows: the U experts the T tokens use, C rows each (the capacity
               buffers of the routing model, >= T*k/U for top-k: every token is copied to k
               experts; :meth:`~prodigy_sim.models.Routing.capacity`), as the lowering
               allocates them
    logits     batch * vocab (next-token logits of the last position; decoders only)

the largest of these over all layers, in the activation format (unscaled). A fused attention
kernel needs less, so this is an upper bound for the simulator's schedules.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field

from prodigy_sim.hardware import DEFAULT_PRESET, ChipConfig, changes_from_preset, load_preset
from prodigy_sim.models.card import TENSOR_CLASSES, ModelCard, TensorSpec, load_card
from prodigy_sim.models.routing import Routing
from prodigy_sim.models.scenario import (
    Formats,
    Scenario,
    check_scenario,
    normalize_sparsity,
)
from prodigy_sim.numerics import Footprint, Sparsity, Storage, parse_sparsity

__all__ = ["ACTIVATION_RULE", "ClassFootprint", "FootprintReport", "footprint_report",
           "tensor_footprint", "kv_cache_bytes", "activation_bytes"]

ACTIVATION_RULE = ("peak live activations of one layer for the whole batch (residual + Q/K/V + "
                   "unfused attention scores + attention output, or residual + MLP hidden, or "
                   "for MoE residual + dispatch buffers + expert hidden of the routed top-k "
                   "copies; or the last position's logits), in the activation format")


def tensor_footprint(spec: TensorSpec, fmt: Storage,
                     sparsity: str | Sparsity | None = None) -> Footprint:
    """Bytes of one weight tensor stored as ``fmt``, quantized along its last axis (K).

    ``sparsity`` is applied only if the tensor is a linear weight of a block
    (:attr:`TensorSpec.is_linear`); other tensors are stored dense.
    """
    sp = parse_sparsity(sparsity) if spec.is_linear else None
    k = spec.shape[-1]
    rows = spec.numel // k if k else 0
    return fmt.model_copy(update={"sparsity": sp}).footprint(rows, k)


@dataclass(frozen=True)
class ClassFootprint:
    """Weight bytes of one tensor class."""

    tensor_class: str
    format: str
    tensors: int
    parameters: int
    code_bytes: int
    scale_bytes: int
    metadata_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.scale_bytes + self.metadata_bytes

    @property
    def bits_per_weight(self) -> float:
        """Stored bits per parameter (codes + scales + metadata)."""
        return 8.0 * self.total_bytes / self.parameters if self.parameters else 0.0


@dataclass(frozen=True)
class FootprintReport:
    """Bytes of a model in a scenario, and whether they fit the DDR capacity (bytes)."""

    model: str
    scenario: str
    phase: str
    batch: int
    query_tokens: int
    context_tokens: int
    encoder_tokens: int
    sparsity: str
    hardware: str
    capacity_bytes: int
    weights: tuple[ClassFootprint, ...]
    kv_cache_format: str
    kv_cache_bytes: int
    activation_format: str
    activation_bytes: int
    activation_rule: str = field(default=ACTIVATION_RULE)
    preset: str = ""
    """The preset ``hardware`` is (or is based on: :func:`~prodigy_sim.hardware.base_preset`)."""
    hardware_changes: tuple[str, ...] = ()
    """The fields ``hardware`` changes in ``preset``: ``'memory.capacity_bytes A -> B'``."""

    @property
    def parameters(self) -> int:
        return sum(c.parameters for c in self.weights)

    @property
    def weight_code_bytes(self) -> int:
        return sum(c.code_bytes for c in self.weights)

    @property
    def weight_scale_bytes(self) -> int:
        return sum(c.scale_bytes for c in self.weights)

    @property
    def weight_metadata_bytes(self) -> int:
        return sum(c.metadata_bytes for c in self.weights)

    @property
    def weight_bytes(self) -> int:
        return sum(c.total_bytes for c in self.weights)

    @property
    def bits_per_weight(self) -> float:
        """Stored weight bits per parameter, all classes together."""
        return 8.0 * self.weight_bytes / self.parameters if self.parameters else 0.0

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes

    @property
    def fits(self) -> bool:
        """True if weights + KV cache + activations fit the DDR capacity."""
        return self.total_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> int:
        """Capacity left (negative: missing)."""
        return self.capacity_bytes - self.total_bytes

    def by_class(self, tensor_class: str) -> ClassFootprint | None:
        """The weights of one class, or None if the model has none."""
        return next((c for c in self.weights if c.tensor_class == tensor_class), None)

    def to_dict(self) -> dict:
        """JSON-ready dict: every field, the totals, and per-class weights (bytes)."""
        out = asdict(self)
        out["weights"] = [dict(asdict(c), total_bytes=c.total_bytes,
                               bits_per_weight=c.bits_per_weight) for c in self.weights]
        for name in ("parameters", "weight_code_bytes", "weight_scale_bytes",
                     "weight_metadata_bytes", "weight_bytes", "bits_per_weight", "total_bytes",
                     "fits", "headroom_bytes"):
            out[name] = getattr(self, name)
        return out

    def to_csv(self) -> str:
        """One row per weight class, then kv_cache, activations and total rows (bytes)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["item", "format", "parameters", "code_bytes", "scale_bytes",
                    "metadata_bytes", "total_bytes", "bits_per_weight"])
        for c in self.weights:
            w.writerow([c.tensor_class, c.format, c.parameters, c.code_bytes, c.scale_bytes,
                        c.metadata_bytes, c.total_bytes, f"{c.bits_per_weight:.6f}"])
        w.writerow(["weights", "", self.parameters, self.weight_code_bytes,
                    self.weight_scale_bytes, self.weight_metadata_bytes, self.weight_bytes,
                    f"{self.bits_per_weight:.6f}"])
        w.writerow(["kv_cache", self.kv_cache_format, "", "", "", "", self.kv_cache_bytes, ""])
        w.writerow(["activations", self.activation_format, "", "", "", "",
                    self.activation_bytes, ""])
        w.writerow(["total", "", "", "", "", "", self.total_bytes, ""])
        return buf.getvalue()

    def table(self) -> str:
        """A table for people: sizes in GB (1e9 bytes) and GiB (2^30 bytes)."""
        def gb(n: int) -> str:
            return f"{n / 1e9:,.3f}"

        head = ("item", "format", "params", "codes GB", "scales GB", "meta GB", "total GB",
                "bits/w")
        rows = [head]
        for c in self.weights:
            rows.append((c.tensor_class, c.format, f"{c.parameters:,}", gb(c.code_bytes),
                         gb(c.scale_bytes), gb(c.metadata_bytes), gb(c.total_bytes),
                         f"{c.bits_per_weight:.3f}"))
        rows.append(("weights", "", f"{self.parameters:,}", gb(self.weight_code_bytes),
                     gb(self.weight_scale_bytes), gb(self.weight_metadata_bytes),
                     gb(self.weight_bytes), f"{self.bits_per_weight:.3f}"))
        rows.append(("kv cache", self.kv_cache_format, "", "", "", "", gb(self.kv_cache_bytes),
                     ""))
        rows.append(("activations", self.activation_format, "", "", "", "",
                     gb(self.activation_bytes), ""))
        rows.append(("total", "", "", "", "", "", gb(self.total_bytes), ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            f"# {self.model}: {self.phase}, batch {self.batch}, {self.query_tokens} new + "
            f"{self.context_tokens} attended tokens per sequence, sparsity {self.sparsity}",
        ]
        for r in rows:
            lines.append("  ".join(c.ljust(wd) if i < 2 else c.rjust(wd)
                                   for i, (c, wd) in enumerate(zip(r, widths, strict=True))))
        verdict = "fits" if self.fits else "does NOT fit"
        lines.append(f"# {verdict} {self.hardware} DDR: {self.capacity_bytes / 1e9:,.1f} GB "
                     f"({self.capacity_bytes / 2**40:g} TiB); headroom "
                     f"{self.headroom_bytes / 1e9:,.3f} GB")
        lines.append(f"# activations: {self.activation_rule}")
        if self.hardware_changes:
            lines.append(f"# hardware: {self.preset} with {len(self.hardware_changes)} field(s) "
                         f"overridden: {', '.join(self.hardware_changes)}")
        return "\n".join(lines)


def kv_cache_bytes(card: ModelCard, batch: int, context_tokens: int, bits: int,
                   encoder_tokens: int = 0) -> int:
    """Bytes of keys and values of every decoder layer (see the module docstring)."""
    d = card.head_size
    elements = 2 * card.decoder_layers * card.kv_heads * d * context_tokens * batch
    if card.family == "switch":
        elements += 2 * card.decoder_layers * card.num_attention_heads * d * encoder_tokens * batch
    return math.ceil(elements * bits / 8)


def _moe_rows(card: ModelCard, routing: Routing, tokens: int) -> int:
    """Rows ``U*C`` of an MoE layer's capacity buffers for ``tokens`` tokens (0: no experts):
    ``U`` experts used (expected, rounded up), ``C`` rows each."""
    if not card.num_experts:
        return 0
    k, e = card.experts_per_token, card.num_experts
    used = min(e, max(1, math.ceil(routing.experts_hit(tokens, k, e) - 1e-9)))
    return used * routing.capacity(tokens, k, e)


def _layer_elements(card: ModelCard, batch: int, new: int, attended: int, kv_tokens: int,
                    routing: Routing) -> int:
    h, d, t = card.hidden_size, card.head_size, batch * new
    nh = card.num_attention_heads
    attn = t * h + t * nh * d + 2 * t * card.kv_heads * d + batch * nh * new * attended
    attn += t * nh * d
    hidden = card.intermediate_size * (2 if card.mlp == "gated" else 1)
    mlp = t * h + t * hidden
    if card.num_experts:
        rows = _moe_rows(card, routing, t)
        mlp = max(mlp, t * h + rows * (h + hidden))
    cross = 0
    if card.family == "switch" and kv_tokens:
        cross = t * h + t * nh * d + batch * nh * new * kv_tokens + t * nh * d
    return max(attn, mlp, cross)


def activation_bytes(card: ModelCard, scenario: Scenario) -> int:
    """Peak live activation bytes of one layer for the batch (see the module docstring)."""
    b, q, c = scenario.batch, scenario.query_tokens, scenario.context_tokens
    enc = _encoder_tokens(card, scenario)
    peak = 0
    if card.encoder_layers and scenario.phase == "prefill":
        n = enc if card.family == "switch" else q
        peak = _layer_elements(card, b, n, n, 0, scenario.routing)
    if card.decoder_layers:
        peak = max(peak, _layer_elements(card, b, q, c, enc, scenario.routing),
                   b * card.vocab_size)
    return math.ceil(peak * scenario.formats.activations.bits / 8)


def _encoder_tokens(card: ModelCard, scenario: Scenario) -> int:
    if card.family != "switch":
        return 0
    return scenario.encoder_length or scenario.context_tokens


def footprint_report(card: ModelCard | str, scenario: Scenario | Formats, *,
                     sparsity: str = "none", hardware: str | ChipConfig | None = None,
                     capacity_bytes: int | None = None) -> FootprintReport:
    """Footprint of ``card`` in ``scenario`` (weights, KV cache, activations, fit).

    Given only :class:`Formats`, the report counts weights alone (no KV cache, no activations)
    with ``sparsity``. ``hardware`` (a preset name or a configuration, e.g. from
    :func:`~prodigy_sim.hardware.resolve_hardware`) overrides the scenario's preset; the report
    names a configuration's preset and the fields it changes. ``capacity_bytes`` overrides the
    DDR capacity (e.g. 2e12 for a 2 TB socket).
    """
    config = hardware if isinstance(hardware, ChipConfig) else None
    named = hardware if isinstance(hardware, str) else None
    card = load_card(card)
    preset: str | None
    if isinstance(scenario, Formats):
        formats, nm_text, preset = scenario, normalize_sparsity(sparsity), named
        batch = q = c = enc = 0
        kv = act = 0
        phase, name = "weights only", ""
    else:
        check_scenario(scenario, card)
        formats, nm_text = scenario.formats, scenario.sparsity
        preset = named or scenario.hardware
        batch, q, c = scenario.batch, scenario.query_tokens, scenario.context_tokens
        enc = _encoder_tokens(card, scenario)
        kv = kv_cache_bytes(card, batch, c, formats.kv_cache.bits, enc)
        act = activation_bytes(card, scenario)
        phase, name = scenario.phase, scenario.name
    nm = parse_sparsity(nm_text)
    totals: dict[str, list[int]] = {}
    cache: dict[tuple, Footprint] = {}
    for t in card.tensors():
        key = (t.shape, t.tensor_class)
        if key not in cache:
            cache[key] = tensor_footprint(t, formats.for_class(t.tensor_class), nm)
        fp = cache[key]
        acc = totals.setdefault(t.tensor_class, [0, 0, 0, 0, 0])
        for i, v in enumerate((1, t.numel, fp.code_bytes, fp.scale_bytes, fp.metadata_bytes)):
            acc[i] += v
    weights = tuple(
        ClassFootprint(cls, _label(formats.for_class(cls), cls, nm_text), *totals[cls])
        for cls in TENSOR_CLASSES if cls in totals)
    preset = preset or DEFAULT_PRESET
    changes: tuple[str, ...] = ()
    if config is not None:
        changed = changes_from_preset(config, preset)
        preset, changes = changed.preset, tuple(c.describe() for c in changed.changes)
    chip = config if config is not None else load_preset(preset)
    cap = capacity_bytes if capacity_bytes is not None else chip.memory.capacity_bytes
    return FootprintReport(
        model=card.name, scenario=name, phase=phase, batch=batch, query_tokens=q,
        context_tokens=c, encoder_tokens=enc, sparsity=nm_text, hardware=chip.name,
        capacity_bytes=int(cap), weights=weights, kv_cache_format=formats.kv_cache.name,
        kv_cache_bytes=kv, activation_format=formats.activations.name, activation_bytes=act,
        preset=preset, hardware_changes=changes)


def _label(fmt: Storage, tensor_class: str, sparsity: str) -> str:
    text = fmt.label()
    if sparsity != "none" and tensor_class in ("attention", "mlp", "expert"):
        text += f" {sparsity}"
    return text
