"""The white paper's 256 PB / 100-quadrillion-parameter claim, expressed as a system.

The model: LLaMA-2-70B scaled up (:func:`scaled_card`). Width and depth grow by the same factor
``s = (P / P_70B)^(1/3)`` (parameters grow as ``layers x hidden^2``); the hidden size is rounded
to a multiple of 8192 (128-wide heads, 8 query heads per KV head as in the 70B, and a KV-head
count divisible by 8 so tensor parallelism up to 8 divides it), the MLP width is 3.5 x hidden
rounded to a multiple of 256, the vocabulary is kept, and the layer count is then chosen so the
parameter count is nearest to ``P``.

The cost of one decode step is a closed form, not a simulation (a layer of this model is ~10^13
parameters; its programs are far beyond what the simulator can lower in reasonable time). The
plan: tensor parallelism over the sockets of a node, the layers pipelined over as many nodes as
the footprint needs. Per socket and layer, the time is the roofline
``max(FLOPs / peak FLOP/s, bytes / peak DDR bandwidth)`` of its weight shard and KV-cache shard;
per layer add the two tensor-parallel all-reduces, per stage boundary a network send
(:mod:`prodigy_sim.parallel` closed forms). With one sequence, the stages run one after the
other: the step is the sum. With the pipeline full (one sequence per stage in flight) a token
leaves every ``max(stage, send)`` seconds. The roofline is a lower bound: the simulator puts
LLaMA-2-70B's decode at 1.3x its roofline (``prodigy-sim simulate --model llama-2-70b``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import SystemConfig, load_system
from prodigy_sim.models import (
    Formats,
    ModelCard,
    kv_cache_bytes,
    load_card,
    tensor_footprint,
)
from prodigy_sim.parallel._collectives import allreduce, p2p
from prodigy_sim.parallel._plan import COLLECTIVE_BYTES_PER_ELEMENT
from prodigy_sim.parallel._shard import shard_card

__all__ = ["scaled_card", "BrainScaleCase", "brain_scale", "BRAIN_PARAMETERS", "BRAIN_BYTES"]

BRAIN_PARAMETERS = 10**17
"""100 quadrillion parameters (the claim)."""
BRAIN_BYTES = 256 * 10**15
"""256 PB of DDR5 (the claim; PB = 1e15 bytes)."""


def scaled_card(parameters: int = BRAIN_PARAMETERS, base: str = "llama-2-70b") -> ModelCard:
    """``base`` (a llama card) scaled to about ``parameters`` (see the module docstring)."""
    card = load_card(base)
    if card.family != "llama":
        raise ConfigError(f"scaled_card needs a llama card (got {card.family!r})")
    group = card.num_attention_heads // card.kv_heads
    quantum = card.head_size * group * card.kv_heads
    s = (parameters / card.parameter_count()) ** (1 / 3)
    hidden = max(quantum, round(card.hidden_size * s / quantum) * quantum)
    ratio = card.intermediate_size / card.hidden_size
    inter = max(256, round(ratio * hidden / 256) * 256)
    heads = hidden // card.head_size
    data = card.model_dump()
    data.update(name=f"{card.name}-scaled-{parameters:.0e}".replace("+", ""),
                hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                num_key_value_heads=heads // group, head_dim=card.head_size, num_layers=1,
                published_parameters=None, published_parameters_note="",
                source=f"{card.name} scaled in width and depth by {s:.2f} (prodigy_sim.parallel."
                       f"scaled_card)")
    one = ModelCard.model_validate(data)
    per_layer = sum(t.numel for t in one.layer_tensors(0))
    rest = one.parameter_count() - per_layer
    data["num_layers"] = max(1, round((parameters - rest) / per_layer))
    return ModelCard.model_validate(data)


def _split(card: ModelCard, formats: Formats) -> tuple[int, int, int, int, int]:
    """``(layer parameters, layer bytes, parameters outside the layers, embedding bytes, final
    norm + head bytes)`` from a one-layer copy of ``card`` (every llama layer is the same)."""
    one = card.model_copy(update={"num_layers": 1})
    layer = [t for t in one.tensors() if t.layer is not None]
    outside = [t for t in one.tensors() if t.layer is None]
    emb = [t for t in outside if t.tensor_class in ("embedding", "position")]
    rest = [t for t in outside if t.tensor_class not in ("embedding", "position")]
    return (sum(t.numel for t in layer), sum(_bytes(t, formats) for t in layer),
            sum(t.numel for t in outside), sum(_bytes(t, formats) for t in emb),
            sum(_bytes(t, formats) for t in rest))


@dataclass(frozen=True)
class BrainScaleCase:
    """The claim in one weight format: footprint, sockets, and one decode step.

    ``layer_parameters``: of one layer; ``layer_shard_bytes``: one socket's share of a layer's
    weights and KV cache.

    ``fits_claim``: weights + KV cache <= the claimed bytes. ``sockets_needed``: whole layers per
    stage, so it can exceed ``total / capacity``; ``fits_system``: they are at most the system's
    sockets."""

    weights: str
    parameters: int
    hidden_size: int
    layers: int
    layer_parameters: int
    layer_shard_bytes: int
    weight_bytes: int
    kv_cache_bytes: int
    total_bytes: int
    claim_bytes: int
    fits_claim: bool
    socket_capacity_bytes: int
    sockets_for_claim: int
    sockets_needed: int
    fits_system: bool
    nodes: int
    tp: int
    pp: int
    layers_per_stage: int
    layer_seconds: float
    layer_bound: str
    allreduce_seconds: float
    allreduce_algorithm: str
    send_seconds: float
    step_seconds: float
    pipelined_tokens_per_s: float
    system: str
    context: int

    def to_dict(self) -> dict:
        return asdict(self)


def brain_scale(weights: str = "tai4", *, parameters: int = BRAIN_PARAMETERS,
                claim_bytes: int = BRAIN_BYTES, system: SystemConfig | str = "256pb-t16128",
                context: int = 2048, kv_cache: str = "float8_e4m3fn") -> BrainScaleCase:
    """How many sockets of ``system``'s chip the scaled model needs in ``weights`` (every weight
    class in that format, FP8 KV cache for one sequence of ``context`` tokens), and the cost of
    one decode step (batch 1) on them (see the module docstring)."""
    system = load_system(system) if isinstance(system, str) else system
    chip = system.chip
    card = scaled_card(parameters)
    formats = Formats.uniform(weights, kv_cache=kv_cache)
    layer_params, layer_bytes, outside_params, emb_bytes, rest_bytes = _split(card, formats)
    weight_bytes = card.num_layers * layer_bytes + emb_bytes + rest_bytes
    kv = kv_cache_bytes(card, 1, context, formats.kv_cache.bits)
    total = weight_bytes + kv
    cap = chip.memory.capacity_bytes
    tp = system.sockets_per_node
    shard = shard_card(card, tp)
    _, layer_w, _, shard_emb, shard_rest = _split(shard, formats)
    layer_kv = kv_cache_bytes(shard, 1, context, formats.kv_cache.bits) // shard.num_layers
    per_socket = cap - max(shard_emb, shard_rest)
    layers_per_socket = max(1, per_socket // (layer_w + layer_kv))
    pp = math.ceil(card.num_layers / layers_per_socket)
    per_stage = math.ceil(card.num_layers / pp)
    flops = 2 * sum(t.numel for t in shard.layer_tensors(0)) \
        + 4 * context * shard.num_attention_heads * shard.head_size
    fmt = weights if weights in chip.core.matrix_unit.relative_throughput else "float8_e4m3fn"
    t_compute = flops / chip.peak_matrix_flops(fmt)
    t_memory = (layer_w + layer_kv) / chip.peak_ddr_bandwidth_bytes_per_s
    t_layer = max(t_compute, t_memory)
    act = card.hidden_size * COLLECTIVE_BYTES_PER_ELEMENT
    ar = allreduce(system, act, tp)
    send = p2p(system, act, same_node=False)
    stage = per_stage * (t_layer + 2 * ar.seconds)
    step = card.num_layers * (t_layer + 2 * ar.seconds) + (pp - 1) * send.seconds
    return BrainScaleCase(
        weights=weights, parameters=card.num_layers * layer_params + outside_params,
        hidden_size=card.hidden_size, layers=card.num_layers, layer_parameters=layer_params,
        layer_shard_bytes=layer_w + layer_kv, weight_bytes=weight_bytes,
        kv_cache_bytes=kv,
        total_bytes=total, claim_bytes=claim_bytes, fits_claim=total <= claim_bytes,
        socket_capacity_bytes=cap, sockets_for_claim=math.ceil(claim_bytes / cap),
        sockets_needed=pp * tp, fits_system=pp * tp <= system.sockets, nodes=pp, tp=tp, pp=pp,
        layers_per_stage=per_stage,
        layer_seconds=t_layer, layer_bound="memory" if t_memory >= t_compute else "compute",
        allreduce_seconds=ar.seconds, allreduce_algorithm=ar.algorithm,
        send_seconds=send.seconds, step_seconds=step,
        pipelined_tokens_per_s=1.0 / max(stage, send.seconds), system=system.name,
        context=context)


def _bytes(spec, formats: Formats) -> int:
    fp = tensor_footprint(spec, formats.for_class(spec.tensor_class))
    return fp.code_bytes + fp.scale_bytes + fp.metadata_bytes
