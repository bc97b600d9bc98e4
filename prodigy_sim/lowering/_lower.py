"""A model card + scenario -> per-layer-kind lists of kernels (tile programs), with FLOP formulas.

One :class:`LoweredStage` per group of structurally identical layers (``card.layer_groups()``)
holds the kernels of one layer, run in order (each kernel ends with a BARRIER; its outputs reach
the next kernel through DDR); a final ``head`` stage holds the final norm and LM head (decoders,
last position of each sequence) or the BERT pooler. Embedding lookups (data-dependent rows) are
not lowered.

LLaMA layer: ``attn_norm`` (RMSNorm -> FP8), ``qkv_proj`` (BF16 out), ``rope_kv`` (RoPE on Q, K;
K and V^T into the caches), ``attention``, ``o_proj`` (+ residual), ``mlp_norm``, ``gate_up``
(``silu(gate) * up`` -> FP8), ``down_proj`` (+ residual). BERT layer (post-norm): ``qkv_proj``
(+ bias), ``qkv_cache`` (Q to FP8, K and V^T), ``attention`` (full sequence), ``o_proj`` (+ bias +
residual), ``attn_norm`` (LayerNorm), ``up_proj`` (+ bias, GELU), ``down_proj`` (+ bias +
residual), ``mlp_norm``.

Mixture-of-experts MLPs (``card.is_moe_layer``) become ``router``, ``route``, ``dispatch``,
``experts_gate_up`` (``experts_up``), ``experts_down`` and ``combine`` for the experts the
scenario's routing model says the tokens use (:mod:`._moe`). Switch (T5 encoder-decoder) layers
are pre-norm like LLaMA without RoPE; decoder layers add ``cross_norm``, ``cross_q``,
``cross_kv`` (prefill), ``cross_attention`` and ``cross_o_proj``; a decode step runs the decoder
layers only, prefill the encoder (then ``encoder_norm``) and the decoder over the prompt.

Standard FLOPs (``LoweredOp.flops``), with ``T = batch x new tokens``, ``C`` = attended keys
(decode: the context; prefill: the sequence, the full square even when causal):
linear ``2 T N K``; attention ``4 T C heads head_dim`` (``Q K^T`` and ``P V``). Vector FLOPs
(``LoweredOp.vector_flops``, standard counts of the model's elementwise work, not of what the
programs execute): one FLOP per elementwise arithmetic operation, ``exp``, ``erf``, ``rsqrt`` and
a reciprocal count 1 each, a sign flip 0 - RMSNorm ``T (4 H + 3)`` (square, sum, scale, gain per
element; mean, epsilon, rsqrt per row), LayerNorm ``T (7 H + 4)``, RoPE ``3 T (heads + kv) d``
(``x cos + rotate_half(x) sin``), softmax ``B q heads (5 C + d)`` (scale, max, subtract, exp, sum
per score; the division of the output), SiLU gate ``5 T F`` (``x / (1 + exp(-x))`` times up),
GELU ``5`` per element, bias and residual adds 1 per element.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from prodigy_sim.errors import ConfigError
from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import MMA_SP_SPARSITY, opcode_table, validate
from prodigy_sim.lowering._attention import attention_kernel
from prodigy_sim.lowering._common import ACT, BF16, Budgets, Kernel
from prodigy_sim.lowering._linear import (
    LinearMapping,
    linear_kernel,
    linear_tile_bytes,
    tile_shape,
)
from prodigy_sim.lowering._mapper import (
    DDR_EFFICIENCY,
    TIE,
    beside_scratchpads,
    linear_cost,
    map_linear,
    most_room,
    scored_candidates,
)
from prodigy_sim.lowering._moe import (
    ROUTER_ROW_BYTES,
    combine_kernel,
    dispatch_kernel,
    moe_plan,
    padded_experts,
    route_kernel,
)
from prodigy_sim.lowering._ptq_ops import PtqWork, insert_ptq_ops
from prodigy_sim.lowering._residency import (
    Dataflow,
    Residency,
    live_positions,
    plan_residency,
    private_rows_share,
)
from prodigy_sim.lowering._vector import norm_kernel, rope_kv_kernel
from prodigy_sim.models import ModelCard, Scenario, tensor_footprint
from prodigy_sim.numerics import FormatSpec, Sparsity, Storage
from prodigy_sim.timing import isa_params

__all__ = ["LoweredOp", "LoweredStage", "LoweredModel", "lower_model", "padded_tokens",
           "linear_flops", "attention_flops", "norm_vector_flops", "rope_vector_flops",
           "softmax_vector_flops", "weight_storage", "matrix_runs", "plan_linear", "linear_op",
           "linear_plan", "mapper_call"]


def linear_flops(tokens: int, n: int, k: int) -> int:
    """Standard FLOPs of a linear layer: ``2 x tokens x N x K``."""
    return 2 * tokens * n * k


def attention_flops(batch: int, queries: int, context: int, heads: int, head_dim: int) -> int:
    """Standard FLOPs of attention: ``4 x batch x queries x context x heads x head_dim``."""
    return 4 * batch * queries * context * heads * head_dim


def norm_vector_flops(rows: int, h: int, kind: str) -> int:
    """Vector FLOPs of a norm: RMSNorm ``rows (4 h + 3)``, LayerNorm ``rows (7 h + 4)``."""
    return rows * (4 * h + 3) if kind == "rmsnorm" else rows * (7 * h + 4)


def rope_vector_flops(tokens: int, heads: int, kv_heads: int, head_dim: int) -> int:
    """Vector FLOPs of RoPE on Q and K: ``3 x tokens x (heads + kv_heads) x head_dim``."""
    return 3 * tokens * (heads + kv_heads) * head_dim


def softmax_vector_flops(batch: int, queries: int, context: int, heads: int,
                         head_dim: int) -> int:
    """Vector FLOPs of attention's softmax: ``batch x queries x heads x (5 context +
    head_dim)``."""
    return batch * queries * heads * (5 * context + head_dim)


def padded_tokens(n: int) -> int:
    """Prompt length as the kernels tile it: a multiple of 32 up to 64, else of 64."""
    return 32 * math.ceil(n / 32) if n <= 64 else 64 * math.ceil(n / 64)


@dataclass(frozen=True)
class LoweredOp:
    """One operation of a layer: its kernel, how to rebuild it with a unit cap, its standard
    (matrix) FLOPs, the bytes of the weights it reads and its standard vector FLOPs."""

    name: str
    kernel: Kernel
    rebuild: Callable[[int | None], Kernel]
    flops: int
    weight_bytes: int
    vector_flops: int = 0
    flow: Dataflow | None = None
    """The activations it reads and writes (:mod:`._residency`)."""
    residency: Residency = Residency()
    """Its tensors kept on chip by the residency plan (none when the L3 is off)."""


@dataclass(frozen=True)
class LoweredStage:
    """The kernels of one layer, shared by the structurally identical ``layers``."""

    name: str
    layers: tuple[int, ...]
    ops: tuple[LoweredOp, ...]

    @property
    def repeat(self) -> int:
        """How many times the stage runs per pass (1 for the head)."""
        return len(self.layers) or 1


@dataclass(frozen=True)
class LoweredModel:
    """Every stage of a model in a scenario on ``cores`` logical cores of ``config_name``."""

    model: str
    scenario: Scenario
    config_name: str
    cores: int
    tokens: int
    stages: tuple[LoweredStage, ...]
    moe: tuple[str, ...] = ()
    """The routing of the mixture-of-experts layers, one line per distinct plan (empty for dense
    models)."""

    @property
    def flops(self) -> int:
        return sum(op.flops * s.repeat for s in self.stages for op in s.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(op.weight_bytes * s.repeat for s in self.stages for op in s.ops)

    @property
    def vector_flops(self) -> int:
        return sum(op.vector_flops * s.repeat for s in self.stages for op in s.ops)


def matrix_runs(fmt: FormatSpec, config: ChipConfig) -> bool:
    """Whether weights in ``fmt`` run on ``config``'s matrix unit: the ISA's MMA takes them (its
    ``weight`` format group) and the preset gives them a rate."""
    return (opcode_table().format_groups["weight"].admits(fmt)
            and config.core.matrix_unit.relative_rate(fmt) > 0)


def weight_storage(wf: Storage, sparsity: Sparsity | None, config: ChipConfig,
                   field: str) -> Storage:
    """The storage the lowering gives a class of linear weights: ``wf`` with the scenario's
    ``sparsity``, checked against what the ISA's MMA takes (its ``weight`` format group, whole
    scale blocks, 8:4 for MMA.SP) and what the preset's matrix unit runs."""
    group = opcode_table().format_groups["weight"]
    mu = config.core.matrix_unit
    if not matrix_runs(wf.fmt, config):
        raise ConfigError(f"'{field}': format {wf.fmt.name!r} does not run on the matrix unit "
                          f"(the ISA's MMA takes {group.describe()}; the preset runs "
                          f"{', '.join(mu.relative_throughput)} and unlisted formats by width: "
                          f"{dict(mu.unlisted_relative_throughput)})")
    if wf.scaled and wf.block is None:
        raise ConfigError(f"'{field}': per-row scales (block none) are not supported by the "
                          "lowering; give a block size")
    if sparsity is not None and sparsity != MMA_SP_SPARSITY:
        raise ConfigError(f"'sparsity': the matrix unit runs {MMA_SP_SPARSITY} only (got "
                          f"{sparsity})")
    if sparsity is not None and not mu.runs_sparse(wf.fmt):
        raise ConfigError(f"'sparsity': format {wf.fmt.name!r} has no sparse mode on the matrix "
                          "unit ('core.matrix_unit.sparse_formats')")
    return wf.model_copy(update={"sparsity": sparsity})


def plan_linear(name: str, m: int, n: int, k: int, w: Storage, cores: int, epilogue: str,
                config: ChipConfig, budgets: Budgets, cap: int | None = None,
                l3: bool = True, l3_reserved: int = 0,
                resident: frozenset[str] = frozenset(), init: bool = False,
                mapping: LinearMapping | None = None, multicast_only: bool = False,
                first: str | None = None) -> Kernel:
    """The linear kernel the lowering generates for ``Y[m, n] = X[m, k] W[n, k]^T`` on
    ``cores`` of ``config``, placed by the mapper (:func:`~prodigy_sim.lowering.map_linear`);
    ``cap``: unit cap; ``l3``: the shared L3 is on (the mapper counts on it);
    ``l3_reserved``: bytes of the L3 that activations kept on chip take meanwhile;
    ``resident``: its tensors the residency plan keeps on chip; ``init``: the accumulators
    start from float32 tensors (:func:`~prodigy_sim.lowering.linear_kernel`); ``mapping``:
    this mapping instead of the mapper's choice; ``first``: the operand whose loads a K step
    issues first (:func:`with_residency` sets it from the residency plan)."""
    act = BF16 if w.fmt.wide else ACT
    if mapping is None:
        mapping = map_linear(m, n, k, w, act, epilogue, config, cores, budgets, l3,
                             l3_reserved, resident, init=init, multicast_only=multicast_only)
    return linear_kernel(name, m, n, k, weight=w, cores=cores, mapping=mapping,
                         epilogue=epilogue, act=act, budgets=budgets, unit_cap=cap, init=init,
                         first=first)


def with_residency(op: LoweredOp, residency: Residency) -> LoweredOp:
    """``op`` with ``residency``. A K step issues its loads from DDR first: a linear op placed
    by the mapper whose input ``X`` stays on chip issues its weight loads before its X loads
    (they come from DDR and take longer), any other its outer operand's first (the mapping's
    order); its kernel is rebuilt when that changes. The bits never depend on it."""
    fn = linear_plan(op)
    first = "W" if "X" in residency.resident else None
    if fn is not None and fn.keywords.get("first") != first:
        fn = functools.partial(fn, first=first)
        op = dataclasses.replace(op, kernel=fn(None), rebuild=fn)
    return dataclasses.replace(op, residency=residency)


def linear_plan(op: LoweredOp) -> functools.partial | None:
    """The :func:`plan_linear` call that builds ``op``'s kernel (a linear op placed by the
    mapper), or None for any other op."""
    fn = op.rebuild
    return fn if isinstance(fn, functools.partial) and fn.func is plan_linear else None


_MAPPER_KEYWORDS = ("l3", "l3_reserved", "resident", "init", "multicast_only")
"""The keywords of a :func:`plan_linear` call that the mapper (``map_linear``) takes too."""


def mapper_call(fn: functools.partial) -> tuple[tuple, dict]:
    """What the mapper ranks the linear op of the :func:`plan_linear` call ``fn`` by:
    ``(m, n, k, weight, act, epilogue, config, cores, budgets)`` - the arguments of
    :func:`~._mapper.scored_candidates` and :func:`~._mapper.map_linear` - and the keywords
    of :data:`_MAPPER_KEYWORDS` the call gives."""
    _, m, n, k, w, p, epi, cfg, bud = fn.args[:9]
    kw = {key: fn.keywords[key] for key in _MAPPER_KEYWORDS if key in fn.keywords}
    return (m, n, k, w, BF16 if w.fmt.wide else ACT, epi, cfg, p, bud), kw


def linear_op(name: str, m: int, n: int, k: int, weight: Storage, config: ChipConfig, *,
              cores: int | None = None, epilogue: str = "store", l3: bool = True) -> LoweredOp:
    """One linear layer ``Y[m, n] = X[m, k] W[n, k]^T`` as a lowered op (mapped by the mapper
    on ``cores``, default all, of ``config``), e.g. to simulate a single GEMM with
    :func:`prodigy_sim.simulation.simulate_op`. X comes from DDR and Y goes there."""
    p = config.cores if cores is None else cores
    bud = Budgets.of(isa_params(config))
    w = weight_storage(weight, weight.sparsity, config, "weight")
    factory = functools.partial(plan_linear, name, m, n, k, w, p, epilogue, config, bud, l3=l3)
    return _op(name, factory, linear_flops(m, n, k) * (2 if epilogue == "gated" else 1),
               w.nbytes(n, k) * (2 if epilogue == "gated" else 1))


def _remap_linears(stages: list[LoweredStage], plan: list[list[Residency]],
                   config: ChipConfig,
                   blind: frozenset[tuple[int, int]] = frozenset()) -> list[LoweredStage]:
    """The stages with every linear op mapped again, its mapper told how much of the L3 the
    activations that ``plan`` keeps on chip take during it and which of its own tensors stay on
    chip (the first mapping counted on the whole L3 and on DDR for every tensor); the ops at
    ``blind`` ``(stage, op)`` positions are not told the latter. The caller plans the residency
    again for the new kernels."""
    params = isa_params(config)
    out = []
    for i, (st, rs) in enumerate(zip(stages, plan, strict=True)):
        ops = []
        for j, (op, r) in enumerate(zip(st.ops, rs, strict=True)):
            fn = linear_plan(op)
            if fn is not None and (r.resident or r.held_bytes):
                sizes = {t: pl.nbytes for t, pl in validate(op.kernel.program,
                                                            params).tensors.items()}
                fn = functools.partial(fn, l3_reserved=r.onchip_bytes(sizes), resident=(
                    frozenset() if (i, j) in blind else frozenset(r.resident)))
                op = dataclasses.replace(op, kernel=fn(None), rebuild=fn)
            ops.append(op)
        out.append(dataclasses.replace(st, ops=tuple(ops)))
    return out


def _kept_bytes(stages: list[LoweredStage], plan: list[list[Residency]],
                sizes: Callable[[Kernel], dict[str, int]]) -> int:
    """DDR bytes the plan saves in one pass: every op's tensors kept on chip (each read or
    written on chip instead of DDR), times its stage's layers."""
    return sum(st.repeat * sum(sizes(op.kernel)[t] for t in r.resident)
               for st, rs in zip(stages, plan, strict=True)
               for op, r in zip(st.ops, rs, strict=True))


def _pairs(stages: list[LoweredStage]) -> list[tuple]:
    """``stages`` as the residency plan takes them: ``(ops, repeat)`` per stage."""
    return [(st.ops, st.repeat) for st in stages]


def _with_mapping(stages: list[LoweredStage], at: tuple[int, int], mapping: LinearMapping,
                  config: ChipConfig, cores: int
                  ) -> tuple[list[LoweredStage], list[list[Residency]]]:
    """``stages`` with the linear op at ``at`` (stage, op) rebuilt with ``mapping``, and their
    residency plan."""
    i, j = at
    st = stages[i]
    plan_fn = linear_plan(st.ops[j])
    assert plan_fn is not None
    fn = functools.partial(plan_fn, mapping=mapping)
    alt = dataclasses.replace(st.ops[j], kernel=fn(None), rebuild=fn)
    out = list(stages)
    out[i] = dataclasses.replace(st, ops=st.ops[:j] + (alt,) + st.ops[j + 1:])
    return out, plan_residency(_pairs(out), config, cores)


def _smaller_scratchpads(op: LoweredOp) -> list[tuple[float, int, LinearMapping]]:
    """The mapped linear op ``op``'s candidate mappings whose scratchpads are smaller than its
    own, as ``(extra cost in cycles, scratchpad bytes, mapping)``: the first of each scratchpad
    size in the mapper's ranking (:func:`~._mapper.scored_candidates`), in that order."""
    fn = linear_plan(op)
    assert fn is not None
    args, kw = mapper_call(fn)
    _, _, k, w, act, epi = args[:6]
    by_shape: dict[tuple, int] = {}

    def scratchpad(mp: LinearMapping) -> int:
        shape = tile_shape(mp)
        if shape not in by_shape:
            by_shape[shape] = linear_tile_bytes(mp, k, w, act, epi, init=kw.get("init", False))
        return by_shape[shape]

    scored = sorted(scored_candidates(*args, **kw), key=lambda c: c[0])
    cost0, own = next((c, scratchpad(mp)) for _, c, mp in scored
                      if mp.describe() == op.kernel.mapping)
    out: dict[int, tuple[float, int, LinearMapping]] = {}
    for _, cost, mp in scored:          # in the mapper's ranking order
        size = scratchpad(mp)
        if size < own and size not in out:
            out[size] = (cost - cost0, size, mp)
    return list(out.values())


def _tensor_sizes(config: ChipConfig) -> Callable[[Kernel], dict[str, int]]:
    """A function giving a kernel's tensors' bytes (its program validated once per kernel, which
    the cache keeps alive)."""
    params = isa_params(config)
    known: dict[int, tuple[Kernel, dict[str, int]]] = {}   # id -> (kernel kept alive, sizes)

    def sizes(kern: Kernel) -> dict[str, int]:
        hit = known.get(id(kern))
        if hit is None or hit[0] is not kern:
            hit = known[id(kern)] = (kern, {t: pl.nbytes for t, pl in validate(
                kern.program, params).tensors.items()})
        return hit[1]

    return sizes


def _keep_more(stages: list[LoweredStage], plan: list[list[Residency]], config: ChipConfig,
               cores: int, tries: int = 6) -> tuple[list[LoweredStage], list[list[Residency]]]:
    """The mapping and the residency plan chosen together: each linear op with a tensor the
    plan does not keep tries its cheapest mappings with smaller scratchpads (at most ``tries``
    sizes; none if not even the smallest lets the plan keep more); the first whose plan saves
    more DDR time (kept bytes at :data:`~._mapper.DDR_EFFICIENCY` of the peak) than its costs
    add, and still keeps every tensor a mapping counted on, replaces it (ops in order)."""
    sizes = _tensor_sizes(config)
    per_cycle = config.peak_ddr_bandwidth_bytes_per_s / config.frequency_hz * DDR_EFFICIENCY
    saved = _kept_bytes(stages, plan, sizes)
    for i, st in enumerate(stages):
        for j, op in enumerate(st.ops):
            touched = {t for t, _ in op.flow.reads + op.flow.writes} if op.flow else set()
            if linear_plan(op) is None or touched <= plan[i][j].resident:
                continue
            options = _smaller_scratchpads(op)
            least = min(options, key=lambda o: o[1], default=None)
            if least is None or _kept_bytes(*_with_mapping(stages, (i, j), least[2], config,
                                                           cores), sizes) <= saved:
                continue                    # not even the smallest scratchpad keeps more
            for extra, _, mp in options[:tries]:
                trial, trial_plan = _with_mapping(stages, (i, j), mp, config, cores)
                gain = (_kept_bytes(trial, trial_plan, sizes) - saved) / per_cycle
                if gain > extra * st.repeat and not _unkept(trial, trial_plan):
                    stages, plan = trial, trial_plan
                    saved = _kept_bytes(stages, plan, sizes)
                    break
    return stages, plan


def _linear_cycles(op: LoweredOp, r: Residency, sizes: dict[str, int]) -> float:
    """The mapper's cost (core cycles) of the mapped linear op ``op``'s mapping with its part
    ``r`` of the residency plan (its kept ``X`` and ``Y`` cost no DDR bytes; the kept
    activations take their bytes of its L3)."""
    fn = linear_plan(op)
    assert fn is not None
    args, kw = mapper_call(fn)
    m, n, k, w, act, epi, cfg, _, bud = args
    l3, init = kw.get("l3", True), kw.get("init", False)
    mp = fn.keywords.get("mapping") or map_linear(   # as plan_linear calls it (its cache)
        *args, l3, kw.get("l3_reserved", 0), kw.get("resident", frozenset()), init=init,
        multicast_only=kw.get("multicast_only", False))
    room = beside_scratchpads(bud, linear_tile_bytes(mp, k, w, act, epi, init=init), cfg)
    l3_bytes = max(0, room - r.onchip_bytes(sizes)) if l3 else 0
    return linear_cost(m, n, k, w, act, epi, mp, cfg, l3_bytes, r.resident & {"X", "Y"})


def _pass_cycles(stages: list[LoweredStage], plan: list[list[Residency]],
                 config: ChipConfig, sizes: Callable[[Kernel], dict[str, int]]) -> float:
    """The lowering's estimate of what a pass of ``stages`` costs where the residency plan
    matters (core cycles): every mapped linear op's mapper cost (:func:`_linear_cycles`), plus
    the DDR time of each activation the costs do not count (every other op's, a linear op's
    residual) that ``plan`` leaves in DDR, at :data:`~._mapper.DDR_EFFICIENCY` of the peak;
    times each stage's layers."""
    per_cycle = config.peak_ddr_bandwidth_bytes_per_s / config.frequency_hz * DDR_EFFICIENCY
    total = 0.0
    for st, rs in zip(stages, plan, strict=True):
        for op, r in zip(st.ops, rs, strict=True):
            have = sizes(op.kernel)
            flow = op.flow or Dataflow()
            tensors = {t for t, _ in flow.reads + flow.writes} | set(flow.scratch)
            cycles = 0.0
            if linear_plan(op) is not None:
                cycles = _linear_cycles(op, r, have)
                tensors -= {"X", "Y"}
            cycles += sum(have[t] for t in tensors - r.resident) / per_cycle
            total += st.repeat * cycles
    return total


def _remapped(stages: list[LoweredStage], plan: list[list[Residency]], config: ChipConfig,
              at: set[tuple[int, int]], sizes: Callable[[Kernel], dict[str, int]],
              multicast: set[tuple[int, int]]) -> list[LoweredStage]:
    """``stages`` with the linear ops at ``at`` mapped again by the mapper for their part of
    ``plan`` (the bytes the kept activations take of the L3, their own kept tensors), any
    mapping fixed earlier dropped."""
    out = list(stages)
    for i, j in sorted(at):
        op, r = out[i].ops[j], plan[i][j]
        fn = linear_plan(op)
        assert fn is not None
        kw = {key: v for key, v in fn.keywords.items() if key != "mapping"}
        kw.update(l3_reserved=r.onchip_bytes(sizes(op.kernel)), resident=frozenset(r.resident),
                  multicast_only=(i, j) in multicast)
        new = functools.partial(fn.func, *fn.args, **kw)
        alt = dataclasses.replace(op, kernel=new(None), rebuild=new)
        out[i] = dataclasses.replace(out[i], ops=out[i].ops[:j] + (alt,) + out[i].ops[j + 1:])
    return out


def _kept(plan: list[list[Residency]], stages: list[LoweredStage], at: tuple[int, int],
          key: str) -> bool:
    """Whether ``plan`` keeps on chip the activation ``key`` the op at ``at`` writes."""
    i, j = at
    flow = stages[i].ops[j].flow or Dataflow()
    return any(k == key and t in plan[i][j].resident for t, k in flow.writes)


_REMAPS = 3
"""Rounds of mapping the linear ops again for a trial plan of :func:`_keep_beyond_share` (a
new mapping's scratchpads change the room of the next plan) before the trial is given up."""


@dataclass(frozen=True)
class _Trial:
    """A residency plan beyond the share (:func:`_keep_beyond_share`): the stages as mapped for
    it, the plan, the shares it gives positions (1 for the linear ops mapped among multicast
    grids) and the lowering's estimate of a pass (cycles)."""

    stages: list[LoweredStage]
    plan: list[list[Residency]]
    shares: dict[tuple[int, int], float]
    cycles: float


def _beyond_share(best: _Trial, at: tuple[int, int], key: str, live: list[tuple[int, int]],
                  row_shares: dict[tuple[int, int], float], config: ChipConfig, cores: int,
                  sizes: Callable[[Kernel], dict[str, int]]) -> _Trial | None:
    """The trial of :func:`_keep_beyond_share` for the activation ``key`` that the op at ``at``
    writes and that lives across the ops at ``live``, on top of ``best`` (``row_shares``: the
    share of each row kernel, :func:`~._residency.private_rows_share`); None if it keeps
    nothing more or breaks a rule. A linear op at share 1 whose ``X`` the trial's plan leaves
    in DDR goes back to :data:`~._residency.RESIDENT_SHARE` (mapped among all grids) and the
    trial is made again without it."""
    stages = best.stages
    linear = {q for q in live if linear_plan(stages[q[0]].ops[q[1]]) is not None}
    if not linear and not any(q in row_shares for q in live):
        return None
    demoted: set[tuple[int, int]] = set()
    while True:
        trial, target, shares = _trial_plan(best, at, key, linear - demoted, demoted,
                                            row_shares, config, cores, sizes)
        if target is None or not _kept(target, trial, at, key) or _unkept(trial, target):
            return None
        lost = {q for q, share in shares.items() if share == 1.0 and q not in row_shares
                and "X" not in target[q[0]][q[1]].resident}
        if not lost:
            return _Trial(trial, target, shares, _pass_cycles(trial, target, config, sizes))
        demoted |= lost


def _trial_plan(best: _Trial, at: tuple[int, int], key: str, linear: set[tuple[int, int]],
                demoted: set[tuple[int, int]], row_shares: dict[tuple[int, int], float],
                config: ChipConfig, cores: int, sizes: Callable[[Kernel], dict[str, int]]
                ) -> tuple[list[LoweredStage], list[list[Residency]] | None,
                           dict[tuple[int, int], float]]:
    """:func:`_beyond_share`'s stages and plan for ``key`` (written at ``at``) with the
    ``linear`` ops at share 1 (mapped among multicast grids), the ``demoted`` ones at the
    default share, every row kernel at its own share: the plan made again until it keeps what
    the new mappings count on (:data:`_REMAPS` rounds), and the shares. The plan is None if it
    does not settle, or if its first version, made with the most room the ``linear`` ops'
    mappings could leave, does not keep ``key``."""
    stages, plan = best.stages, best.plan
    trial_shares = ({q: v for q, v in best.shares.items() if q not in demoted} | row_shares
                    | dict.fromkeys(linear, 1.0))
    multicast = {q for q, share in trial_shares.items() if share == 1.0}
    rooms = {}
    for i, j in linear:
        fn = linear_plan(stages[i].ops[j])
        assert fn is not None
        args, kw = mapper_call(fn)
        rooms[(i, j)] = most_room(*args, kw.get("init", False))
    prefer = [(at, key)] + [act for act in live_positions(_pairs(stages))
                            if act != (at, key) and _kept(plan, stages, *act)]
    first = plan_residency(_pairs(stages), config, cores, trial_shares, rooms, prefer)
    if not _kept(first, stages, at, key):
        return stages, None, trial_shares
    mapped_for = {(i, j): plan[i][j] for i, st in enumerate(stages)
                  for j, op in enumerate(st.ops) if linear_plan(op) is not None}
    todo = linear | demoted | {q for q, r in mapped_for.items() if first[q[0]][q[1]] != r}
    trial, target = stages, first
    for _ in range(_REMAPS):        # map again until the plan keeps what they count on
        trial = _remapped(trial, target, config, todo, sizes, multicast)
        mapped_for.update({(i, j): target[i][j] for i, j in todo})
        target = plan_residency(_pairs(trial), config, cores, trial_shares, prefer=prefer)
        todo = {q for q, r in mapped_for.items() if target[q[0]][q[1]] != r}
        if not todo:
            return trial, target, trial_shares
    return trial, None, trial_shares


def _keep_beyond_share(stages: list[LoweredStage], plan: list[list[Residency]],
                       config: ChipConfig, cores: int
                       ) -> tuple[list[LoweredStage], list[list[Residency]]]:
    """The residency plan beyond :data:`~._residency.RESIDENT_SHARE` where the mappings gain.

    A trial for an activation the plan does not keep that lives across mapped linear ops:
    those ops let the kept activations take all of their on-chip memory beside the
    scratchpads (share 1; for the first plan, what their smallest candidate scratchpads would
    leave) and are mapped again for the new plan, among multicast mappings only (a multicast
    grid with its input on chip needs no L3 for its own sharing), with the plan made again
    until it keeps what the new mappings count on (:data:`_REMAPS` rounds). Every kernel
    whose units read their own rows of an input (``Kernel.private_rows``: norms, RoPE,
    attention's queries) lets kept activations take all but what its other inputs need
    (:func:`~._residency.private_rows_share`). A trial counts when the activation is then
    kept and no mapping counts on a tensor the plan does not keep; an op at share 1 whose
    ``X`` the plan leaves in DDR goes back to the share and the trial is made again (a
    multicast grid needs the L3 for an input from DDR). A trial may leave in DDR an
    activation the plan kept (the estimate counts those bytes, and a later trial may take it
    back). Best first: of every activation's trial, the one whose
    pass costs least (:func:`_pass_cycles`; ties to the first produced) replaces the plan if it
    costs less than the plan by more than :data:`~._mapper.TIE`, and the trials are made again
    on top of it (each round lowers the estimate: it ends). Other ops keep the share."""
    sizes = _tensor_sizes(config)
    live_of = live_positions(_pairs(stages))
    row_shares = {(i, j): private_rows_share(op.kernel, config, cores)
                  for i, st in enumerate(stages) for j, op in enumerate(st.ops)
                  if op.kernel.private_rows}        # their kernels are never mapped again
    best = _Trial(stages, plan, {}, _pass_cycles(stages, plan, config, sizes))
    while True:
        trials = [t for (at, key), live in live_of.items()
                  if not _kept(best.plan, best.stages, at, key)
                  and (t := _beyond_share(best, at, key, live, row_shares, config, cores,
                                          sizes)) is not None]
        pick = min(trials, key=lambda t: t.cycles, default=None)
        if pick is None or pick.cycles >= best.cycles * (1 - TIE):
            return best.stages, best.plan
        best = pick


def _unkept(stages: list[LoweredStage], plan: list[list[Residency]]) -> set[tuple[int, int]]:
    """Positions of the linear ops mapped for tensors kept on chip that ``plan`` does not
    keep."""
    return {(i, j) for i, (st, rs) in enumerate(zip(stages, plan, strict=True))
            for j, (op, r) in enumerate(zip(st.ops, rs, strict=True))
            if isinstance(op.rebuild, functools.partial)
            and not op.rebuild.keywords.get("resident", frozenset()) <= r.resident}


def _capped(fn: Callable[..., Kernel], *args: object) -> Callable[[int | None], Kernel]:
    """The kernel ``fn(*args, unit_cap=c)`` as a function of the unit cap ``c``."""
    return lambda c: fn(*args, unit_cap=c)


def _op(name: str, factory: Callable[[int | None], Kernel], flops: int,
        weight_bytes: int = 0, vflops: int = 0, *, reads: dict[str, str] | None = None,
        writes: dict[str, str] | None = None, scratch: tuple[str, ...] = ()) -> LoweredOp:
    kern = factory(None)
    have = kern.program.tensor

    def keep(d: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
        return tuple((t, k) for t, k in (d or {}).items() if t in have)

    flow_reads, flow_writes = keep(reads), keep(writes)
    in_place = tuple((r, w) for r, w in kern.in_place
                     if r in dict(flow_reads) and w in dict(flow_writes))
    flow = Dataflow(flow_reads, flow_writes, tuple(t for t in scratch if t in have), in_place)
    return LoweredOp(name, kern, factory, flops, weight_bytes, vflops, flow)


def _ptq_groups(groups: list[tuple[int, ...]], ptq: PtqWork | None) -> list[tuple[int, ...]]:
    """The structurally identical layer groups, each split further by the outlier sites of
    ``ptq`` its layers have (SpQR's outliers differ layer by layer)."""
    if ptq is None or not any(s.layers for s in ptq.outliers):
        return groups
    out = []
    for group in groups:
        by_key: dict[tuple, list[int]] = {}
        for i in group:
            by_key.setdefault(ptq.layer_key(i), []).append(i)
        out += [tuple(v) for v in by_key.values()]
    return out


def _stage_name(group: tuple[int, ...]) -> str:
    if len(group) == 1:
        return f"layer {group[0]}"
    if group[-1] - group[0] == len(group) - 1:
        return f"layers {group[0]}-{group[-1]}"
    return "layers " + ", ".join(map(str, group))


_MAX_ROWS = (1 << 32) - 1
"""Most rows of a program's tensor (the ISA's 32-bit dimensions)."""


def check_shapes(card: ModelCard, scenario: Scenario, w_att: Storage, w_mlp: Storage,
                 budgets: Budgets) -> None:
    """Refuse, naming the card or scenario field, the sizes the kernels cannot tile (necessary
    conditions, checked before anything is lowered): the attention kernel's head size (a
    multiple of 32, at most 256); a linear layer's K in whole blocks of its weights' scale;
    output widths N in accumulator tiles of 16 (32 where the output is quantized: the MLP's
    hidden); the KV cache's rows (sequences x KV heads x context) within 32 bits."""
    d = card.head_size
    head = "'head_dim'" if card.head_dim is not None else \
        "'hidden_size' / 'num_attention_heads'"
    problems = []
    if d % 32 or d > 256:
        problems.append(f"{head}: the head size {d} must be a multiple of 32, at most 256 (the "
                        "attention kernel)")
    for field, k, w in (("hidden_size", card.hidden_size, w_att),
                        ("hidden_size", card.hidden_size, w_mlp),
                        ("intermediate_size", card.intermediate_size, w_mlp)):
        if w.block and k % w.block:
            problems.append(f"'{field}': {k} is not a multiple of the {w.block}-element scale "
                            f"block of the {w.fmt.name} weights it multiplies")
    for field, n, tile in (("hidden_size", card.hidden_size, 16),
                           ("intermediate_size", card.intermediate_size, 32),
                           ("vocab_size", card.vocab_size if card.is_decoder else 16, 16)):
        if n % tile:
            problems.append(f"'{field}': {n} is not a multiple of {tile} (the output width of "
                            f"a linear layer, in accumulator tiles of {tile} columns)")
    router_row = ROUTER_ROW_BYTES * padded_experts(card.num_experts)
    if card.num_experts and router_row > budgets.onchip_bytes:
        problems.append(f"'num_experts': the router's top-k takes a row of {router_row} bytes for "
                        f"{card.num_experts} experts ({ROUTER_ROW_BYTES} per expert, padded to "
                        f"32), more than a core's {budgets.onchip_bytes}-byte scratchpad")
    if problems:
        raise ConfigError(f"model card {card.name!r} cannot be lowered: "
                          + "; ".join(dict.fromkeys(problems)))
    rows = scenario.batch * card.kv_heads * scenario.context_tokens
    if rows > _MAX_ROWS:
        field = "sequence_length" if scenario.phase == "prefill" else "context_length"
        raise ConfigError(f"'batch' x '{field}': {scenario.batch} sequences x {card.kv_heads} KV "
                          f"heads x {scenario.context_tokens} tokens = {rows} KV-cache rows; a "
                          f"program's tensor holds at most {_MAX_ROWS}")


def lower_model(card: ModelCard, scenario: Scenario, config: ChipConfig, *,
                cores: int | None = None, l3: bool = True,
                ptq: PtqWork | None = None) -> LoweredModel:
    """Lower every layer kind of ``card`` for ``scenario`` on ``cores`` (default: all) cores;
    ``l3``: the mappings may count on the shared L3; ``ptq``: a PTQ scheme's online Hadamard
    transforms (every layer) and SpQR outlier products (the layers their sites name; layers
    with different sites are lowered as stages of their own) (:mod:`._ptq_ops`)."""
    p = config.cores if cores is None else cores
    if not 1 <= p <= config.cores:
        raise ConfigError(f"'cores' must be in 1..{config.cores} (got {p})")
    fm = scenario.formats
    nm = scenario.sparsity_nm
    bud = Budgets.of(isa_params(config))
    w_att = weight_storage(fm.for_class("attention"), nm, config, "formats.attention")
    w_mlp = weight_storage(fm.for_class("mlp"), nm, config, "formats.mlp")
    check_shapes(card, scenario, w_att, w_mlp, bud)
    if fm.kv_cache.name not in ("float8_e4m3fn", "float8_e5m2"):
        raise ConfigError(f"'formats.kv_cache': {fm.kv_cache.name!r}: the lowering keeps the KV "
                          "cache in FP8 (float8_e4m3fn or float8_e5m2) for the matrix unit")
    kv = Storage.of(fm.kv_cache)
    bsz = scenario.batch
    decode = scenario.phase == "decode"
    tq = 1 if decode else padded_tokens(scenario.query_tokens)
    real_tq = scenario.query_tokens
    ctx = scenario.context_tokens
    ctx_l = ctx if decode else tq
    t = bsz * tq
    h, f, d = card.hidden_size, card.intermediate_size, card.head_size
    nh, nkv = card.num_attention_heads, card.kv_heads
    qd, kvd = nh * d, nkv * d
    tok = bsz * real_tq
    spars = scenario.sparsity

    def wbytes(layer: int, names: tuple[str, ...]) -> int:
        total = 0
        for spec in card.layer_tensors(layer):
            if spec.name.split(".")[-1] in names or any(spec.name.endswith(n) for n in names):
                total += tensor_footprint(spec, fm.for_class(spec.tensor_class), spars).total_bytes
        return total

    def lin(name: str, m: int, n: int, k: int, w: Storage, epi: str) -> Callable:
        return functools.partial(plan_linear, name, m, n, k, w, p, epi, config, bud, l3=l3)

    e_k = card.experts_per_token
    w_exp = (weight_storage(fm.for_class("expert"), nm, config, "formats.expert")
             if card.num_experts else w_mlp)
    w_rt = (weight_storage(fm.router, None, config, "formats.router")
            if matrix_runs(fm.router.fmt, config) else BF16)
    enc_len = scenario.encoder_length or scenario.context_tokens
    if card.family == "switch" and not decode and enc_len != scenario.context_tokens:
        raise ConfigError(f"'encoder_length': prefill of {card.name!r} lowers the encoder and the "
                          "decoder over the same prompt length (give no encoder_length)")
    moe_notes: list[str] = []
    if card.num_experts and w_rt is BF16:
        moe_notes.append(f"router weights stored as {fm.router.fmt.name} are run (and streamed) "
                         "as bfloat16: the matrix unit does not take "
                         f"{fm.router.fmt.name}")

    def moe_ops(i0: int, mt: int, ntok: int, x: str, r: str, out: str) -> list[LoweredOp]:
        """Router, route, dispatch, expert GEMMs and combine of MoE layer ``i0`` over ``mt``
        rows (``ntok`` real tokens); reads ``x`` (normed FP8) and ``r`` (residual), writes
        ``out``."""
        e = card.num_experts
        mp = moe_plan(scenario.routing, ntok, e_k, e)
        if not any(n.endswith(mp.describe()) for n in moe_notes):
            moe_notes.append(f"layer {i0}: {mp.describe()}")
        u, c, ep = mp.experts, mp.capacity, padded_experts(e)
        ar = bud.acc_max_rows                   # GEMM rows: above a tile, whole tiles
        cm = c if c <= ar else ar * math.ceil(c / ar)
        gated = card.mlp == "gated"
        specs = {spec.name.split(".")[-1]: spec for spec in card.layer_tensors(i0)
                 if spec.tensor_class in ("router", "expert")}
        rt_bytes = tensor_footprint(specs["router"], w_rt).total_bytes

        def exp_bytes(*names: str) -> int:
            return sum(tensor_footprint(specs[n], fm.for_class("expert"), spars).total_bytes
                       for n in names) * u // e

        route = functools.partial(route_kernel, "route", tokens=mt, experts=e, top_k=e_k,
                                  cores=p, budgets=bud)
        disp = functools.partial(dispatch_kernel, "dispatch", tokens=mt, h=h, top_k=e_k,
                                 copies=mp.computed, rows=u * c, cores=p)
        comb = functools.partial(combine_kernel, "combine", tokens=ntok, h=h, top_k=e_k,
                                 capacity=c, experts=u, cores=p)
        return [
            _op("router", lin("router", mt, ep, h, w_rt, "store"), linear_flops(ntok, e, h),
                rt_bytes, reads={"X": x}, writes={"Y": "logits"}),
            _op("route", lambda cap: route(unit_cap=cap), 0, 0, ntok * e_k * (e + 5),
                reads={"L": "logits"}, writes={"G": "gates"}),
            _op("dispatch", lambda cap: disp(unit_cap=cap), 0, 0, 0,
                reads={"X": x}, writes={"XD": "xd"}),
            _op("experts_gate_up" if gated else "experts_up",
                lin("experts_gate_up", cm, u * f, h, w_exp, "gated" if gated else "quant"),
                linear_flops(mp.computed, f, h) * (2 if gated else 1),
                exp_bytes("gate_proj", "up_proj") if gated else exp_bytes("up_proj"),
                (5 if gated else 1) * mp.computed * f, reads={"X": "xd"}, writes={"Y": "ge"}),
            _op("experts_down", lin("experts_down", cm, u * h, f, w_exp, "store"),
                linear_flops(mp.computed, h, f), exp_bytes("down_proj"),
                reads={"X": "ge"}, writes={"Y": "ye"}),
            _op("combine", lambda cap: comb(unit_cap=cap), 0, 0, 2 * ntok * e_k * h,
                reads={"R": r, "G": "gates", "YE": "ye"}, writes={"Y": out}),
        ]

    def prenorm_layer(i0: int, kind: str) -> list[LoweredOp]:
        """A pre-norm (llama, switch) layer: self-attention (causal in decoders), for switch
        decoders cross-attention over the encoder, then the MLP or the mixture of experts."""
        enc = kind == "encoder"
        lq = tq if not enc else padded_tokens(enc_len)
        lt, ltok = bsz * lq, bsz * (real_tq if not enc else enc_len)
        lctx = ctx_l if not enc else lq
        rctx = ctx if not enc else enc_len
        rq = real_tq if not enc else enc_len
        norm = functools.partial(norm_kernel, m=lt, h=h, kind="rmsnorm", eps=card.norm_eps,
                                 cores=p, budgets=bud)
        att = functools.partial(attention_kernel, "attention", batch=bsz, heads=nh,
                                kv_heads=nkv, head_dim=d, queries=lq, context=lctx,
                                causal=not enc, cores=p, kv=kv)
        rkv = functools.partial(rope_kv_kernel, batch=bsz, tokens=lq, heads=nh, kv_heads=nkv,
                                head_dim=d, position=ctx - 1 if decode and not enc else 0,
                                context=lctx, rope=card.position_embedding == "rope",
                                cores=p, kv=kv)
        gated = card.mlp == "gated"
        nfl = norm_vector_flops(ltok, h, "rmsnorm")
        rope_fl = (rope_vector_flops(ltok, nh, nkv, d)
                   if card.position_embedding == "rope" else 0)
        # the KV cache of a decoder persists in DDR; V^T of a prompt is a temporary
        ops = [
            _op("attn_norm", _capped(norm, "attn_norm"), 0,
                wbytes(i0, (".attn_norm",)), nfl, reads={"X": "h"}, writes={"Y": "hn"}),
            _op("qkv_proj", lin("qkv_proj", lt, qd + 2 * kvd, h, w_att, "store"),
                linear_flops(ltok, qd + 2 * kvd, h),
                wbytes(i0, (".attn.q_proj", ".attn.k_proj", ".attn.v_proj")),
                reads={"X": "hn"}, writes={"Y": "qkv"}),
            _op("rope_kv", _capped(rkv, "rope_kv"), 0, 0, rope_fl,
                reads={"QKV": "qkv"}, writes={"Q": "q", "VT": "vt"}),
            _op("attention", _capped(att), attention_flops(bsz, rq, rctx, nh, d), 0,
                softmax_vector_flops(bsz, rq, rctx, nh, d),
                reads={"Q": "q", "VT": "vt"}, writes={"O": "attn"},
                scratch=("OP", "MP", "LP")),
            _op("o_proj", lin("o_proj", lt, h, qd, w_att, "residual"),
                linear_flops(ltok, h, qd), wbytes(i0, (".attn.o_proj",)), ltok * h,
                reads={"X": "attn", "R": "h"}, writes={"Y": "h1"}),
        ]
        if card.family == "switch" and not enc:
            # cross-attention: Q from the decoder, K and V of the encoder output (computed at
            # prefill into a cache of enc_len rows; decode reads it)
            xatt = functools.partial(attention_kernel, "cross_attention", batch=bsz, heads=nh,
                                     kv_heads=nkv, head_dim=d, queries=lq,
                                     context=lctx if not decode else enc_len, causal=False,
                                     cores=p, kv=kv)
            pre = ".cross_attn."
            ops += [
                _op("cross_norm", _capped(norm, "cross_norm"), 0,
                    wbytes(i0, (".cross_attn_norm",)), nfl,
                    reads={"X": "h1"}, writes={"Y": "hc"}),
                _op("cross_q", lin("cross_q", lt, qd, h, w_att, "quant"),
                    linear_flops(ltok, qd, h), wbytes(i0, (pre + "q_proj",)),
                    reads={"X": "hc"}, writes={"Y": "qc"}),
            ]
            if not decode:
                ops.append(_op("cross_kv", lin("cross_kv", bsz * padded_tokens(enc_len),
                                               2 * kvd, h, w_att, "quant"),
                               linear_flops(bsz * enc_len, 2 * kvd, h),
                               wbytes(i0, (pre + "k_proj", pre + "v_proj")),
                               reads={"X": "enc"}, writes={"Y": "kvc"}))
            ops += [
                _op("cross_attention", _capped(xatt), attention_flops(bsz, rq, enc_len, nh, d),
                    0, softmax_vector_flops(bsz, rq, enc_len, nh, d),
                    reads={"Q": "qc"}, writes={"O": "xattn"}, scratch=("OP", "MP", "LP")),
                _op("cross_o_proj", lin("cross_o_proj", lt, h, qd, w_att, "residual"),
                    linear_flops(ltok, h, qd), wbytes(i0, (pre + "o_proj",)), ltok * h,
                    reads={"X": "xattn", "R": "h1"}, writes={"Y": "h1"}),
            ]
        ops.append(_op("mlp_norm", _capped(norm, "mlp_norm"), 0,
                       wbytes(i0, (".mlp_norm",)), nfl, reads={"X": "h1"}, writes={"Y": "hn1"}))
        if card.is_moe_layer(i0):
            return ops + moe_ops(i0, lt, ltok, "hn1", "h1", "h")
        return ops + [
            _op("gate_up" if gated else "up_proj",
                lin("gate_up", lt, f, h, w_mlp, "gated" if gated else "quant"),
                linear_flops(ltok, f, h) * (2 if gated else 1),
                wbytes(i0, ("gate_proj", "up_proj")), 5 * ltok * f if gated else 0,
                reads={"X": "hn1"}, writes={"Y": "g"}),
            _op("down_proj", lin("down_proj", lt, h, f, w_mlp, "residual"),
                linear_flops(ltok, h, f), wbytes(i0, ("down_proj",)), ltok * h,
                reads={"X": "g", "R": "h1"}, writes={"Y": "h"}),
        ]

    stages = []
    for group in _ptq_groups(card.layer_groups(), ptq):
        i0 = group[0]
        ops: list[LoweredOp] = []
        kind = card.layer_kind(i0)
        if card.family == "switch" and kind == "encoder" and decode:
            continue                # the encoder ran at prefill; decode reads its K/V cache
        if card.family in ("llama", "switch"):
            ops += prenorm_layer(i0, kind)
        else:
            att = functools.partial(attention_kernel, "attention", batch=bsz, heads=nh,
                                    kv_heads=nkv, head_dim=d, queries=tq, context=ctx_l,
                                    causal=False, cores=p, kv=kv)
            rkv = functools.partial(rope_kv_kernel, batch=bsz, tokens=tq, heads=nh,
                                    kv_heads=nkv, head_dim=d, position=0, context=ctx_l,
                                    rope=False, cores=p, kv=kv)
            att_fl = attention_flops(bsz, real_tq, ctx, nh, d)
            sm_fl = softmax_vector_flops(bsz, real_tq, ctx, nh, d)
            norm = functools.partial(norm_kernel, m=t, h=h, kind="layernorm", eps=card.norm_eps,
                                     cores=p, budgets=bud)
            nfl = norm_vector_flops(tok, h, "layernorm")
            # an encoder keeps no cache: K and V^T are temporaries of the layer
            ops += [
                _op("qkv_proj", lin("qkv_proj", t, qd + 2 * kvd, h, w_att, "bias_store"),
                    linear_flops(tok, qd + 2 * kvd, h),
                    wbytes(i0, ("q_proj", "k_proj", "v_proj", "q_proj.bias", "k_proj.bias",
                                "v_proj.bias")), tok * (qd + 2 * kvd),
                    reads={"X": "hn"}, writes={"Y": "qkv"}),
                _op("qkv_cache", _capped(rkv, "qkv_cache"), 0,
                    reads={"QKV": "qkv"}, writes={"Q": "q", "KC": "k", "VT": "vt"}),
                _op("attention", _capped(att), att_fl, 0, sm_fl,
                    reads={"Q": "q", "KC": "k", "VT": "vt"}, writes={"O": "attn"},
                    scratch=("OP", "MP", "LP")),
                _op("o_proj", lin("o_proj", t, h, qd, w_att, "bias_residual"),
                    linear_flops(tok, h, qd), wbytes(i0, ("o_proj", "o_proj.bias")),
                    2 * tok * h, reads={"X": "attn", "R": "hs"}, writes={"Y": "h1"}),
                _op("attn_norm", _capped(norm, "attn_norm"), 0,
                    wbytes(i0, ("attn_norm", "attn_norm.bias")), nfl,
                    reads={"X": "h1"}, writes={"Y": "hn1", "YS": "hs1"}),
                _op("up_proj", lin("up_proj", t, f, h, w_mlp, "gelu"), linear_flops(tok, f, h),
                    wbytes(i0, ("up_proj", "up_proj.bias")), 6 * tok * f,
                    reads={"X": "hn1"}, writes={"Y": "g"}),
                _op("down_proj", lin("down_proj", t, h, f, w_mlp, "bias_residual"),
                    linear_flops(tok, h, f), wbytes(i0, ("down_proj", "down_proj.bias")),
                    2 * tok * h, reads={"X": "g", "R": "hs1"}, writes={"Y": "h2"}),
                _op("mlp_norm", _capped(norm, "mlp_norm"), 0,
                    wbytes(i0, ("mlp_norm", "mlp_norm.bias")), nfl,
                    reads={"X": "h2"}, writes={"Y": "hn", "YS": "hs"}),
            ]
        ops = insert_ptq_ops(ops, ptq, _op, cores=p, budgets=bud, real_tokens=tok, layer=i0)
        stages.append(LoweredStage(_stage_name(group), tuple(group), tuple(ops)))
        if card.family == "switch" and not decode and group[-1] == card.encoder_layers - 1:
            et = bsz * padded_tokens(enc_len)
            fn_enc = functools.partial(norm_kernel, m=et, h=h, kind="rmsnorm",
                                       eps=card.norm_eps, cores=p, budgets=bud)
            stages.append(LoweredStage("encoder final norm", (), (_op(
                "encoder_norm", _capped(fn_enc, "encoder_norm"), 0,
                tensor_footprint(next(s for s in card.tensors()
                                      if s.name == "encoder.final_norm"), fm.norm).total_bytes,
                norm_vector_flops(bsz * enc_len, h, "rmsnorm"),
                reads={"X": "h"}, writes={"Y": "enc"}),)))

    head: list[LoweredOp] = []
    tail = {s.name: s for s in card.tensors() if s.layer is None}
    hw = fm.head
    if card.family in ("llama", "switch"):
        spec = tail.get("lm_head") or tail["embed_tokens"]
        hfmt = hw if "lm_head" in tail else fm.embedding
        hst = weight_storage(hfmt, None, config, "formats.head")
        fn = functools.partial(norm_kernel, m=bsz, h=h, kind="rmsnorm", eps=card.norm_eps,
                               cores=p, budgets=bud)
        head += [
            _op("final_norm", lambda c: fn("final_norm", unit_cap=c), 0,
                tensor_footprint(tail.get("final_norm") or tail["decoder.final_norm"],
                                 fm.norm).total_bytes,
                norm_vector_flops(bsz, h, "rmsnorm"), reads={"X": "h"}, writes={"Y": "hf"}),
            _op("lm_head", lin("lm_head", bsz, card.vocab_size, h, hst, "store"),
                linear_flops(bsz, card.vocab_size, h),
                tensor_footprint(spec, hfmt).total_bytes, reads={"X": "hf"}),
        ]
    elif card.pooler:
        hst = weight_storage(hw, None, config, "formats.head")
        head.append(_op("pooler", lin("pooler", bsz, h, h, hst, "bias"),
                        linear_flops(bsz, h, h),
                        tensor_footprint(tail["pooler.dense"], hw).total_bytes
                        + tensor_footprint(tail["pooler.dense.bias"], fm.norm).total_bytes,
                        bsz * h, reads={"X": "hn"}))
    if head:
        stages.append(LoweredStage("head", (), tuple(head)))
    if l3:
        first = plan_residency(_pairs(stages), config, p)
        mapped = _remap_linears(stages, first, config)
        plan = plan_residency(_pairs(mapped), config, p)
        blind = frozenset(_unkept(mapped, plan))
        if blind:   # a mapping counted on kept tensors the new plan does not keep: those ops
            # are mapped for DDR tensors instead (a plan for their kernels keeps at most what
            # the first one did, and their mappings no longer count on it)
            mapped = _remap_linears(stages, first, config, blind)
            plan = plan_residency(_pairs(mapped), config, p)
        mapped, plan = _keep_more(mapped, plan, config, p)
        mapped, plan = _keep_beyond_share(mapped, plan, config, p)
        stages = mapped
        stages = [dataclasses.replace(st, ops=tuple(with_residency(op, r)
                                                    for op, r in zip(st.ops, rs, strict=True)))
                  for st, rs in zip(stages, plan, strict=True)]
    return LoweredModel(model=card.name, scenario=scenario, config_name=config.name, cores=p,
                        tokens=tok, stages=tuple(stages), moe=tuple(moe_notes))

