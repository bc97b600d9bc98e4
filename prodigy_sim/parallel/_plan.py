"""One forward pass (a decode step or a prefill) of a model over several sockets.

A :class:`ParallelPlan` says how the model is split: tensor parallelism ``tp`` (Megatron column /
row split inside a layer), pipeline parallelism ``pp`` (consecutive layers per stage, ``m``
microbatches), expert parallelism ``ep`` (the experts of each MoE layer split; attention data
parallel over the ``ep`` groups). It uses ``tp * pp * ep`` sockets, packed into nodes: the ``tp``
sockets of a stage first (inside one node when ``tp <= sockets_per_node``), then the stages.

Time of one pass (:func:`simulate_parallel`), for a microbatch of ``b = batch / (m ep)`` sequences
of ``q`` new tokens, ``A = b q hidden`` activation elements, exchanged in BF16 (2 bytes):

- one socket's compute comes from a *socket timer*; the default simulates the sharded model
  (:func:`~prodigy_sim.parallel.shard_card`) on one socket with
  :func:`prodigy_sim.reports.simulate_scenario` and splits its time into a per-layer part (the
  mean over the layers the pass runs: a decode step of an encoder-decoder runs the decoder only)
  and the head. Under expert parallelism a socket's experts are timed for its own ``b``
  sequences routed over its ``E / ep`` experts (the scenario's routing model): the expected rows
  per expert equal those of the real all-to-all (``b ep q k / E``), but the expected experts hit
  is ``(E / ep)(1 - (1 - k ep / E)^(b q))`` instead of ``(E / ep)(1 - (1 - k / E)^(ep b q))``
  (at least as many: the shard's time is an upper bound on its experts' weight traffic).
- tensor parallelism: per layer 2 all-reduces of ``2 A`` bytes (after the attention output and
  the MLP down projections); one all-reduce of ``2 A`` for the vocabulary-parallel embedding
  (stage 0); an all-gather of the ``b vocab`` BF16 logits (last stage, decoders). Decode and
  prefill wait for them: they are on the critical path, not overlapped.
- expert parallelism: per MoE layer the pass runs, an all-to-all of ``2 A k`` bytes to dispatch
  the tokens to their ``k`` experts and one to combine them, on the critical path.
- pipeline: stage ``i`` takes ``t_i``; sending ``2 A`` bytes to the next stage takes ``c_i``
  (socket link inside a node, network between nodes). The first microbatch crosses every stage
  and link; each further one adds the slowest slot, because the sends of one microbatch overlap
  the compute of the next: ``sum t_i + sum c_i + (m - 1) max(max t_i, max c_i)``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prodigy_sim.errors import ConfigError, config_error_from_validation
from prodigy_sim.hardware import DEFAULT_SYSTEM, ChipConfig, SystemConfig, load_system
from prodigy_sim.models import (
    ModelCard,
    Scenario,
    activation_bytes,
    check_scenario,
    kv_cache_bytes,
    load_card,
    tensor_footprint,
)
from prodigy_sim.parallel._collectives import Collective, allgather, allreduce, alltoall, p2p
from prodigy_sim.parallel._shard import shard_card, stage_layers
from prodigy_sim.reports import simulate_scenario

__all__ = ["ParallelPlan", "SocketTimes", "SocketTimer", "simulated_socket_times",
           "StageFootprint", "socket_footprint", "ParallelReport", "simulate_parallel",
           "COLLECTIVE_BYTES_PER_ELEMENT", "parse_plan"]

COLLECTIVE_BYTES_PER_ELEMENT = 2
"""Activations and partial sums travel between sockets in BF16 (assumption: the row-parallel
outputs are partial sums that must be added before they are quantized)."""


class ParallelPlan(BaseModel):
    """How a model is split over sockets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(1, ge=1, description="tensor-parallel sockets per stage (count)")
    pp: int = Field(1, ge=1, description="pipeline stages (count)")
    ep: int = Field(1, ge=1, description="expert-parallel groups (count; MoE models only)")
    microbatches: int = Field(1, ge=1, description="microbatches the batch is split into for "
                                                   "the pipeline (count)")
    allreduce: Literal["auto", "ring"] = Field(
        "auto", description="all-reduce algorithm: auto (fastest closed form at each level) or "
                            "ring")

    @property
    def sockets(self) -> int:
        """Sockets the plan uses: ``tp * pp * ep``."""
        return self.tp * self.pp * self.ep


class SocketTimes(NamedTuple):
    """One socket's compute for one microbatch: seconds per layer, the head, how obtained."""

    layer_s: tuple[float, ...]
    head_s: float
    method: str


SocketTimer = Callable[[ModelCard, Scenario, ChipConfig], SocketTimes]
"""``(sharded card, scenario of one microbatch on one socket, chip) -> SocketTimes``."""


def simulated_socket_times(card: ModelCard, scenario: Scenario, chip: ChipConfig,
                           **options) -> SocketTimes:
    """Simulate ``card`` (one socket's shard) in ``scenario`` on ``chip`` with
    :func:`prodigy_sim.reports.simulate_scenario` (``options`` are passed on). Every layer gets
    the mean layer time (the lowering's identical layers share one simulation)."""
    with tempfile.TemporaryDirectory(prefix="prodigy-shard-") as tmp:
        path = Path(tmp) / f"{card.name}.yaml"
        path.write_text(yaml.safe_dump(card.model_dump(exclude_none=True), sort_keys=False))
        report = simulate_scenario(scenario.model_copy(update={"model": str(path)}),
                                   config=chip, **options)
    head = sum(o["total_seconds"] for o in report.ops if o["stage"] == "head")
    run = _runs(card, scenario)
    per_layer = (report.seconds - head) / sum(run)
    return SocketTimes(tuple(per_layer if r else 0.0 for r in run), head,
                       f"simulate_scenario of {card.name} on one socket {report.settings}")


def _runs(card: ModelCard, scenario: Scenario) -> tuple[bool, ...]:
    """Whether each layer runs in the pass (a decode step of an encoder-decoder skips the
    encoder, which ran at prefill)."""
    return tuple(scenario.phase != "decode" or card.layer_kind(i) == "decoder"
                 for i in range(card.num_layers))


@dataclass(frozen=True)
class StageFootprint:
    """Bytes one socket of a pipeline stage holds."""

    stage: int
    layers: tuple[int, int]
    weight_bytes: int
    kv_cache_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes


def _micro(scenario: Scenario, plan: ParallelPlan) -> Scenario:
    groups = plan.microbatches * plan.ep
    if scenario.batch % groups:
        raise ConfigError(f"batch {scenario.batch} must divide into microbatches x ep = "
                          f"{plan.microbatches} x {plan.ep} equal parts")
    return scenario.model_copy(update={"batch": scenario.batch // groups})


def socket_footprint(card: ModelCard | str, scenario: Scenario,
                     plan: ParallelPlan) -> tuple[StageFootprint, ...]:
    """Bytes per socket of each pipeline stage: its layers' weight shards (the embeddings on
    stage 0, the final norm and head on the last), their KV cache for the scenario's sequences
    (``batch / ep`` per socket) and the activations of one microbatch
    (:func:`prodigy_sim.models.activation_bytes` of the shard)."""
    card = load_card(card)
    shard = shard_card(card, plan.tp, plan.ep)
    stages = stage_layers(card.num_layers, plan.pp)
    micro = _micro(scenario, plan)
    weights = [0] * plan.pp
    stage_of = {layer: k for k, layers in enumerate(stages) for layer in layers}
    nm = scenario.sparsity_nm
    for t in shard.tensors():
        if t.layer is not None:
            k = stage_of[t.layer]
        else:
            k = 0 if t.tensor_class in ("embedding", "position") else plan.pp - 1
        fp = tensor_footprint(t, scenario.formats.for_class(t.tensor_class), nm)
        weights[k] += fp.code_bytes + fp.scale_bytes + fp.metadata_bytes
    seqs = scenario.batch // plan.ep
    enc = (scenario.encoder_length or scenario.context_tokens) if card.family == "switch" else 0
    kv_all = kv_cache_bytes(shard, seqs, scenario.context_tokens,
                            scenario.formats.kv_cache.bits, enc)
    act = activation_bytes(shard, micro)
    out = []
    for k, layers in enumerate(stages):
        decoders = sum(1 for i in layers if shard.layer_kind(i) == "decoder")
        kv = kv_all * decoders // shard.decoder_layers if shard.decoder_layers else 0
        out.append(StageFootprint(k, (layers[0], layers[-1]), weights[k], kv, act))
    return tuple(out)


@dataclass(frozen=True)
class ParallelReport:
    """One pass over several sockets: compute, collectives, step time, footprint per socket."""

    model: str
    phase: str
    batch: int
    tokens: int
    context: int
    system: str
    plan: dict
    sockets: int
    shard: str
    micro_batch: int
    stage_compute_s: tuple[float, ...]
    stage_seconds: tuple[float, ...]
    p2p_seconds: tuple[float, ...]
    collectives: tuple[dict, ...]
    compute_s: float
    communication_s: float
    step_s: float
    footprint: tuple[StageFootprint, ...]
    capacity_bytes_per_socket: int
    method: str
    notes: tuple[str, ...] = field(default=())

    @property
    def tokens_per_s(self) -> float | None:
        """Decode: tokens generated per second by the whole batch."""
        return self.batch / self.step_s if self.phase == "decode" else None

    @property
    def footprint_bytes_per_socket(self) -> int:
        """The largest per-socket footprint over the stages (bytes)."""
        return max(s.total_bytes for s in self.footprint)

    @property
    def fits(self) -> bool:
        """True if every socket's footprint fits its DDR capacity."""
        return self.footprint_bytes_per_socket <= self.capacity_bytes_per_socket

    def to_dict(self) -> dict:
        out = asdict(self)
        out["footprint"] = [dict(asdict(s), total_bytes=s.total_bytes) for s in self.footprint]
        out.update(tokens_per_s=self.tokens_per_s,
                   footprint_bytes_per_socket=self.footprint_bytes_per_socket, fits=self.fits)
        return out

    def table(self) -> str:
        """A short text report (ms, GB = 1e9 bytes)."""
        p = self.plan
        lines = [f"{self.model} {self.phase}, batch {self.batch}, context {self.context} on "
                 f"{self.system}: tp={p['tp']} pp={p['pp']} ep={p['ep']} microbatches="
                 f"{p['microbatches']} ({self.sockets} sockets; each runs {self.shard})",
                 f"{'collective':<11} {'count':>8} {'bytes':>12} {'each us':>9} "
                 f"{'total ms':>9}  algorithm (count per microbatch)"]
        for c in self.collectives:
            lines.append(f"{c['op']:<11} {c['count']:>8} {c['nbytes']:>12,} "
                         f"{c['seconds'] * 1e6:>9.2f} {c['count'] * c['seconds'] * 1e3:>9.3f}  "
                         f"{c['algorithm']}")
        lines += [
            f"compute              {self.compute_s * 1e3:.3f} ms (stages: "
            + ", ".join(f"{t * 1e3:.3f}" for t in self.stage_compute_s) + " ms per microbatch)",
            f"communication        {self.communication_s * 1e3:.3f} ms on the critical path",
            f"step                 {self.step_s * 1e3:.3f} ms"
            + (f" ({self.tokens_per_s:.1f} tokens/s)" if self.tokens_per_s else ""),
            f"footprint per socket {self.footprint_bytes_per_socket / 1e9:.3f} GB of "
            f"{self.capacity_bytes_per_socket / 1e9:.1f} GB: "
            + ("fits" if self.fits else "DOES NOT FIT"),
            f"method               {self.method}",
        ]
        lines += [f"note                 {n}" for n in self.notes]
        return "\n".join(lines)


def _check_plan(plan: ParallelPlan, system: SystemConfig) -> None:
    if plan.sockets > system.sockets:
        raise ConfigError(f"plan needs tp x pp x ep = {plan.sockets} sockets; system "
                          f"{system.name!r} has {system.sockets}")
    s = system.sockets_per_node
    if plan.tp > s and plan.tp % s:
        raise ConfigError(f"tp={plan.tp} spans nodes of {s} sockets: it must be a multiple of "
                          f"{s}")
    if plan.tp < s and s % plan.tp:
        raise ConfigError(f"tp={plan.tp} must divide the {s} sockets of a node")


def _same_node(system: SystemConfig, plan: ParallelPlan, stage: int) -> bool:
    s = system.sockets_per_node
    if plan.tp * plan.ep >= s:
        return False
    width = plan.tp * plan.ep
    return (stage * width) // s == ((stage + 1) * width) // s


def simulate_parallel(scenario: Scenario, plan: ParallelPlan | None = None,
                      system: SystemConfig | str | None = None, *,
                      socket_timer: SocketTimer | None = None,
                      **options) -> ParallelReport:
    """Time one pass of ``scenario`` split by ``plan`` over ``system`` (see the module
    docstring). ``options`` go to the default socket timer (``simulate_scenario``)."""
    plan = plan or ParallelPlan()
    if isinstance(system, str) or system is None:
        system = load_system(system or DEFAULT_SYSTEM)
    card = scenario.card()
    check_scenario(scenario, card)
    _check_plan(plan, system)
    if plan.ep > 1 and scenario.routing.model == "trace":
        raise ConfigError("'routing': a trace of expert choices is not split over expert-"
                          "parallel sockets (use uniform or zipf with ep > 1)")
    shard = shard_card(card, plan.tp, plan.ep)
    stages = stage_layers(card.num_layers, plan.pp)
    runs = _runs(card, scenario)
    micro = _micro(scenario, plan)
    if socket_timer is None:
        times = simulated_socket_times(shard, micro, system.chip, **options)
    else:
        times = socket_timer(shard, micro, system.chip)
    if len(times.layer_s) != card.num_layers:
        raise ConfigError(f"socket timer gave {len(times.layer_s)} layer times for "
                          f"{card.num_layers} layers")
    width = plan.tp
    elements = micro.batch * micro.query_tokens * card.hidden_size
    act = elements * COLLECTIVE_BYTES_PER_ELEMENT
    top_k = card.experts_per_token
    collectives: list[tuple[Collective, int]] = []
    layer_comm = 0.0
    moe_comm = 0.0
    embed_s = logits_s = 0.0
    if plan.tp > 1:
        ar = allreduce(system, act, width, plan.allreduce)
        layer_comm = 2 * ar.seconds
        embed_s = ar.seconds
        collectives.append((ar, 2 * card.num_layers + 1))
        if card.is_decoder:
            gather = allgather(system, micro.batch * card.vocab_size
                               * COLLECTIVE_BYTES_PER_ELEMENT, width)
            logits_s = gather.seconds
            collectives.append((gather, 1))
    if plan.ep > 1:
        a2a = alltoall(system, act * top_k, plan.ep)
        moe_comm = 2 * a2a.seconds
        moe_layers = sum(1 for i in range(card.num_layers) if card.is_moe_layer(i) and runs[i])
        collectives.append((a2a, 2 * moe_layers))
    compute, seconds = [], []
    for k, layers in enumerate(stages):
        c = sum(times.layer_s[i] for i in layers) + (times.head_s if k == plan.pp - 1 else 0.0)
        t = c + layer_comm * len(layers)
        t += moe_comm * sum(1 for i in layers if card.is_moe_layer(i) and runs[i])
        if k == 0:
            t += embed_s
        if k == plan.pp - 1:
            t += logits_s
        compute.append(c)
        seconds.append(t)
    sends = []
    for k in range(plan.pp - 1):
        msg = p2p(system, act, _same_node(system, plan, k))
        sends.append(msg.seconds)
        collectives.append((msg, 1))
    slot = max(seconds + sends)
    step = sum(seconds) + sum(sends) + (plan.microbatches - 1) * slot
    compute_s = sum(compute) + (plan.microbatches - 1) * max(compute)
    notes = ["collectives on the critical path (not overlapped); pipeline sends overlap the "
             "next microbatch's compute"]
    if plan.pp > 1 and plan.microbatches > 1:
        bubble = (plan.pp - 1) / (plan.microbatches + plan.pp - 1)
        notes.append(f"pipeline bubble (pp-1)/(m+pp-1) = {bubble:.1%} of a uniform pipeline")
    fp = socket_footprint(card, scenario, plan)
    rows = tuple({**asdict(c), "count": n} for c, n in collectives)
    return ParallelReport(
        model=card.name, phase=scenario.phase, batch=scenario.batch,
        tokens=scenario.query_tokens, context=scenario.context_tokens, system=system.name,
        plan=plan.model_dump(), sockets=plan.sockets, shard=shard.name,
        micro_batch=micro.batch, stage_compute_s=tuple(compute), stage_seconds=tuple(seconds),
        p2p_seconds=tuple(sends), collectives=rows, compute_s=compute_s,
        communication_s=step - compute_s, step_s=step, footprint=fp,
        capacity_bytes_per_socket=system.chip.memory.capacity_bytes, method=times.method,
        notes=tuple(notes))


def parse_plan(data: dict, *, source: str = "plan") -> ParallelPlan:
    """Validate a mapping as a :class:`ParallelPlan` (errors name ``source`` and the field)."""
    try:
        return ParallelPlan.model_validate(data)
    except ValidationError as err:
        raise config_error_from_validation(err, source=source) from None

