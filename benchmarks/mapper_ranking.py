"""Measurement (not a timing benchmark): does the mapper's closed-form ranking agree with the
simulation?

For each linear op of a case, the mapper's candidates (``lowering._mapper._candidates``) are
ranked by its costs (``scored_candidates``: the key ``map_linear`` ranks by); the ``--top`` cheapest
distinct mappings are then each lowered and simulated (``simulation.simulate_op``, every unit,
the op's residency). Prints one line per candidate (cost, simulated time) and a summary row per
op: the chosen mapping's simulated time, the best simulated time among the candidates, and how
many candidates share the chosen one's cost exactly (ties the costs cannot break).
docs/lowering.md, "How well the costs rank mappings".

    python benchmarks/mapper_ranking.py bert                 # BERT-base b8 s128, 4 linears
    python benchmarks/mapper_ranking.py 70b --ops gate_up --top 6
    python benchmarks/mapper_ranking.py CASE [--ops OP,...] [--top N]

Cases: ``bert`` (BERT-base b8 s128), ``7b`` (LLaMA-2-7B decode b1 ctx 2048), ``70b`` (LLaMA-2-70B
prefill 2048), ``gemm`` (the 8192^3 FP8 x tai4 GEMM); all tai4 weights on ``prodigy-t16128``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import (
    LoweredOp,
    is_mapped_linear,
    linear_op,
    lower_model,
    ranked_mappings,
    with_mapping,
)
from prodigy_sim.models import Scenario, load_card
from prodigy_sim.numerics import Storage
from prodigy_sim.simulation import SimMethod, simulate_op

HW = "prodigy-t16128"
CASES = {
    "bert": dict(model="bert-base-uncased", phase="prefill", batch=8, sequence_length=128),
    "7b": dict(model="llama-2-7b", phase="decode", batch=1, context_length=2048),
    "70b": dict(model="llama-2-70b", phase="prefill", batch=1, sequence_length=2048),
}
EVERY_UNIT = SimMethod(steady_units=None)


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One candidate: its cost (us, the costs' cycles at the core clock), its simulated time
    (us) and its mapping's description."""

    cost_us: float
    sim_us: float
    mapping: str


def linear_ops(case: str, chip) -> list[tuple[str, LoweredOp]]:
    """``(stage name, op)`` of every linear op of ``case``'s first stage (the GEMM: one op)."""
    if case == "gemm":
        return [("", linear_op("gemm", 8192, 8192, 8192, Storage.of("tai4"), chip))]
    sc = Scenario(**CASES[case])
    st = lower_model(load_card(sc.model), sc, chip).stages[0]
    return [(st.name, o) for o in st.ops if is_mapped_linear(o)]


def rank(op: LoweredOp, stage: str, chip, top: int) -> tuple[list[Ranked], int, bool]:
    """The ``top`` cheapest distinct candidates of ``op`` simulated, in the mapper's order of
    preference with the op's own mapping first, and how many candidates cost exactly what that
    mapping costs (rounded cycles, as the mapper compares), and whether the op's mapping is not
    the mapper's first (the lowering chose it together with the residency plan: a smaller
    scratchpad that lets the plan keep more on chip; docs/lowering.md)."""
    scored = ranked_mappings(op)
    own = next(i for i, s in enumerate(scored) if s[2].describe() == op.kernel.mapping)
    scored.insert(0, scored.pop(own))
    ties = sum(1 for s in scored if s[0][0] == scored[0][0][0])
    out: list[Ranked] = []
    seen: set[str] = set()
    for _, cost, mp in scored:
        if mp.describe() in seen:
            continue
        seen.add(mp.describe())
        res = simulate_op(with_mapping(op, mp), chip, method=EVERY_UNIT, stage=stage)
        out.append(Ranked(cost / chip.frequency_hz * 1e6, res.seconds * 1e6, mp.describe()))
        if len(out) == top:
            break
    return out, ties, own != 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=[*CASES, "gemm"])
    ap.add_argument("--ops", default="", help="comma-separated op names (default: every linear)")
    ap.add_argument("--top", type=int, default=8, help="candidates simulated per op")
    args = ap.parse_args()
    chip = load_preset(HW)
    wanted = {o for o in args.ops.split(",") if o}
    rows = []
    for stage, op in linear_ops(args.case, chip):
        if wanted and op.name not in wanted:
            continue
        t = time.perf_counter()
        ranked, ties, joint = rank(op, stage, chip, args.top)
        print(f"## {args.case} {op.name} ({time.perf_counter() - t:.0f} s wall)")
        for r in ranked:
            print(f"  cost {r.cost_us:9.2f} us  simulated {r.sim_us:9.2f} us  {r.mapping}")
        if joint:
            print(f"  ({op.name}'s mapping was chosen with the residency plan, not the costs' "
                  f"first)")
        best = min(ranked, key=lambda r: r.sim_us)
        rows.append((op.name, ranked[0], best, ties))
    print()
    print(f"| {args.case}: op | chosen mapping | cost us | simulated us | best of the top "
          f"{args.top} (simulated us) | best / chosen | candidates at the chosen cost |")
    print("|---|---|---:|---:|---|---:|---:|")
    for name, chosen, best, ties in rows:
        print(f"| {name} | {chosen.mapping} | {chosen.cost_us:.2f} | {chosen.sim_us:.2f} | "
              f"{best.mapping} ({best.sim_us:.2f}) | {best.sim_us / chosen.sim_us:.2f} | "
              f"{ties} |")


if __name__ == "__main__":
    main()
