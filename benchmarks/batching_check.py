"""Measurement (not a timing benchmark): the DDR batching approximation on every case of
``bench_models.py`` and every shipped scenario, op by op.

The timing model runs DDR5 in batches: the requests issued until some core needs a completion
are simulated together, each batch on fresh subchannel instances (banks closed, queues empty)
behind the earlier batches' data bursts (docs/timing.md, *Batching approximation*). Each op is
simulated again with every DDR request logged and the requests of each controller replayed in
one DDR5 batch (``simulate(..., check_batching=True)``, ``--check-batching`` on the CLI); the
drain span (first arrival to last completion) of the batched run against that one batch, mean
over the controllers, negative when the batches drained faster. Prints a markdown table: per
case the op with the largest difference and the ops' differences weighted by their share of
the simulated time, then every op differing by ``--min`` or more.

    python benchmarks/batching_check.py                 # every case (about 12 minutes)
    python benchmarks/batching_check.py --cases BERT    # the cases whose names contain BERT
"""

from __future__ import annotations

import argparse

from bench_models import CASES, SHIPPED

from prodigy_sim.hardware import load_preset
from prodigy_sim.lowering import linear_op
from prodigy_sim.models import Scenario, load_scenario
from prodigy_sim.numerics import Storage
from prodigy_sim.reports import simulate_scenario
from prodigy_sim.simulation import SimMethod, simulate_op


def case_ops(spec: dict | str) -> list[tuple[str, float, float]]:
    """``(stage/op, seconds of the op per pass, drain difference)`` of every op of one case
    (fields of a :class:`Scenario`, ``{"gemm": [m, n, k]}`` or a shipped scenario's name)."""
    if isinstance(spec, dict) and "gemm" in spec:
        chip = load_preset("prodigy-t16128")
        m, n, k = spec["gemm"]
        r = simulate_op(linear_op("gemm", m, n, k, Storage.of("tai4"), chip), chip,
                        method=SimMethod(check_batching=True))
        assert r.ddr_batching_error is not None
        return [("gemm", r.seconds, r.ddr_batching_error)]
    sc = load_scenario(spec) if isinstance(spec, str) else Scenario(**spec)
    rep = simulate_scenario(sc, check_batching=True)
    return [(f"{o['stage']}/{o['op']}", o["total_seconds"], o["ddr_batching_error"])
            for o in rep.ops]


def summary_row(name: str, ops: list[tuple[str, float, float]]) -> list[str]:
    """Cells of the case table: case, ops, simulated time of a pass, largest difference (op),
    time-weighted mean."""
    worst = max(ops, key=lambda o: abs(o[2]))
    total = sum(t for _, t, _ in ops)
    mean = sum(t * e for _, t, e in ops) / total
    return [name, str(len(ops)), f"{total * 1e3:.3f} ms", f"{100 * worst[2]:+.1f}% (`{worst[0]}`)",
            f"{100 * mean:+.2f}%"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", metavar="TEXT",
                    help="only the cases whose names contain TEXT (default: all)")
    ap.add_argument("--min", type=float, default=0.01, metavar="F",
                    help="list every op whose difference is at least F (default: 0.01)")
    args = ap.parse_args()
    cases = [(c[0], c[1]) for c in CASES] + [(n, n) for n in SHIPPED]
    rows, big = [], []
    for name, spec in cases:
        if args.cases not in name:
            continue
        ops = case_ops(spec)
        rows.append(summary_row(name, ops))
        total = sum(t for _, t, _ in ops)
        big += [[name, op, f"{100 * t / total:.1f}%", f"{100 * e:+.1f}%"]
                for op, t, e in ops if abs(e) >= args.min]
    print("| case | ops | simulated | largest difference (op) | weighted by time |")
    print("|---|---:|---:|---|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print("| case | op | share of the time | drain difference |")
    print("|---|---|---:|---:|")
    for r in big:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
