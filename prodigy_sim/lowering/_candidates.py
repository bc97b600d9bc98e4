"""A linear op's alternative mappings, as lowered ops the timing model can simulate.

The mapper (:mod:`._mapper`) ranks candidate mappings by closed-form costs and the lowering
keeps the cheapest. :func:`mapping_candidates` returns that op and the next cheapest distinct
candidates, each rebuilt with its mapping, so that a caller can simulate them and keep the
fastest (``prodigy_sim.simulation.fastest_mapping``, ``mapping_candidates=``;
``benchmarks/mapper_ranking.py``). A candidate must leave the activations the residency plan
keeps on chip during the op their share of its L3 (the op's ``Residency.share``:
:data:`~._residency.RESIDENT_SHARE`, or 1 where the plan went beyond it - the plan's own rule):
its scratchpads may be larger than the choice's.
"""

from __future__ import annotations

import dataclasses
import functools

from prodigy_sim.hardware import ChipConfig
from prodigy_sim.isa import validate
from prodigy_sim.lowering._linear import LinearMapping
from prodigy_sim.lowering._lower import LoweredOp, linear_plan, mapper_call
from prodigy_sim.lowering._mapper import preference_order, scored_candidates
from prodigy_sim.lowering._residency import fits_share
from prodigy_sim.timing import default_l3_bytes, isa_params

__all__ = ["is_mapped_linear", "mapping_candidates", "ranked_mappings", "with_mapping"]


def is_mapped_linear(op: LoweredOp) -> bool:
    """Whether ``op`` is a linear layer placed by the mapper (its kernel built by
    :func:`~prodigy_sim.lowering.plan_linear`)."""
    return linear_plan(op) is not None


def _plan(op: LoweredOp) -> functools.partial:
    """The :func:`plan_linear` call that builds the mapped linear op ``op``'s kernel."""
    fn = linear_plan(op)
    if fn is None:
        raise ValueError(f"op {op.name!r} is not a linear op placed by the mapper")
    return fn


def ranked_mappings(op: LoweredOp) -> list[tuple[tuple, float, LinearMapping]]:
    """Every candidate mapping of the mapped linear op ``op`` as ``(ranking key, cost in core
    cycles, mapping)``, in the mapper's order of preference, its choice first (see
    :func:`~prodigy_sim.lowering._mapper.preference_order`: the candidates within
    :data:`~prodigy_sim.lowering._mapper.TIE` of the cheapest, then the others by key)."""
    args, kw = mapper_call(_plan(op))
    return preference_order(list(scored_candidates(*args, **kw)))


def with_mapping(op: LoweredOp, mp: LinearMapping) -> LoweredOp:
    """The mapped linear op ``op`` rebuilt with mapping ``mp`` (its unit cap still a
    parameter; its residency and the order its K steps issue their loads unchanged)."""
    fn = functools.partial(_plan(op), mapping=mp)
    return dataclasses.replace(op, kernel=fn(None), rebuild=fn)


def mapping_candidates(op: LoweredOp, config: ChipConfig, top: int) -> list[LoweredOp]:
    """``op`` and, if it is a mapped linear op (:func:`is_mapped_linear`), its next cheapest
    distinct mappings by the mapper's costs: at most ``top`` ops in all (``top >= 1``), in cost
    order, the first ``op`` itself. Candidates whose scratchpads leave the kept activations
    less than their share of the L3 are skipped."""
    if top < 1:
        raise ValueError(f"'top' must be >= 1 (got {top})")
    out = [op]
    if top == 1 or not is_mapped_linear(op):
        return out
    seen = {op.kernel.mapping}
    params = isa_params(config)
    for _, _, mp in ranked_mappings(op):
        if mp.describe() in seen:
            continue
        seen.add(mp.describe())
        alt = with_mapping(op, mp)
        if op.residency.resident or op.residency.held_bytes:
            lay = validate(alt.kernel.program, params)
            kept = op.residency.onchip_bytes({t: p.nbytes for t, p in lay.tensors.items()})
            if not fits_share(kept, default_l3_bytes(config, alt.kernel.cores, lay),
                              op.residency.share):
                continue
        out.append(alt)
        if len(out) == top:
            break
    return out
