"""Mixture-of-experts models simulated: Switch-1.6T and Mixtral-8x7B decode and prefill, and
Mixtral-8x7B decode against dense models of equal active and equal total parameters.

The dense comparisons are Mixtral's card with no experts and an MLP of ``k x intermediate``
(``dense-mixtral-active``: the 2 experts a token uses side by side, 12.9B parameters, Mixtral's
active count less the router) or ``E x intermediate`` (``dense-mixtral-total``: every expert,
46.7B). Prints a markdown table (one row per case: simulated time, tokens/s or time to first
token, expert weight bytes streamed per pass, experts hit, the wall time of the simulation) and
the load average before and after.

    python benchmarks/bench_moe.py              # every case (several minutes on 2 busy cores)
    python benchmarks/bench_moe.py --quick      # the decode cases only
"""

from __future__ import annotations

import argparse
import os
import time

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import lower_model
from prodigy_sim.models import ModelCard, Scenario, footprint_report, load_card
from prodigy_sim.simulation import simulate

HW = "prodigy-t16128"


def dense_like(card: ModelCard, experts: int) -> ModelCard:
    """``card`` without experts, its MLP ``experts x intermediate`` wide."""
    name = "dense-mixtral-active" if experts == card.experts_per_token else "dense-mixtral-total"
    return ModelCard.model_validate({
        **card.model_dump(), "name": name, "num_experts": 0, "experts_per_token": 1,
        "intermediate_size": experts * card.intermediate_size, "published_parameters": None,
        "published_parameters_note": "",
        "source": f"{card.name} with a dense MLP of {experts} experts' width (comparison)"})


def cases(quick: bool) -> list[tuple[ModelCard, dict]]:
    mix, sw = load_card("mixtral-8x7b"), load_card("switch-1.6t")
    dec = dict(phase="decode", batch=1, context_length=2048)
    out = [(sw, dict(phase="decode", batch=1, context_length=512)),
           (sw, dict(phase="decode", batch=32, context_length=512)),
           (mix, dec), (dense_like(mix, mix.experts_per_token), dec),
           (dense_like(mix, mix.num_experts), dec)]
    if not quick:
        out += [(mix, dict(phase="prefill", batch=1, sequence_length=512)),
                (sw, dict(phase="prefill", batch=1, sequence_length=512))]
    return out


def row(card: ModelCard, kw: dict) -> str:
    config = load_preset(HW)
    sc = Scenario(model=card.name, hardware=HW, **kw)
    t0 = time.perf_counter()
    lm = lower_model(card, sc, config)
    sim = simulate(lm, config)
    wall = time.perf_counter() - t0
    expert = sum(op.weight_bytes * st.repeat for st in lm.stages for op in st.ops
                 if op.name.startswith("experts_"))
    hit = lm.moe[-1].split(" hit ")[1].split(" experts")[0] if lm.moe else "-"
    fp = footprint_report(card, sc)
    rate = (f"{sc.batch / sim.seconds:,.1f} tok/s" if sc.phase == "decode"
            else f"TTFT {sim.seconds * 1e3:,.1f} ms")
    length = kw.get("context_length") or kw.get("sequence_length")
    return (f"| {card.name} | {sc.phase} | {sc.batch} | {length} | {sim.seconds * 1e3:,.3f} | "
            f"{rate} | {lm.weight_bytes / 1e9:,.3f} | {expert / 1e9:,.3f} | {hit} | "
            f"{fp.total_bytes / 1e9:,.1f} | {wall:,.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="decode cases only")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(f"| model | phase | batch | context / prompt | step ms | rate | weights GB/pass | "
          f"experts GB/pass | experts hit | footprint GB ({HW}) | wall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for card, kw in cases(args.quick):
        print(row(card, kw), flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
